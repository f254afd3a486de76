"""The daemon's parts on their own: sd_notify, the inotify watcher, the debouncer, udev
label matching and the mount-apply-unmount path (a real ext4 image on a loop device),
the runner's stop hook, the service's failure handling, the status client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeinit.daemon import notify, udev
from edgeinit.daemon.watch import ConfigWatcher, Debouncer
from tests.conftest import IS_ROOT, REPO

# -- sd_notify ---------------------------------------------------------------------------


def test_notify_socket_addresses() -> None:
    assert notify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify.socket_address("@edgeinit/notify") == "\0edgeinit/notify"
    assert notify.socket_address("") is None
    assert notify.socket_address("relative/path") is None
    assert notify.socket_address("vsock:2:1234") is None


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert notify.watchdog_interval({}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert notify.watchdog_interval(mine) == 0.5
    assert notify.watchdog_interval({**mine, "WATCHDOG_PID": str(os.getpid() + 1)}) is None


def _datagram_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    return sock


def test_notifier_sends_to_an_abstract_socket() -> None:
    name = f"edgeinit-test-{uuid.uuid4().hex}"
    with contextlib.closing(_datagram_socket("\0" + name)) as sock:
        notifier = notify.Notifier({"NOTIFY_SOCKET": "@" + name})
        try:
            assert notifier.ready("idle")
            assert sock.recv(4096) == b"READY=1\nSTATUS=idle"
            assert notifier.watchdog()
            assert sock.recv(4096) == b"WATCHDOG=1"
            assert notifier.stopping("stopping (SIGTERM)\nnow")
            assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping (SIGTERM) now"
        finally:
            notifier.close()


def test_notifier_sends_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with contextlib.closing(_datagram_socket(str(path))) as sock:
        notifier = notify.Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.status("running stage boot")
        assert sock.recv(4096) == b"STATUS=running stage boot"
        notifier.close()


def test_notifier_without_a_socket_does_nothing_and_never_raises(tmp_path, capsys) -> None:
    assert not notify.Notifier({}).ready("idle")
    gone = notify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")})
    assert gone.enabled
    assert not gone.ready("idle")
    assert not gone.watchdog()
    err = capsys.readouterr().err
    assert err.count("cannot notify the service manager") == 1  # logged once


# -- the debouncer -----------------------------------------------------------------------


def test_debouncer_collapses_a_burst_into_one_call() -> None:
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        debouncer = Debouncer(0.05, lambda: (calls.append(loop.time()), done.set()), loop)
        for _ in range(20):  # no await in between: one burst
            debouncer.poke()
        assert debouncer.pending
        await asyncio.wait_for(done.wait(), 30)
        assert not debouncer.pending

    asyncio.run(scenario())
    assert len(calls) == 1


def test_debouncer_never_waits_longer_than_max_delay() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        debouncer = Debouncer(100.0, lambda: None, loop, max_delay=1.0)
        debouncer.poke()
        first = debouncer._first
        assert first is not None
        debouncer.poke()
        assert debouncer._handle is not None
        assert debouncer._handle.when() == first + 1.0
        debouncer.cancel()
        assert not debouncer.pending

    asyncio.run(scenario())


# -- the config watcher (inotify) ----------------------------------------------------------
# inotify queues an event when the syscall that causes it returns, so reading the queue
# right after a change is deterministic; the event loop is never run here.


@pytest.fixture
def watcher(target: Path) -> Iterator[ConfigWatcher]:
    loop = asyncio.new_event_loop()
    changes: list[int] = []
    w = ConfigWatcher(str(target), lambda: changes.append(1), debounce=1.0, loop=loop)
    yield w
    w.close()
    loop.close()


def _step(w: ConfigWatcher) -> tuple[bool, bool]:
    """Read the queued events; resync like the loop would. (changed, resynced)."""
    assert w.inotify is not None
    changed, resync = w.classify(w.inotify.read())
    if resync:
        changed = w.resync() or changed
    return changed, resync


def test_watcher_sees_yaml_files_anywhere_below_a_config_dir(watcher, target) -> None:
    (target / "oem" / "a" / "b").mkdir(parents=True)
    watcher.start()
    assert str(target / "oem" / "a" / "b") in watcher.watched_paths()
    (target / "oem" / "a" / "b" / "deep.yaml").write_text("stages: {}\n")
    assert _step(watcher)[0]
    (target / "oem" / "x.yml").write_text("stages: {}\n")
    assert _step(watcher)[0]
    (target / "oem" / "x.yml").unlink()
    assert _step(watcher)[0]


def test_watcher_ignores_files_that_are_not_config(watcher, target) -> None:
    (target / "oem").mkdir()
    watcher.start()
    (target / "oem" / "notes.txt").write_text("hello")
    (target / "oem" / ".a.yaml.swp").write_text("x")
    assert _step(watcher) == (False, False)


def test_watcher_follows_new_subdirectories(watcher, target) -> None:
    (target / "oem").mkdir()
    watcher.start()
    (target / "oem" / "new").mkdir()
    assert _step(watcher) == (True, True)
    assert str(target / "oem" / "new") in watcher.watched_paths()
    (target / "oem" / "new" / "c.yaml").write_text("stages: {}\n")
    assert _step(watcher)[0]


def test_watcher_rewatches_a_directory_that_vanishes_and_comes_back(watcher, target,
                                                                    capsys) -> None:
    (target / "oem" / "sub").mkdir(parents=True)
    watcher.start()
    shutil.rmtree(target / "oem")
    changed, _ = _step(watcher)
    assert changed
    assert watcher.present["/oem"] is False
    assert str(target) in watcher.watched_paths()  # waiting for it under its parent
    assert not any(p.startswith(str(target / "oem")) for p in watcher.watched_paths())
    assert "config directory /oem vanished" in capsys.readouterr().err
    (target / "oem").mkdir()
    assert _step(watcher)[0]
    assert watcher.present["/oem"] is True
    assert "config directory /oem is back" in capsys.readouterr().err
    (target / "oem" / "again.yaml").write_text("stages: {}\n")
    assert _step(watcher)[0]


def test_watcher_waits_for_missing_directories_under_their_nearest_parent(watcher,
                                                                          target) -> None:
    (target / "usr").mkdir()
    watcher.start()
    watched = watcher.watched_paths()
    assert str(target / "usr") in watched  # for /usr/local/oem
    assert str(target) in watched  # for /system/oem and /oem
    (target / "usr" / "local" / "oem").mkdir(parents=True)
    assert _step(watcher)[0]
    assert str(target / "usr" / "local" / "oem") in watcher.watched_paths()


def test_watcher_rescans_what_appeared_before_its_watch_was_in_place(watcher, target,
                                                                     monkeypatch) -> None:
    watcher.start()  # no config directory yet: the root is watched for them
    (target / "system").mkdir()
    original = watcher._wanted
    calls: list[int] = []

    def scan_then_race():
        result = original()
        if not calls:  # made after the scan, before ROOT/system is watched: no event
            (target / "system" / "oem").mkdir()
        calls.append(1)
        return result

    monkeypatch.setattr(watcher, "_wanted", scan_then_race)
    assert _step(watcher) == (True, True)
    assert watcher.present["/system/oem"] is True
    assert str(target / "system" / "oem") in watcher.watched_paths()


def test_watcher_resolves_config_dirs_inside_the_root(watcher, target) -> None:
    (target / "data" / "oem").mkdir(parents=True)
    (target / "oem").symlink_to("/data/oem")  # absolute: resolved as if the root were /
    watcher.start()
    assert str(target / "data" / "oem") in watcher.watched_paths()
    (target / "data" / "oem" / "l.yaml").write_text("stages: {}\n")
    assert _step(watcher)[0]


# -- udev: labels and events -----------------------------------------------------------------


def props(label: str | None, **extra: str) -> dict[str, str]:
    out = {"DEVNAME": "/dev/sdb1", "SUBSYSTEM": "block", "ID_FS_TYPE": "ext4",
           "ID_FS_UUID": "1234", **extra}
    if label is not None:
        out["ID_FS_LABEL"] = label
    return out


def test_labels_match_case_insensitively_and_only_configured_ones() -> None:
    labels = udev.parse_labels(" COS_OEM, CIDATA ,,")
    assert labels == ["COS_OEM", "CIDATA"]
    assert udev.matching_label(props("COS_OEM"), labels) == "COS_OEM"
    assert udev.matching_label(props("cidata", ID_FS_TYPE="iso9660"), labels) == "CIDATA"
    assert udev.matching_label(props("COS_PERSISTENT"), labels) is None
    assert udev.matching_label(props(None), labels) is None
    assert udev.matching_label(props("COS_OEM", ID_FS_TYPE=""), labels) is None
    assert udev.matching_label(props("COS_OEM"), []) is None
    assert udev.parse_labels("") == []


def test_device_monitor_hands_each_labelled_filesystem_over_once() -> None:
    seen: list[tuple[str, str]] = []
    monitor = udev.DeviceMonitor(["COS_OEM"], lambda dev, label: seen.append((dev, label)))
    assert monitor.handle("add", props("COS_OEM"))
    assert not monitor.handle("change", props("COS_OEM"))  # same filesystem again
    assert not monitor.handle("add", props("OTHER", DEVNAME="/dev/sdc1"))
    assert not monitor.handle("bind", props("COS_OEM", DEVNAME="/dev/sdd1"))
    assert not monitor.handle("remove", props("COS_OEM"))
    assert monitor.handle("add", props("COS_OEM"))  # plugged in again
    assert monitor.handle("change", props("COS_OEM", ID_FS_UUID="5678"))  # reformatted
    assert seen == [("/dev/sdb1", "COS_OEM")] * 3


def test_device_monitor_without_udev_says_so(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(udev, "UDEV_CONTROL", str(tmp_path / "no-udev-control"))
    monitor = udev.DeviceMonitor(["COS_OEM"], lambda dev, label: None)
    assert not monitor.start(asyncio.new_event_loop())
    assert "udev is not running" in capsys.readouterr().err
    assert not udev.DeviceMonitor([], lambda dev, label: None).start(asyncio.new_event_loop())


# -- udev: mount, apply, unmount, with a real ext4 image on a loop device ---------------------


@contextlib.contextmanager
def loop_device(image: Path) -> Iterator[str]:
    proc = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                          text=True, check=False, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"cannot set up a loop device here: {proc.stderr.strip()}")
    device = proc.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False, timeout=60)


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _mountpoints_of(device: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[0] == device]


needs_loop = pytest.mark.skipif(
    not IS_ROOT or shutil.which("losetup") is None or shutil.which("mkfs.ext4") is None,
    reason="needs root, losetup and mkfs.ext4 (a real filesystem on a loop device)")

DEVICE_CONFIG = """\
stages:
  device:
    - name: from the device
      files:
        - path: /etc/from-device
          content: "applied"
