"""`environment` / `environment_file`: set variables in an env file (default /etc/environment).

This is how a config writes /run/cos/cos-layout.env, the file the immutable-rootfs
layout reads. Keys are merged into the file: other lines stay (SPEC: keep the rest),
changed keys are rewritten in place, new keys appended; a new file is written exactly
as yip writes it. Values are templated.
"""

from __future__ import annotations

from collections.abc import Iterator

from edgeinit.formats import dotenv
from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target.changes import Change
from edgeinit.target.plan import plan_write

DEFAULT_FILE = "/etc/environment"


class Args(Record):
    environment: dict[str, str] = spec(factory=dict, doc="Variables to set.")
    environment_file: str = spec("", doc="File to set them in (default /etc/environment).")


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    if not args.environment:
        return
    path = ctx.render(args.environment_file.strip()) or DEFAULT_FILE
    values = {key: ctx.render(value) for key, value in args.environment.items()}
    old = ctx.root.read_text(path)
    yield from plan_write(ctx.root, path, dotenv.merge(old, values).encode())


PLUGIN = Plugin("environment", Args, plan)
