"""`systemd_firstboot`: run systemd-firstboot with the given settings, in the target.

`key: "true"` becomes `--key`, anything else `--key=value`; arguments sorted, as yip
builds them. It is a command, so the step counts as changed whenever it runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target.changes import Change, RunCommand


class Args(Record):
    systemd_firstboot: dict[str, str] = spec(
        factory=dict, doc="option -> value for systemd-firstboot (keymap, locale, timezone...).")


def arguments(settings: dict[str, str]) -> list[str]:
    out = []
    for key, value in settings.items():
        option = key.strip().lower()
        out.append(f"--{option}" if value == "true" else f"--{option}={value}")
    return sorted(out)


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    if not args.systemd_firstboot:
        return
    argv = arguments(args.systemd_firstboot)
    secret = any(k.strip().lower().startswith("root-password") for k in args.systemd_firstboot)
    command = "systemd-firstboot " + " ".join(shlex.quote(a) for a in argv)
    label = "systemd-firstboot (with a root password)" if secret else ""
    yield RunCommand(command, label=label)


PLUGIN = Plugin("systemd_firstboot", Args, plan)
