"""The systemd units in systemd/ (issue 4; SPEC section 8: no unit can hang a boot).

- What systemd itself says: `systemd-analyze verify` on every unit, with /usr/bin/edgeinit
  stubbed to a path that exists; the boot and initrd start transactions with the units
  enabled as their [Install] sections say, free of ordering cycles; the kernel-argument
  conditions evaluated by `systemd-analyze condition` against a faked kernel command line.
- What the files say, read line by line (keys repeat in unit files): one unit per stage,
  finite start timeouts, both disable conditions, no hard dependencies, ExecStart, the
  ordering of each stage in the boot, no private mount namespace in the initrd units,
  the reconcile timer.
- The initrd helper and the reconcile unit's inhibit wrapper, run for real as root in a
  private mount namespace with shared propagation (as under systemd).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, REPO, needs_root

UNIT_DIR = REPO / "systemd"
HELPER = UNIT_DIR / "edgeinit-initrd-run"
HELPER_INSTALLED = "/usr/lib/edgeinit/edgeinit-initrd-run"
EDGEINIT = "/usr/bin/edgeinit"
SYSTEM_UNIT_DIR = Path("/usr/lib/systemd/system")
UNIT_SUFFIXES = (".service", ".timer", ".socket", ".path", ".target", ".mount")
DISABLE_CONDITIONS = {"!edgeinit.disable", "!rd.cos.disable"}
ALL_UNITS = sorted(p.name for p in UNIT_DIR.glob("*") if p.suffix in UNIT_SUFFIXES)
SERVICES = [u for u in ALL_UNITS if u.endswith(".service")]
DRACUT_DIR = REPO / "dracut" / "90edgeinit"
DRACUT_UNITS = sorted(p.name for p in DRACUT_DIR.glob("*") if p.suffix in UNIT_SUFFIXES)

# The boot position of each stage (../shared/reference/yip-behaviour.md section 4).
STAGES = {
    "rootfs": dict(
        initrd=True, default_deps=False, remain=True, wanted_by={"initrd-fs.target"},
        after={"sysroot.mount", "initrd-root-fs.target"},
        before={"initrd-fs.target", "initrd-parse-etc.service",
                "edgeinit-mount-layout.service"},
        wants=set()),
    "initramfs": dict(
        initrd=True, default_deps=False, remain=True, wanted_by={"initrd.target"},
        after={"initrd-fs.target", "edgeinit-rootfs.service", "edgeinit-mount-layout.service"},
        before={"initrd.target"}, wants=set()),
    "fs": dict(
        initrd=False, default_deps=False, remain=True, wanted_by={"sysinit.target"},
        after={"local-fs.target"}, before={"sysinit.target"}, wants=set()),
    "boot": dict(
        initrd=False, default_deps=True, remain=True, wanted_by={"multi-user.target"},
        after={"edgeinit-fs.service"}, before={"getty.target"}, wants=set()),
    "network": dict(
        initrd=False, default_deps=True, remain=True, wanted_by={"multi-user.target"},
        after={"network-online.target", "edgeinit-boot.service"}, before=set(),
        wants={"network-online.target"}),
    "reconcile": dict(
        initrd=False, default_deps=True, remain=False, wanted_by=set(),
        after={"edgeinit-boot.service", "edgeinit-network.service"}, before=set(),
        wants=set()),
}
INITRD_STAGES = [s for s, e in STAGES.items() if e["initrd"]]

# Settings that put a unit in a private mount namespace: in the initrd its mounts would
# be gone after switch-root (../shared/docs/boot-testing-in-a-vm.md).
NAMESPACE_KEYS = {
    "RootDirectory", "RootImage", "BindPaths", "BindReadOnlyPaths", "PrivateMounts",
    "MountFlags", "MountAPIVFS", "PrivateTmp", "PrivateDevices", "ProtectSystem",
    "ProtectHome", "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths",
    "TemporaryFileSystem", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc", "ProcSubset",
    "ProtectHostname", "ProtectClock", "MountImages", "ExtensionImages",
}
HARD_DEPS = {"Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "RequiredBy",
             "UpheldBy"}
FATAL_ACTIONS = {"OnFailure", "FailureAction", "SuccessAction", "StartLimitAction",
                 "JobTimeoutAction"}


# ---------------------------------------------------------------- reading unit files

def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> [(key, value)] in file order; repeated keys kept, continuations joined."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        assert current is not None, f"{path.name}: '{line}' outside a section"
        assert "=" in line, f"{path.name}: not a key=value line: '{line}'"
        key, value = line.split("=", 1)
        sections[current].append((key.strip(), value.strip()))
    return sections


def values(unit: dict, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def words(unit: dict, section: str, key: str) -> set[str]:
    return {w for v in values(unit, section, key) for w in v.split()}


def one(unit: dict, section: str, key: str) -> str | None:
    found = values(unit, section, key)
    assert len(found) <= 1, f"{key}= given {len(found)} times"
    return found[0] if found else None


_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "": 1, "s": 1, "sec": 1,
    "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
    "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
}


def seconds(span: str) -> float:
    """A systemd time span in seconds ('5min', '1h 30min', '90'); infinity -> inf."""
    span = span.strip()
    if span == "infinity":
        return float("inf")
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts and re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*[a-z]*)+", span), f"bad span {span!r}"
    total = 0.0
    for number, unit in parts:
        assert unit in _SPAN_UNITS, f"unknown time unit in {span!r}"
        total += float(number) * _SPAN_UNITS[unit]
    return total


def test_time_span_reader() -> None:
    assert seconds("3min") == 180
    assert seconds("1h 30min") == 5400
    assert seconds("90") == 90
    assert seconds("infinity") == float("inf")
    assert seconds("0") == 0
    with pytest.raises(AssertionError):
        seconds("3 fortnights")


def load(name: str) -> dict:
    return parse_unit(UNIT_DIR / name)


def stage_unit(stage: str) -> dict:
    return load(f"edgeinit-{stage}.service")


# ---------------------------------------------------------------- the files themselves

def test_one_unit_per_stage() -> None:
    for stage in STAGES:
        assert (UNIT_DIR / f"edgeinit-{stage}.service").is_file(), stage
    assert (UNIT_DIR / "edgeinit-reconcile.timer").is_file()
    assert os.access(HELPER, os.X_OK), "the initrd helper must be executable"


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_a_finite_start_timeout(name: str) -> None:
    unit = load(name)
    start = one(unit, "Service", "TimeoutStartSec")
    assert start is not None, f"{name}: no TimeoutStartSec= (oneshot units default to none)"
    assert 0 < seconds(start) <= 3600, f"{name}: TimeoutStartSec={start}"
    for key in ("TimeoutSec", "TimeoutStopSec", "TimeoutAbortSec"):
        for value in values(unit, "Service", key):
            assert 0 < seconds(value) < float("inf"), f"{name}: {key}={value}"
    for key in ("JobTimeoutSec", "JobRunningTimeoutSec"):
        for value in values(unit, "Unit", key):
            assert 0 < seconds(value) < float("inf"), f"{name}: {key}={value}"


@pytest.mark.parametrize("name", ALL_UNITS)
def test_every_unit_is_turned_off_by_either_kernel_argument(name: str) -> None:
    conditions = values(load(name), "Unit", "ConditionKernelCommandLine")
    assert set(conditions) >= DISABLE_CONDITIONS, f"{name}: {conditions}"
    # A triggering condition (`|`) would turn the AND of the others into an OR.
    assert not [c for c in conditions if c.startswith("|")], f"{name}: {conditions}"


@pytest.mark.parametrize("name", ALL_UNITS)
def test_no_unit_can_stop_the_boot(name: str) -> None:
    unit = load(name)
    for section in unit:
        for key, value in unit[section]:
            if key in HARD_DEPS:
                targets = [w for w in value.split() if w.endswith(".target")]
                assert not targets, f"{name}: {key}={value} (use Wants=/WantedBy=)"
            assert key not in FATAL_ACTIONS, f"{name}: {key}={value}"


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_units_have_no_hard_dependencies_at_all(stage: str) -> None:
    unit = stage_unit(stage)
    keys = {k for section in unit.values() for k, _ in section}
    assert not keys & HARD_DEPS, f"edgeinit-{stage}.service: {keys & HARD_DEPS}"


@pytest.mark.parametrize("stage", list(STAGES))
def test_execstart_runs_the_stage_of_its_file_name(stage: str) -> None:
    unit = stage_unit(stage)
    assert one(unit, "Service", "Type") == "oneshot"
    execs = values(unit, "Service", "ExecStart")
    assert len(execs) == 1, execs
    argv = shlex.split(execs[0])
    run = [EDGEINIT, "run", "--stage", stage]
    assert argv[-4:] == run, argv
    if STAGES[stage]["initrd"]:
        assert argv == [HELPER_INSTALLED, *run]
    elif stage == "reconcile":
        assert argv[:2] == ["/bin/sh", "-c"] and "/usr/bin/systemd-inhibit" in argv[2]
    else:
        assert argv == run
    for other in ("ExecStartPre", "ExecStartPost"):
        assert not values(unit, "Service", other), f"{stage}: {other}= is not expected"
    conditions = values(unit, "Service", "ExecCondition")
    if stage == "reconcile":  # skipped while the daemon reconciles itself
        assert conditions == ["/bin/sh -c '! /usr/bin/systemctl is-active --quiet "
                              "edgeinit.service'"]
    else:
        assert not conditions, f"{stage}: ExecCondition= is not expected"


def test_daemon_and_timer_can_both_be_enabled() -> None:
    """The daemon does not conflict with the reconcile timer (the e2e boot checks both):
    the timer's service skips its run while the daemon is active instead."""
    daemon = parse_unit(UNIT_DIR / "edgeinit.service")
    assert "edgeinit-reconcile.timer" not in words(daemon, "Unit", "Conflicts")


