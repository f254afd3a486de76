"""io.edgeinit.Manager1 on the system bus, with dbus-next.

Object /io/edgeinit/Manager1, interface io.edgeinit.Manager1:
- RunStage(s stage) -> s report_json: runs the stage as `edgeinit run --stage` does
  with the default sources; root callers only (the bus policy says so, and the
  caller's uid is checked again here with GetConnectionUnixUser);
- Stages (a{ss}, read-only): the last report of each stage, as JSON;
- StageFinished(s stage, b ok): emitted after every stage the daemon ran.

No `from __future__ import annotations` here: dbus-next reads the D-Bus signatures
from the annotations, which are the string constants below.
"""

import asyncio
from typing import Any, Protocol

from dbus_next import BusType, DBusError, Message, MessageType, NameFlag, RequestNameReply
from dbus_next.aio import MessageBus
from dbus_next.constants import ErrorType, PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method, signal

from edgeinit.daemon import BUS_NAME, INTERFACE, OBJECT_PATH, NameTaken, Stopping
from edgeinit.log import log

ERROR_STOPPING = "io.edgeinit.Manager1.Error.Stopping"
ACCESS_DENIED = ErrorType.ACCESS_DENIED.value
INVALID_ARGS = ErrorType.INVALID_ARGS.value
FAILED = ErrorType.FAILED.value
CONNECT_TIMEOUT = 10.0  # seconds to connect to the bus and own the name
CALL_TIMEOUT = 10.0  # seconds for one question to the bus itself

S = "s"  # D-Bus signatures, as annotations
A_SS = "a{ss}"
SB = "sb"


class DaemonCore(Protocol):
    """What the bus service needs from the daemon (service.Daemon)."""

    async def run_stage(self, stage: str, why: str) -> Any: ...

    def stages(self) -> dict[str, str]: ...


def valid_stage(stage: str) -> bool:
    """The same rule as `edgeinit run --stage`."""
    return bool(stage) and "/" not in stage and not stage.startswith(".") and "\0" not in stage


class Manager1(ServiceInterface):
    def __init__(self, core: DaemonCore) -> None:
        super().__init__(INTERFACE)
        self.core = core

    @method()
    def RunStage(self, stage: S) -> S:
        # Calls are answered by BusService._dispatch (it needs the caller's name, which
        # dbus-next does not pass to methods); this declaration is for introspection.
        raise DBusError(FAILED, "RunStage was not dispatched")

    @dbus_property(access=PropertyAccess.READ)
    def Stages(self) -> A_SS:
        return self.core.stages()

    @signal()
    def StageFinished(self, stage: str, ok: bool) -> SB:
        return [stage, ok]


class BusService:
    """The daemon's connection to the system bus."""

    def __init__(self, core: DaemonCore) -> None:
        self.core = core
        self.interface = Manager1(core)
        self.bus: MessageBus | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect, export the object and own the name. Raises OSError, DBusError or
        TimeoutError when the bus is not there or refuses; NameTaken when another
        process owns the name."""
        log.info("connecting to the system bus (waiting up to %g s)", CONNECT_TIMEOUT)
        bus = MessageBus(bus_type=BusType.SYSTEM)
        try:
            await asyncio.wait_for(bus.connect(), CONNECT_TIMEOUT)
            bus.export(OBJECT_PATH, self.interface)
            bus.add_message_handler(self._dispatch)
            reply = await asyncio.wait_for(bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE),
                                           CONNECT_TIMEOUT)
        except BaseException:
            bus.disconnect()
            raise
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            bus.disconnect()
            raise NameTaken(f"another process owns {BUS_NAME} on the system bus "
                               "(is an edgeinit daemon already running?)")
        self.bus = bus
        log.info("serving %s on the system bus", BUS_NAME)

    async def close(self) -> None:
        bus, self.bus = self.bus, None
        if bus is None:
            return
        for task in list(self._tasks):
            if not task.done():
                try:
                    await asyncio.wait_for(asyncio.shield(task), CALL_TIMEOUT)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
        try:
            await asyncio.wait_for(bus.release_name(BUS_NAME), CALL_TIMEOUT)
        except Exception as e:
            log.debug("releasing %s: %s", BUS_NAME, e)
        bus.disconnect()

    def stage_finished(self, stage: str, ok: bool) -> None:
        if self.bus is None:
            return
        try:
            self.interface.StageFinished(stage, ok)
            self.interface.emit_properties_changed({"Stages": self.core.stages()})
        except Exception as e:
            log.warning("cannot emit StageFinished(%s): %s", stage, e)

    # -- RunStage ------------------------------------------------------------------

    def _dispatch(self, msg: Message) -> bool:
        if (msg.message_type != MessageType.METHOD_CALL or msg.path != OBJECT_PATH
                or msg.member != "RunStage" or msg.interface not in (INTERFACE, None)):
            return False
        task = asyncio.ensure_future(self._run_stage_call(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _reply(self, msg: Message, reply: Message) -> None:
        if self.bus is None:
            return
        try:
            self.bus.send(reply)
        except Exception as e:
            log.warning("cannot answer %s's RunStage call: %s", msg.sender, e)

    async def caller_uid(self, sender: str) -> int | None:
        """The uid of the connection `sender`, as the bus knows it; None if unknown."""
        assert self.bus is not None
        reply = await asyncio.wait_for(self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
            signature="s", body=[sender])), CALL_TIMEOUT)
        if reply is None or reply.message_type != MessageType.METHOD_RETURN:
            return None
        return int(reply.body[0])

    async def _run_stage_call(self, msg: Message) -> None:
        sender = msg.sender or "?"
        try:
            if msg.signature != "s":
                self._reply(msg, Message.new_error(
                    msg, INVALID_ARGS, f"RunStage takes one string (s), got '{msg.signature}'"))
                return
            stage = msg.body[0]
            uid = await self.caller_uid(sender)
            if uid != 0:
                log.warning("D-Bus: refused RunStage(%r) from %s (uid %s): only root may "
                            "run stages", stage, sender, uid)
                self._reply(msg, Message.new_error(
                    msg, ACCESS_DENIED, f"only root may run stages (caller uid {uid})"))
                return
            if not valid_stage(stage):
                self._reply(msg, Message.new_error(msg, INVALID_ARGS,
                                                   f"invalid stage name '{stage}'"))
                return
            report = await self.core.run_stage(stage, f"RunStage from {sender}")
            self._reply(msg, Message.new_method_return(msg, "s", [report.to_json()]))
        except Stopping:
            self._reply(msg, Message.new_error(msg, ERROR_STOPPING,
                                               "the edgeinit daemon is stopping"))
        except Exception as e:
            log.exception("D-Bus: RunStage from %s failed: %s: %s", sender,
                          type(e).__name__, e)
            self._reply(msg, Message.new_error(msg, FAILED, f"{type(e).__name__}: {e}"))
