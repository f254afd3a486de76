"""`edgeinit daemon` as a real process: sd_notify, reconcile on change and on interval,
the D-Bus API on a private dbus-daemon with the real policy file, SIGTERM.

The daemon runs as `python -m edgeinit daemon --root SCRATCH`, with NOTIFY_SOCKET at a
datagram socket this test reads and DBUS_SYSTEM_BUS_ADDRESS at a private bus: nothing
here talks to the host's system bus or systemd. Waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, PERMISSIVE_POLICY, REPO

POLICY_FILE = REPO / "systemd" / "io.edgeinit.Manager1.conf"
NAME = "io.edgeinit.Manager1"
PATH = "/io/edgeinit/Manager1"
WAIT = 60.0  # generous bound for anything to happen; never a timing assertion
NOBODY = 65534

# What Debian's /usr/share/dbus-1/system.conf says by default (no one may own names or
# call methods unless a policy file allows it), but only root and nobody may connect.
SYSTEM_DEFAULT_POLICY = """
  <policy context="default">
    <allow user="root"/>
    <allow user="nobody"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
"""

RECONCILE_MARK = """\
stages:
  reconcile:
    - name: mark
      files:
        - path: /etc/reconciled
          content: "{content}"
"""


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class NotifyListener:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def fields(self) -> list[str]:
        return [f for m in list(self.messages) for f in m.split("\n")]

    def wait_for(self, field: str, count: int = 1) -> None:
        wait_until(lambda: self.fields().count(field) >= count,
                   f"{count} x {field} on the notify socket (got {self.messages[-5:]})")

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=5)
        self.sock.close()


class Daemon:
    def __init__(self, proc: subprocess.Popen[str], log_path: Path, notify: NotifyListener,
                 state: Path, root: Path) -> None:
        self.proc, self.log_path, self.notify = proc, log_path, notify
        self.state, self.root = state, root

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str) -> None:
        wait_until(lambda: text in self.log(), f"'{text}' in the daemon's log")

    def report(self, stage: str) -> dict | None:
        try:
            return json.loads((self.state / f"{stage}.json").read_text())
        except (OSError, ValueError):
            return None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=WAIT)


@pytest.fixture
def start_daemon(tmp_path: Path, target: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []
    empty_cmdline = tmp_path / "daemon-cmdline"
    empty_cmdline.write_text("")

    def start(bus: str | None, *args: str, root: Path = target, state: Path | None = None,
              env: dict[str, str] | None = None, ready: bool = True) -> Daemon:
        n = len(started)
        state = state or tmp_path / f"daemon-state{n}"
        notify = NotifyListener(tmp_path / f"notify{n}.sock")
        log_path = tmp_path / f"daemon{n}.log"
        full_env = {**os.environ, "NOTIFY_SOCKET": str(notify.path),
                    "EDGEINIT_STATE_DIR": str(state),
                    "DBUS_SYSTEM_BUS_ADDRESS": bus or f"unix:path={tmp_path}/no-bus.sock",
                    **(env or {})}
        full_env.pop("WATCHDOG_PID", None)
        argv = [sys.executable, "-m", "edgeinit", "daemon", "--root", str(root),
                "--cmdline", str(empty_cmdline), "--debounce", "0.2", *args]
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=log_file,
                                    stderr=subprocess.STDOUT, text=True)
        daemon = Daemon(proc, log_path, notify, state, root)
        started.append(daemon)
        if ready:
            wait_until(lambda: "READY=1" in notify.fields() or proc.poll() is not None,
                       "READY=1")
            assert proc.poll() is None, daemon.log()
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)
        daemon.notify.close()


@pytest.fixture
def policy_bus(private_bus) -> str:
    """A private bus with the system bus's default policy plus edgeinit's real file."""
    return private_bus(policy=SYSTEM_DEFAULT_POLICY, include=POLICY_FILE)


# -- D-Bus clients ---------------------------------------------------------------------

async def _call(bus_address: str, member: str, signature: str = "", body: list | None = None,
                interface: str = NAME, collect: list | None = None):
    from dbus_next import Message
    from dbus_next.aio import MessageBus

    bus = await MessageBus(bus_address=bus_address).connect()
    try:
        if collect is not None:
            await bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                body=[f"type='signal',interface='{NAME}',member='StageFinished'"]))

            def handler(msg: Message) -> bool:
                if msg.member == "StageFinished":
                    collect.append(list(msg.body))
                return False

            bus.add_message_handler(handler)
        reply = await asyncio.wait_for(bus.call(Message(
            destination=NAME, path=PATH, interface=interface, member=member,
            signature=signature, body=body or [])), WAIT)
        if collect is not None:  # the signal is sent before the reply; let it arrive
            deadline = time.monotonic() + WAIT
            while not collect and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        return reply
    finally:
        bus.disconnect()


def call(bus_address: str, member: str, signature: str = "", body: list | None = None,
         **kw):
    return asyncio.run(_call(bus_address, member, signature, body, **kw))


def get_stages(bus_address: str) -> dict[str, dict]:
    reply = call(bus_address, "Get", "ss", [NAME, "Stages"],
                 interface="org.freedesktop.DBus.Properties")
    assert reply.message_type.name == "METHOD_RETURN", (reply.error_name, reply.body)
    return {k: json.loads(v) for k, v in reply.body[0].value.items()}


# The client run as an unprivileged user: it starts as root and drops to `nobody`
# before it connects, so the bus sees uid 65534 on the connection. pytest's temporary
# directories are 0700, so it connects through a hard link to the bus socket in a
# directory `nobody` may search (a socket is found by its inode, whatever the path).
NOBODY_CLIENT = r"""
import asyncio, json, os, sys
from dbus_next import Message
from dbus_next.aio import MessageBus

