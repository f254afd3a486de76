"""Unit files in a root, handled as `systemctl --root=ROOT enable/disable/mask` does.

Used when no systemd runs the target: an image being built, the initramfs stage in a
chroot, any `--root` other than `/`. Pure planning over a TargetRoot: the unit
directories are read through the root (a dry run sees the links planned before) and
the plan yields changes (MakeDir, MakeSymlink, RemovePath, RemoveDir) that the runner
applies one by one. The rules are systemd 252's (src/shared/install.c), checked
against its `systemctl --root` by tests/integration/test_systemctl_offline_vs_systemctl.py:

- Unit files are looked up in SEARCH_PATH (systemd 252 as Debian builds it, with
  /lib/systemd/system), first match wins; an instance `a@x.service` falls back to its
  template `a@.service`. A unit file that is a symlink to /dev/null, or an empty file,
  is masked; a symlink to another name in the search path is an alias (that name is
  looked up in turn); a symlink out of the search path is a linked unit file (the
  target is the unit file).
- [Install] is read from the unit file and its drop-ins (`NAME.d/*.conf`, and the
  template's, in every search directory; the first of a file name wins; sorted by
  name): WantedBy=, RequiredBy=, Alias=, Also=, DefaultInstance=, with systemd's line
  continuation, quoting, list reset by an empty assignment, and the specifiers %n %N
  %p %i %j %u %U %g %G %%. systemd 252 does not know UpheldBy= (warned, ignored).
- enable: `/etc/systemd/system/ALIAS` for each Alias=, and
  `/etc/systemd/system/TARGET.wants/NAME` (`.requires` for RequiredBy=), each pointing
  at the unit file as found (`/usr/lib/systemd/system/a.service`, inside the root); a
  template is enabled as its DefaultInstance=; Also= units are enabled with it. A link
  already pointing at a file of the same name in the search path is kept; a .wants or
  .requires link pointing elsewhere is replaced; an alias pointing elsewhere, or a file
  in the way, is an error (the other links are still made).
- disable: every symlink under /etc/systemd/system named after the unit (or its
  template), or pointing (followed inside the root) at a file of the unit's name, is
  removed, for the unit and its Also= units; directories this empties are removed.
- mask: `/etc/systemd/system/NAME -> /dev/null`; a unit file (or another link) there is
  an error.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable, Iterator

from edgeinit.target.changes import Change, MakeSymlink, RemoveDir, RemovePath
from edgeinit.target.plan import plan_dirs
from edgeinit.target.root import PathError, TargetRoot

CONFIG_DIR = "/etc/systemd/system"
RUNTIME_CONFIG_DIR = "/run/systemd/system"
TRANSIENT_DIR = "/run/systemd/transient"
GENERATOR_DIRS = ("/run/systemd/generator.early", "/run/systemd/generator",
                  "/run/systemd/generator.late")
# `systemd-analyze unit-paths` of systemd 252 (Debian), in order; under --root, each
# is taken inside the root.
SEARCH_PATH = (
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    TRANSIENT_DIR,
    "/run/systemd/generator.early",
    CONFIG_DIR,
    "/etc/systemd/system.attached",
    RUNTIME_CONFIG_DIR,
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
)
UNIT_TYPES = frozenset(("service", "socket", "device", "mount", "automount", "swap",
                        "target", "path", "timer", "slice", "scope"))
MAY_ALIAS = frozenset(("service", "socket", "target", "device", "timer", "path"))
MAY_TEMPLATE = frozenset(("service", "socket", "target", "timer", "path"))
NAME_MAX = 255
MAX_FOLLOW = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
_SPACE = " \t\n\r"

Warn = Callable[[str], None]


class UnitError(Exception):
    """A unit that cannot be enabled, disabled or masked; the message names it."""


class NotFound(UnitError):
    pass


class Dangling(UnitError):
    pass


class Linked(UnitError):
    """systemctl's ELOOP: a symlink it refuses to operate on."""


# -- names --------------------------------------------------------------------------


def name_parts(name: str) -> tuple[str, str | None, str] | None:
    """(prefix, instance, type) of a valid unit name, else None. The instance is None
    for a plain name and "" for a template (`a@.service`)."""
    if not name or len(name) > NAME_MAX:
        return None
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or suffix not in UNIT_TYPES or not set(stem) <= _NAME_CHARS:
        return None
    prefix, at, instance = stem.partition("@")
    if not prefix:
        return None
    return prefix, (instance if at else None), suffix


