"""The running systemd, over D-Bus: org.freedesktop.systemd1.Manager on the system bus.

Used by the `systemctl` plugin when the root is `/` and systemd runs as PID 1
(`/run/systemd/system` is a directory, as sd_booted() checks), or when the
environment variable EDGEINIT_SYSTEMD=dbus asks for it whatever the root (tests use
this with a private bus; EDGEINIT_SYSTEMD=offline forces the offline mode instead).
The bus address is DBUS_SYSTEM_BUS_ADDRESS, by default
unix:path=/run/dbus/system_bus_socket.

dbus-next is imported only when a step talks to systemd. A `Systemd` object is one
connection with its own asyncio event loop (an asyncio.Runner, the reusable form of
asyncio.run), made for one step and closed at its end; its methods are synchronous.
Every wait is bounded: a method call by CALL_TIMEOUT, a start job by the step's
command timeout (EDGEINIT_COMMAND_TIMEOUT), and what is waited for is logged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Coroutine
from typing import Any

from edgeinit.log import log

DEFAULT_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
SERVICE = "org.freedesktop.systemd1"
OBJECT = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
CALL_TIMEOUT = 90.0  # seconds for one method call (a daemon-reload can take a while)
# Errors that mean "there is no such unit (file)": the first from most methods, the
# second is how systemd reports ENOENT from GetUnitFileState.
NO_SUCH_UNIT = frozenset(("org.freedesktop.systemd1.NoSuchUnit",
                          "org.freedesktop.DBus.Error.FileNotFound"))
RUNNING_STATES = frozenset(("active", "reloading"))


class BusError(Exception):
    """A failed conversation with systemd; `name` is the D-Bus error name, if any."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name

    @property
    def no_such_unit(self) -> bool:
        return self.name in NO_SUCH_UNIT


def bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_ADDRESS


def systemd_booted() -> bool:
    """systemd runs as PID 1 on this machine (sd_booted)."""
    return os.path.isdir("/run/systemd/system")


def use_bus(root_is_live: bool) -> bool:
    """Whether the systemctl plugin talks to a running systemd (EDGEINIT_SYSTEMD:
    `dbus` or `offline` force a mode, as does systemctl's SYSTEMD_OFFLINE=1; otherwise
    the root must be `/` and systemd running)."""
    forced = os.environ.get("EDGEINIT_SYSTEMD", "").strip().lower()
    if forced == "dbus":
        return True
    if forced == "offline" or os.environ.get("SYSTEMD_OFFLINE", "") == "1":
        return False  # SYSTEMD_OFFLINE=1: systemctl's own switch (the initrd chroot sets it)
    return root_is_live and systemd_booted()


class _Loop:
    """An event loop for one connection: an asyncio.Runner in this thread, or, when
    this thread already runs a loop (a caller inside asyncio), one in a helper thread."""

    def __init__(self) -> None:
        import asyncio

        self._asyncio = asyncio
        self._runner: Any = None
        self._loop: Any = None
        self._thread: Any = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._runner = asyncio.Runner()
            return
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="edgeinit-bus",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._runner is not None:
            return self._runner.run(coro)
        return self._asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        else:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()