address, stage = sys.argv[1:3]
os.setgroups([])
os.setgid(65534)
os.setuid(65534)

def shown(reply):
    body = [b.value if hasattr(b, "value") else b for b in reply.body]
    return {"type": reply.message_type.name, "error": reply.error_name, "body": body}

async def main():
    bus = await MessageBus(bus_address=address).connect()
    out = {"uid": os.getuid()}
    out["get"] = shown(await bus.call(Message(
        destination="io.edgeinit.Manager1", path="/io/edgeinit/Manager1",
        interface="org.freedesktop.DBus.Properties", member="Get", signature="ss",
        body=["io.edgeinit.Manager1", "Stages"])))
    out["run_stage"] = shown(await bus.call(Message(
        destination="io.edgeinit.Manager1", path="/io/edgeinit/Manager1",
        interface="io.edgeinit.Manager1", member="RunStage", signature="s", body=[stage])))
    print(json.dumps(out))

asyncio.run(main())
"""


def call_as_nobody(bus_address: str, stage: str) -> dict:
    if not IS_ROOT:
        pytest.skip("needs root to run a client as another uid")
    sock = bus_address.removeprefix("unix:path=").split(",")[0]
    public = tempfile.mkdtemp(prefix="edgeinit-test-bus-")
    try:
        os.chmod(public, 0o711)
        link = os.path.join(public, "bus.sock")
        try:
            os.link(sock, link)
        except OSError as e:
            pytest.skip(f"cannot link the bus socket where nobody can reach it: {e}")
        proc = subprocess.run([sys.executable, "-c", NOBODY_CLIENT, f"unix:path={link}",
                               stage], capture_output=True, text=True, timeout=WAIT,
                              check=False)
    finally:
        shutil.rmtree(public, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["uid"] == NOBODY
    return out


def write_config(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)  # as an editor or a provisioning tool writes: one complete file
    return path


# -- sd_notify and shutdown ------------------------------------------------------------

def test_notify_ready_status_watchdog_and_stopping(start_daemon, policy_bus) -> None:
    daemon = start_daemon(policy_bus, env={"WATCHDOG_USEC": "100000"})
    ready = next(m for m in daemon.notify.messages if "READY=1" in m)
    assert "STATUS=idle" in ready
    daemon.notify.wait_for("WATCHDOG=1", count=3)
    assert daemon.stop() == 0, daemon.log()
    fields = daemon.notify.fields()
    assert "STOPPING=1" in fields
    assert fields.index("READY=1") < fields.index("STOPPING=1")
    assert "daemon: stopped" in daemon.log()


def test_no_watchdog_pings_without_watchdog_usec(start_daemon, policy_bus) -> None:
    daemon = start_daemon(policy_bus, env={"WATCHDOG_USEC": ""})
    assert daemon.stop() == 0
    assert "WATCHDOG=1" not in daemon.notify.fields()
    assert "STOPPING=1" in daemon.notify.fields()


def test_sigterm_lets_the_running_step_finish(start_daemon, policy_bus, shell_target) -> None:
    # The first step blocks on a FIFO until the test writes to it, so "the step is still
    # running when SIGTERM arrives" is certain, not a matter of timing.
    os.mkfifo(shell_target / "go")
    write_config(shell_target, "oem/slow.yaml", """\
