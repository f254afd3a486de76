"""`files`: write files, with encoding, mode and owner (yip's EnsureFiles).

Differences from yip, on purpose (SPEC 7.2, 7.10): a file without `permissions` gets
0644 when created and keeps its mode when it exists (yip chmods it to 0000); owner by
name is looked up in the target's /etc/passwd and /etc/group, not the host's; an
unknown `encoding` is an error, not silently raw content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError, each_entry
from edgeinit.target import ids
from edgeinit.target.changes import Change
from edgeinit.target.plan import plan_write
from edgeinit.target.root import PathError

ENCODINGS = {
    "": (), "text/plain": (),
    "b64": ("b64",), "base64": ("b64",),
    "gz": ("gz",), "gzip": ("gz",),
    "gz+base64": ("b64", "gz"), "gzip+base64": ("b64", "gz"),
    "gz+b64": ("b64", "gz"), "gzip+b64": ("b64", "gz"),
}


class File(Record):
    path: str = spec("", doc="Where to write (inside the root).")
    content: str = spec("", doc="Content, after decoding `encoding`.")
    encoding: str = spec("", doc="b64/base64, gz/gzip, gz+b64/gzip+base64/...; default raw.")
    permissions: int | None = spec(None, ge=0, le=0o7777,
                                   doc="Mode, e.g. 0644 (octal as YAML reads it).")
    owner: int | None = spec(None, ge=0, doc="Owner uid.")
    group: int | None = spec(None, ge=0, doc="Group gid.")
    owner_string: str = spec("", aliases=("ownerstring",),
                             doc='"user" or "user:group", looked up in the target.')


class Args(Record):
    files: list[File] = spec(factory=list, doc="Files to write.")


def decode(content: str, encoding: str) -> bytes:
    """The bytes a file should hold; PluginError for an unknown encoding or bad data."""
    steps = ENCODINGS.get(encoding.strip().lower())
    if steps is None:
        known = ", ".join(sorted(k for k in ENCODINGS if k))
        raise PluginError(f"unknown encoding '{encoding}' (known: {known})")
    data = content.encode("utf-8")
    for step in steps:
        try:
            if step == "b64":
                # As Go's StdEncoding (yip): line breaks ignored, other junk is an error.
                data = base64.b64decode(data.replace(b"\r", b"").replace(b"\n", b""),
                                        validate=True)
            else:
                import gzip

                data = gzip.decompress(data)
        except (binascii.Error, ValueError, OSError, EOFError) as e:
            raise PluginError(f"cannot decode content as {encoding}: {e}") from None
    return data


def decimal_mode_hint(mode: int) -> str | None:
    """A warning for `permissions: 644` (decimal 644 = mode 01204), a common slip."""
    digits = str(mode)
    # Only 512..777: below that a value is also a plausible octal mode (`0644` is 420).
    if 0o1000 <= mode <= 777 and set(digits) <= set("01234567") and mode != int(digits, 8):
        return (f"permissions {digits} is the decimal number {digits} (mode 0{mode:o}); "
                f"write 0{digits} for mode 0{digits}")
    return None


def owner_ids(ctx: Context, owner: int | None, group: int | None, owner_string: str
              ) -> tuple[int | None, int | None]:
    """uid and gid from owner/group or an owner_string (which wins, as in yip)."""
    if owner_string.strip():
        return ids.owner_of(ctx.root, owner_string.strip())
    return owner, group


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    yield from each_entry(args.files, ctx, _plan_one, (PluginError, PathError, ids.LookupError_))


def _plan_one(entry: File, ctx: Context) -> list[Change]:
    if not entry.path:
        raise PluginError("a file needs a path")
    path = ctx.render(entry.path)
    data = decode(entry.content, entry.encoding)
    if b"{{" in data:
        with contextlib.suppress(UnicodeDecodeError):  # binary content is never templated
            data = ctx.render(data.decode("utf-8")).encode("utf-8")
    if entry.permissions is not None:
        hint = decimal_mode_hint(entry.permissions)
        if hint:
            ctx.warn(f"{path}: {hint}")
    uid, gid = owner_ids(ctx, entry.owner, entry.group, entry.owner_string)
    return plan_write(
        ctx.root, path, data, mode=entry.permissions, uid=uid, gid=gid,
        parent_uid=uid or 0, parent_gid=gid or 0,
    )


PLUGIN = Plugin("files", Args, plan)
