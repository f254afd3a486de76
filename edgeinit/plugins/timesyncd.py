"""`timesyncd`: settings in /etc/systemd/timesyncd.conf.d/10-yip.conf, section [Time].

The file name is yip's, so a node moved from yip keeps one drop-in. Keys are merged
into the existing file. timesyncd is not restarted (yip does not either).
"""

from __future__ import annotations

from collections.abc import Iterator

from edgeinit.formats import ini
from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target.changes import Change
from edgeinit.target.plan import plan_write

DROP_IN = "/etc/systemd/timesyncd.conf.d/10-yip.conf"


class Args(Record):
    timesyncd: dict[str, str] = spec(factory=dict, doc="[Time] settings, e.g. NTP: pool.ntp.org.")


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    if not args.timesyncd:
        return
    old = ctx.root.read_text(DROP_IN)
    yield from plan_write(ctx.root, DROP_IN, ini.set_keys(old, "Time", args.timesyncd).encode())


PLUGIN = Plugin("timesyncd", Args, plan)
