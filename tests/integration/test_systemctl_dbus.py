"""The systemctl plugin's online mode: its D-Bus conversation with systemd's manager.

A real dbus-daemon (the `private_bus` fixture) carries it; systemd is a stand-in
(tests/systemd_stub.py) that records each call. `edgeinit run` runs in-process with
EDGEINIT_SYSTEMD=dbus and DBUS_SYSTEM_BUS_ADDRESS pointing at the private bus; its
--root is a scratch root, where the overrides are written.
"""

from __future__ import annotations

import pytest

from tests.systemd_stub import FakeSystemd, unit_path


@pytest.fixture
def systemd(private_bus, monkeypatch):
    """start(units) -> a FakeSystemd serving `units` on a fresh private bus."""
    stubs: list[FakeSystemd] = []

    def start(units: dict[str, dict]) -> FakeSystemd:
        address = private_bus()
        monkeypatch.setenv("EDGEINIT_SYSTEMD", "dbus")
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        stub = FakeSystemd(address, units).__enter__()
        stubs.append(stub)
        return stub

    yield start
    for stub in stubs:
        stub.__exit__(None, None, None)


def unit(file_state: str = "disabled", active: str = "inactive", **extra) -> dict:
    return {"file_state": file_state, "active": active, **extra}


def run(cli, write, root, body: str):
    src = write("units.yaml", "stages:\n  boot:\n    - name: units\n" + body)
    result = cli("run", "--stage", "boot", "--root", root, "--json", src)
    return result, result.json()["steps"][0]


STEP = """\
      systemctl:
        enable: [a]
        disable: [b.service]
        mask: [c]
        overrides:
          - service: d
            content: "[Service]\\nEnvironment=X=1\\n"
        start: [e, f.socket]
"""


def test_the_whole_conversation_in_order(cli, write, target, systemd):
    """enable, disable, mask (each after GetUnitFileState), the override written, one
    Reload, then start: GetUnit + ActiveState, StartUnit only for what is not active,
    waiting for its job."""
    stub = systemd({"a.service": unit(), "b.service": unit("enabled", "active"),
                    "c.service": unit(), "d.service": unit(),
                    "e.service": unit(loaded=False), "f.socket": unit("enabled", "active")})
    result, step = run(cli, write, target, STEP)
    assert result.code == 0, result.err
    assert stub.calls == [
        ("GetUnitFileState", ["a.service"]),
        ("EnableUnitFiles", [["a.service"], False, False]),
        ("GetUnitFileState", ["b.service"]),
        ("DisableUnitFiles", [["b.service"], False]),
        ("GetUnitFileState", ["c.service"]),
        ("MaskUnitFiles", [["c.service"], False, False]),
        ("Reload", []),
        ("GetUnit", ["e.service"]),
        ("StartUnit", ["e.service", "replace"]),
        ("GetUnit", ["f.socket"]),
        ("Get", ["f.socket", "ActiveState"]),
    ]
    drop_in = target / "etc/systemd/system/d.service.d/override-yip.conf"
    assert drop_in.read_text() == "[Service]\nEnvironment=X=1\n"
    assert oct(drop_in.stat().st_mode & 0o7777) == "0o644"
    assert step["status"] == "ok" and step["changed"] is True
    assert "start e.service (systemd over D-Bus)" in step["changes"]
    assert stub.units["e.service"]["active"] == "active"
    assert "waiting up to" in result.err and "e.service" in result.err


