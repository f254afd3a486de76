"""The immutable layout as data: (env file, kernel command line, current mounts) -> plan.

Pure: reads no file and runs nothing, so every decision here is testable on its own.
The meanings, defaults, directory names and fstab lines are the cos-toolkit's
`cos-mount-layout.sh` (../shared/reference/immutable-rootfs.md sections 2-5), except
where SPEC 7.11 changes them:

- mounts are made parent-first by path depth (the cos-toolkit sorts `PATH:KIND`
  strings, so a `/var/lib/longhorn` volume is mounted before the `/var` overlay that
  then hides it); persistent volumes and the RW_PATHS overlays are ordered together by
  depth (volumes first at equal depth), the state paths after them by depth, and a
  final topological pass puts every mount after the mounts it `depends_on` (its parent
  mount, and the mount holding its upper or state directory);
- the same path twice (two volumes, a state path that is also an RW path or a volume,
  two paths whose directory names collide) is planned once, the others are skipped
  with a warning; an RW path that is a volume's mount point gives way to the volume
  silently, as in the cos-toolkit (the stock config does that on every boot);
- a missing env file means the defaults; no `cos-img/filename=` is needed;
- a target that is already a mount point is not mounted again, but its fstab line is
  kept, so running the layout twice writes the same fstab.

Paths in a plan are paths in the new root, as they appear in its /etc/fstab. Paths
under /run are the running system's /run (the initrd's /run becomes the new root's at
switch-root), everything else lives under the sysroot: see `host_path`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

from edgeinit.config.cmdline import words
from edgeinit.formats import dotenv
from edgeinit.model import Record, spec

OVERLAY_BASE = "/run/overlay"
DEFAULT_OVERLAY = "tmpfs:20%"
DEFAULT_RW_PATHS = ("/etc", "/root", "/home", "/opt", "/srv", "/usr/local", "/var")
DEFAULT_STATE_TARGET = "/usr/local/.state"
DEFAULT_TIMEOUT = 60.0  # seconds to wait for the layout's devices, all together
MAX_TIMEOUT = 1800.0
TIMEOUT_ARG = "edgeinit.layout.timeout"  # kernel argument overriding DEFAULT_TIMEOUT
DISABLE_ARGS = ("rd.cos.disable", "edgeinit.disable")
FSTAB = "/etc/fstab"
ETC_MOUNT_DROPIN = "/etc/systemd/system/etc.mount.d/override.conf"
ETC_MOUNT_DROPIN_TEXT = "[Mount]\nLazyUnmount=true\n"
FSTAB_HEADER = ("# Written by edgeinit mount-layout at boot from the immutable layout; "
                "/etc is ephemeral, edits here are lost at the next boot.\n")

# kinds of mount operation, and their rank among mounts of equal depth
VOLUME, OVERLAY_BASE_KIND, OVERLAY = "volume", "overlay-base", "overlay"
STATE_BIND, STATE_OVERLAY = "state-bind", "state-overlay"

TAGS = {"LABEL": "by-label", "UUID": "by-uuid", "PARTLABEL": "by-partlabel",
        "PARTUUID": "by-partuuid"}
_BAD_PATH_CHARS = (",", ":", " ", "\t", "\n", "\\")


class MountOp(Record):
    """One mount of the layout, in the new root's terms."""

    kind: str  # volume, overlay-base, overlay, state-bind, state-overlay
    target: str  # mount point in the new root
    device: str = ""  # LABEL=x / UUID=x / PARTLABEL=x / PARTUUID=x / /dev/...; tmpfs; overlay;
    #                   for state-bind the state directory
    fs_spec: str = ""  # first field of the fstab line (/dev/disk/by-label/x for LABEL=x)
    fstype: str = ""  # as in fstab: auto, tmpfs, overlay, none
    options: str = ""  # as in fstab
    upper: str = ""  # overlays: upper and work directories
    work: str = ""
    depends_on: tuple[str, ...] = ()  # targets of the mounts that must be in place first
    origin: str = ""  # what asked for it: VOLUMES, rd.cos.mount, RW_PATHS, ...
    mounted: str = ""  # "SOURCE (FSTYPE)" when the target is a mount point already

    @property
    def name(self) -> str:
        return f"{self.kind} {self.target}"

    @property
    def fstab_line(self) -> str:
        if self.fstype == "overlay":  # the cos-toolkit writes overlay lines without 0 0
            return f"overlay {self.target} overlay {self.options}"
        return f"{self.fs_spec} {self.target} {self.fstype} {self.options} 0 0"

    def describe(self) -> str:
        """One line for the dry-run plan."""
        if self.kind == OVERLAY_BASE_KIND:
            what = (f"tmpfs, {self.options.removeprefix('defaults,')}" if self.fstype == "tmpfs"
                    else f"{self.device}")
        elif self.kind == VOLUME:
            what = self.device if self.device == self.fs_spec else f"{self.device} ({self.fs_spec})"
        elif self.kind == STATE_BIND:
            what = f"bind from {self.device}"
        else:
            what = f"upper {self.upper}"
        line = f"{self.kind:<14} {self.target:<24} {what}"
        if self.depends_on:
            line += f"; after {', '.join(self.depends_on)}"
        if self.mounted:
            line += f"; already mounted: {self.mounted}"
        return line