class Systemd:
    """One connection to systemd's manager (see the module docstring)."""

    def __init__(self, address: str | None = None, call_timeout: float = CALL_TIMEOUT) -> None:
        self.address = address or bus_address()
        self.call_timeout = call_timeout
        self._bus: Any = None
        self._matching = False
        self._loop = _Loop()
        try:
            self._bus = self._loop.run(self._connect())
        except BusError:
            self._loop.close()
            raise
        except Exception as e:  # OSError, dbus-next's AuthError, ...
            self._loop.close()
            raise BusError(f"cannot connect to the system bus at {self.address}: "
                           f"{type(e).__name__}: {e}") from None

    async def _connect(self) -> Any:
        import asyncio

        from dbus_next import BusType
        from dbus_next.aio import MessageBus

        bus = MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM)
        try:
            return await asyncio.wait_for(bus.connect(), self.call_timeout)
        except TimeoutError:
            raise BusError(f"no answer from the system bus at {self.address} within "
                           f"{self.call_timeout:.0f} s") from None

    def close(self) -> None:
        if self._bus is not None:
            bus, self._bus = self._bus, None
            with contextlib.suppress(Exception):  # closing is best effort
                self._loop.run(self._disconnect(bus))
        self._loop.close()

    @staticmethod
    async def _disconnect(bus: Any) -> None:
        import asyncio

        bus.disconnect()
        with contextlib.suppress(Exception):  # gone, or gone with an error: the same here
            await asyncio.wait_for(bus.wait_for_disconnect(), 5)

    def __enter__(self) -> Systemd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -----------------------------------------------------------------------

    async def _call(self, member: str, signature: str = "", body: list[Any] | None = None,
                    *, path: str = OBJECT, interface: str = MANAGER,
                    destination: str = SERVICE) -> list[Any]:
        import asyncio

        from dbus_next import Message, MessageType

        msg = Message(destination=destination, path=path, interface=interface, member=member,
                      signature=signature, body=body or [])
        log.debug("systemd: %s%s (waiting up to %.0f s for the answer)", member,
                  tuple(body or ()), self.call_timeout)
        try:
            reply = await asyncio.wait_for(self._bus.call(msg), self.call_timeout)
        except TimeoutError:
            raise BusError(f"no answer from systemd to {member} within "
                           f"{self.call_timeout:.0f} s") from None
        except Exception as e:  # the connection broke
            raise BusError(f"{member} failed: {type(e).__name__}: {e}") from None
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise BusError(text or reply.error_name, reply.error_name)
        return list(reply.body)

    def _sync(self, member: str, signature: str = "", body: list[Any] | None = None,
              **kw: Any) -> list[Any]:
        return self._loop.run(self._call(member, signature, body, **kw))  # type: ignore[no-any-return]

    # -- reads ----------------------------------------------------------------------

    def unit_file_state(self, name: str) -> str | None:
        """`enabled`, `disabled`, `static`, `masked`, ...; None when there is no such
        unit file."""
        try:
            return str(self._sync("GetUnitFileState", "s", [name])[0])
        except BusError as e:
            if e.no_such_unit:
                return None
            raise

    def active_state(self, name: str) -> str | None:
        """The unit's ActiveState; None when systemd has not loaded it."""
        try:
            path = self._sync("GetUnit", "s", [name])[0]
        except BusError as e:
            if e.no_such_unit:
                return None
            raise
        value = self._sync("Get", "ss", [UNIT, "ActiveState"], path=path,
                           interface="org.freedesktop.DBus.Properties")[0]
        return str(getattr(value, "value", value))

    # -- changes --------------------------------------------------------------------

    def enable(self, name: str) -> bool:
        """EnableUnitFiles; whether the unit carries install information."""
        carries, changes = self._sync("EnableUnitFiles", "asbb", [[name], False, False])
        _log_changes(name, changes)
        if not carries:
            log.warning("systemd: %s has no installation config ([Install]); nothing enabled",
                        name)
        return bool(carries)

    def disable(self, name: str) -> None:
        (changes,) = self._sync("DisableUnitFiles", "asb", [[name], False])
        _log_changes(name, changes)

    def mask(self, name: str) -> None:
        (changes,) = self._sync("MaskUnitFiles", "asbb", [[name], False, False])
        _log_changes(name, changes)

    def reload(self) -> None:
        self._sync("Reload")

    def start(self, name: str, timeout: float | None = None) -> None:
        """StartUnit(name, "replace") and wait (bounded) until its job is removed;
        BusError unless the job's result is `done`."""
        if timeout is None:
            from edgeinit.target.exec import command_timeout

            timeout = command_timeout()
        self._loop.run(self._start(name, timeout))

    async def _start(self, name: str, timeout: float) -> None:
        import asyncio

        from dbus_next import MessageType

        loop = asyncio.get_running_loop()
        removed: dict[str, str] = {}
        waiting: dict[str, asyncio.Future[str]] = {}

        def on_message(msg: Any) -> None:
            if (msg.message_type == MessageType.SIGNAL and msg.member == "JobRemoved"
                    and msg.interface == MANAGER and msg.path == OBJECT):
                _, job, _, result = msg.body
                removed[job] = result
                future = waiting.get(job)
                if future is not None and not future.done():
                    future.set_result(result)

        if not self._matching:  # the JobRemoved signals, before any job can end
            rule = (f"type='signal',sender='{SERVICE}',path='{OBJECT}',"
                    f"interface='{MANAGER}',member='JobRemoved'")
            await self._call("AddMatch", "s", [rule], path="/org/freedesktop/DBus",
                             interface="org.freedesktop.DBus",
                             destination="org.freedesktop.DBus")
            self._matching = True
        self._bus.add_message_handler(on_message)
        try:
            (job,) = await self._call("StartUnit", "ss", [name, "replace"])
            if job in removed:
                result = removed[job]
            else:
                waiting[job] = loop.create_future()
                log.info("waiting up to %.0f s for systemd to start %s (job %s)",
                         timeout, name, job)
                try:
                    result = await asyncio.wait_for(waiting[job], timeout)
                except TimeoutError:
                    raise BusError(f"{name} did not finish starting within {timeout:.0f} s "
                                   f"(job {job} still runs)") from None
        finally:
            self._bus.remove_message_handler(on_message)
        if result != "done":
            raise BusError(f"{name} failed to start (job result: {result}); see "
                           f"`journalctl -u {name}`", "job-" + result)


def _log_changes(name: str, changes: list[Any]) -> None:
    for change in changes:
        kind, path, source = [*list(change), "", "", ""][:3]
        log.debug("systemd: %s: %s %s%s", name, kind, path, f" -> {source}" if source else "")
