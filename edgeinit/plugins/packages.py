"""`packages` / `package_pins`: the target's package manager (yip's Packages, PackagePins).

`packages` runs, in yip's order, refresh -> upgrade -> install -> remove, each as one
non-interactive command in the target (chrooted under --root; see target/pkgmgr.py for
how the manager is found). Unlike yip, it first asks the target's package database:
packages already installed are not installed again, packages not installed are not
removed, and with apt an upgrade with nothing to upgrade (`apt-get -s upgrade`) is not
run; so a step with nothing to do changes nothing. With apt, a package that
`apt-cache` does not know fails the install before apt-get runs, naming the package.
A command that fails fails the step; the operations after it still run (as every
other change of a step).

`package_pins` (name -> version) pins before `packages` installs, as SPEC section 3
orders them:
- apt: one file per package, /etc/apt/preferences.d/edgeinit-NAME.pref, with
  `Package: NAME`, `Pin: version VERSION`, `Pin-Priority: 1001` (yip writes one
  99-yip-pins file for all; a file per package lets each pin be seen and removed alone);
- apk: `NAME=VERSION` in /etc/apk/world, replacing the package's entry there and keeping
  every other (yip rewrites the file with the pins alone, which drops every package the
  system had asked for);
- zypper: `zypper addlock NAME=VERSION` (falling back to locking NAME, as yip does),
  unless /etc/zypp/locks already locks NAME;
- dnf: `dnf versionlock add NAME-VERSION`, unless /etc/dnf/plugins/versionlock.list
  already has it;
- pacman has no version pins: a warning, as in yip.
An empty version is skipped with a warning (yip too).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target import pkgmgr
from edgeinit.target.changes import Change, RunCommand
from edgeinit.target.plan import plan_write


class Packages(Record):
    install: list[str] = spec(factory=list, doc="Packages to install.")
    remove: list[str] = spec(factory=list, doc="Packages to remove.")
    refresh: bool = spec(False, doc="Refresh the package index first.")
    upgrade: bool = spec(False, doc="Upgrade installed packages.")


class PinArgs(Record):
    package_pins: dict[str, str] = spec(factory=dict, doc="package -> version to pin.")


class Args(Record):
    packages: Packages | None = spec(None, doc="Package operations.")


def _manager(ctx: Context) -> pkgmgr.Manager:
    try:
        return pkgmgr.detect(ctx.root)
    except pkgmgr.PackageError as e:
        raise PluginError(str(e)) from None


def _checked(ctx: Context, names: list[str], what: str) -> list[str]:
    out = []
    for raw in names:
        name = ctx.render(str(raw)).strip()
        problem = pkgmgr.check_spec(name)
        if problem:
            raise PluginError(f"{what}: {problem}")
        if name not in out:
            out.append(name)
    return out


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    p = args.packages
    if p is None or not (p.install or p.remove or p.refresh or p.upgrade):
        return
    install = _checked(ctx, p.install, "install")
    remove = _checked(ctx, p.remove, "remove")
    mgr = _manager(ctx)
    try:
        yield from _plan(mgr, p, install, remove, ctx)
    except pkgmgr.PackageError as e:
        raise PluginError(str(e)) from None


def _plan(mgr: pkgmgr.Manager, p: Packages, install: list[str], remove: list[str],
          ctx: Context) -> Iterator[Change]:
    if p.refresh:
        yield RunCommand(mgr.refresh)
    if p.upgrade and (mgr.name != "apt" or _apt_has_upgrades(ctx)):
        yield RunCommand(mgr.upgrade)
    if install:
        todo = _to_install(mgr, install, ctx)
        if todo and mgr.name == "apt" and not (ctx.dry_run and p.refresh):
            bases = sorted({re.split(r"[=/]", n, maxsplit=1)[0] for n in todo})
            unknown = pkgmgr.unknown_apt_packages(ctx.root, bases)
            if unknown:
                ctx.fail("packages: apt knows no package " + ", ".join(
                    f"'{n}'" for n in unknown) + " (not in the target's package index"
                    + ("" if p.refresh else "; refresh: true updates it") + "); "
                    "nothing installed")
                todo = []
        if todo:
            yield RunCommand(pkgmgr.command(mgr.install, todo))
    if remove:
        state = pkgmgr.installed(ctx.root, mgr, remove)
        todo = [n for n in remove if any(e.present for e in state.get(n, []))]
        if todo:
            yield RunCommand(pkgmgr.command(mgr.remove, todo))


def _apt_has_upgrades(ctx: Context) -> bool:
    """Whether `apt-get upgrade` would change anything; when the simulation itself fails
    (broken dependencies, say) the upgrade runs, so that apt's own error is reported."""
    try:
        return bool(pkgmgr.apt_upgradable(ctx.root))
    except pkgmgr.PackageError:
        return True