def test_second_run_asks_and_changes_nothing(cli, write, target, systemd):
    """Idempotency: the stand-in now says enabled/disabled/masked/active, the override is
    in place: no Enable/Disable/Mask/Reload/StartUnit, changed false."""
    stub = systemd({"a.service": unit(), "b.service": unit("enabled", "active"),
                    "c.service": unit(), "d.service": unit(),
                    "e.service": unit(loaded=False), "f.socket": unit("enabled", "active")})
    first, _ = run(cli, write, target, STEP)
    assert first.code == 0, first.err
    stub.calls.clear()
    result, step = run(cli, write, target, STEP)
    assert result.code == 0, result.err
    assert stub.calls == [
        ("GetUnitFileState", ["a.service"]),
        ("GetUnitFileState", ["b.service"]),
        ("GetUnitFileState", ["c.service"]),
        ("GetUnit", ["e.service"]),
        ("Get", ["e.service", "ActiveState"]),
        ("GetUnit", ["f.socket"]),
        ("Get", ["f.socket", "ActiveState"]),
    ]
    assert step["changed"] is False and step["changes"] == [], step


def test_override_alone_reloads_once_after_writing(cli, write, target, systemd):
    """Two drop-ins (a timer keeps its suffix; a name gets .conf): one Reload, after both."""
    stub = systemd({"t.timer": unit()})
    result, step = run(cli, write, target, """\
      systemctl:
        overrides:
          - {service: t.timer, name: 10-when, content: "[Timer]\\nOnCalendar=daily\\n"}
          - {service: k3s, content: "[Service]\\nLimitNOFILE=1048576\\n"}
""")
    assert result.code == 0, result.err
    assert stub.calls == [("Reload", [])]
    assert (target / "etc/systemd/system/t.timer.d/10-when.conf").is_file()
    assert (target / "etc/systemd/system/k3s.service.d/override-yip.conf").is_file()
    stub.calls.clear()
    result, step = run(cli, write, target, """\
      systemctl:
        overrides:
          - {service: t.timer, name: 10-when, content: "[Timer]\\nOnCalendar=daily\\n"}
""")
    assert stub.calls == [] and step["changed"] is False


def test_unknown_unit_fails_with_its_name_and_the_others_still_run(cli, write, target,
                                                                     systemd):
    """GetUnitFileState says FileNotFound (as systemd does), StartUnit NoSuchUnit: each
    fails naming the unit (disable only warns, as systemctl and yip); the known units
    are still enabled and started."""
    stub = systemd({"a.service": unit(), "e.service": unit(loaded=False)})
    result, step = run(cli, write, target, """\
      systemctl:
        enable: [nope, a]
        disable: [gone.service]
        start: [ghost, e]
""")
    assert result.code == 1
    assert step["status"] == "failed"
    error = step["error"]
    assert "enable nope.service: unit nope.service does not exist" in error
    assert "gone.service" not in error  # disabling what is not there: a warning only
    assert any("gone.service does not exist; nothing to disable" in w
               for w in step["warnings"])
    assert "cannot start ghost.service: unit ghost.service does not exist (Unit " \
        "ghost.service not found.)" in error
    assert ("EnableUnitFiles", [["a.service"], False, False]) in stub.calls
    assert ("StartUnit", ["e.service", "replace"]) in stub.calls
    assert not any(c[0] == "EnableUnitFiles" and c[1][0] == ["nope.service"]
                   for c in stub.calls)


def test_mask_of_an_unknown_unit_masks_with_a_warning(cli, write, target, systemd):
    stub = systemd({})
    result, step = run(cli, write, target, "      systemctl: {mask: [later]}\n")
    assert result.code == 0, result.err
    assert ("MaskUnitFiles", [["later.service"], False, False]) in stub.calls
    assert any("later.service does not exist; masked all the same" in w
               for w in step["warnings"])


def test_failed_job_fails_the_step_naming_the_unit(cli, write, target, systemd):
    stub = systemd({"bad.service": unit(loaded=False, job_result="failed"),
                    "good.service": unit(loaded=False)})
    result, step = run(cli, write, target, "      systemctl: {start: [bad, good]}\n")
    assert result.code == 1
    assert "cannot start bad.service: bad.service failed to start (job result: failed)" \
        in step["error"]
    assert ("StartUnit", ["good.service", "replace"]) in stub.calls
    assert stub.units["good.service"]["active"] == "active"


