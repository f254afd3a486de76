"""`downloads`: fetch URLs into files (schema only until the yip-parity issue, #7)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class Download(Record):
    path: str = spec("", doc="Destination; a path ending in / takes the name from the URL.")
    url: str = spec("", doc="HTTP(S) URL to fetch.")
    permissions: int | None = spec(None, ge=0, le=0o7777, doc="File mode (0644 when unset).")
    owner: int | None = spec(None, ge=0, doc="Owner uid.")
    group: int | None = spec(None, ge=0, doc="Group gid.")
    owner_string: str = spec("", aliases=("ownerstring",), doc='"user" or "user:group".')
    timeout: int = spec(0, ge=0, doc="Seconds; 0 means the default bound.")


class Args(Record):
    downloads: list[Download] = spec(factory=list, doc="Files to download.")


PLUGIN = Plugin("downloads", Args, None, issue="#7")
