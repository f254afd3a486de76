"""Applying a layout plan to a root: the imperative shell around `plan.py`.

Mounts go through the mount(8) binary, in plan order. Devices named by LABEL=, UUID=,
PARTLABEL= or PARTUUID= are waited for, all within one bounded time (60 s by default,
`edgeinit.layout.timeout=SECONDS` on the kernel command line): through udev (pyudev,
woken by its events, no polling) where udev runs, and by probing with blkid (libblkid)
where it does not. A persistent volume is checked once with systemd-fsck (or `fsck -a`)
before its first mount; a failed check is logged and the mount still tried. In bind
mode the state directory is seeded from the image with `rsync -aAXH --ignore-existing`
(files the state lacks are copied with modes, owners, ACLs and xattrs; a persisted file
is never overwritten), then bound over the path.

A failed mount is logged with its device and path; every mount that does not depend on
it still runs; the mounts that do are skipped. The run report goes to
EDGEINIT_STATE_DIR/mount-layout.json, so `edgeinit status` shows it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from edgeinit.engine.report import Report, StepEntry
from edgeinit.layout.plan import (
    ETC_MOUNT_DROPIN,
    ETC_MOUNT_DROPIN_TEXT,
    FSTAB,
    OVERLAY,
    OVERLAY_BASE_KIND,
    STATE_BIND,
    STATE_OVERLAY,
    TAGS,
    VOLUME,
    Layout,
    MountOp,
    device_link,
    host_path,
    is_under,
    plan_layout,
)
from edgeinit.log import log

STAGE = "mount-layout"
DEFAULT_ENV_FILE = "/run/cos/cos-layout.env"
MOUNTINFO = "/proc/self/mountinfo"
UDEV_CONTROL = "/run/udev/control"  # exists while udevd runs
PROBE_INTERVAL = 0.25  # seconds between blkid probes where udev does not run
COMMAND_TIMEOUT = 120.0  # mount(8), blkid
LONG_TIMEOUT = 900.0  # fsck, rsync: real work, bounded all the same (SPEC 8)
FSCK_HELPERS = ("/usr/lib/systemd/systemd-fsck", "/lib/systemd/systemd-fsck")
RSYNC_OK = (0, 24)  # 24: files vanished while copying, harmless here

Runner = Callable[[list[str], float], tuple[int, str]]


class LayoutError(Exception):
    """One mount operation failed; the message names the device and the path."""


def read_mounts(path: str = MOUNTINFO) -> list[tuple[str, str, str]]:
    """(source, mount point, fstype) of every mount, from /proc/self/mountinfo."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return out
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        out.append((_unescape(tail[1]), _unescape(fields[4]), tail[0]))
    return out


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\040-style octal escapes."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        chunk = text[i + 1:i + 4]
        if text[i] == "\\" and len(chunk) == 3 and all(c in "01234567" for c in chunk):
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
    """(exit status, stderr or stdout) of argv; 124 when it hangs, 127 when it cannot run."""
    from edgeinit.target.exec import ToolError, run_tool

    try:
        done = run_tool(argv, timeout=timeout)
    except ToolError as e:
        return (124 if e.kind == "timeout" else 127), str(e)
    return done.returncode, done.message