def _to_install(mgr: pkgmgr.Manager, names: list[str], ctx: Context) -> list[str]:
    """The names whose packages are not installed (as asked, with the version asked)."""
    judged = {n: pkgmgr.split_spec(mgr, n) for n in names}
    query = sorted({s[0] for s in judged.values() if s is not None})
    state = pkgmgr.installed(ctx.root, mgr, query)
    todo = []
    for name in names:
        parts = judged[name]
        if parts is None:
            todo.append(name)  # the manager decides (a glob, a release, a range)
            continue
        base, version = parts
        have = [e for e in state.get(base, []) if e.complete]
        if not have or (version is not None and all(e.version != version for e in have)):
            todo.append(name)
    return todo


# ------------------------------------------------------------------ package_pins

APT_PREFS = "/etc/apt/preferences.d"
APK_WORLD = "/etc/apk/world"
ZYPP_LOCKS = "/etc/zypp/locks"
DNF_LOCKLIST = "/etc/dnf/plugins/versionlock.list"
_APT_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def apt_pref_path(name: str) -> str:
    """preferences.d takes only [A-Za-z0-9_.-] file names: '+' (libstdc++6) becomes '_',
    which no Debian package name has, so two packages never share a file."""
    return f"{APT_PREFS}/edgeinit-{name.replace('+', '_')}.pref"


def apt_pin(name: str, version: str) -> bytes:
    return (f"Explanation: package_pins (edgeinit)\nPackage: {name}\n"
            f"Pin: version {version}\nPin-Priority: 1001\n").encode()


def apk_world(old: str, pins: dict[str, str]) -> str:
    """/etc/apk/world with each pinned package's entry replaced by NAME=VERSION."""
    entries = old.split()
    done = set()
    out = []
    for entry in entries:
        name = re.split(r"[=<>~@]", entry, maxsplit=1)[0]
        if name in pins:
            if name not in done:
                out.append(f"{name}={pins[name]}")
                done.add(name)
            continue
        out.append(entry)
    out.extend(f"{n}={v}" for n, v in pins.items() if n not in done)
    return "\n".join(out) + "\n"


def _zypper_locked(text: str, name: str) -> bool:
    return any(line.split(":", 1)[1].strip() == name
               for line in text.splitlines()
               if line.strip().startswith("solvable_name:"))


def _dnf_locked(text: str, name: str, version: str) -> bool:
    pattern = re.compile(rf"^{re.escape(name)}-(\d+:)?{re.escape(version)}")
    return any(pattern.match(line.strip()) for line in text.splitlines())


def plan_pins(args: PinArgs, ctx: Context) -> Iterator[Change]:
    if not args.package_pins:
        return
    pins: dict[str, str] = {}
    for raw_name in sorted(args.package_pins):
        name = str(raw_name).strip()
        version = str(args.package_pins[raw_name] or "").strip()
        problem = pkgmgr.check_spec(name)
        if problem or any(c in name for c in "=<>~/*?"):
            raise PluginError(problem or f"'{name}' is not a package name")
        if not version:
            ctx.warn(f"package_pins: empty version for '{name}' (skipped)")
            continue
        if _BAD_VERSION.search(version):
            raise PluginError(f"'{version}' is not a version (for '{name}')")
        pins[name] = version
    if not pins:
        return
    mgr = _manager(ctx)
    if mgr.name == "apt":
        for name, version in pins.items():
            if not _APT_NAME.match(name):
                raise PluginError(f"'{name}' is not a Debian package name")
            yield from plan_write(ctx.root, apt_pref_path(name), apt_pin(name, version),
                                  mode=0o644, uid=0, gid=0)
    elif mgr.name == "apk":
        old = ctx.root.read_text(APK_WORLD) or ""
        new = apk_world(old, pins)
        if new.split() != old.split():
            yield from plan_write(ctx.root, APK_WORLD, new.encode())
    elif mgr.name == "zypper":
        locks = ctx.root.read_text(ZYPP_LOCKS) or ""
        for name, version in pins.items():
            if _zypper_locked(locks, name):
                continue
            cap, bare = shlex.quote(f"{name}={version}"), shlex.quote(name)
            yield RunCommand(f"zypper --non-interactive addlock {cap} || "
                             f"zypper --non-interactive addlock {bare}")
    elif mgr.name == "dnf":
        locks = ctx.root.read_text(DNF_LOCKLIST) or ""
        for name, version in pins.items():
            if not _dnf_locked(locks, name, version):
                yield RunCommand("dnf -y versionlock add " + shlex.quote(f"{name}-{version}"))
    else:
        ctx.warn(f"package_pins: {mgr.name} has no version pins; nothing pinned")


_BAD_VERSION = re.compile(r"[\s\x00-\x1f\x7f]")

PLUGINS = {
    "package_pins": Plugin("package_pins", PinArgs, plan_pins),
    "packages": Plugin("packages", Args, plan),
}