stages:
  slow:
    - name: wait
      commands:
        - echo started > /started; read line < /go; echo "$line" > /finished
    - name: after
      files:
        - path: /etc/after
          content: "x"
""")
    daemon = start_daemon(policy_bus, root=shell_target)
    caller = subprocess.Popen(
        ["busctl", f"--address={policy_bus}", "--json=short", "--timeout=120", "call",
         NAME, PATH, NAME, "RunStage", "s", "slow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until((shell_target / "started").exists, "the slow step to start")
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.notify.wait_for("STOPPING=1")
        assert daemon.proc.poll() is None, "the daemon exited while its step still ran"
        with open(shell_target / "go", "w") as fifo:
            fifo.write("released\n")
        assert daemon.proc.wait(timeout=WAIT) == 0, daemon.log()
        out, err = caller.communicate(timeout=WAIT)
    finally:
        if caller.poll() is None:
            caller.kill()
    assert (shell_target / "finished").read_text() == "released\n"
    assert not (shell_target / "etc" / "after").exists()
    report = daemon.report("slow")
    assert report is not None
    assert [(s["name"], s["status"], s["error"]) for s in report["steps"]] == [
        ("wait", "ok", None), ("after", "failed", "not run: stopping")]
    assert caller.returncode == 0, err
    answered = json.loads(json.loads(out)["data"][0])
    assert answered["steps"] == report["steps"]


# -- reconcile -------------------------------------------------------------------------

def test_reconcile_when_a_config_file_changes(start_daemon, policy_bus, target) -> None:
    (target / "oem").mkdir()
    daemon = start_daemon(policy_bus)
    write_config(target, "oem/sub/90_mark.yaml", RECONCILE_MARK.format(content="one"))
    wait_until(lambda: (daemon.report("reconcile") or {}).get("ok"), "a reconcile report")
    steps = daemon.report("reconcile")["steps"]
    assert [(s["name"], s["status"], s["changed"]) for s in steps] == [("mark", "ok", True)]
    assert (target / "etc" / "reconciled").read_text() == "one"
    # A second change of the same file is seen too.
    write_config(target, "oem/sub/90_mark.yaml", RECONCILE_MARK.format(content="two"))
    wait_until(lambda: (target / "etc" / "reconciled").read_text() == "two",
               "the second reconcile")
    assert daemon.stop() == 0


def test_reconcile_on_the_interval(start_daemon, policy_bus, target) -> None:
    write_config(target, "usr/local/oem/mark.yaml", RECONCILE_MARK.format(content="tick"))
    daemon = start_daemon(policy_bus, "--interval", "0.5")
    wait_until(lambda: daemon.report("reconcile"), "a reconcile on the interval")
    assert (target / "etc" / "reconciled").read_text() == "tick"
    assert "every 0.5 s" in daemon.log()
    assert daemon.stop() == 0


def test_a_config_directory_that_vanishes_and_comes_back(start_daemon, policy_bus,
                                                         target) -> None:
    write_config(target, "oem/mark.yaml", RECONCILE_MARK.format(content="before"))
    daemon = start_daemon(policy_bus)
    for path in sorted((target / "oem").rglob("*"), reverse=True):
        path.unlink()
    (target / "oem").rmdir()
    daemon.wait_log("config directory /oem vanished")
    (target / "oem" / "deeper").mkdir(parents=True)
    daemon.wait_log("config directory /oem is back")
    # The directory that came back, and one made inside it, are watched again.
    write_config(target, "oem/deeper/mark.yaml", RECONCILE_MARK.format(content="after"))
    wait_until(lambda: (target / "etc" / "reconciled").exists()
               and (target / "etc" / "reconciled").read_text() == "after",
               "a reconcile of the file in the recreated directory")
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_a_config_directory_made_after_start_is_watched(start_daemon, policy_bus,
                                                       target) -> None:
    daemon = start_daemon(policy_bus)  # no config directory at all yet
    assert "waiting for /system/oem, /oem, /usr/local/oem" in daemon.log()
    (target / "system" / "oem").mkdir(parents=True)
    daemon.wait_log("config directory /system/oem is back")
    write_config(target, "system/oem/mark.yaml", RECONCILE_MARK.format(content="late"))
    wait_until(lambda: (target / "etc" / "reconciled").exists()
               and (target / "etc" / "reconciled").read_text() == "late",
               "a reconcile of the new directory's file")
    assert daemon.stop() == 0


def test_a_failing_reconcile_does_not_end_the_daemon(start_daemon, policy_bus,
                                                     target) -> None:
    (target / "oem").mkdir()
    daemon = start_daemon(policy_bus)
    # No /bin/sh in the scratch root: the command fails its step.
    write_config(target, "oem/bad.yaml",
                 "stages:\n  reconcile:\n    - name: bad\n      commands: [\"true\"]\n")
    wait_until(lambda: daemon.report("reconcile"), "the failed reconcile's report")
    assert daemon.report("reconcile")["ok"] is False
    daemon.wait_log("daemon: stage reconcile failed: 1 of 1 steps failed")
    (target / "oem" / "bad.yaml").unlink()
    write_config(target, "oem/good.yaml", RECONCILE_MARK.format(content="fixed"))
    wait_until(lambda: (daemon.report("reconcile") or {}).get("ok"), "a good reconcile")
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


# -- the D-Bus API -----------------------------------------------------------------------

BOOT_MARK = """\
stages:
  boot:
    - name: booted
      files:
        - path: /etc/booted
          content: "yes"