class Executor:
    """Applies a Layout's operations in order on its sysroot; one StepEntry per op."""

    def __init__(self, layout: Layout, source: str, *, runner: Runner = run_command,
                 udev: bool | None = None, run_dir: str = "/run") -> None:
        self.layout = layout
        self.run_dir = run_dir  # where the new root's /run is now (tests move it)
        self.source = source  # the env file, for the report
        self.run = runner
        self.udev = os.path.exists(UDEV_CONTROL) if udev is None else udev
        self.deadline: float | None = None  # of all device waits together
        self.checked: set[str] = set()  # devices fsck'd (or not to be) in this run
        self.in_place: dict[str, bool] = {}  # target -> mounted (now or before)

    def host(self, path: str) -> str:
        if self.run_dir != "/run" and is_under(path, "/run"):
            return self.run_dir + path[len("/run"):]
        return host_path(self.layout.sysroot, path)

    # ------------------------------------------------------------ the whole plan

    def apply(self) -> list[StepEntry]:
        entries = []
        for op in self.layout.ops:
            entries.append(self.apply_op(op))
        entries.append(self.write_fstab())
        entries.append(self.write_dropin())
        return entries

    def apply_op(self, op: MountOp) -> StepEntry:
        entry = StepEntry(stage=STAGE, source=self.source, name=op.name)
        started = time.monotonic()
        missing = [d for d in op.depends_on if not self.in_place.get(d)]
        if missing:
            self.in_place[op.target] = False
            entry.status = "skipped"
            entry.reason = (f"needs {', '.join(missing)}, which "
                            f"{'is' if len(missing) == 1 else 'are'} not mounted")
            log.error("%s not mounted: it needs %s, not mounted", op.name, ", ".join(missing))
            return entry
        if op.mounted:
            self.in_place[op.target] = True
            entry.status = "skipped"
            entry.reason = f"already mounted: {op.mounted}"
            log.info("%s: already mounted (%s)", op.name, op.mounted)
            return entry
        try:
            self._do(op, entry)
            self.in_place[op.target] = True
            entry.changed = True
        except Exception as e:  # one mount's failure never stops the others
            message = str(e) if isinstance(e, LayoutError) else (
                f"{op.name}: {type(e).__name__}: {e}")
            self.in_place[op.target] = bool(entry.changed)
            entry.status = "failed"
            entry.error = message
            if isinstance(e, LayoutError):
                log.error("%s", message)
            else:
                log.exception("%s", message)
        entry.duration_s = time.monotonic() - started
        return entry

    def _do(self, op: MountOp, entry: StepEntry) -> None:
        target = self.host(op.target)
        if op.kind == OVERLAY_BASE_KIND and op.fstype == "tmpfs":
            self._mkdirs(op, target)
            self._mount(op, entry, ["-t", "tmpfs", "-o", op.options, "tmpfs", target], "tmpfs")
        elif op.kind in (VOLUME, OVERLAY_BASE_KIND):
            device = self.find_device(op.device, op.name)
            if op.kind == VOLUME:
                warning = self.fsck(device, op)
                if warning:
                    entry.warnings.append(warning)
            self._mkdirs(op, target)
            self._mount(op, entry, ["-t", "auto", device, target], f"{op.device} ({device})")
        elif op.kind in (OVERLAY, STATE_OVERLAY):
            upper, work = self.host(op.upper), self.host(op.work)
            self._mkdirs(op, target, upper, work)
            options = f"defaults,lowerdir={target},upperdir={upper},workdir={work}"
            self._mount(op, entry, ["-t", "overlay", "overlay", "-o", options, target],
                        "overlay")
        elif op.kind == STATE_BIND:
            self._bind_state(op, entry, target)
        else:  # pragma: no cover - the planner makes no other kind
            raise LayoutError(f"{op.name}: unknown kind of mount")

    def _mkdirs(self, op: MountOp, *paths: str) -> None:
        for path in paths:
            try:
                os.makedirs(path, mode=0o755, exist_ok=True)
            except OSError as e:
                raise LayoutError(f"{op.name}: cannot create {path}: "
                                  f"{e.strerror or e}") from None

    def _mount(self, op: MountOp, entry: StepEntry, args: list[str], what: str) -> None:
        argv = ["mount", *args]
        log.info("%s: mounting %s on %s", op.name, what, args[-1])
        rc, out = self.run(argv, COMMAND_TIMEOUT)
        entry.changes.append(" ".join(argv))
        if rc != 0:
            raise LayoutError(f"{op.name}: cannot mount {what} on {args[-1]}: "
                              f"{out or f'mount exited with {rc}'}")

    # ------------------------------------------------------------ state, bind mode

    def _bind_state(self, op: MountOp, entry: StepEntry, base: str) -> None:
        state = self.host(op.device)
        existed = os.path.isdir(state)
        self._mkdirs(op, base, os.path.dirname(state))
        argv = ["rsync", "-aAXH", "--ignore-existing", base + "/", state + "/"]
        log.info("%s: seeding %s from the image (files it lacks)", op.name, state)
        rc, out = self.run(argv, LONG_TIMEOUT)
        entry.changes.append(" ".join(argv))
        seed_error = ""
        if rc not in RSYNC_OK:
            seed_error = f"{op.name}: cannot seed {state} from {base}: {out or f'exit {rc}'}"
            if not existed:
                # a new, incompletely seeded directory would hide the image's files
                raise LayoutError(seed_error + "; not bound, the image's content stays")
            log.error("%s; binding the persisted state anyway", seed_error)
        self._mount(op, entry, ["-o", "bind", state, base], state)
        if seed_error:
            entry.changed = True
            raise LayoutError(seed_error + " (bound the persisted state anyway)")

    # ------------------------------------------------------------ devices

    def _remaining(self) -> float:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.layout.timeout
        return max(0.0, self.deadline - time.monotonic())

    def find_device(self, device: str, what: str) -> str:
        """The device node to mount for `device`; waits (bounded) for it to appear."""
        link = device_link(device) or device
        if self.udev:
            if os.path.exists(link):
                return link
            log.info("%s: waiting up to %.3g s for %s (%s) through udev",
                     what, self._remaining(), device, link)
            if self._wait_udev(link):
                return link
        found = None if self.udev else self.probe(device)
        if found:
            return found
        if not self.udev:  # no udev here, or listening to it failed: probe until the deadline
            log.info("%s: waiting up to %.3g s for %s (probing with blkid: udev is not "
                     "running)", what, self._remaining(), device)
            while self._remaining() > 0:
                time.sleep(min(PROBE_INTERVAL, self._remaining()))
                found = self.probe(device)
                if found:
                    return found
        raise LayoutError(f"{what}: no device {device} appeared within "
                          f"{self.layout.timeout:g} s")

    def probe(self, device: str) -> str | None:
        """Ask libblkid (blkid) which device carries TAG=VALUE; a path: whether it exists."""
        tag, sep, value = device.partition("=")
        if not (sep and tag in TAGS):
            return device if os.path.exists(device) else None
        rc, out = self.run(["blkid", "-c", "/dev/null", "-t", f"{tag}={value}", "-o",
                            "device"], COMMAND_TIMEOUT)
        found = [line.strip() for line in out.splitlines() if line.strip()] if rc == 0 else []
        if len(found) > 1:
            log.warning("several devices carry %s: %s; using %s", device, ", ".join(found),
                        found[0])
        return found[0] if found else None

    def _wait_udev(self, link: str) -> bool:
        try:
            import pyudev

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("block")
            monitor.start()
        except Exception as e:  # no netlink here: fall back to probing
            log.warning("cannot listen to udev (%s); probing for %s instead", e, link)
            self.udev = False
            return False
        while not os.path.exists(link):  # checked after start(): no event is missed
            remaining = self._remaining()
            if remaining <= 0:
                return False
            monitor.poll(timeout=remaining)
        return True

    def fsck(self, device: str, op: MountOp) -> str | None:
        """Check a persistent volume once before its first mount; a warning when the
        check failed (the mount is still tried)."""
        real = os.path.realpath(device)
        if real in self.checked:
            return None
        self.checked.add(real)
        if any(os.path.realpath(src) == real for src, _, _ in read_mounts()
               if src.startswith("/")):
            log.info("%s: not checking %s, it is mounted already", op.name, device)
            return None
        helper = next((h for h in FSCK_HELPERS if os.access(h, os.X_OK)), None)
        if helper:
            argv = [helper, device]
        elif shutil.which("fsck"):
            argv = ["fsck", "-a", device]
        else:
            log.warning("%s: no fsck here, %s is not checked", op.name, device)
            return None
        log.info("%s: checking %s (%s) with %s", op.name, op.device, device, argv[0])
        rc, out = self.run(argv, LONG_TIMEOUT)
        if rc == 0 or (argv[0] == "fsck" and rc == 1):  # 1: errors corrected
            return None
        message = (f"the filesystem check of {op.device} ({device}) failed (exit {rc}): "
                   f"{out}; mounting it anyway")
        log.error("%s: %s", op.name, message)
        return message

    # ------------------------------------------------------------ files

    def write_fstab(self) -> StepEntry:
        entry = StepEntry(stage=STAGE, source=self.source, name=FSTAB)
        path = self.host(FSTAB)
        data = self.layout.fstab.encode()
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    return entry
        except OSError:
            pass
        try:
            _atomic_write(path, data, keep=True)
            entry.changed = True
            entry.changes.append(f"write {FSTAB}")
        except OSError as e:
            entry.status = "failed"
            entry.error = f"cannot write {path}: {e.strerror or e}"
            log.error("%s", entry.error)
        return entry

    def write_dropin(self) -> StepEntry:
        entry = StepEntry(stage=STAGE, source=self.source, name=ETC_MOUNT_DROPIN)
        path = self.host(ETC_MOUNT_DROPIN)
        if os.path.lexists(path):
            return entry
        try:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            _atomic_write(path, ETC_MOUNT_DROPIN_TEXT.encode())
            entry.changed = True
            entry.changes.append(f"write {ETC_MOUNT_DROPIN}")
        except OSError as e:
            entry.status = "failed"
            entry.error = f"cannot write {path}: {e.strerror or e}"
            log.error("%s", entry.error)
        return entry


