"""`modules`: load kernel modules ("name param=value ...") on the running system only."""

from __future__ import annotations

import re
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target import kernel
from edgeinit.target.changes import Change, LoadModule

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")  # a leading "-" would be a modprobe option


class Args(Record):
    modules: list[str] = spec(factory=list, doc='Modules to load: "name [param=value ...]".')


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    entries = [m.split() for m in args.modules if m.strip()]
    if not entries:
        return
    if not ctx.root.is_live:
        ctx.warn("modules not loaded: the root is not / (" + ", ".join(e[0] for e in entries) + ")")
        return
    loaded = kernel.loaded_modules()
    for name, *params in entries:
        if not _NAME.match(name):
            ctx.fail(f"'{name}' is not a valid module name")
            continue
        if name.replace("-", "_") in loaded:
            continue
        yield LoadModule(name, tuple(params))


PLUGIN = Plugin("modules", Args, plan)