class Skipped(Record):
    """A configured mount that is not planned (a duplicate, a bad entry), and why."""

    target: str
    origin: str
    reason: str


class Layout(Record):
    sysroot: str
    ops: list[MountOp] = spec(factory=list)
    skipped: list[Skipped] = spec(factory=list)
    warnings: list[str] = spec(factory=list)
    fstab: str = ""
    root_perm: str = "ro"
    overlay: str = DEFAULT_OVERLAY  # the OVERLAY setting in effect, as written
    state_bind: bool = False
    timeout: float = DEFAULT_TIMEOUT
    disabled: str = ""  # the kernel argument that turned the layout off

    def op(self, target: str) -> MountOp | None:
        for op in self.ops:
            if op.target == target:
                return op
        return None


# ------------------------------------------------------------------ small helpers


def mangle(path: str) -> str:
    """The cos-toolkit's directory name for a path: `/var/lib/x` -> `var-lib-x`."""
    return path.lstrip("/").replace("/", "-")


def norm_path(path: str) -> str:
    """`/etc/`, `etc`, `//etc/./` -> `/etc` (the cos-toolkit strips the leading / too)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def is_under(path: str, ancestor: str) -> bool:
    """path is ancestor or inside it."""
    return ancestor == "/" or path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def depth(path: str) -> int:
    return 0 if path == "/" else path.count("/")


def host_path(sysroot: str, path: str) -> str:
    """Where a new-root path is now: under the sysroot, except /run (the running
    system's /run moves into the new root at switch-root)."""
    if sysroot in ("", "/") or is_under(path, "/run"):
        return path
    return sysroot.rstrip("/") + path


def device_link(device: str) -> str | None:
    """`LABEL=x` -> `/dev/disk/by-label/x` (udev's link); a /dev path as it is; None when
    `device` is neither."""
    tag, sep, value = device.partition("=")
    if sep and tag in TAGS:
        if not value:
            return None
        return f"/dev/disk/{TAGS[tag]}/{value.replace('/', chr(92) + 'x2f')}"
    if device.startswith("/") and len(device) > 1:
        return posixpath.normpath(device)
    return None


def kernel_args(cmdline: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for word in words(cmdline):
        key, sep, value = word.partition("=")
        out.append((key, value if sep else None))
    return out


def _arg_bool(args: Sequence[tuple[str, str | None]], key: str) -> bool:
    """dracut's getargbool 0: present without a value, or with one other than 0/no/off."""
    found = [v for k, v in args if k == key]
    if not found:
        return False
    return found[-1] is None or found[-1].lower() not in ("0", "no", "off")


def _last(args: Sequence[tuple[str, str | None]], key: str) -> str:
    found = [v for k, v in args if k == key and v]
    return found[-1] if found else ""


def _env_bool(env: dict[str, str], key: str, default: str, warnings: list[str]) -> bool:
    """The cos-toolkit compares with the exact string "true"; anything else is false."""
    value = env.get(key, "") or default
    if value not in ("true", "false"):
        warnings.append(f"{key}={value!r} is not 'true': treated as false")
    return value == "true"


# ------------------------------------------------------------------ the planner


def plan_layout(env_text: str | None, cmdline: str,
                mounts: Iterable[tuple[str, str, str]], sysroot: str = "/") -> Layout:
    """The layout for `sysroot`.

    env_text: the layout env file's content, None when there is none (the defaults);
    cmdline: the kernel command line; mounts: the current mounts as (source, target,
    fstype), targets as the caller sees them (e.g. from /proc/self/mountinfo).
    """
    sysroot = posixpath.normpath(sysroot) if sysroot else "/"
    layout = Layout(sysroot=sysroot)
    warnings = layout.warnings
    args = kernel_args(cmdline)
    for key in DISABLE_ARGS:
        if any(k == key for k, _ in args):
            layout.disabled = key
            return layout
    layout.timeout = _timeout(args, warnings)
    env = dotenv.parse(env_text) if env_text is not None else {}
    current = _current_mounts(mounts, sysroot)

    debug_rw = _arg_bool(args, "rd.cos.debugrw")
    if "DEBUG_RW" in env:
        debug_rw = debug_rw or _env_bool(env, "DEBUG_RW", "false", warnings)
    layout.root_perm = "rw" if debug_rw else "ro"

    # persistent volumes: VOLUMES, then the kernel's rd.cos.mount= (MERGE)
    volumes: list[tuple[str, str, str]] = []  # (device, mount point, origin)
    for word in env.get("VOLUMES", "").split():
        _add_volume(volumes, word, "VOLUMES", layout)
    kernel_mounts = [w for k, v in args if k == "rd.cos.mount" and v for w in v.split()]
    if _env_bool(env, "MERGE", "true", warnings):
        env_points = {m for _, m, _ in volumes}
        for word in kernel_mounts:
            parsed = _parse_volume(word, "rd.cos.mount", layout)
            if parsed and parsed[1] not in env_points:  # VOLUMES wins, as in the cos-toolkit
                volumes.append((*parsed, "rd.cos.mount"))
    elif kernel_mounts:
        warnings.append("MERGE is not 'true': the kernel's rd.cos.mount entries are not "
                        f"used: {' '.join(kernel_mounts)}")

    # the overlay base
    if env.get("OVERLAY"):
        overlay_value, overlay_origin = env["OVERLAY"], "OVERLAY"
    elif _last(args, "rd.cos.overlay"):
        overlay_value, overlay_origin = _last(args, "rd.cos.overlay"), "rd.cos.overlay"
    else:
        overlay_value, overlay_origin = DEFAULT_OVERLAY, "default"
    layout.overlay = overlay_value

    root = _root_mount(current, mounts, sysroot)
    root_is_overlay = root is not None and root[2] == "overlay"
    rw_paths = (env["RW_PATHS"].split() if "RW_PATHS" in env else list(DEFAULT_RW_PATHS))

    ops: list[MountOp] = []
    base_op = None
    if root_is_overlay:
        warnings.append(f"{sysroot} is an overlay already: no overlay base and no RW_PATHS "
                        "overlays (as the cos-toolkit)")
    else:
        base_op = _overlay_base(overlay_value, overlay_origin, warnings)
        ops.append(base_op)

    taken: dict[str, str] = {}  # target -> what planned it
    for device, point, origin in volumes:
        if point in taken:
            _skip(layout, point, origin, f"{point} is planned already ({taken[point]})")
            continue
        taken[point] = f"{origin} {device}"
        link = device_link(device) or device
        ops.append(MountOp(VOLUME, point, device=device, fs_spec=link, fstype="auto",
                           options="defaults", origin=origin))
    if base_op is not None:
        names: dict[str, str] = {}
        for raw in rw_paths:
            path = norm_path(raw)
            if not _usable_path(path, raw, "RW_PATHS", layout):
                continue
            if path in taken:
                if not taken[path].startswith("RW_PATHS"):
                    continue  # a volume's mount point: the volume wins (cos-toolkit)
                _skip(layout, path, "RW_PATHS", f"{path} is listed twice")
                continue
            name = mangle(path)
            if name in names:
                _skip(layout, path, "RW_PATHS",
                      f"its overlay directory {name}.overlay is also {names[name]}'s")
                continue
            names[name] = path
            taken[path] = "RW_PATHS overlay"
            upper, work = _overlay_dirs(OVERLAY_BASE, path)
            ops.append(MountOp(OVERLAY, path, device="overlay", fs_spec="overlay",
                               fstype="overlay", upper=upper, work=work, origin="RW_PATHS"))

    # persistent state paths
    state_paths = env.get("PERSISTENT_STATE_PATHS", "").split()
    target = norm_path(env.get("PERSISTENT_STATE_TARGET") or DEFAULT_STATE_TARGET)
    if target == "/":
        warnings.append("PERSISTENT_STATE_TARGET cannot be /: using " + DEFAULT_STATE_TARGET)
        target = DEFAULT_STATE_TARGET
    bind = _env_bool(env, "PERSISTENT_STATE_BIND", "false", warnings)
    layout.state_bind = bind
    state_ops: list[MountOp] = []
    names = {}
    for raw in state_paths:
        path = norm_path(raw)
        origin = "PERSISTENT_STATE_PATHS"
        if not _usable_path(path, raw, origin, layout):
            continue
        if path in taken:
            _skip(layout, path, origin, f"{path} is mounted already by the layout "
                                        f"({taken[path]})")
            continue
        if is_under(target, path):
            _skip(layout, path, origin,
                  f"{path} holds PERSISTENT_STATE_TARGET {target} itself")
            continue
        name = mangle(path)
        if name in names:
            _skip(layout, path, origin,
                  f"its state directory {name} is also {names[name]}'s")
            continue
        names[name] = path
        taken[path] = "PERSISTENT_STATE_PATHS"
        if bind:
            state_dir = f"{target}/{name}.bind"
            state_ops.append(MountOp(STATE_BIND, path, device=state_dir, fs_spec=state_dir,
                                     fstype="none", options="defaults,bind", origin=origin))
        else:
            upper, work = _overlay_dirs(target, path)
            state_ops.append(MountOp(STATE_OVERLAY, path, device="overlay", fs_spec="overlay",
                                     fstype="overlay", upper=upper, work=work, origin=origin))

    rank = {OVERLAY_BASE_KIND: 0, VOLUME: 1, OVERLAY: 2}
    head = sorted(ops, key=lambda o: (o.kind != OVERLAY_BASE_KIND, depth(o.target),
                                      rank[o.kind], o.target))
    tail = sorted(state_ops, key=lambda o: depth(o.target))  # stable: listed order within
    ordered = _with_dependencies(head + tail, warnings)
    ordered = [_finish(op, ordered, current) for op in ordered]
    if state_ops and not any(o.kind == VOLUME and is_under(target, o.target) for o in ordered):
        warnings.append(f"PERSISTENT_STATE_TARGET {target} is on no persistent volume of the "
                        "layout: the state paths do not survive a reboot")
    layout.ops = ordered
    layout.fstab = _fstab(layout, None if root_is_overlay else root, root_is_overlay)
    return layout


def _timeout(args: Sequence[tuple[str, str | None]], warnings: list[str]) -> float:
    raw = _last(args, TIMEOUT_ARG)
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_TIMEOUT:
        warnings.append(f"{TIMEOUT_ARG}={raw} is not a number of seconds from 0 to "
                        f"{MAX_TIMEOUT:g}: waiting {DEFAULT_TIMEOUT:g} s")
        return DEFAULT_TIMEOUT
    return value


def _skip(layout: Layout, target: str, origin: str, reason: str) -> None:
    layout.skipped.append(Skipped(target, origin, reason))
    layout.warnings.append(f"{origin}: {target} skipped: {reason}")


def _usable_path(path: str, raw: str, origin: str, layout: Layout) -> bool:
    if path == "/":
        _skip(layout, raw, origin, "the root itself cannot be mounted over")
        return False
    if any(c in path for c in _BAD_PATH_CHARS):
        _skip(layout, raw, origin, "a path with ',', ':', '\\' or blanks cannot be an "
                                   "overlay or fstab entry")
        return False
    return True


def _parse_volume(word: str, origin: str, layout: Layout) -> tuple[str, str] | None:
    device, sep, point = word.partition(":")
    if not sep or not point or not device:
        _skip(layout, word, origin, "not DEVICE:MOUNTPOINT")
        return None
    if device_link(device) is None:
        _skip(layout, word, origin, f"'{device}' is not LABEL=, UUID=, PARTLABEL=, "
                                    "PARTUUID= or a /dev path")
        return None
    path = norm_path(point)
    if not _usable_path(path, word, origin, layout):
        return None
    return device, path


def _add_volume(volumes: list[tuple[str, str, str]], word: str, origin: str,
                layout: Layout) -> None:
    parsed = _parse_volume(word, origin, layout)
    if parsed:
        volumes.append((parsed[0], parsed[1], origin))


def _overlay_dirs(base: str, path: str) -> tuple[str, str]:
    prefix = f"{base.rstrip('/')}/{mangle(path)}.overlay"
    return f"{prefix}/upper", f"{prefix}/work"


def _overlay_base(value: str, origin: str, warnings: list[str]) -> MountOp:
    kind, sep, rest = value.partition(":")
    if kind == "tmpfs":
        size = rest if sep and rest else DEFAULT_OVERLAY.partition(":")[2]
        if not (sep and rest):
            warnings.append(f"OVERLAY={value!r} gives no size: tmpfs of {size}")
        return MountOp(OVERLAY_BASE_KIND, OVERLAY_BASE, device="tmpfs", fs_spec="tmpfs",
                       fstype="tmpfs", options=f"defaults,size={size}", origin=origin)
    device = rest if kind == "block" and sep else value
    link = device_link(device)
    if link is None:
        warnings.append(f"{origin}={value!r} is not tmpfs:SIZE, LABEL=, UUID=, PARTLABEL=, "
                        f"PARTUUID= or a device: using {DEFAULT_OVERLAY}")
        return _overlay_base(DEFAULT_OVERLAY, "default", warnings)
    return MountOp(OVERLAY_BASE_KIND, OVERLAY_BASE, device=device, fs_spec=link,
                   fstype="auto", options="defaults", origin=origin)


def _current_mounts(mounts: Iterable[tuple[str, str, str]],
                    sysroot: str) -> dict[str, tuple[str, str]]:
    """New-root path -> (source, fstype) of what is mounted there now (the top mount)."""
    out: dict[str, tuple[str, str]] = {}
    for source, target, fstype in mounts:
        path = _new_root_path(target, sysroot)
        if path is not None:
            out[path] = (source, fstype)
    return out


def _new_root_path(target: str, sysroot: str) -> str | None:
    if sysroot == "/":
        return target
    if is_under(target, sysroot):
        return target[len(sysroot):] or "/"
    if is_under(target, "/run"):
        return target
    return None


def _root_mount(current: dict[str, tuple[str, str]], mounts: Iterable[tuple[str, str, str]],
                sysroot: str) -> tuple[str, str, str] | None:
    """(source, target, fstype) of the filesystem holding the sysroot."""
    if "/" in current:
        source, fstype = current["/"]
        return source, sysroot, fstype
    best = None
    for source, target, fstype in mounts:
        if is_under(sysroot, target) and (best is None or depth(target) >= depth(best[1])):
            best = (source, target, fstype)
    return best


def _holder(path: str, ops: Sequence[MountOp], exclude: MountOp | None) -> MountOp | None:
    """The planned mount deepest among those whose target holds `path`."""
    best = None
    for op in ops:
        if op is exclude or not is_under(path, op.target):
            continue
        if best is None or depth(op.target) > depth(best.target):
            best = op
    return best


def _parent(op: MountOp, ops: Sequence[MountOp]) -> MountOp | None:
    parent = posixpath.dirname(op.target)
    return _holder(parent, ops, op) if parent != op.target else None


def _sources(op: MountOp) -> list[str]:
    if op.kind in (OVERLAY, STATE_OVERLAY):
        return [op.upper]
    if op.kind == STATE_BIND:
        return [op.device]
    return []


def _with_dependencies(ops: list[MountOp], warnings: list[str]) -> list[MountOp]:
    """Each op with its depends_on, in an order that puts every op after those (stable:
    the given order wherever it allows)."""
    deps: list[tuple[str, ...]] = []
    for op in ops:
        found: list[str] = []
        parent = _parent(op, ops)
        if parent is not None:
            found.append(parent.target)
        for path in _sources(op):
            holder = _holder(path, ops, op)
            if holder is not None and holder.target not in found:
                found.append(holder.target)
        deps.append(tuple(found))
    index = {op.target: i for i, op in enumerate(ops)}
    done: set[int] = set()
    order: list[int] = []
    while len(order) < len(ops):
        ready = [i for i in range(len(ops)) if i not in done
                 and all(index[d] in done for d in deps[i])]
        if not ready:
            stuck = [ops[i].target for i in range(len(ops)) if i not in done]
            warnings.append("these mounts depend on each other, mounted in the listed order: "
                            + ", ".join(stuck))
            ready = [i for i in range(len(ops)) if i not in done]
        order.append(ready[0])
        done.add(ready[0])
    out = []
    for i in order:
        op = ops[i]
        op.depends_on = deps[i]
        out.append(op)
    return out


def _finish(op: MountOp, ops: Sequence[MountOp],
            current: dict[str, tuple[str, str]]) -> MountOp:
    """Fill in the overlay options (they name the mount holding the upper directory) and
    whether the target is mounted already."""
    if op.kind in (OVERLAY, STATE_OVERLAY):
        options = f"defaults,lowerdir={op.target},upperdir={op.upper},workdir={op.work}"
        holder = _holder(op.upper, ops, op)
        required = holder.target if holder is not None else _current_holder(op.upper, current)
        if required and required != "/":
            options += f",x-systemd.requires-mounts-for={required}"
        op.options = options
    if op.target in current:
        source, fstype = current[op.target]
        op.mounted = f"{source} ({fstype})"
    return op


def _current_holder(path: str, current: dict[str, tuple[str, str]]) -> str:
    best = ""
    for target in current:
        if target != "/" and is_under(path, target) and depth(target) > depth(best or "/"):
            best = target
    return best


def _fstab(layout: Layout, root: tuple[str, str, str] | None, root_is_overlay: bool) -> str:
    """The new root's /etc/fstab: a comment, the root (unless it is an overlay, as the
    cos-toolkit), then one line per mount in plan order."""
    lines = [FSTAB_HEADER.rstrip("\n")]
    if root is not None:
        lines.append(f"{root[0]} / auto {layout.root_perm} 0 0")
    elif not root_is_overlay:
        layout.warnings.append(f"cannot tell which device holds {layout.sysroot}: no line "
                               "for / in /etc/fstab")
    lines.extend(op.fstab_line for op in layout.ops)
    return "\n".join(lines) + "\n"