def name_kind(name: str) -> str | None:
    """"plain", "instance", "template", or None for an invalid unit name."""
    parts = name_parts(name)
    if parts is None:
        return None
    instance = parts[1]
    return "plain" if instance is None else ("template" if instance == "" else "instance")


def template_of(name: str) -> str | None:
    """`a@.service` for `a@x.service` or `a@.service`; None for a plain name."""
    parts = name_parts(name)
    if parts is None or parts[1] is None:
        return None
    return f"{parts[0]}@.{parts[2]}"


def with_instance(name: str, instance: str) -> str:
    prefix, _, suffix = name_parts(name) or ("", None, "")
    return f"{prefix}@{instance}.{suffix}"


def unit_name(raw: str) -> str:
    """A unit name as the user wrote it, with `.service` added when it has no unit
    suffix (as systemctl does). A path, a glob or an invalid name is refused."""
    name = raw.strip()
    if not name:
        raise UnitError("empty unit name")
    if "/" in name:
        raise UnitError(f"'{name}' is a path, not a unit name")
    if any(c in name for c in "*?["):
        raise UnitError(f"'{name}' is a pattern, not a unit name (globs are not expanded)")
    if name.rpartition(".")[2] not in UNIT_TYPES or "." not in name:
        name += ".service"
    if name_parts(name) is None:
        raise UnitError(f"'{raw.strip()}' is not a valid unit name")
    return name


_SELF = "self"


def alias_problem(alias: str, unit: str) -> str | None:
    """Why `alias` cannot be a name of `unit` (systemd's
    unit_validate_alias_symlink_or_warn); _SELF when it is the unit's own name."""
    a = name_parts(alias)
    if a is None:
        return f"'{alias}' is not a valid unit name"
    if a[2] not in MAY_ALIAS:
        return f"{a[2]} units cannot have aliases"
    if a[1] is not None and a[2] not in MAY_TEMPLATE:
        return f"{a[2]} units cannot be templates"
    if alias == unit:
        return _SELF
    u = name_parts(unit)
    if u is None:
        return f"'{unit}' is not a valid unit name"
    ak, uk = name_kind(alias), name_kind(unit)
    if not (ak == uk or (ak == "instance" and uk == "template")):
        return f"'{alias}' is a {ak} name and '{unit}' a {uk} name"
    if uk == "instance" and a[1] != u[1]:
        return "their instances differ"
    if a[2] != u[2]:
        return f"'{alias}' and '{unit}' are different unit types"
    return None


def _symlink_name_compatible(symlink: str, target: str, instance_propagation: bool) -> bool:
    kind = name_kind(symlink)
    if symlink == target and kind in ("plain", "instance"):
        return True
    template = template_of(symlink)
    if template is None:
        return False
    target_kind = name_kind(target)
    if kind == "instance" and target_kind == "template" and template == target:
        return True
    return (instance_propagation and kind == "template" and target_kind == "template"
            and template == target)


def in_search_path(path: str) -> bool:
    """`path` is in a search directory or below one (systemd's path_startswith_strv)."""
    return any(path == d or path.startswith(d + "/") for d in SEARCH_PATH)


# -- [Install] ----------------------------------------------------------------------


class UnitInfo:
    """One unit as systemctl's install logic sees it (systemd's InstallInfo)."""

    __slots__ = ("aliases", "also", "auxiliary", "default_instance", "mode", "name", "path",
                 "required_by", "target", "wanted_by")

    def __init__(self, name: str, auxiliary: bool = False) -> None:
        self.name = name
        self.auxiliary = auxiliary
        self.path: str | None = None  # the unit file, inside the root
        self.mode: str | None = None  # None (not looked up), regular, masked, alias, linked
        self.target: str | None = None  # an alias's or linked file's symlink target
        self.aliases: list[str] = []
        self.wanted_by: list[str] = []
        self.required_by: list[str] = []
        self.also: list[str] = []
        self.default_instance: str | None = None


