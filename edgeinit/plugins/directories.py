"""`directories`: make directories with mode and owner (yip's EnsureDirectories).

A missing directory is created with its missing ancestors, all with the entry's mode
and owner (as yip does); without `permissions` that is 0755 (yip: 0000). An existing
directory gets the mode and owner the entry names, and keeps what it does not name.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError, each_entry
from edgeinit.target.changes import Change
from edgeinit.target.plan import DEFAULT_DIR_MODE, plan_attrs, plan_dirs
from edgeinit.target.root import PathError


class Directory(Record):
    path: str = spec("", doc="Directory to make (inside the root).")
    permissions: int | None = spec(None, ge=0, le=0o7777, doc="Mode (0755 when unset).")
    owner: int | None = spec(None, ge=0, doc="Owner uid.")
    group: int | None = spec(None, ge=0, doc="Group gid.")


class Args(Record):
    directories: list[Directory] = spec(factory=list, doc="Directories to make.")


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    yield from each_entry(args.directories, ctx, _plan_one, (PluginError, PathError))


def _plan_one(entry: Directory, ctx: Context) -> list[Change]:
    if not entry.path:
        raise PluginError("a directory needs a path")
    path = ctx.render(entry.path)
    host = ctx.root.resolve(path)
    st = ctx.root.state(host)
    if st is None:
        mode = DEFAULT_DIR_MODE if entry.permissions is None else entry.permissions
        return plan_dirs(ctx.root, path, mode, entry.owner or 0, entry.group or 0)
    if st.kind != "dir":
        raise PluginError("exists and is not a directory")
    return plan_attrs(ctx.root, path, host, st, entry.permissions, entry.owner, entry.group)


PLUGIN = Plugin("directories", Args, plan)
