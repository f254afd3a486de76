"""The derivative image booted under qemu (issues 5 and 6).

Each check reads the `CHECK name=value` lines that the guest's e2e-report printed to
the serial console (tests/e2e/guest/e2e-report); the expected values come from the
derivative sample (samples/derivative/system/oem/cloud-init.yaml) and the reference's
layout rules (../shared/reference/immutable-rootfs.md, SPEC sections 6 and 7.11).
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest
import yaml

from tests.e2e import vm

pytestmark = pytest.mark.e2e

STAGES = ["rootfs", "initramfs", "fs", "boot", "network"]
INITRD_UNITS = ["edgeinit-rootfs.service", "edgeinit-mount-layout.service",
                "edgeinit-initramfs.service"]
ROOT_UNITS = ["edgeinit-fs.service", "edgeinit-boot.service", "edgeinit-network.service"]


def sample() -> dict:
    return yaml.safe_load(vm.SAMPLE.read_text())


def sample_step(stage: str, name: str) -> dict:
    return next(s for s in sample()["stages"][stage] if s.get("name") == name)


def mangle(path: str) -> str:
    return path.strip("/").replace("/", "-")


def console_excerpt(b: vm.Boot, lines: int = 60) -> str:
    tail = b.console.splitlines()[-lines:]
    return f"console {b.log_path} (last {len(tail)} lines):\n" + "\n".join(tail)


def checks_of(b: vm.Boot) -> vm.Boot:
    """The boot, once it is known to have reached the report (else fail with the log)."""
    assert "E2E-REPORT-END" in b.console, (
        f"boot {b.name} never printed its report (qemu exit {b.returncode}, "
        f"{b.seconds:.0f} s)\n{console_excerpt(b)}")
    return b


class Events:
    """A unit's start and end, from `systemctl show` where the guest's systemd still
    knows the unit (the real root's units), else from the journal (the initrd's).

    The journal alone is not reliable under emulation: PID 1 logs to the kernel ring
    buffer until journald is back after switch-root (those lines lose their MESSAGE_ID),
    and on a loaded host journald was seen to miss a unit's "Finished" line. systemd's
    own timestamps (InactiveExit = start, ActiveEnter = done) are the same facts.
    """

    def __init__(self, b: vm.Boot, unit: str) -> None:
        self.unit = unit
        self.events = b.json(f"unit.{unit}")
        shown = b.checks.get(f"show.{unit}")
        self.show = json.loads(shown) if shown else {}

    def times(self, event: str) -> list[int]:
        return [e["us"] for e in self.events if e["event"] == event]

    def _shown(self, key: str) -> int:
        return int(self.show.get(key) or 0)

    @property
    def starts(self) -> int:
        journal = len(self.times("starting"))
        if self.show:
            return max(journal, 1 if self._shown("InactiveExitTimestampMonotonic") else 0)
        return journal

    @property
    def start(self) -> int:
        t = ([self._shown("InactiveExitTimestampMonotonic")] if self.show
             else self.times("starting"))
        assert t and t[0], f"{self.unit} never started: {self.events} {self.show}"
        return t[0]

    @property
    def end(self) -> int:
        if self.show:
            t = [self._shown("ActiveEnterTimestampMonotonic")]
        else:
            t = [e["us"] for e in self.events if e["event"] in ("started", "failed")]
        assert t and t[0], f"{self.unit} never finished: {self.events} {self.show}"
        return t[0]

    @property
    def result(self) -> str | None:
        if self.show:
            if self.show.get("Result") == "success" and self.show.get("ActiveState") in (
                    "active", "inactive") and self._shown("ActiveEnterTimestampMonotonic"):
                return "done"
            return str(self.show.get("Result"))
        done = [e["result"] for e in self.events if e["event"] in ("started", "failed")]
        return done[-1] if done else None


# --- the boot ran, and reported --------------------------------------------------------------

@pytest.mark.parametrize("which", ["boot1", "boot2"])
def test_boot_reaches_multi_user_and_powers_off(which: str, request) -> None:
    b = checks_of(request.getfixturevalue(which))
    assert b.returncode == 0, f"qemu exit {b.returncode}\n{console_excerpt(b)}"
    # Every line the guest printed arrived intact (none cut by console noise).
    assert int(b.checks["report.count"]) == len(b.checks), sorted(b.checks)
    assert b.checks["system_state"] == "running", b.checks["failed_units"]
    assert b.json("failed_units") == []


def test_stage_units_run_once_each_in_boot_order(boot1: vm.Boot) -> None:
    b = checks_of(boot1)
    ev = {u: Events(b, u) for u in
          ["sysroot.mount", "sysroot-oem.mount", *INITRD_UNITS, "initrd-fs.target",
           "initrd-switch-root.service", *ROOT_UNITS, "network-online.target",
           "k3s.service"]}
    for unit in [*INITRD_UNITS, *ROOT_UNITS]:
        assert ev[unit].starts == 1, (unit, ev[unit].events)
        assert ev[unit].result == "done", (unit, ev[unit].events)
    assert ev["sysroot-oem.mount"].result == "done", ev["sysroot-oem.mount"].events
    # In the initrd: root and OEM mounted, rootfs stage, layout, initramfs stage, switch.
    order = [
        ("sysroot.mount", "end", "edgeinit-rootfs.service", "start"),
        ("sysroot-oem.mount", "end", "edgeinit-rootfs.service", "start"),
        ("edgeinit-rootfs.service", "end", "edgeinit-mount-layout.service", "start"),
        ("edgeinit-mount-layout.service", "end", "edgeinit-initramfs.service", "start"),
        ("edgeinit-initramfs.service", "end", "initrd-switch-root.service", "start"),
        # In the real root: fs, boot, network after network-online.
        ("initrd-switch-root.service", "start", "edgeinit-fs.service", "start"),
        ("edgeinit-fs.service", "end", "edgeinit-boot.service", "start"),
        ("edgeinit-boot.service", "end", "edgeinit-network.service", "start"),
        ("edgeinit-network.service", "start", "k3s.service", "start"),
    ]
    for a, a_when, z, z_when in order:
        ta, tz = getattr(ev[a], a_when), getattr(ev[z], z_when)
        assert ta <= tz, f"{a} {a_when} at {ta} us is not before {z} {z_when} at {tz} us"
    # network-online.target is reached before PID 1's messages reach the journal; ask
    # systemctl show instead.
    online = b.json("show.network-online.target")
    network = b.json("show.edgeinit-network.service")
    assert online["ActiveState"] == "active", online
    assert 0 < online["ActiveEnterTimestampMonotonic"] \
        <= network["ExecMainStartTimestampMonotonic"], (online, network)


@pytest.mark.parametrize("which", ["boot1", "boot2"])
def test_every_stage_report_is_ok(which: str, request) -> None:
    b = checks_of(request.getfixturevalue(which))
    assert set(STAGES) <= set(b.json("reports")), b.json("reports")
    for stage in STAGES:
        r = b.json(f"report.{stage}")
        assert r["ok"] is True and r["failed"] == [], (stage, r)
        assert r["root"] == "/", (stage, r)
    layout = b.checks.get("report.mount-layout")
    if layout is not None:  # the layout's own report, when it writes one
        assert json.loads(layout)["ok"] is True, layout


def test_edgeinit_status_shows_every_stage_ok(boot1: vm.Boot) -> None:
    st = checks_of(boot1).json("status")
    assert st["rc"] == 0, st
    assert {s: st["json_ok"].get(s) for s in STAGES} == dict.fromkeys(STAGES, True), st


# --- identity: the initramfs stage ---------------------------------------------------------

def test_hostname(boot1: vm.Boot) -> None:
    b = checks_of(boot1)
    want = sample_step("initramfs", "Branding")["hostname"]
    assert (b.checks["hostname"], b.checks["etc_hostname"]) == (want, want)


def test_group_admin_has_gid_900(boot1: vm.Boot) -> None:
    name, _, gid, members = checks_of(boot1).checks["group.admin"].split(":")
    assert (name, gid) == ("admin", "900")
    assert "rey" in members.split(",")


def test_user_rey(boot1: vm.Boot) -> None:
    b = checks_of(boot1)
    fields = b.checks["passwd.rey"].split(":")
    assert fields[0] == "rey" and fields[5] == "/home/rey" and fields[6] == "/bin/bash", fields
    assert "admin" in b.json("groups.rey")
    assert b.json("rey.password_verifies") is True
    assert b.checks["root.password"] == "locked"  # the sudo step's `passwd -l root`


def test_sudoers_as_written(boot1: vm.Boot) -> None:
    f = sample_step("initramfs", "Setup sudo")["files"][0]
    facts = checks_of(boot1).json("sudoers")
    assert facts == {"sha256": hashlib.sha256(f["content"].encode()).hexdigest(),
                     "mode": "0600", "owner": "0:0"}


# --- the layout (issue 5's Done-when) ----------------------------------------------------------

@pytest.mark.parametrize("which", ["boot1", "boot2"])
def test_layout_after_switch_root(which: str, request) -> None:
    b = checks_of(request.getfixturevalue(which))
    env = vm.sample_layout()
    mounts = {p: b.json(f"mount:{p}") for p in
              vm.LAYOUT_PATHS + vm.state_paths()}
    for p in env["RW_PATHS"].split():
        assert mounts[p] is not None and mounts[p]["fstype"] == "overlay", (p, mounts[p])
    assert mounts["/"]["ro"] is True and mounts["/"]["label"] == "COS_STATE", mounts["/"]
    for volume in env["VOLUMES"].split():
        label, path = re.fullmatch(r"LABEL=([^:]+):(.+)", volume).groups()
        m = mounts[path]
        assert m is not None, (path, m)
        assert (m["label"], m["fstype"], m["fsroot"], m["ro"]) == (label, "ext4", "/", False), m
    for p in vm.state_paths():
        m = mounts[p]
        assert m is not None, f"state path {p} is not mounted"
        assert (m["label"], m["fsroot"]) == ("COS_PERSISTENT", f"/.state/{mangle(p)}.bind"), m
    # Nothing is mounted twice on the same path (the OEM partition is mounted in the
    # initrd before the rootfs stage and is a VOLUME of the layout too).
    assert {p: m["stacked"] for p, m in mounts.items() if m is not None} == \
        {p: 1 for p, m in mounts.items() if m is not None}


def test_fstab_written_by_the_layout(boot1: vm.Boot) -> None:
    lines = [ln for ln in checks_of(boot1).json("fstab")
             if ln.strip() and not ln.lstrip().startswith("#")]
    want = [
        "tmpfs /run/overlay tmpfs defaults,size=25% 0 0",
        "overlay /etc overlay defaults,lowerdir=/etc,upperdir=/run/overlay/etc.overlay/upper,"
        "workdir=/run/overlay/etc.overlay/work,x-systemd.requires-mounts-for=/run/overlay",
        "/dev/disk/by-label/COS_PERSISTENT /usr/local auto defaults 0 0",
        "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0",
        *[f"/usr/local/.state/{mangle(p)}.bind {p} none defaults,bind 0 0"
          for p in vm.state_paths()],
    ]
    missing = [w for w in want if w not in lines]
    assert not missing, f"missing {missing}\nfstab: {lines}"


def test_overlay_upper_dirs_are_reachable_after_switch_root(boot1: vm.Boot) -> None:
    """The overlays' upper directories live in the tmpfs mounted at /run/overlay in the
    initrd (fstab names it). After switch-root /run/overlay must still be that tmpfs,
    with what the initramfs stage wrote into /etc (a fresh empty tmpfs mounted there
    from fstab would pass a mere "is it tmpfs" test)."""
    b = checks_of(boot1)
    m = b.json("mount:/run/overlay")
    assert m is not None and m["fstype"] == "tmpfs", m
    upper = b.json("overlay_upper:/etc")
    assert upper != "MISSING" and {"hostname", "sudoers", "passwd"} <= set(upper), upper


# --- the network stage ---------------------------------------------------------------------------

def test_network_stage_started_k3s(boot1: vm.Boot) -> None:
    b = checks_of(boot1)
    assert b.checks["k3s.active"] == "active"
    assert b.checks["k3s.marker"].startswith("started uptime="), b.checks["k3s.marker"]
    net, k3s = Events(b, "edgeinit-network.service"), Events(b, "k3s.service")
    assert k3s.starts == 1
    assert net.start <= k3s.start <= net.end, (net.events, k3s.events)


def test_network_stage_fetched_reys_keys_from_the_guest_server(boot1: vm.Boot) -> None:
    b = checks_of(boot1)
    requests = b.json("keys.requests")
    assert [r.split()[1:] for r in requests] == [["GET", "/reylejano.keys", "200"]], requests
    served = b.json("keys.served")
    assert served and set(served) <= set(b.json("keys.authorized_keys")), (
        served, b.checks["keys.authorized_keys"])


def test_boot_time_of_edgeinit_units_is_printed(boot1: vm.Boot) -> None:
    blame = checks_of(boot1).json("blame")
    for unit in ROOT_UNITS:
        assert any(line.endswith(" " + unit) for line in blame), (unit, blame)
    print("\n".join(blame))


# --- the second boot of the same disk -----------------------------------------------------------

def test_second_boot_keeps_state_and_drops_ephemeral_files(boot1: vm.Boot,
                                                            boot2: vm.Boot) -> None:
    b1, b2 = checks_of(boot1), checks_of(boot2)
    assert b1.checks["boot_id"] != b2.checks["boot_id"]
    # First boot: nothing there yet.
    for name in ("etc_ssh", "var_log", "var_lib_rancher"):
        assert b1.checks[f"persist.{name}"] == "MISSING", name
    assert b1.checks["persist.motd"] == "absent"
    # Second boot: what the first wrote under the state paths is back, /etc/motd is not.
    for name in ("etc_ssh", "var_log", "var_lib_rancher"):
        assert b2.checks[f"persist.{name}"] == b1.checks["boot_id"], name
    assert b2.checks["persist.motd"] == "absent"


def test_second_boot_timer_and_daemon(boot2: vm.Boot) -> None:
    b = checks_of(boot2)
    assert b.checks["active.edgeinit-reconcile.timer"] == "active"
    assert b.checks["active.edgeinit.service"] == "active"


def test_second_boot_keeps_keys_once(boot2: vm.Boot) -> None:
    b = checks_of(boot2)
    keys = b.json("keys.authorized_keys")
    served = b.json("keys.served")
    assert all(keys.count(k) == 1 for k in served), keys


# --- a failure in /oem does not stop the boot ---------------------------------------------------

def test_failure_scenario_boots_to_multi_user(failure_boot: vm.Boot) -> None:
    b = checks_of(failure_boot)
    assert b.returncode == 0
    assert b.checks["system_state"] == "degraded"
    failed = " ".join(b.json("failed_units"))
    assert "edgeinit-boot.service" in failed, failed


def test_failure_scenario_reports_the_failures(failure_boot: vm.Boot) -> None:
    b = checks_of(failure_boot)
    boot = b.json("report.boot")
    assert boot["ok"] is False
    by_source = {(f["source"], f["name"]) for f in boot["failed"]}
    assert ("/oem/90_malformed.yaml", None) in by_source, boot["failed"]
    assert ("/oem/91_failing.yaml", "failing step") in by_source, boot["failed"]
    assert len(boot["failed"]) == 2, boot["failed"]
    st = b.json("status")
    assert st["rc"] == 1 and st["json_ok"]["boot"] is False, st


def test_failure_scenario_applies_everything_else(failure_boot: vm.Boot) -> None:
    b = checks_of(failure_boot)
    assert b.checks["file:/etc/e2e-after-failure"] == "applied after a failure\\n"
    assert b.checks["hostname"] == "derivative"
    assert b.checks["passwd.rey"].startswith("rey:")
    assert b.json("mount:/etc")["fstype"] == "overlay"
    assert b.json("mount:/usr/local")["label"] == "COS_PERSISTENT"
    assert b.checks["k3s.active"] == "active"


def test_main_image_has_no_failure_files(boot1: vm.Boot) -> None:
    """The control for the scenario above: the same check on the clean disk."""
    assert checks_of(boot1).checks["file:/etc/e2e-after-failure"] == "MISSING"


# --- edgeinit.disable turns it all off ------------------------------------------------------------

def test_disabled_boot_runs_nothing_of_edgeinit(disabled_boot: vm.Boot) -> None:
    b = checks_of(disabled_boot)
    assert b.returncode == 0
    assert "edgeinit.disable" in b.checks["cmdline"].split()
    assert b.json("reports") == []
    # Nothing in the initrd: no OEM mount, no stage, no layout.
    for unit in ["sysroot-oem.mount", *INITRD_UNITS]:
        assert Events(b, unit).starts == 0, (unit, b.checks[f"unit.{unit}"])
    for unit in [*ROOT_UNITS, "edgeinit.service"]:
        show = b.json(f"show.{unit}")
        assert (show["ActiveState"], show["ConditionResult"]) == ("inactive", "no"), show
    for path in ("/etc", "/oem", "/usr/local", "/etc/ssh", "/run/overlay"):
        assert b.json(f"mount:{path}") is None, path
    assert b.checks["hostname"] != "derivative"