def expand(text: str, info: UnitInfo) -> str:
    """`text` with systemd's [Install] specifiers filled in for `info` (system scope)."""
    if "%" not in text:
        return text
    parts = name_parts(info.name)
    if parts is None:
        raise UnitError(f"cannot resolve specifiers in '{text}'")
    prefix, instance, _ = parts
    full = info.name
    if instance == "" and info.default_instance:
        full = with_instance(info.name, info.default_instance)
    values = {
        "n": full,
        "N": full.rpartition(".")[0],
        "p": prefix,
        "i": instance or (info.default_instance or ""),
        "j": prefix.rpartition("-")[2],
        "u": "root", "U": "0", "g": "root", "G": "0", "%": "%",
    }
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        key = text[i + 1] if i + 1 < len(text) else ""
        if key not in values:
            spec = f"%{key}" if key else "a trailing %"
            raise UnitError(f"cannot resolve {spec} in '{text}' (edgeinit knows the "
                            "specifiers %n %N %p %i %j %u %U %g %G %% here)")
        out.append(values[key])
        i += 2
    return "".join(out)


def _words(value: str, unquote: bool = True) -> list[str]:
    """Whitespace-separated words, quotes removed, backslash escapes kept (systemd's
    extract_first_word with EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE)."""
    words: list[str] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in _SPACE:
            i += 1
        if i >= n:
            return words
        word: list[str] = []
        quote = ""
        while i < n:
            c = value[i]
            if c == "\\" and i + 1 < n:
                word.append(value[i:i + 2])
                i += 2
                continue
            if quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
            elif unquote and c in "'\"":
                quote = c
            elif c in _SPACE:
                break
            else:
                word.append(c)
            i += 1
        words.append("".join(word))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with backslash continuations joined (comment lines inside one skipped)."""
    continuation: str | None = None
    if text.startswith("\ufeff"):
        text = text[1:]
    for number, raw in enumerate(text.splitlines(), 1):
        if continuation is not None:
            if raw.lstrip(_SPACE)[:1] in ("#", ";"):
                continue
            line = continuation + raw
        else:
            line = raw
        escaped = False
        for ch in line:
            escaped = not escaped and ch == "\\"
        if escaped:
            continuation = line[:-1] + " "
            continue
        continuation = None
        yield number, line
    if continuation is not None:
        yield -1, continuation


# -- the install context ------------------------------------------------------------


class Install:
    """One systemctl operation on a root (systemd's InstallContext): the units it
    looked at, in the order it met them."""

    def __init__(self, root: TargetRoot, warn: Warn) -> None:
        self.root = root
        self.warn = warn
        self.units: dict[str, UnitInfo] = {}

    # -- the root, read --------------------------------------------------------------

    def _host(self, path: str, follow: bool = False) -> str | None:
        try:
            return self.root.resolve(path, follow=follow)
        except PathError:
            return None

    def _simplified(self, link_path: str, target: str) -> str:
        """A symlink's target inside the root: made absolute, `..` and directory links
        resolved, the last component kept (systemd: CHASE_NOFOLLOW|CHASE_NONEXISTENT)."""
        joined = target if target.startswith("/") else posixpath.join(
            posixpath.dirname(link_path), target)
        joined = posixpath.normpath(joined)
        host = self._host(joined)
        return joined if host is None else self.root.display(host)

    def _null_or_empty(self, path: str) -> bool:
        if path == "/dev/null":
            return True
        host = self._host(path, follow=True)
        st = None if host is None else self.root.state(host)
        if st is None:
            return False
        if st.kind == "file":
            return st.size == 0
        if st.kind == "other":
            import os
            import stat

            try:
                return stat.S_ISCHR(os.stat(host).st_mode)  # type: ignore[arg-type]
            except OSError:
                return False
        return False

    # -- finding a unit --------------------------------------------------------------

    def add(self, name: str, auxiliary: bool = False) -> UnitInfo:
        if name_parts(name) is None:
            raise UnitError(f"'{name}' is not a valid unit name")
        info = self.units.get(name)
        if info is not None:
            info.auxiliary = info.auxiliary and auxiliary
            return info
        info = self.units[name] = UnitInfo(name, auxiliary)
        return info

    def pending(self, done: set[str]) -> Iterator[UnitInfo]:
        """The units in the order they were added, including those added meanwhile."""
        while True:
            todo = [info for name, info in self.units.items() if name not in done]
            if not todo:
                return
            done.add(todo[0].name)
            yield todo[0]

    def _load(self, info: UnitInfo, path: str, load: bool, dropin: bool = False) -> bool:
        """Look at `path` for `info` (systemd's unit_file_load_or_readlink): False when
        nothing is there. A regular file's [Install] is read when `load`."""
        host = self._host(path, follow=dropin)
        st = None if host is None else self.root.state(host)
        if st is None or host is None:
            return False
        if dropin:
            if st.kind == "file" and st.size and load:
                self._parse(info, path, self.root.read_bytes(host) or b"")
            return True
        if st.kind == "link":
            raw = self.root.read_link(host)
            if raw is None:
                return False
            target = self._simplified(path, raw)
            info.target = target
            if self._null_or_empty(target):
                info.mode = "masked"
            elif in_search_path(target):
                problem = alias_problem(posixpath.basename(path), posixpath.basename(target))
                if problem == _SELF:
                    raise Linked(f"refusing to operate on linked unit file {info.name} "
                                 f"({path} -> {raw})")
                if problem:
                    raise UnitError(f"invalid unit reference {posixpath.basename(path)} "
                                    f"({path} -> {raw}: {problem})")
                info.mode = "alias"
            else:
                info.mode = "linked"
            return True
        if st.kind == "dir":
            raise UnitError(f"{path} is a directory")
        parts = name_parts(info.name)
        if parts and parts[1] is not None and parts[2] not in MAY_TEMPLATE:
            raise UnitError(f"{path}: {parts[2]} units cannot be templates")
        if st.kind != "file" or st.size == 0:
            if self._null_or_empty(path):
                info.mode = "masked"
                return True
            raise UnitError(f"{path} is not a regular file")
        info.mode = "regular"
        if load:
            self._parse(info, path, self.root.read_bytes(host) or b"")
        return True

    def search(self, info: UnitInfo, load: bool = True) -> None:
        """Find `info`'s unit file (systemd's unit_file_search). Raises NotFound."""
        if info.mode is not None:
            return
        if info.path is not None:
            if not self._load(info, info.path, load):
                raise NotFound(f"unit {info.name} does not exist ({info.path} is missing)")
            return
        template = template_of(info.name) if name_kind(info.name) == "instance" else None
        found = None
        for candidate in (info.name, template):
            if candidate is None:
                continue
            for directory in SEARCH_PATH:
                path = f"{directory}/{candidate}"
                if self._load(info, path, load):
                    found = path
                    break
            if found:
                break
        if found is None:
            raise NotFound(f"unit {info.name} does not exist")
        info.path = found
        if info.mode == "masked" or not load:
            return
        dirs = [f"{d}/{info.name}.d" for d in SEARCH_PATH]
        if template:
            dirs += [f"{d}/{template}.d" for d in SEARCH_PATH]
        chosen: dict[str, str] = {}
        for directory in dirs:
            host = self._host(directory, follow=True)
            if host is None:
                continue
            for entry in self.root.list_dir(host):
                if entry.endswith(".conf") and not entry.startswith(".") and entry not in chosen:
                    chosen[entry] = f"{directory}/{entry}"
        for entry in sorted(chosen):
            self._load(info, chosen[entry], load, dropin=True)

    def traverse(self, info: UnitInfo, follow_config: bool, load: bool = True) -> UnitInfo:
        """The unit `info` ends at, following aliases and linked unit files (systemd's
        install_info_traverse). Without follow_config, a symlink in /etc/systemd/system
        or /run/systemd/system is refused, as systemctl does when it applies."""
        self.search(info, load)
        current = info
        for _ in range(MAX_FOLLOW):
            if current.mode not in ("alias", "linked"):
                return current
            assert current.path is not None and current.target is not None
            if not follow_config and posixpath.dirname(current.path) in (
                    CONFIG_DIR, RUNTIME_CONFIG_DIR):
                raise Linked(f"refusing to operate on linked unit file {current.name} "
                             f"({current.path} is a symbolic link)")
            base = posixpath.basename(current.target)
            if current.mode == "alias" and base != current.name:
                if name_kind(current.name) == "instance" and name_kind(base) == "template":
                    instance = name_parts(current.name)[1]  # type: ignore[index]
                    base = with_instance(base, instance or "")
                if base != current.name:
                    nxt = self.add(base)
                    try:
                        self.search(nxt, load)
                    except NotFound:
                        raise Dangling(f"{current.name} is an alias of {base}, which does "
                                       "not exist") from None
                    current = nxt
                    continue
            current.path, current.mode = current.target, None
            if not self._load(current, current.path, load):
                raise NotFound(f"unit {current.name} does not exist ({current.path}, "
                               "which it links to, is missing)")
        raise UnitError(f"{info.name}: too many levels of symbolic links")

    def _parse(self, info: UnitInfo, path: str, data: bytes) -> None:
        """Read the [Install] section of a unit file or drop-in into `info`."""
        section: str | None = None
        for number, line in _logical_lines(data.decode("utf-8", "replace")):
            text = line.strip(_SPACE)
            if not text or text[0] in "#;":
                continue
            if text[0] == "[":
                if not text.endswith("]") or len(text) < 3:
                    raise UnitError(f"{path}:{number}: invalid section header '{text}'")
                section = text[1:-1]
                continue
            if section != "Install":
                continue
            key, eq, value = text.partition("=")
            if not eq:
                continue
            key, value = key.strip(_SPACE), value.strip(_SPACE)
            where = f"{path}:{number}"
            if key in ("WantedBy", "RequiredBy", "Alias"):
                if key == "Alias":
                    unit_type = info.name.rpartition(".")[2]
                    if unit_type not in MAY_ALIAS:
                        self.warn(f"{where}: Alias= is not allowed for {unit_type} units; "
                                  "ignored")
                        continue
                target = {"WantedBy": info.wanted_by, "RequiredBy": info.required_by,
                          "Alias": info.aliases}[key]
                if not value:
                    target.clear()
                else:
                    target.extend(_words(value))
            elif key == "Also":
                for word in _words(value, unquote=False):
                    name = expand(word, info)
                    self.add(name, auxiliary=True)
                    info.also.append(name)
            elif key == "DefaultInstance":
                kind = name_kind(info.name)
                if kind == "instance":
                    continue
                if kind != "template":
                    self.warn(f"{where}: DefaultInstance= only makes sense for template "
                              "units; ignored")
                    continue
                instance = expand(value, info) or None
                if instance is not None and not set(instance) <= _NAME_CHARS:
                    self.warn(f"{where}: invalid DefaultInstance= '{instance}'; ignored")
                    continue
                info.default_instance = instance
            else:
                self.warn(f"{where}: unknown key '{key}' in [Install] (not known to "
                          "systemctl 252); ignored")

    # -- making and removing links ---------------------------------------------------

    def _equivalent(self, link: str, a: str, b: str) -> bool:
        """Two symlink targets the same as far as enabling goes (systemd's
        chroot_unit_symlinks_equivalent)."""
        def norm(t: str) -> str:
            return posixpath.normpath(
                t if t.startswith("/") else posixpath.join(posixpath.dirname(link), t))

        na, nb = norm(a), norm(b)
        if na == nb:
            return True
        ha, hb = self._host(na, follow=True), self._host(nb, follow=True)
        if ha is not None and ha == hb and self.root.state(ha) is not None:
            return True
        return (posixpath.basename(na) == posixpath.basename(nb)
                and in_search_path(na) and in_search_path(nb))

    def link(self, target: str, path: str, force: bool) -> Iterator[Change]:
        """Make `path` a symlink to `target` (systemd's create_symlink). Returns an
        error message or None (as the generator's value)."""
        host = self._host(path)
        if host is None:
            return f"cannot create {path}: not a usable path in the root"
        st = self.root.state(host)
        if st is None:
            try:
                yield from plan_dirs(self.root, posixpath.dirname(path))
            except PathError as e:
                return f"cannot create {path}: {e}"
            yield MakeSymlink(path, host, target)
            return None
        if st.kind != "link":
            return f"{path} already exists and is not a symbolic link"
        dest = self.root.read_link(host) or ""
        if self._equivalent(path, dest, target):
            return None
        if not force:
            return f"{path} already exists and is a symbolic link to {dest}"
        yield MakeSymlink(path, host, target, old=dest)
        return None

    def apply(self, info: UnitInfo) -> Iterator[Change]:
        """The links that enable one unit (systemd's install_info_apply). Returns
        (links made or already right, error messages) as the generator's value."""
        assert info.path is not None
        count = 0
        errors: list[str] = []
        if posixpath.dirname(info.path) not in SEARCH_PATH:  # a linked unit file
            error = yield from self.link(info.path, f"{CONFIG_DIR}/{info.name}", False)
            if error:
                return 0, [error]
        for alias in info.aliases:
            try:
                dst = expand(alias, info)
            except UnitError as e:
                errors.append(str(e))
                continue
            checked = self._alias_name(info, dst)
            if checked is None:
                continue
            if checked.startswith("!"):
                errors.append(checked[1:])
                continue
            error = yield from self.link(info.path, f"{CONFIG_DIR}/{checked}", False)
            if error:
                errors.append(error)
            else:
                count += 1
        for entries, suffix, key in ((info.wanted_by, ".wants", "WantedBy"),
                                     (info.required_by, ".requires", "RequiredBy")):
            made, errs = yield from self._wants(info, entries, suffix, key)
            count += made
            errors += errs
        return count, errors

    def _alias_name(self, info: UnitInfo, dst: str) -> str | None:
        """The alias name to link, None to skip it, or "!message" (systemd's
        unit_file_verify_alias)."""
        if "/" in dst:
            directory, _, base = dst.rpartition("/")
            for ending in (".wants", ".requires"):
                if directory.endswith(ending):
                    unit = directory[:-len(ending)]
                    break
            else:
                return f"!cannot alias {info.name} as {dst}: not a .wants or .requires path"
            kind = name_kind(unit)
            if kind is None or not _symlink_name_compatible(base, info.name,
                                                             kind == "template"):
                return f"!cannot alias {info.name} as {dst}"
            return dst
        updated = dst
        if name_kind(dst) == "template" and name_kind(info.name) == "instance":
            updated = with_instance(dst, name_parts(info.name)[1] or "")  # type: ignore[index]
        problem = alias_problem(updated, info.name)
        if problem == _SELF:
            return None
        if problem:
            return f"!cannot alias {info.name} as {updated}: {problem}"
        return updated

    def _wants(self, info: UnitInfo, entries: list[str], suffix: str, key: str
               ) -> Iterator[Change]:
        if not entries:
            return 0, []
        assert info.path is not None
        kind = name_kind(info.name)
        template_only = False
        name = info.name
        if kind == "template":
            if info.default_instance:
                name = with_instance(info.name, info.default_instance)
                instance = UnitInfo(name)
                with contextlib.suppress(UnitError):
                    self.search(instance, load=False)
                if instance.mode == "masked":
                    return 0, [f"{name} is masked"]
            else:
                template_only = True
        count = 0
        errors: list[str] = []
        for entry in entries:
            try:
                dst = expand(entry, info)
            except UnitError as e:
                errors.append(str(e))
                continue
            dst_kind = name_kind(dst)
            if dst_kind is None:
                errors.append(f"{key}={dst} of {info.name} is not a valid unit name")
                continue
            if template_only and dst_kind == "plain":
                prefix = name.partition("@")[0]
                errors.append(f"cannot enable the template {name}: {key}={dst} is not a "
                              f"template; enable an instance ({prefix}@NAME...) or give it "
                              "DefaultInstance=")
                continue
            error = yield from self.link(info.path, f"{CONFIG_DIR}/{dst}{suffix}/{name}", True)
            if error:
                errors.append(error)
            else:
                count += 1
        return count, errors

    def remove_marked(self, marked: set[str]) -> Iterator[Change]:
        """Remove the links under /etc/systemd/system that point at, or are named after,
        a marked name (systemd's remove_marked_symlinks); then directories emptied."""
        config = self._host(CONFIG_DIR, follow=True)
        if config is None:
            return
        for _ in range(MAX_FOLLOW):
            restart = False
            for host in self._links_under(config):
                name = posixpath.basename(host)
                if name_parts(name) is None:
                    continue
                shown = self.root.display(host)
                found = name in marked or template_of(name) in marked
                dest = self.root.read_link(host) or ""
                if not found:
                    resolved = self._chase(shown)
                    if resolved is None:
                        continue
                    found = resolved in marked or posixpath.basename(resolved) in marked
                if not found:
                    continue
                yield RemovePath(shown, host, dest)
                yield from self._remove_empty_parents(host, config)
                if shown not in marked:
                    marked.add(shown)
                    restart = True
            if not restart:
                return

    def _chase(self, path: str) -> str | None:
        """Where a link leads inside the root, followed to the end (links planned in a
        dry run included); None for a loop."""
        for _ in range(MAX_FOLLOW):
            host = self._host(path)
            if host is None:
                return None
            raw = self.root.read_link(host)
            if raw is None:
                return self.root.display(host)
            path = posixpath.normpath(raw if raw.startswith("/") else posixpath.join(
                posixpath.dirname(self.root.display(host)), raw))
        return None

    def _links_under(self, host_dir: str) -> Iterator[str]:
        for entry in self.root.list_dir(host_dir):
            host = f"{host_dir}/{entry}"
            st = self.root.state(host)
            if st is None:
                continue
            if st.kind == "dir":
                yield from self._links_under(host)
            elif st.kind == "link":
                yield host

    def _remove_empty_parents(self, host: str, stop: str) -> Iterator[Change]:
        parent = posixpath.dirname(host)
        while parent != stop and parent.startswith(stop + "/"):
            if self.root.list_dir(parent):
                return
            yield RemoveDir(self.root.display(parent), parent)
            parent = posixpath.dirname(parent)


# -- the three verbs ----------------------------------------------------------------


def _main_unit(install: Install, name: str, verb: str) -> UnitInfo:
    info = install.add(name)
    final = install.traverse(info, follow_config=True)
    if final.mode == "masked":
        raise UnitError(f"{name} is masked ({final.path}); unmask it first")
    assert final.path is not None
    directory = posixpath.dirname(final.path)
    if verb == "enable" and (directory in GENERATOR_DIRS or directory == TRANSIENT_DIR):
        raise UnitError(f"{name} is transient or generated ({final.path})")
    return final


def plan_enable(root: TargetRoot, name: str, warn: Warn) -> Iterator[Change]:
    """Changes that enable unit `name` (already a valid unit name), as
    `systemctl --root enable NAME` makes them. Raises UnitError naming the unit when
    it cannot be enabled (after making the links that could be made)."""
    install = Install(root, warn)
    _main_unit(install, name, "enable")
    count = 0
    errors: list[str] = []
    done: set[str] = set()
    for info in install.pending(done):
        try:
            install.traverse(info, follow_config=False)
        except UnitError as e:
            if info.auxiliary:
                warn(f"{e} (named in Also= of {name}); not enabled")
                continue
            errors.append(str(e))
            break
        if info.mode == "masked":
            also = f" (Also= of {name})" if info.auxiliary else ""
            warn(f"{info.name}{also} is masked; not enabled")
            count += 1
            continue
        if info.mode != "regular":
            continue
        made, errs = yield from install.apply(info)
        count += made
        errors += errs
    if errors:
        raise UnitError("; ".join(errors))
    if count == 0:
        warn(f"{name} has no installation config (no WantedBy=, RequiredBy=, Alias= or "
             "Also= in [Install], or a template without DefaultInstance=); nothing to "
             "enable")


def plan_disable(root: TargetRoot, name: str, warn: Warn) -> Iterator[Change]:
    """Changes that disable unit `name`, as `systemctl --root disable NAME` makes them.
    A unit that does not exist is a warning (as for systemctl and yip): its leftover
    links, if any, are removed all the same."""
    install = Install(root, warn)
    main = install.add(name)
    try:
        install.traverse(main, follow_config=True)
    except NotFound:
        warn(f"{name} does not exist; nothing to disable but leftover links")
        yield from install.remove_marked({name})
        return
    except UnitError:
        pass  # reported below, as its links are removed all the same
    marked: set[str] = set()
    done: set[str] = set()
    for info in install.pending(done):
        try:
            install.traverse(info, follow_config=True)
        except UnitError as e:
            if not info.auxiliary:
                warn(f"disable {name}: {e}; links to it are removed all the same")
        else:
            if info.mode != "regular":
                continue  # masked: left alone; an alias: its unit is in the list too
        marked.add(info.name)
    yield from install.remove_marked(marked)


def plan_mask(root: TargetRoot, name: str, warn: Warn) -> Iterator[Change]:
    """The change that masks unit `name` (`/etc/systemd/system/NAME -> /dev/null`)."""
    install = Install(root, warn)
    path = f"{CONFIG_DIR}/{name}"
    host = install._host(path)
    st = None if host is None else root.state(host)
    if st is not None and st.kind != "link":
        what = "a unit file" if st.kind == "file" else "in the way"
        raise UnitError(f"{path} is {what}, not a link; remove or move it to mask {name}")
    if st is None:
        try:
            install.search(install.add(name), load=False)
        except NotFound:
            warn(f"{name} does not exist; masked all the same")
        except UnitError:
            pass
    error = yield from install.link("/dev/null", path, False)
    if error:
        raise UnitError(error)

