"""`unpack_images`: an OCI image to a directory (schema only until the yip-parity issue, #7)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class UnpackImage(Record):
    source: str = spec("", doc="Image reference, OCI layout or tarball.")
    target: str = spec("", doc="Directory to unpack into.")
    platform: str = spec("", doc="e.g. linux/arm64 (default: this machine's).")


class Args(Record):
    unpack_images: list[UnpackImage] = spec(factory=list, doc="Images to unpack.")


PLUGIN = Plugin("unpack_images", Args, None, issue="#7")
