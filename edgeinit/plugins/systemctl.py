"""`systemctl`: enable, disable, mask, start units (schema only until the systemd issue, #4)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class Override(Record):
    service: str = spec("", doc="Unit to override (.service added when no suffix).")
    name: str = spec("", doc="Drop-in file name (default override-yip.conf).")
    content: str = spec("", doc="Drop-in content.")


class Systemctl(Record):
    enable: list[str] = spec(factory=list, doc="Units to enable.")
    disable: list[str] = spec(factory=list, doc="Units to disable.")
    mask: list[str] = spec(factory=list, doc="Units to mask.")
    start: list[str] = spec(factory=list, doc="Units to start (running system only).")
    overrides: list[Override] = spec(factory=list, doc="Drop-ins to write.")


class Args(Record):
    systemctl: Systemctl | None = spec(None, doc="Unit management.")


PLUGIN = Plugin("systemctl", Args, None, issue="#4")
