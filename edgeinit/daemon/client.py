"""What `edgeinit status` asks the running daemon: the Stages property, with a short
bounded wait. None whenever the daemon cannot answer (then status reads the files).

dbus-next is imported only when the system bus looks reachable, so a machine without
a bus (an initramfs, a build chroot) pays nothing for asking.
"""

from __future__ import annotations

import json
import os
from typing import Any

from edgeinit.daemon import BUS_NAME, INTERFACE, OBJECT_PATH
from edgeinit.log import log

DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket"


def system_bus_address() -> str:
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def _maybe_reachable(address: str) -> bool:
    """False when every address is a unix socket path that does not exist."""
    for entry in address.split(";"):
        transport, _, options = entry.partition(":")
        if transport != "unix":
            return True
        opts = dict(kv.partition("=")[::2] for kv in options.split(",") if kv)
        if "path" not in opts or os.path.exists(opts["path"]):
            return True
    return False


async def _get_stages(address: str) -> dict[str, Any] | None:
    from dbus_next import Message, MessageFlag, MessageType
    from dbus_next.aio import MessageBus

    bus = MessageBus(bus_address=address)
    try:
        await bus.connect()
        reply = await bus.call(Message(
            destination=BUS_NAME, path=OBJECT_PATH,
            interface="org.freedesktop.DBus.Properties", member="Get", signature="ss",
            body=[INTERFACE, "Stages"], flags=MessageFlag.NO_AUTOSTART))
    finally:
        bus.disconnect()
    if reply is None or reply.message_type != MessageType.METHOD_RETURN:
        log.debug("the edgeinit daemon does not answer: %s",
                  reply.body if reply is not None else "no reply")
        return None
    raw = reply.body[0].value
    out: dict[str, Any] = {}
    for stage, text in sorted(raw.items()):
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict):
            out[stage] = data
    return out


def daemon_reports(timeout: float = 1.0) -> dict[str, Any] | None:
    """The last report of each stage as the daemon knows it; None when no daemon
    answers within `timeout` seconds."""
    address = system_bus_address()
    if not _maybe_reachable(address):
        return None
    import asyncio

    log.debug("asking the edgeinit daemon for its reports (waiting up to %g s)", timeout)
    try:
        return asyncio.run(asyncio.wait_for(_get_stages(address), timeout))
    except Exception as e:  # no bus, no daemon, a timeout: the files will do
        log.debug("the edgeinit daemon is not reachable: %s: %s", type(e).__name__, e)
        return None
