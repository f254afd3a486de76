"""`hostname`: /etc/hostname, the 127.0.0.1 line of /etc/hosts, and the kernel's name.

Templates: `{{ .MachineID }}`, `{{ .UUID }}`, `{{ .Random }}`, `{{ .ProtectedID }}`,
`trunc N`. A name with a random part stays what the node already has when that still
fits the template, so running the stage again changes nothing (yip draws a new name
at every boot). /etc/hosts keeps its mode and other lines (SPEC 7.5); a 127.0.0.1 line
is added when there is none. The kernel hostname is set only on the running system.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target import kernel
from edgeinit.target.changes import Change, SetKernelHostname
from edgeinit.target.plan import plan_write

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class Args(Record):
    hostname: str = spec("", doc="The node's name; may use .MachineID/.UUID/.Random templates.")


def valid_hostname(name: str) -> bool:
    return 0 < len(name) <= 64 and all(_LABEL.match(label) for label in name.split("."))


def hosts_text(old: str | None, name: str) -> str:
    """/etc/hosts with every 127.0.0.1 line naming `name` (one added when none)."""
    lines = (old or "").splitlines()
    wanted = f"127.0.0.1 localhost {name}"
    out = []
    found = False
    for line in lines:
        fields = line.split()
        if fields and fields[0] == "127.0.0.1":
            out.append(wanted)
            found = True
        else:
            out.append(line)
    if not found:
        out.insert(0, wanted)
    return "\n".join(out) + "\n"


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    template = args.hostname.strip()
    if not template:
        return
    current = ctx.root.read_text("/etc/hostname")
    current_name = current.strip().splitlines()[0].strip() if current and current.strip() else None
    name = ctx.render_hostname(template, current_name)
    if not valid_hostname(name):
        raise PluginError(f"'{name}' is not a valid hostname")
    yield from plan_write(ctx.root, "/etc/hostname", f"{name}\n".encode())
    hosts = ctx.root.read_text("/etc/hosts")
    yield from plan_write(ctx.root, "/etc/hosts", hosts_text(hosts, name).encode())
    if not ctx.root.is_live:
        ctx.warn("kernel hostname not set: the root is not /")
        return
    if kernel.hostname() != name:
        yield SetKernelHostname(name)


PLUGIN = Plugin("hostname", Args, plan)
