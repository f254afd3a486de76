"""`systemctl`: enable, disable, mask and start units, and write drop-in overrides.

Order within a step: enable, disable, mask, overrides, start. yip runs enable,
disable, mask, start (and its overrides apart); the overrides come before `start` here
so that a unit started by the step already sees its drop-ins.

Two modes (target/systemd_bus.py's use_bus decides):
- Online, when the root is `/` and systemd runs as PID 1, or EDGEINIT_SYSTEMD=dbus:
  systemd's manager over D-Bus. GetUnitFileState tells whether anything would change
  (enabling an enabled unit is no change), then EnableUnitFiles, DisableUnitFiles or
  MaskUnitFiles (persistent, not forced); Reload after any of these or after an
  override changed; StartUnit(name, "replace") for a unit that is not active, waiting
  (bounded) for its job, whose result must be `done`.
- Offline, for any other root or when no systemd runs (an image being built, the
  initramfs stage in a chroot): the unit directories are changed as
  `systemctl --root=ROOT enable/disable/mask` changes them (target/units.py), and
  `start` is left out with a warning (SPEC section 1; the step stays ok).

A name without a unit suffix gets `.service` (as systemctl does); a name with a path
or a glob in it fails with its name, and the other units still run. A unit that does
not exist fails the step with its name, except for `mask`, which masks it all the same
(systemctl does too) with a warning.

Overrides: `/etc/systemd/system/SERVICE.d/NAME.conf` (NAME `override-yip.conf` by
default, `.conf` added when missing), content written verbatim, mode 0644. `.service`
is added to a SERVICE without a unit suffix; unlike yip, a known suffix is kept
(`foo.timer` -> `foo.timer.d`, where yip writes `foo.timer.service.d`). An override
without `service` fails; one with empty content is skipped with a warning.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target.changes import Change, SystemdCall
from edgeinit.target.plan import plan_write
from edgeinit.target.root import PathError

DEFAULT_OVERRIDE = "override-yip.conf"
OVERRIDE_MODE = 0o644
# GetUnitFileState answers for which the verb would change nothing.
ENABLED = frozenset(("enabled",))
NOTHING_TO_DISABLE = frozenset(("disabled", "static", "masked", "masked-runtime",
                                "enabled-runtime", "linked-runtime", "generated",
                                "transient", "bad"))


class Override(Record):
    service: str = spec("", doc="Unit to override (.service added when no suffix).")
    name: str = spec("", doc="Drop-in file name (default override-yip.conf).")
    content: str = spec("", doc="Drop-in content.")


class Systemctl(Record):
    enable: list[str] = spec(factory=list, doc="Units to enable.")
    disable: list[str] = spec(factory=list, doc="Units to disable.")
    mask: list[str] = spec(factory=list, doc="Units to mask.")
    start: list[str] = spec(factory=list, doc="Units to start (running system only).")
    overrides: list[Override] = spec(factory=list, doc="Drop-ins to write.")


class Args(Record):
    systemctl: Systemctl | None = spec(None, doc="Unit management.")


def _names(entries: list[str], verb: str, ctx: Context) -> list[str]:
    """The valid unit names of a list (`.service` added); each bad one fails the step."""
    from edgeinit.target.units import UnitError, unit_name

    names = []
    for raw in entries:
        try:
            names.append(unit_name(raw))
        except UnitError as e:
            ctx.fail(f"systemctl: {verb} '{raw}': {e}")
    return names


def override_path(override: Override) -> str:
    """Where an override goes (PluginError for a missing or unusable name)."""
    from edgeinit.target.units import CONFIG_DIR, UnitError, unit_name

    if not override.service.strip():
        raise PluginError("an override needs a `service` (the unit it overrides)")
    try:
        service = unit_name(override.service)
    except UnitError as e:
        raise PluginError(f"override for '{override.service}': {e}") from None
    name = override.name.strip() or DEFAULT_OVERRIDE
    if posixpath.splitext(name)[1] != ".conf":
        name += ".conf"
    if "/" in name or name.startswith("."):
        raise PluginError(f"override for {service}: '{override.name}' is not a file name")
    return f"{CONFIG_DIR}/{service}.d/{name}"


def _plan_overrides(overrides: list[Override], ctx: Context) -> Iterator[Change]:
    for override in overrides:
        try:
            path = override_path(override)
            if override.content == "":
                ctx.warn(f"systemctl: empty override content for {posixpath.dirname(path)}"
                         f"/{posixpath.basename(path)}; nothing written")
                continue
            yield from plan_write(ctx.root, path, override.content.encode("utf-8"),
                                  mode=OVERRIDE_MODE)
        except (PluginError, PathError) as e:
            ctx.fail(f"systemctl: {e}")


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    sc = args.systemctl
    if sc is None or not (sc.enable or sc.disable or sc.mask or sc.start or sc.overrides):
        return
    from edgeinit.target.systemd_bus import use_bus

    if use_bus(ctx.root.is_live):
        yield from _plan_online(sc, ctx)
    else:
        yield from _plan_offline(sc, ctx)


# -- offline: the unit directories of the root -----------------------------------------


def _plan_offline(sc: Systemctl, ctx: Context) -> Iterator[Change]:
    from edgeinit.target import units

    def warn(message: str) -> None:
        ctx.warn(f"systemctl: {message}")

    for verb, entries, planner in (("enable", sc.enable, units.plan_enable),
                                   ("disable", sc.disable, units.plan_disable),
                                   ("mask", sc.mask, units.plan_mask)):
        for name in _names(entries, verb, ctx):
            try:
                yield from planner(ctx.root, name, warn)
            except (units.UnitError, PathError) as e:
                ctx.fail(f"systemctl: {verb} {name}: {e}")
    yield from _plan_overrides(sc.overrides, ctx)
    started = _names(sc.start, "start", ctx)
    if started:
        why = "the root is not /" if not ctx.root.is_live else "systemd is not running"
        ctx.warn(f"systemctl: units not started ({why}): {', '.join(started)}")


# -- online: systemd over D-Bus ---------------------------------------------------------


def _plan_online(sc: Systemctl, ctx: Context) -> Iterator[Change]:
    from edgeinit.target.systemd_bus import BusError, Systemd

    try:
        bus = Systemd()
    except BusError as e:
        raise PluginError(str(e)) from None
    try:
        yield from _online(sc, ctx, bus)
    finally:
        bus.close()


def _online(sc: Systemctl, ctx: Context, bus: Any) -> Iterator[Change]:
    from edgeinit.target.systemd_bus import BusError

    reload = False
    for verb, entries in (("enable", sc.enable), ("disable", sc.disable), ("mask", sc.mask)):
        for name in _names(entries, verb, ctx):
            try:
                state = bus.unit_file_state(name)
            except BusError as e:
                ctx.fail(f"systemctl: {verb} {name}: {e}")
                continue
            if not _wanted(verb, name, state, ctx):
                continue
            yield SystemdCall(verb, name, bus)
            reload = True
    for change in _plan_overrides(sc.overrides, ctx):
        yield change
        reload = True
    started = _names(sc.start, "start", ctx)
    if reload:
        yield SystemdCall("reload", "", bus)
    for name in started:
        try:
            state = bus.active_state(name)
        except BusError as e:
            ctx.fail(f"systemctl: start {name}: {e}")
            continue
        if state in ("active", "reloading"):
            continue
        yield SystemdCall("start", name, bus)


def _wanted(verb: str, name: str, state: str | None, ctx: Context) -> bool:
    """Whether `verb` would change anything for a unit in file state `state` (None:
    no such unit file); fails or warns where it cannot or need not."""
    if state is None:
        if verb == "mask":
            ctx.warn(f"systemctl: {name} does not exist; masked all the same")
            return True
        if verb == "disable":
            ctx.warn(f"systemctl: {name} does not exist; nothing to disable")
            return False
        ctx.fail(f"systemctl: {verb} {name}: unit {name} does not exist")
        return False
    if verb == "enable":
        if state in ENABLED:
            return False
        if state in ("masked", "masked-runtime"):
            ctx.fail(f"systemctl: enable {name}: {name} is masked; unmask it first")
            return False
        if state in ("generated", "transient", "bad"):
            ctx.fail(f"systemctl: enable {name}: {name} is {state} and cannot be enabled")
            return False
        if state == "static":
            ctx.warn(f"systemctl: {name} has no installation config (no [Install] "
                     "section); nothing to enable")
            return False
        return True
    if verb == "disable":
        return state not in NOTHING_TO_DISABLE
    return state != "masked"


PLUGIN = Plugin("systemctl", Args, plan)