"""


def test_run_stage_returns_the_report_and_emits_stage_finished(start_daemon, policy_bus,
                                                               target) -> None:
    write_config(target, "oem/boot.yaml", BOOT_MARK)
    daemon = start_daemon(policy_bus)
    signals: list[list] = []
    reply = call(policy_bus, "RunStage", "s", ["boot"], collect=signals)
    assert reply.message_type.name == "METHOD_RETURN", (reply.error_name, reply.body)
    report = json.loads(reply.body[0])
    assert report["stage"] == "boot" and report["ok"] is True
    assert report["root"] == str(target)
    assert [(s["name"], s["status"]) for s in report["steps"]] == [("booted", "ok")]
    assert (target / "etc" / "booted").read_text() == "yes"
    assert signals == [["boot", True]]
    assert daemon.report("boot") == report  # stored like `edgeinit run` stores it
    assert get_stages(policy_bus)["boot"] == report
    assert daemon.stop() == 0
    assert "cannot emit" not in daemon.log() and "Traceback" not in daemon.log()


def test_run_stage_rejects_a_bad_stage_name(start_daemon, policy_bus) -> None:
    daemon = start_daemon(policy_bus)
    for bad in ("../etc", ".hidden", ""):
        reply = call(policy_bus, "RunStage", "s", [bad])
        assert reply.error_name == "org.freedesktop.DBus.Error.InvalidArgs", bad
    assert not list(daemon.state.glob("*.json"))
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0


def test_stages_is_read_only(start_daemon, policy_bus) -> None:
    from dbus_next import Variant

    daemon = start_daemon(policy_bus)
    reply = call(policy_bus, "Set", "ssv", [NAME, "Stages", Variant("a{ss}", {})],
                 interface="org.freedesktop.DBus.Properties")
    assert reply.message_type.name == "ERROR"
    assert daemon.stop() == 0


def test_the_policy_refuses_run_stage_to_non_root_but_lets_it_read(
        start_daemon, policy_bus, target) -> None:
    write_config(target, "oem/boot.yaml", BOOT_MARK)
    write_config(target, "oem/other.yaml", BOOT_MARK.replace("boot:", "other:")
                 .replace("/etc/booted", "/etc/other"))
    daemon = start_daemon(policy_bus)
    assert call(policy_bus, "RunStage", "s", ["boot"]).message_type.name == "METHOD_RETURN"
    out = call_as_nobody(policy_bus, "other")
    assert out["get"]["type"] == "METHOD_RETURN", out
    assert json.loads(out["get"]["body"][0]["boot"])["ok"] is True
    assert out["run_stage"]["error"] == "org.freedesktop.DBus.Error.AccessDenied", out
    assert not (target / "etc" / "other").exists()
    assert daemon.report("other") is None
    assert daemon.stop() == 0


def test_the_policy_file_alone_refuses_run_stage_on_a_permissive_bus(
        start_daemon, private_bus, target) -> None:
    # Whatever the rest of the bus configuration allows, the file's own rules stand.
    bus = private_bus(policy=PERMISSIVE_POLICY, include=POLICY_FILE)
    write_config(target, "oem/other.yaml", BOOT_MARK.replace("boot:", "other:"))
    daemon = start_daemon(bus)
    out = call_as_nobody(bus, "other")
    assert out["get"]["type"] == "METHOD_RETURN", out
    assert out["run_stage"]["error"] == "org.freedesktop.DBus.Error.AccessDenied", out
    assert "only root may run stages" not in out["run_stage"]["body"][0]  # the bus said no
    assert "refused RunStage" not in daemon.log()
    assert daemon.report("other") is None
    assert daemon.stop() == 0


def test_the_daemon_itself_refuses_run_stage_to_non_root(start_daemon, private_bus,
                                                         target) -> None:
    # A bus whose policy lets anyone call anything: the daemon's own uid check stands.
    bus = private_bus()
    write_config(target, "oem/other.yaml", BOOT_MARK.replace("boot:", "other:"))
    daemon = start_daemon(bus)
    out = call_as_nobody(bus, "other")
    assert out["run_stage"]["error"] == "org.freedesktop.DBus.Error.AccessDenied", out
    assert "only root may run stages (caller uid 65534)" in out["run_stage"]["body"][0]
    assert not (target / "etc" / "booted").exists()
    daemon.wait_log("refused RunStage('other')")
    assert daemon.stop() == 0


def test_a_second_daemon_on_the_same_bus_exits(start_daemon, policy_bus) -> None:
    first = start_daemon(policy_bus)
    second = start_daemon(policy_bus, ready=False)
    assert second.proc.wait(timeout=WAIT) == 1
    assert f"another process owns {NAME}" in second.log()
    assert "READY=1" not in second.notify.fields()
    assert first.stop() == 0


def test_without_a_bus_the_daemon_still_reconciles(start_daemon, target) -> None:
    (target / "oem").mkdir()
    daemon = start_daemon(None)  # DBUS_SYSTEM_BUS_ADDRESS names a socket that is not there
    assert "the D-Bus API is not available" in daemon.log()
    write_config(target, "oem/mark.yaml", RECONCILE_MARK.format(content="nobus"))
    wait_until(lambda: (daemon.report("reconcile") or {}).get("ok"), "a reconcile")
    assert daemon.stop() == 0


# -- edgeinit status -------------------------------------------------------------------

def test_status_asks_the_daemon_and_falls_back_to_files(start_daemon, policy_bus, target,
                                                        cli_process, tmp_path) -> None:
    write_config(target, "oem/boot.yaml", BOOT_MARK)
    daemon = start_daemon(policy_bus)
    assert call(policy_bus, "RunStage", "s", ["boot"]).message_type.name == "METHOD_RETURN"
    # status's own state directory is empty: what it prints can only come from the bus.
    env = {"EDGEINIT_STATE_DIR": str(tmp_path / "status-state"),
           "DBUS_SYSTEM_BUS_ADDRESS": policy_bus}
    asked = cli_process("status", "--json", env=env)
    assert asked.code == 0, asked.err
    assert list(asked.json()) == ["boot"]
    assert asked.json()["boot"] == daemon.report("boot")
    text = cli_process("status", env=env)
    assert text.code == 0 and text.out.startswith("boot ")
    assert daemon.stop() == 0
    # No daemon on the bus any more: the (empty) files answer.
    fallback = cli_process("status", "--json", env=env)
    assert fallback.code == 1
    assert fallback.json() == {}
    # The daemon's own state directory, read as files, says the same as the daemon did.
    files = cli_process("status", "--json", env={**env, "EDGEINIT_STATE_DIR": str(daemon.state)})
    assert files.code == 0 and files.json() == asked.json()


def test_status_without_a_bus_socket_does_not_load_dbus(state_dir, tmp_path) -> None:
    code = ("import sys; from edgeinit.cli import main; rc = main(['status']); "
            "print(rc, 'dbus_next' in sys.modules, 'asyncio' in sys.modules)")
    env = {**os.environ, "EDGEINIT_STATE_DIR": str(state_dir),
           "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/absent.sock"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=WAIT, check=False)
    assert proc.stdout.split() == ["1", "False", "False"], proc.stderr


def test_run_never_loads_the_daemon(target, empty_cmdline, state_dir) -> None:
    code = ("import sys; from edgeinit.cli import main; "
            f"rc = main(['run', '--stage', 'boot', '--root', {str(target)!r}, "
            f"'--cmdline', {str(empty_cmdline)!r}]); "
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dbus_next', 'pyudev', 'asyncio') or m.startswith('edgeinit.daemon')))")
    env = {**os.environ, "EDGEINIT_STATE_DIR": str(state_dir)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=WAIT, check=False)
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stdout + proc.stderr
