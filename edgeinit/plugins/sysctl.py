"""`sysctl`: kernel parameters, written to /proc/sys on the running system only.

Keys use dots or slashes (`net.ipv4.ip_forward`, `net/ipv4/ip_forward`); a value that
already reads back the same is left alone. Under --root nothing can be set: the step
warns. Values are not persisted to /etc/sysctl.d (yip does not either).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target import kernel
from edgeinit.target.changes import Change, WriteKernelParam

_KEY = re.compile(r"^[A-Za-z0-9_*:@-]+(?:[./][A-Za-z0-9_*:@-]+)*$")


class Args(Record):
    sysctl: dict[str, str] = spec(factory=dict, doc="key -> value, e.g. vm.swappiness: 10.")


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    if not args.sysctl:
        return
    if not ctx.root.is_live:
        ctx.warn("sysctl values not set: the root is not / (" + ", ".join(args.sysctl) + ")")
        return
    for key in sorted(args.sysctl):
        value = args.sysctl[key]
        if not _KEY.match(key) or ".." in key.split("/"):
            ctx.fail(f"'{key}' is not a valid sysctl key")
            continue
        path = kernel.sysctl_path(key)
        try:
            old = kernel.read_sysctl(path)
        except FileNotFoundError:
            ctx.fail(f"unknown sysctl key '{key}' (no {path})")
            continue
        except OSError as e:
            ctx.fail(f"cannot read sysctl {key}: {e.strerror or e}")
            continue
        if " ".join(old.split()) == " ".join(value.split()):
            continue
        yield WriteKernelParam(key, value, path, old)


PLUGIN = Plugin("sysctl", Args, plan)