@pytest.mark.parametrize("stage", list(STAGES))
def test_each_stage_sits_where_the_cos_toolkit_runs_it(stage: str) -> None:
    expect = STAGES[stage]
    unit = stage_unit(stage)
    assert words(unit, "Unit", "After") >= expect["after"]
    assert words(unit, "Unit", "Before") >= expect["before"]
    assert words(unit, "Unit", "Wants") >= expect["wants"]
    assert words(unit, "Install", "WantedBy") == expect["wanted_by"]
    default_deps = one(unit, "Unit", "DefaultDependencies")
    assert (default_deps in (None, "yes", "true")) == expect["default_deps"]
    if not expect["default_deps"]:
        # Without default dependencies a unit must still stop before shutdown.
        assert "shutdown.target" in words(unit, "Unit", "Conflicts")
    remain = one(unit, "Service", "RemainAfterExit") in ("yes", "true")
    assert remain == expect["remain"]
    initrd = "/etc/initrd-release" in values(unit, "Unit", "ConditionPathExists")
    assert initrd == expect["initrd"]


@pytest.mark.parametrize("stage", ["network", "reconcile"])
def test_background_stages_run_at_low_priority(stage: str) -> None:
    assert one(stage_unit(stage), "Service", "Nice") == "19"


@pytest.mark.parametrize("stage", INITRD_STAGES)
def test_initrd_units_stay_in_the_initrd_mount_namespace(stage: str) -> None:
    unit = stage_unit(stage)
    keys = {k for section in unit.values() for k, _ in section}
    assert not keys & NAMESPACE_KEYS, f"edgeinit-{stage}.service: {keys & NAMESPACE_KEYS}"