"""


@pytest.fixture
def oem_image(tmp_path: Path) -> Path:
    content = tmp_path / "image-content"
    (content / "conf").mkdir(parents=True)
    (content / "conf" / "90_device.yaml").write_text(DEVICE_CONFIG)
    image = tmp_path / "oem.img"
    with open(image, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "COS_OEM", "-d", str(content),
                           str(image)], capture_output=True, text=True, check=False,
                          timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"mkfs.ext4 -d is not usable here: {proc.stderr.strip()}")
    return image


@needs_loop
def test_a_labelled_device_is_mounted_read_only_applied_and_unmounted(
        oem_image, target, state_dir) -> None:
    from edgeinit.engine.stage import run_stage
    from edgeinit.target.root import TargetRoot

    seen: dict[str, object] = {}

    def apply(directory: str):
        seen["directory"] = directory
        seen["mode"] = os.stat(directory).st_mode & 0o777
        seen["mounted"] = _mounted(directory)
        seen["writable"] = os.access(directory, os.W_OK) and _can_write(directory)
        return run_stage(udev.DEVICE_STAGE, [directory], TargetRoot(str(target)))

    with loop_device(oem_image) as device:
        report = udev.apply_device(device, apply)
        assert _mountpoints_of(device) == []
    assert report is not None and report.ok
    assert [(s.name, s.status) for s in report.steps] == [("from the device", "ok")]
    assert report.steps[0].source == f"{seen['directory']}/conf/90_device.yaml"
    assert (target / "etc" / "from-device").read_text() == "applied"
    assert seen["mounted"] is True
    assert seen["writable"] is False
    assert not os.path.exists(str(seen["directory"]))  # the mount point is gone too
    stored = json.loads((state_dir / "device.json").read_text())
    assert stored["stage"] == "device" and stored["ok"] is True


def _can_write(directory: str) -> bool:
    try:
        with open(os.path.join(directory, "probe"), "w"):
            return True
    except OSError:
        return False


@needs_loop
def test_the_device_is_unmounted_even_when_applying_fails(oem_image) -> None:
    where: list[str] = []

    def apply(directory: str):
        where.append(directory)
        raise RuntimeError("boom")

    with loop_device(oem_image) as device:
        with pytest.raises(RuntimeError):
            udev.apply_device(device, apply)
        assert _mountpoints_of(device) == []
    assert not os.path.exists(where[0])


@needs_loop
def test_a_device_that_cannot_be_mounted_is_logged(tmp_path, capsys) -> None:
    blank = tmp_path / "blank.img"
    with open(blank, "wb") as f:
        f.truncate(1024 * 1024)  # no filesystem at all
    called: list[str] = []
    before = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    with loop_device(blank) as device:
        assert udev.apply_device(device, called.append) is None
    assert called == []
    err = capsys.readouterr().err
    assert f"device {device}: cannot mount it:" in err
    assert "its config is not applied" in err
    leftovers = {n for n in set(os.listdir(os.environ.get("TMPDIR", "/tmp"))) - before
                 if n.startswith("edgeinit-device-")}
    assert leftovers == set()


def test_a_missing_device_node_is_logged_not_raised(tmp_path, capsys) -> None:
    if not IS_ROOT:
        pytest.skip("mount(8) refuses non-root callers before it looks at the device")
    assert udev.apply_device(str(tmp_path / "no-such-device"), lambda d: 1) is None
    assert "cannot mount it" in capsys.readouterr().err


# -- the runner's stop hook ---------------------------------------------------------------------


@pytest.fixture
def stop_requested() -> Iterator[None]:
    from edgeinit.engine.runner import Runner

    Runner.stop_requested = True
    try:
        yield
    finally:
        Runner.stop_requested = False


def test_a_stop_request_reports_the_remaining_steps_as_not_run(
        stop_requested, target, write, state_dir) -> None:
    from edgeinit.engine.stage import run_stage
    from edgeinit.target.root import TargetRoot

    src = write("a.yaml", "stages:\n  boot:\n    - name: one\n      files:\n"
                          "        - path: /etc/one\n          content: x\n")
    report = run_stage("boot", [str(src)], TargetRoot(str(target)))
    assert [(s.name, s.status, s.error) for s in report.steps] == [
        ("one", "failed", "not run: stopping")]
    assert not report.ok
    assert not (target / "etc" / "one").exists()


# -- the service: failures are logged, never fatal ----------------------------------------------


def test_a_stage_that_raises_is_logged_and_the_next_one_runs(target, state_dir, capsys) -> None:
    from edgeinit.daemon.service import Daemon, Options

    daemon = Daemon(Options(root=str(target)), notify.Notifier({}))

    def broken() -> None:
        raise RuntimeError("a bug in a plugin")

    async def scenario() -> tuple[object, object]:
        first = await daemon.guarded("reconcile", "test", broken)
        second = await daemon.guarded("reconcile", "test",
                                      lambda: daemon.run_sync("reconcile", []))
        return first, second

    first, second = asyncio.run(scenario())
    assert first is None
    assert second is not None and second.ok  # type: ignore[attr-defined]
    assert "daemon: stage reconcile (test) failed: RuntimeError: a bug in a plugin" in (
        capsys.readouterr().err)
    assert json.loads(daemon.stages()["reconcile"])["ok"] is True


def test_no_stage_starts_once_the_daemon_is_stopping(target, state_dir) -> None:
    from edgeinit.daemon import Stopping
    from edgeinit.daemon.service import Daemon, Options

    daemon = Daemon(Options(root=str(target)), notify.Notifier({}))
    daemon.stopping = True
    ran: list[int] = []
    assert asyncio.run(daemon.guarded("reconcile", "test", lambda: ran.append(1))) is None
    with pytest.raises(Stopping):
        asyncio.run(daemon.run_stage("boot", "test"))
    assert ran == []
    assert not state_dir.exists() or not list(state_dir.glob("*.json"))


def test_stages_prefers_the_state_directory_and_keeps_its_own(target, state_dir) -> None:
    from edgeinit.daemon.service import Daemon, Options
    from edgeinit.engine.report import Report, write_report

    daemon = Daemon(Options(root=str(target)), notify.Notifier({}))
    daemon.reports["device"] = Report("device", "/", False).to_json()
    daemon.reports["boot"] = '{"stage": "boot", "ok": false}'
    write_report(Report("boot", "/", False))
    stages = {k: json.loads(v) for k, v in daemon.stages().items()}
    assert stages["boot"]["ok"] is True  # the file, written by the later run
    assert stages["device"]["stage"] == "device"


# -- the bus and the status client ---------------------------------------------------------------


def test_stage_names_as_edgeinit_run_accepts_them() -> None:
    from edgeinit.daemon.bus import valid_stage

    assert valid_stage("boot") and valid_stage("network.after") and valid_stage("device")
    for bad in ("", ".hidden", "../etc/passwd", "a/b", "nul\0"):
        assert not valid_stage(bad)


def test_status_client_skips_a_bus_socket_that_is_not_there(tmp_path, monkeypatch) -> None:
    from edgeinit.daemon import client

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/absent")
    assert not client._maybe_reachable(client.system_bus_address())
    assert client.daemon_reports() is None
    (tmp_path / "present").touch()
    assert client._maybe_reachable(f"unix:path={tmp_path}/present,guid=00")
    assert client._maybe_reachable("unix:abstract=/tmp/dbus-x")
    assert client._maybe_reachable(f"unix:path={tmp_path}/absent;tcp:host=127.0.0.1,port=1")


def test_status_gives_up_on_a_bus_that_never_answers(tmp_path, monkeypatch) -> None:
    from edgeinit.daemon import client

    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(1)  # accepts the connection, never speaks: the bounded wait must end
    try:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/silent.sock")
        assert client.daemon_reports(timeout=0.5) is None
    finally:
        silent.close()


# -- the unit and the policy file ------------------------------------------------------------------


def test_the_unit_passes_systemd_analyze_verify(tmp_path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (REPO / "systemd" / "edgeinit.service").read_text()
    assert "ExecStart=/usr/bin/edgeinit daemon" in unit
    (tmp_path / "edgeinit.service").write_text(
        unit.replace("/usr/bin/edgeinit", shutil.which("true") or "/bin/true"))
    proc = subprocess.run([analyze, "verify", str(tmp_path / "edgeinit.service")],
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "edgeinit.service" not in proc.stderr, proc.stderr  # no warning about the unit


def test_the_unit_is_a_bounded_notify_service() -> None:
    lines = (REPO / "systemd" / "edgeinit.service").read_text().splitlines()
    keys = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines
            if "=" in line and not line.startswith("#")}
    assert keys["Type"] == "notify"
    assert keys["KillMode"] == "mixed"  # SIGTERM to the daemon only: its step finishes
    for key in ("TimeoutStartSec", "TimeoutStopSec", "WatchdogSec"):
        assert keys[key] not in ("0", "infinity", ""), key
    conditions = [line for line in lines if line.startswith("ConditionKernelCommandLine=")]
    assert conditions == ["ConditionKernelCommandLine=!edgeinit.disable",
                          "ConditionKernelCommandLine=!rd.cos.disable"]


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--interval", "0"], ["--interval", "soon"],
                                  ["--interval", "inf"], ["--debounce", "-1"],
                                  ["--root", "/nonexistent/edgeinit-root"], ["extra"]])
def test_daemon_command_line_errors_exit_2(cli, args) -> None:
    result = cli("daemon", *args)
    assert result.code == 2, result.err
    assert result.out == ""