def test_job_removed_before_the_reply_is_not_missed(cli, write, target, systemd):
    """A job can end before StartUnit's reply arrives: its JobRemoved still counts."""
    systemd({"fast.service": unit(loaded=False, early=True)})
    result, step = run(cli, write, target, "      systemctl: {start: [fast]}\n")
    assert result.code == 0, result.err
    assert step["status"] == "ok"


def test_start_wait_is_bounded(cli, write, target, systemd, monkeypatch):
    """A job that never ends: the step fails after EDGEINIT_COMMAND_TIMEOUT, naming it."""
    monkeypatch.setenv("EDGEINIT_COMMAND_TIMEOUT", "1")
    systemd({"slow.service": unit(loaded=False, job_result=None)})
    result, step = run(cli, write, target, "      systemctl: {start: [slow]}\n")
    assert result.code == 1
    assert "slow.service did not finish starting within 1 s" in step["error"]


def test_masked_unit_is_not_enabled(cli, write, target, systemd):
    stub = systemd({"m.service": unit("masked")})
    result, step = run(cli, write, target, "      systemctl: {enable: [m]}\n")
    assert result.code == 1 and "m.service is masked" in step["error"]
    assert [c[0] for c in stub.calls] == ["GetUnitFileState"]


def test_bad_names_fail_without_a_call(cli, write, target, systemd):
    stub = systemd({"ok.service": unit()})
    result, step = run(cli, write, target, """\
      systemctl:
        enable: ["/etc/x.service", "k3s*", "", ok]
""")
    assert result.code == 1
    for bad in ("'/etc/x.service'", "'k3s*'", "''"):
        assert f"enable {bad}" in step["error"], step["error"]
    assert stub.calls == [("GetUnitFileState", ["ok.service"]),
                          ("EnableUnitFiles", [["ok.service"], False, False]),
                          ("Reload", [])]


def test_dry_run_only_reads(cli, write, target, systemd):
    stub = systemd({"a.service": unit(), "e.service": unit(loaded=False)})
    src = write("units.yaml", "stages:\n  boot:\n    - systemctl: {enable: [a], start: [e]}\n")
    result = cli("run", "--stage", "boot", "--root", target, "--dry-run", "--json", src)
    assert result.code == 0, result.err
    assert [c[0] for c in stub.calls] == ["GetUnitFileState", "GetUnit"]
    step = result.json()["steps"][0]
    assert step["changes"] == ["enable a.service (systemd over D-Bus)",
                               "reload systemd's unit files (daemon-reload)",
                               "start e.service (systemd over D-Bus)"]


def test_no_bus_fails_the_step_clearly(cli, write, target, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEINIT_SYSTEMD", "dbus")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such.sock")
    result, step = run(cli, write, target, "      systemctl: {enable: [a]}\n")
    assert result.code == 1
    assert "cannot connect to the system bus at unix:path=" in step["error"]


def test_unit_path_escaping():
    assert unit_path("a-b@x.service") == \
        "/org/freedesktop/systemd1/unit/a_2db_40x_2eservice"


def test_client_works_from_inside_a_running_event_loop(private_bus):
    """A caller that already runs asyncio in its thread (the daemon, say) gets a helper
    thread for the connection's loop instead of an error."""
    import asyncio

    from edgeinit.target.systemd_bus import Systemd

    address = private_bus()
    with FakeSystemd(address, {"a.service": unit("enabled")}) as stub:
        async def inside() -> str | None:
            with Systemd(address) as bus:
                return bus.unit_file_state("a.service")

        assert asyncio.run(inside()) == "enabled"
        assert stub.calls == [("GetUnitFileState", ["a.service"])]


def test_empty_systemctl_step_does_not_connect(cli, write, target, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEINIT_SYSTEMD", "dbus")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such.sock")
    result, step = run(cli, write, target, "      systemctl: {enable: []}\n")
    assert result.code == 0 and step["status"] == "ok", step