def test_reconcile_timer() -> None:
    timer = load("edgeinit-reconcile.timer")
    assert seconds(one(timer, "Timer", "OnBootSec")) == 5 * 60
    assert seconds(one(timer, "Timer", "OnUnitActiveSec")) == 60 * 60
    assert one(timer, "Timer", "Unit") in (None, "edgeinit-reconcile.service")
    assert words(timer, "Install", "WantedBy") == {"timers.target"}
    # The timer starts the service: it is not enabled on its own.
    assert "Install" not in stage_unit("reconcile")


def test_helper_is_posix_sh() -> None:
    assert HELPER.read_text().splitlines()[0] == "#!/bin/sh"
    dash = shutil.which("dash")
    if dash is None:
        pytest.skip("dash is not installed")
    proc = subprocess.run([dash, "-n", str(HELPER)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_helper_usage_errors(tmp_path: Path) -> None:
    def helper(*args: str, sysroot: Path) -> subprocess.CompletedProcess:
        env = {**os.environ, "EDGEINIT_SYSROOT": str(sysroot)}
        return subprocess.run([str(HELPER), *args], capture_output=True, text=True, env=env)

    proc = helper(sysroot=tmp_path)
    assert proc.returncode == 2 and "usage" in proc.stderr
    proc = helper("usr/bin/edgeinit", sysroot=tmp_path)
    assert proc.returncode == 2 and "absolute path" in proc.stderr
    proc = helper(EDGEINIT, "run", sysroot=tmp_path / "missing")
    assert proc.returncode == 1 and "real root is not mounted" in proc.stderr


# ---------------------------------------------------------------- systemd-analyze

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def stubbed_units(dest: Path, edgeinit: str | None = None) -> Path:
    """Copy the units into `dest`, /usr/bin/edgeinit replaced by an executable stub
    (or by `edgeinit`) and the helper's install path by the helper in the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    if edgeinit is None:
        stub = dest.parent / "edgeinit-stub"
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        edgeinit = str(stub)
    sources = [UNIT_DIR / n for n in ALL_UNITS] + [DRACUT_DIR / n for n in DRACUT_UNITS]
    for source in sources:
        text = source.read_text()
        text = text.replace(HELPER_INSTALLED, str(HELPER)).replace(EDGEINIT, edgeinit)
        (dest / source.name).write_text(text)
    return dest


def verify(unit_dir: Path, *units: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(["systemd-analyze", "verify", "--man=no",
                           *[str(unit_dir / u) for u in units]],
                          capture_output=True, text=True, env=env, timeout=60)


def about_us(output: str, unit_dir: Path) -> list[str]:
    return [line for line in output.splitlines()
            if "edgeinit" in line or str(unit_dir) in line or "cycle" in line]


@needs_analyze
@pytest.mark.parametrize("name", ALL_UNITS)
def test_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    unit_dir = stubbed_units(tmp_path / "units")
    proc = verify(unit_dir, name)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not about_us(output, unit_dir), output


@needs_analyze
@pytest.mark.parametrize("name", DRACUT_UNITS)
def test_systemd_analyze_verify_of_the_dracut_modules_units(tmp_path: Path, name: str) -> None:
    """The initrd-only units the dracut module ships (edgeinit-mount-layout.service)
    pass the same verification, with the same finite timeout and kill switches."""
    unit_dir = stubbed_units(tmp_path / "units")
    proc = verify(unit_dir, name)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert not about_us(output, unit_dir), output
    unit = parse_unit(DRACUT_DIR / name)
    assert words(unit, "Unit", "ConditionKernelCommandLine") >= DISABLE_CONDITIONS
    timeout = [v for k, v in unit.get("Service", []) if k == "TimeoutStartSec"]
    assert timeout and timeout[-1] not in ("0", "infinity"), timeout


@needs_analyze
def test_verify_does_see_a_missing_program(tmp_path: Path) -> None:
    """The control for the test above: verify names a program that is not there."""
    missing = str(tmp_path / "no-such-edgeinit")
    unit_dir = stubbed_units(tmp_path / "units", edgeinit=missing)
    proc = verify(unit_dir, "edgeinit-boot.service")
    assert proc.returncode != 0
    assert missing in proc.stderr


def enable_as_installed(unit_dir: Path) -> None:
    """What `systemctl enable` does with each unit's WantedBy=, inside `unit_dir`."""
    for name in ALL_UNITS:
        for target in words(load(name), "Install", "WantedBy"):
            wants = unit_dir / f"{target}.wants"
            wants.mkdir(exist_ok=True)
            (wants / name).symlink_to(unit_dir / name)


# A drop-in that puts each unit in an ordering cycle: the control that proves the unit
# is in its target's start transaction and that a cycle there would be seen.
CYCLES = {
    "edgeinit-rootfs.service": "After=initrd-fs.target",
    "edgeinit-initramfs.service": "Before=initrd-fs.target",
    "edgeinit-fs.service": "After=sysinit.target",
    "edgeinit-boot.service": "Before=sysinit.target",
    "edgeinit-network.service": "Before=sysinit.target",
    "edgeinit-reconcile.timer": "Before=sysinit.target",
}
INSTALL_TARGETS = sorted({t for name in ALL_UNITS for t in words(load(name), "Install",
                                                                   "WantedBy")})


def transaction(tmp_path: Path, target: str, dropin: tuple[str, str] | None = None) -> str:
    """What verify says about us when it starts `target` with our units enabled."""
    unit_dir = stubbed_units(tmp_path / "units")
    enable_as_installed(unit_dir)
    if not (SYSTEM_UNIT_DIR / target).is_file():
        pytest.skip(f"{SYSTEM_UNIT_DIR / target} is not installed")
    # A copy of the target in our directory: verify then starts it with our .wants.
    shutil.copy(SYSTEM_UNIT_DIR / target, unit_dir / target)
    if dropin:
        name, line = dropin
        (unit_dir / f"{name}.d").mkdir()
        (unit_dir / f"{name}.d" / "cycle.conf").write_text(f"[Unit]\n{line}\n")
    proc = verify(unit_dir, target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return "\n".join(about_us(proc.stdout + proc.stderr, unit_dir))


@needs_analyze
@pytest.mark.parametrize("target", sorted({"multi-user.target", "initrd.target",
                                           *INSTALL_TARGETS}))
def test_boot_transactions_have_no_ordering_cycle(tmp_path: Path, target: str) -> None:
    assert transaction(tmp_path, target) == ""


@needs_analyze
@pytest.mark.parametrize("name", list(CYCLES))
def test_each_enabled_unit_is_in_its_boot_transaction(tmp_path: Path, name: str) -> None:
    (target,) = words(load(name), "Install", "WantedBy")
    found = transaction(tmp_path, target, (name, CYCLES[name]))
    assert "ordering cycle" in found and name in found, found


@pytest.fixture(scope="module")
def namespaces() -> None:
    if not IS_ROOT:
        pytest.skip("needs root (mount namespaces, mounts)")
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                            "--propagation", "private", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make mount and pid namespaces here: {probe.stderr.strip()}")


CONDITION_SCRIPT = """\
set -e
# systemd in a container reads the kernel command line from PID 1: this shell, whose
# arguments are the words under test. Nothing else is on its command line.
mount -t tmpfs tmpfs /run
mkdir /run/systemd
echo edgeinit-test > /run/systemd/container
IFS='
'
rc=0
systemd-analyze condition $CONDITIONS || rc=$?
exit $rc
"""


@needs_analyze
@pytest.mark.parametrize(("cmdline", "runs"), [
    ("quiet", True),
    ("edgeinit.disabled rd.cos.disabled cos.disable edgeinit.disablex=1", True),
    ("edgeinit.disable", False),
    ("edgeinit.disable=1", False),
    ("edgeinit.disable=0", False),
    ("rd.cos.disable", False),
    ("quiet rd.cos.disable=1", False),
    ("edgeinit.disable rd.cos.disable", False),
])
def test_kernel_arguments_turn_units_off(namespaces: None, tmp_path: Path, cmdline: str,
                                         runs: bool) -> None:
    script = tmp_path / "pid1.sh"
    script.write_text(CONDITION_SCRIPT)
    for name in ALL_UNITS:
        conditions = [f"ConditionKernelCommandLine={c}"
                      for c in values(load(name), "Unit", "ConditionKernelCommandLine")]
        env = {**os.environ, "CONDITIONS": "\n".join(conditions)}
        proc = subprocess.run(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation",
             "private", "/bin/sh", str(script), *cmdline.split()],
            capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode in (0, 1), proc.stderr
        assert (proc.returncode == 0) == runs, f"{name} with '{cmdline}': {proc.stderr}"


# ---------------------------------------------------------------- the initrd helper, live

def _ldd(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return [w for w in out.split() if w.startswith("/") and os.path.exists(w)]


def make_sysroot(root: Path, binaries: list[str]) -> Path:
    """A small real root: `binaries` with their libraries, and the API mount points."""
    root.mkdir()
    for d in ("bin", "sbin", "lib", "lib64"):
        if os.path.islink(f"/{d}"):  # a merged /usr: /bin -> usr/bin
            target = os.readlink(f"/{d}")
            (root / d).parent.joinpath(target.lstrip("/")).mkdir(parents=True, exist_ok=True)
            (root / d).symlink_to(target)
    for binary in binaries:
        real = os.path.realpath(shutil.which(binary) or binary)
        for src in [real, *_ldd(real)]:
            dest = root / src.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(src), dest)
        link = root / binary.lstrip("/")
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(real)
    for d in ("proc", "sys", "dev", "run", "tmp", "mnt"):
        (root / d).mkdir(exist_ok=True)
    return root


def in_namespace(script: str, **env: str) -> subprocess.CompletedProcess:
    """Run `script` in a private mount namespace whose mounts are then made shared, as
    systemd makes them, so that propagation mistakes show here as they would at boot."""
    prologue = "set -e\nmount --make-rshared /\n"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh",
                           "-c", prologue + textwrap.dedent(script)],
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=60)


def lines(output: str, prefix: str) -> list[str]:
    return [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]


MOUNTS_UNDER_ROOT = """\
findmnt -rn -o TARGET | while read -r t; do
    case $t in "$ROOT"/*) echo "mount=$t" ;; esac
done
"""


@pytest.fixture
def sysroot(namespaces: None, tmp_path: Path) -> Path:
    for tool in ("findmnt", "mount", "umount", "chroot", "timeout"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    return make_sysroot(tmp_path / "sysroot", ["/bin/sh", "mount", "sleep", "cat"])


@needs_root
def test_helper_runs_the_command_in_the_real_root_and_keeps_its_mounts(sysroot: Path) -> None:
    inner = (
        "cat /run/marker; "
        "test -r /proc/self/status && echo in=proc; "
        "test -d /sys/kernel && echo in=sys; "
        "test -c /dev/null && echo in=dev; "
        "echo in=offline:$SYSTEMD_OFFLINE; "
        "echo in=tmp-writable > /tmp/$TMPNAME && cat /tmp/$TMPNAME; "
        "echo VOLUMES=x > /run/cos/cos-layout.env; "
        "mount -t tmpfs stage-mount /mnt && echo in=mounted; "
        "exit 3")
    proc = in_namespace(f"""\
        mount -t tmpfs tmpfs /run
        echo in=run-is-initrd-run > /run/marker
        mkdir /run/cos
        rc=0
        "$HELPER" /bin/sh -c '{inner}' || rc=$?
        echo "rc=$rc"
        rm -f "/tmp/$TMPNAME"
        echo "layout=$(cat /run/cos/cos-layout.env)"
        {MOUNTS_UNDER_ROOT}
        findmnt -rn /dev/pts >/dev/null && echo pts=still-mounted
        """, ROOT=str(sysroot), HELPER=str(HELPER), EDGEINIT_SYSROOT=str(sysroot),
        TMPNAME=f"edgeinit-test-{os.getpid()}")
    out = proc.stdout
    assert lines(out, "rc=") == ["3"], out + proc.stderr
    assert set(lines(out, "in=")) == {"run-is-initrd-run", "proc", "sys", "dev",
                                      "offline:1", "tmp-writable", "mounted"}, out
    # The env file lands in the initrd's /run, where the layout step reads it.
    assert lines(out, "layout=") == ["VOLUMES=x"]
    # The helper's binds are gone; the mount made by the command stays (switch-root
    # keeps it); unmounting did not propagate back into the initrd's /dev.
    assert lines(out, "mount=") == [f"{sysroot}/mnt"], out
    assert lines(out, "pts=") == ["still-mounted"], out
    assert "exited with status 3" in proc.stderr


@needs_root
def test_a_mount_the_command_makes_under_run_reaches_the_initrds_run(sysroot: Path) -> None:
    """mount-layout mounts its overlay base (a tmpfs) at /run/overlay inside the chroot:
    it must appear in the initrd's own /run, which switch-root carries over, and stay
    after the helper unmounts its bind of /run (a bind made a slave at once would keep
    it private to the chroot, and the lazy unmount would drop it)."""
    inner = "mount -t tmpfs -o size=1m overlay-base /run/overlay"
    proc = in_namespace(f"""\
        mount -t tmpfs tmpfs /run
        mkdir /run/overlay
        rc=0
        "$HELPER" /bin/sh -c '{inner}' || rc=$?
        echo "rc=$rc"
        findmnt -rn -o SOURCE /run/overlay | sed 's/^/base=/'
        {MOUNTS_UNDER_ROOT}
        findmnt -rn /dev/pts >/dev/null && echo pts=still-mounted
        """, ROOT=str(sysroot), HELPER=str(HELPER), EDGEINIT_SYSROOT=str(sysroot))
    out = proc.stdout
    assert lines(out, "rc=") == ["0"], out + proc.stderr
    assert lines(out, "base=") == ["overlay-base"], out + proc.stderr
    assert lines(out, "mount=") == [], out  # nothing of the helper's left under the root
    assert lines(out, "pts=") == ["still-mounted"], out


@needs_root
def test_helper_unmounts_its_binds_when_killed(sysroot: Path) -> None:
    # timeout(1) signals its whole process group, as systemd signals the unit's cgroup.
    proc = in_namespace(f"""\
        rc=0
        timeout -s TERM 1 "$HELPER" /bin/sleep 30 || rc=$?
        echo "rc=$rc"
        {MOUNTS_UNDER_ROOT}
        """, ROOT=str(sysroot), HELPER=str(HELPER), EDGEINIT_SYSROOT=str(sysroot))
    assert lines(proc.stdout, "rc=") == ["124"], proc.stdout + proc.stderr
    assert lines(proc.stdout, "mount=") == [], proc.stdout


@needs_root
def test_helper_says_when_edgeinit_is_missing_from_the_image(sysroot: Path) -> None:
    proc = in_namespace(f"""\
        rc=0
        "$HELPER" {EDGEINIT} run --stage rootfs || rc=$?
        echo "rc=$rc"
        {MOUNTS_UNDER_ROOT}
        """, ROOT=str(sysroot), HELPER=str(HELPER), EDGEINIT_SYSROOT=str(sysroot))
    assert lines(proc.stdout, "rc=") == ["127"], proc.stdout + proc.stderr
    assert "is it installed in the image?" in proc.stderr
    assert lines(proc.stdout, "mount=") == []


# ---------------------------------------------------------------- reconcile under inhibit

def execstart_argv(name: str) -> list[str]:
    """ExecStart= split as systemd does for this simple case: quotes, then `$$` -> `$`."""
    (line,) = values(load(name), "Service", "ExecStart")
    return [word.replace("$$", "$") for word in shlex.split(line)]


@needs_root
@pytest.mark.parametrize("bus", [True, False], ids=["bus", "no-bus"])
@pytest.mark.parametrize("stage_rc", [0, 1])
def test_reconcile_runs_under_systemd_inhibit(namespaces: None, tmp_path: Path, bus: bool,
                                              stage_rc: int) -> None:
    if not os.path.exists("/usr/bin/systemd-inhibit"):
        pytest.skip("/usr/bin/systemd-inhibit is not installed")
    log = tmp_path / "calls"
    stage = tmp_path / "edgeinit"
    stage.write_text(f'#!/bin/sh\necho "edgeinit $*" >> {log}\nexit {stage_rc}\n')
    inhibit = tmp_path / "systemd-inhibit"
    inhibit.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "inhibit $*" >> {log}
        while [ $# -gt 0 ]; do case $1 in --*) shift ;; *) break ;; esac; done
        exec "$@"
        """))
    for f in (stage, inhibit):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    argv = [str(stage) if w == EDGEINIT else w for w in execstart_argv(
        "edgeinit-reconcile.service")]
    make_bus = ("mkdir /run/dbus\n"
                f"{sys.executable} -c 'import socket; "
                "socket.socket(socket.AF_UNIX).bind(\"/run/dbus/system_bus_socket\")'\n"
                if bus else "")
    proc = in_namespace(f"""\
        mount -t tmpfs tmpfs /run
        {make_bus}
        mount --bind {inhibit} /usr/bin/systemd-inhibit
        rc=0
        {shlex.join(argv)} || rc=$?
        echo "rc=$rc"
        """)
    assert lines(proc.stdout, "rc=") == [str(stage_rc)], proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    run = "edgeinit run --stage reconcile"
    if bus:
        assert len(calls) == 2 and calls[1] == run, calls
        assert calls[0].startswith("inhibit ") and calls[0].endswith(f"{stage} run --stage "
                                                                     "reconcile"), calls
        assert "--what=shutdown:sleep" in calls[0] and "--mode=block" in calls[0]
    else:
        assert calls == [run]
        assert "without an inhibitor lock" in proc.stderr
