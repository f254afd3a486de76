"""sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET.

`NOTIFY_SOCKET` is a path or, starting with `@`, an abstract socket name. The watchdog
interval is half of `WATCHDOG_USEC` when it is set (and `WATCHDOG_PID`, if set, is this
process). Sending never blocks and never raises: a lost notification is logged once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from edgeinit.log import log

ENV_NAMES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str) -> str | None:
    """The AF_UNIX address of a NOTIFY_SOCKET value; None when unset or not usable."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%s is neither a path nor an abstract socket; "
                "not notifying the service manager", value)
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None: no watchdog."""
    raw = environ.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None  # meant for another process
    try:
        usec = int(raw)
    except ValueError:
        log.warning("WATCHDOG_USEC=%s is not a number; not sending watchdog pings", raw)
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


class Notifier:
    """Sends state changes to the service manager; a no-op without NOTIFY_SOCKET."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send `fields` (`KEY=value`) in one datagram; False when it was not sent."""
        if self.address is None:
            return False
        data = "\n".join(f.replace("\n", " ") for f in fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self.address)
            return True
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify the service manager (%s): %s",
                            self.address.replace("\0", "@"), e.strerror or e)
            return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
