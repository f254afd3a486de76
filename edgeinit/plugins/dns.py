"""`dns`: write resolv.conf (default /etc/resolv.conf), through a symlink when it is one."""

from __future__ import annotations

from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target.changes import Change
from edgeinit.target.plan import plan_write


class DNS(Record):
    nameservers: list[str] = spec(factory=list, doc="Name server addresses.")
    search: list[str] = spec(factory=list, doc="Search domains.")
    options: list[str] = spec(factory=list, doc="resolv.conf options.")
    path: str = spec("", doc="File to write (default /etc/resolv.conf).")


class Args(Record):
    dns: DNS | None = spec(None, doc="Resolver configuration.")


def resolv_conf(dns: DNS) -> str:
    lines = []
    search = [s for s in dns.search if s.strip()]
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    lines.extend(f"nameserver {ns}" for ns in dns.nameservers if ns.strip())
    options = [o for o in dns.options if o.strip()]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    dns = args.dns
    if dns is None or not any(ns.strip() for ns in dns.nameservers):
        return
    yield from plan_write(ctx.root, dns.path or "/etc/resolv.conf", resolv_conf(dns).encode())


PLUGIN = Plugin("dns", Args, plan)