def _atomic_write(path: str, data: bytes, *, keep: bool = False) -> None:
    """Write `path` atomically, 0644 and ours, or (keep) with the old file's mode and
    owner when there is one."""
    from edgeinit.target.fs import atomic_write

    mode, uid, gid = 0o644, os.geteuid(), os.getegid()
    if keep:
        try:
            st = os.stat(path)
            mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
        except OSError:
            pass
    atomic_write(path, data, mode, uid, gid)


# ---------------------------------------------------------------- the command


def read_env_file(path: str) -> tuple[str | None, str | None]:
    """(text or None when there is none, error when it exists but cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(), None
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"cannot read the layout env file {path}: {e.strerror or e}"


def show_plan(layout: Layout, env_file: str, env_missing: bool) -> str:
    lines = [f"mount-layout plan for {layout.sysroot} from {env_file}"
             + (" (missing: the defaults)" if env_missing else "") + ":"]
    for i, op in enumerate(layout.ops, 1):
        lines.append(f"{i:>3}. {op.describe()}")
    for skipped in layout.skipped:
        lines.append(f"     skipped {skipped.origin} {skipped.target}: {skipped.reason}")
    lines.append(f"{FSTAB}:")
    lines.extend(layout.fstab.splitlines())
    return "\n".join(lines) + "\n"


def main(sysroot: str, env_file: str, cmdline: str, dry_run: bool,
         out: TextIO | None = None) -> int:
    """`edgeinit mount-layout`: 0 when every mount is in place, else 1."""
    out = out or sys.stdout
    env_text, env_error = read_env_file(env_file)
    layout = plan_layout(env_text, cmdline, read_mounts(), sysroot)
    if layout.disabled:
        log.info("the layout is disabled by the kernel argument %s: nothing mounted",
                 layout.disabled)
        if dry_run:
            out.write(f"mount-layout: disabled by the kernel argument {layout.disabled}\n")
        return 0
    if env_error:
        log.error("%s; planning with the defaults", env_error)
    elif env_text is None:
        log.info("no layout env file %s: using the defaults", env_file)
    for warning in layout.warnings:
        log.warning("%s", warning)
    if dry_run:
        out.write(show_plan(layout, env_file, env_text is None))
        return 1 if env_error else 0

    from edgeinit.engine.report import running, write_report
    from edgeinit.engine.show import show_report

    started = time.monotonic()
    report = Report(stage=STAGE, root=layout.sysroot, dry_run=False)
    plan_entry = StepEntry(stage=STAGE, source=env_file, name="plan",
                           warnings=list(layout.warnings),
                           changes=[f"{len(layout.ops)} mounts planned"])
    if env_error:
        plan_entry.status, plan_entry.error = "failed", env_error + "; planned with the defaults"
    with running():
        report.steps.append(plan_entry)
        report.steps.extend(Executor(layout, env_file).apply())
        report.steps.extend(
            StepEntry(stage=STAGE, source=env_file, name=f"{s.origin} {s.target}",
                      status="skipped", reason=s.reason) for s in layout.skipped)
        report.duration_s = time.monotonic() - started
        try:
            write_report(report)
        except OSError as e:
            log.warning("cannot write the run report: %s", e.strerror or e)
    out.write(show_report(report))
    failed = [s for s in report.steps if s.status == "failed"]
    if failed:
        out.write(f"mount-layout: {len(failed)} failed:\n")
        for step in failed:
            error = step.error or ""
            if not error.startswith(str(step.name)):
                error = f"{step.name}: {error}"
            out.write(f"  {error}\n")
    return 0 if report.ok else 1
