"""`commands`: shell commands, run with /bin/sh in the target (chrooted under --root).

Each command is templated, then run; a failing command fails the step and the
remaining commands still run (as in yip). In a dry run nothing is run.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target.changes import Change, RunCommand


class Args(Record):
    commands: list[str] = spec(factory=list, doc="Shell commands, run in order with /bin/sh -c.")


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    for command in args.commands:
        if command.strip():
            yield RunCommand(ctx.render(command))


PLUGIN = Plugin("commands", Args, plan)
