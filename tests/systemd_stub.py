"""A stand-in for systemd's manager (org.freedesktop.systemd1) on a private D-Bus.

Served by dbus-next ServiceInterfaces in a thread with its own event loop, on a bus
started by the `private_bus` fixture. It records every call it answers (method and
arguments, in order) and keeps a little state per unit so that answers change as
real systemd's would: EnableUnitFiles makes GetUnitFileState say `enabled`, a finished
start job makes ActiveState `active`. StartUnit returns a job path and then emits
JobRemoved with the unit's `job_result` ("done", "failed", ...; None: never, a job that
hangs); `early` emits it before the reply, as a fast job can.

Unknown units get the errors real systemd 252 gives: org.freedesktop.DBus.Error.FileNotFound
from GetUnitFileState, org.freedesktop.systemd1.NoSuchUnit from the others.

(No `from __future__ import annotations` here: dbus-next reads D-Bus signatures from
the annotations, which are therefore strings such as 'as' and 'b'.)
"""
# ruff: noqa: F821, F722

import asyncio
import threading
from typing import Any

from dbus_next import BusType, DBusError
from dbus_next.aio import MessageBus
from dbus_next.service import PropertyAccess, ServiceInterface, dbus_property, method, signal

SERVICE = "org.freedesktop.systemd1"
OBJECT = "/org/freedesktop/systemd1"
NO_SUCH_UNIT = "org.freedesktop.systemd1.NoSuchUnit"
FILE_NOT_FOUND = "org.freedesktop.DBus.Error.FileNotFound"


def unit_path(name: str) -> str:
    """systemd's object path of a unit (bus_label_escape)."""
    out = []
    for ch in name:
        out.append(ch if ch.isalnum() else f"_{ord(ch):02x}")
    return f"{OBJECT}/unit/{''.join(out)}"


class Unit(ServiceInterface):
    def __init__(self, stub: "FakeSystemd", name: str) -> None:
        super().__init__("org.freedesktop.systemd1.Unit")
        self.stub = stub
        self.unit = name  # not `name`: a ServiceInterface's name is its interface's

    @dbus_property(access=PropertyAccess.READ)
    def ActiveState(self) -> "s":
        self.stub.calls.append(("Get", [self.unit, "ActiveState"]))
        return self.stub.units[self.unit]["active"]


class Manager(ServiceInterface):
    def __init__(self, stub: "FakeSystemd") -> None:
        super().__init__("org.freedesktop.systemd1.Manager")
        self.stub = stub
        self.jobs = 0

    def _unit(self, name: str, error: str, text: str) -> dict[str, Any]:
        unit = self.stub.units.get(name)
        if unit is None:
            raise DBusError(error, text)
        return unit

    @method()
    def GetUnitFileState(self, name: "s") -> "s":
        self.stub.calls.append(("GetUnitFileState", [name]))
        return self._unit(name, FILE_NOT_FOUND, "No such file or directory")["file_state"]

    @method()
    def EnableUnitFiles(self, files: "as", runtime: "b", force: "b") -> "ba(sss)":
        self.stub.calls.append(("EnableUnitFiles", [files, runtime, force]))
        changes = []
        for name in files:
            unit = self._unit(name, NO_SUCH_UNIT, f"Unit file {name} does not exist.")
            if unit["file_state"] != "enabled":
                unit["file_state"] = "enabled"
                changes.append(["symlink", f"/etc/systemd/system/multi-user.target.wants/{name}",
                                f"/usr/lib/systemd/system/{name}"])
        return [True, changes]

    @method()
    def DisableUnitFiles(self, files: "as", runtime: "b") -> "a(sss)":
        self.stub.calls.append(("DisableUnitFiles", [files, runtime]))
        changes = []
        for name in files:
            unit = self._unit(name, NO_SUCH_UNIT, f"Unit file {name} does not exist.")
            if unit["file_state"] == "enabled":
                unit["file_state"] = "disabled"
                changes.append(["unlink",
                                f"/etc/systemd/system/multi-user.target.wants/{name}", ""])
        return changes

    @method()
    def MaskUnitFiles(self, files: "as", runtime: "b", force: "b") -> "a(sss)":
        self.stub.calls.append(("MaskUnitFiles", [files, runtime, force]))
        changes = []
        for name in files:
            unit = self.stub.units.setdefault(name, {"file_state": "masked",
                                                     "active": "inactive"})
            unit["file_state"] = "masked"
            changes.append(["symlink", f"/etc/systemd/system/{name}", "/dev/null"])
        return changes

    @method()
    def Reload(self) -> "":
        self.stub.calls.append(("Reload", []))

    @method()
    def GetUnit(self, name: "s") -> "o":
        self.stub.calls.append(("GetUnit", [name]))
        unit = self._unit(name, NO_SUCH_UNIT, f"Unit {name} not loaded.")
        if not unit.get("loaded", True):
            raise DBusError(NO_SUCH_UNIT, f"Unit {name} not loaded.")
        return unit_path(name)

    @method()
    def StartUnit(self, name: "s", mode: "s") -> "o":
        self.stub.calls.append(("StartUnit", [name, mode]))
        unit = self._unit(name, NO_SUCH_UNIT, f"Unit {name} not found.")
        if unit["file_state"] == "masked":
            raise DBusError("org.freedesktop.systemd1.UnitMasked", f"Unit {name} is masked.")
        self.jobs += 1
        job_id, job = self.jobs, f"{OBJECT}/job/{self.jobs}"
        result = unit.get("job_result", "done")

        def finish() -> None:
            if result == "done":
                unit["active"] = "active"
                unit["loaded"] = True
            self.JobRemoved(job_id, job, name, result)

        if result is not None:
            if unit.get("early"):
                finish()
            else:
                asyncio.get_running_loop().call_later(0.05, finish)
        return job

    @signal()
    def JobRemoved(self, job_id, job, unit, result) -> "uoss":
        return [job_id, job, unit, result]


class FakeSystemd:
    """`with FakeSystemd(address, units) as stub:` serves the stand-in until the end."""

    def __init__(self, address: str, units: dict[str, dict[str, Any]]) -> None:
        self.address = address
        self.units = units
        self.calls: list[tuple[str, list[Any]]] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "FakeSystemd":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the systemd stand-in did not start")
        if self._error is not None:
            raise self._error
        self.calls.clear()  # exporting read the properties (InterfacesAdded); not a call
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as e:  # reported to __enter__
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self.bus.disconnect()
        self._loop.close()

    async def _start(self) -> None:
        self.bus = await MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM).connect()
        self.bus.export(OBJECT, Manager(self))
        for name in self.units:
            self.bus.export(unit_path(name), Unit(self, name))
        await self.bus.request_name(SERVICE)
