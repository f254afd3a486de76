"""Disks of the running machine: find them, read their partition tables, change them.

Only the system's own tools are used, each call bounded in time: `sfdisk` (util-linux)
reads (`--json`) and writes partition tables, GPT and msdos alike; `partx` tells the
kernel about a changed partition (its node, /dev/sdaN or /dev/loopNpM, appears through
devtmpfs, with or without udev); `blkid -p` probes filesystems, also at an offset of a
disk whose partitions the kernel does not know yet; `mkfs.*`, `mkswap`, `wipefs`,
`e2fsck`/`resize2fs`, `xfs_growfs`, `btrfs` make and grow filesystems. Nothing here
writes a partition table or a superblock by hand; the one thing read by hand is the
block count of an ext2/3/4 superblock (to see whether a grown partition's filesystem
was left smaller by an earlier failed resize).

The plan side is pure: `read_disk` takes a snapshot (`Disk`), `plan_layout` turns a
snapshot and the wanted layout into changes, which apply themselves one by one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from typing import Any

from edgeinit.log import log
from edgeinit.model import Record
from edgeinit.target import exec as exec_
from edgeinit.target.changes import ApplyError
from edgeinit.target.exec import ToolError, run_tool

MIB = 1024 * 1024
TABLE_TIMEOUT = 60.0  # seconds for one partition-table tool call
LABEL_WAIT = 5.0  # seconds to wait for a labelled device to appear (Elemental: 5 tries)
NODE_WAIT = 10.0  # seconds to wait for a new partition's device node
GPT_ENTRIES_BYTES = 128 * 128  # the standard GPT partition entry array

GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
GPT_ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

EXT = ("ext2", "ext3", "ext4")
FAT = ("fat", "vfat", "fat16", "fat32")
NO_FS = ("none", "noformat", "-")
FILESYSTEMS = (*EXT, "xfs", "btrfs", *FAT, "swap", *NO_FS)
LABEL_MAX = {"ext2": 16, "ext3": 16, "ext4": 16, "xfs": 12, "btrfs": 255, "swap": 16,
             "fat": 11, "vfat": 11, "fat16": 11, "fat32": 11}
GROWABLE = (*EXT, "xfs", "btrfs")


class DiskError(Exception):
    """A disk that cannot be found, read or changed as asked; the message says why."""


# ------------------------------------------------------------------ running tools


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PATH", "")
    env["PATH"] = f"{path}:{exec_.SAFE_PATH}" if path else exec_.SAFE_PATH
    env["LC_ALL"] = "C"
    return env


def which(tool: str) -> str | None:
    return shutil.which(tool, path=_env()["PATH"])


def run(argv: list[str], *, stdin: str | None = None, timeout: float = TABLE_TIMEOUT,
        ok: tuple[int, ...] = (0,)) -> str:
    """Run a tool on the running system; its stdout, or DiskError naming the tool."""
    try:
        done = run_tool(argv, input=stdin if stdin is not None else "", timeout=timeout,
                        env=_env())
    except ToolError as e:
        if e.kind == "timeout":
            raise DiskError(f"{' '.join(argv)} did not finish in {timeout:g} s") from None
        raise DiskError(f"{argv[0]} is not installed" if e.kind == "missing" else str(e)
                        ) from None
    if done.returncode not in ok:
        msg = " ".join(done.message.split())
        raise DiskError(f"{' '.join(argv)} failed (exit {done.returncode})"
                        + (f": {msg[-500:]}" if msg else ""))
    return done.out


def settle() -> None:
    """Let udev (where it runs) catch up, so by-label links exist for later steps."""
    if which("udevadm") and os.path.isdir("/run/udev"):
        with contextlib.suppress(DiskError):
            run(["udevadm", "settle", "--timeout=10"], timeout=15)


# ------------------------------------------------------------------ finding devices


def _sys(dev: str) -> str:
    return f"/sys/class/block/{os.path.basename(dev)}"


def block_device(path: str) -> str:
    """`path` (links resolved) when it is a block device; DiskError otherwise."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise DiskError(f"device {path} does not exist") from None
    except OSError as e:
        raise DiskError(f"cannot look at {path}: {e.strerror or e}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise DiskError(f"{path} is not a block device")
    return real


def parent_disk(dev: str) -> str | None:
    """The whole disk a partition belongs to (/dev/sda for /dev/sda2), or None when
    `dev` is not a partition."""
    sysdir = _sys(dev)
    if not os.path.exists(f"{sysdir}/partition"):
        return None
    parent = os.path.basename(os.path.dirname(os.path.realpath(sysdir)))
    return f"/dev/{parent}"


def partition_node(disk: str, number: int) -> str | None:
    """The device node of partition `number` of `disk`, when the kernel knows it."""
    sysdir = _sys(disk)
    try:
        names = os.listdir(sysdir)
    except OSError:
        return None
    for name in names:
        try:
            with open(f"{sysdir}/{name}/partition") as f:
                if int(f.read().strip()) == number:
                    return f"/dev/{name}"
        except (OSError, ValueError):
            continue
    return None


def devices_with_label(label: str) -> list[str]:
    """Block devices holding a filesystem labelled `label`, probed afresh (no cache,
    no udev needed)."""
    out = run(["blkid", "-c", "/dev/null", "-o", "device", "-t", f"LABEL={label}"],
              ok=(0, 2))
    return sorted({line.strip() for line in out.splitlines() if line.strip()})


def wait_for_label(label: str, wait: float | None = None) -> list[str]:
    """devices_with_label, waiting up to `wait` seconds for one to appear (SPEC 8)."""
    wait = LABEL_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    logged = False
    while True:
        found = devices_with_label(label)
        if found or time.monotonic() >= deadline:
            return found
        if not logged:
            log.info("layout: waiting up to %g s for a device with label %s", wait, label)
            logged = True
        time.sleep(0.5)


def script_device(command: str) -> str:
    """yip's `path: script://CMD`: the device named by CMD's output (run with /bin/sh on
    the running system, bounded)."""
    if not command.strip():
        raise DiskError("script:// names no command")
    try:
        done = run_tool(["/bin/sh", "-c", command], timeout=TABLE_TIMEOUT, env=_env())
    except ToolError as e:
        if e.kind == "timeout":
            raise DiskError(f"script://{command} did not finish in {TABLE_TIMEOUT:g} s"
                            ) from None
        raise DiskError(f"cannot run script://{command}: {e}") from None
    if done.returncode != 0:
        msg = " ".join(done.err.split())
        raise DiskError(f"script://{command} failed (exit {done.returncode})"
                        + (f": {msg[-300:]}" if msg else ""))
    lines = [line.strip() for line in done.out.splitlines() if line.strip()]
    if len(lines) != 1:
        what = "nothing" if not lines else f"{len(lines)} lines"
        raise DiskError(f"script://{command} printed {what}; it must print one device path")
    return lines[0]


def mountpoint(node: str) -> str | None:
    """Where the block device `node` is mounted on the running system, if it is."""
    try:
        rdev = os.stat(node).st_rdev
    except OSError:
        return None
    want = f"{os.major(rdev)}:{os.minor(rdev)}"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[2] == want:
                    return fields[4].replace("\\040", " ")
    except OSError:
        return None
    return None


# ------------------------------------------------------------------ the snapshot


class Part(Record):
    number: int
    start: int  # sectors
    size: int  # sectors
    type: str = ""
    name: str = ""  # the GPT partition label (pLabel)
    attrs: str = ""
    bootable: bool = False
    fs: str = ""  # filesystem type, as blkid says (ext4, xfs, swap, ...)
    fs_label: str = ""
    fs_bytes: int | None = None  # ext2/3/4 only: the filesystem's own size

    @property
    def end(self) -> int:
        return self.start + self.size - 1


class Disk(Record):
    """A disk as read once: its table (label None = no partition table) and partitions."""

    path: str
    sector_size: int
    sectors: int  # the device's size, in logical sectors
    label: str | None = None  # "gpt", "dos" or None
    table_id: str = ""
    first_lba: int = 0
    last_lba: int = 0  # the last usable sector as the table's header says (GPT)
    parts: tuple[Part, ...] = ()
    whole_fs: str = ""  # a filesystem on the whole disk, when there is no table

    @property
    def align(self) -> int:
        return max(1, MIB // self.sector_size)

    @property
    def usable_end(self) -> int:
        """The last sector a partition may use on this device, whatever its size was
        when the table was written (a grown disk: the backup GPT moves to its end)."""
        if self.label == "dos":
            return min(self.sectors - 1, 2**32 - 1)
        entries = -(-GPT_ENTRIES_BYTES // self.sector_size)
        return self.sectors - 2 - entries

    @property
    def backup_misplaced(self) -> bool:
        return self.label == "gpt" and self.last_lba < self.usable_end

    def by_position(self) -> list[Part]:
        return sorted(self.parts, key=lambda p: p.start)


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().strip())


def probe(disk: str, start_byte: int | None = None, size_bytes: int | None = None
          ) -> dict[str, str]:
    """blkid's low-level probe of a device, or of a region of it (a partition the
    kernel may not know yet); {} when it finds nothing."""
    argv = ["blkid", "-p", "-o", "export"]
    if start_byte is not None:
        argv += ["-O", str(start_byte), "-S", str(size_bytes)]
    out = run([*argv, disk], ok=(0, 2))
    info = {}
    for line in out.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            info[key.strip()] = value.strip()
    return info


def ext_bytes(disk: str, offset: int) -> int | None:
    """Size in bytes of the ext2/3/4 filesystem whose start is at `offset` of `disk`."""
    try:
        with open(disk, "rb") as f:
            f.seek(offset + 1024)
            sb = f.read(1024)
    except OSError:
        return None
    if len(sb) < 0x158 or int.from_bytes(sb[56:58], "little") != 0xEF53:
        return None
    blocks = int.from_bytes(sb[4:8], "little")
    if int.from_bytes(sb[96:100], "little") & 0x80:  # INCOMPAT_64BIT
        blocks |= int.from_bytes(sb[0x150:0x154], "little") << 32
    return blocks * (1024 << int.from_bytes(sb[24:28], "little"))


def read_disk(path: str) -> Disk:
    """A snapshot of the whole disk `path`: size, table, partitions and filesystems."""
    import json

    sysdir = _sys(path)
    try:
        sector = _read_int(f"{sysdir}/queue/logical_block_size")
        sectors = _read_int(f"{sysdir}/size") * 512 // sector
    except (OSError, ValueError) as e:
        raise DiskError(f"cannot read the size of {path}: {e}") from None
    try:
        out = run(["sfdisk", "--json", path])
    except DiskError as e:
        if "does not contain a recognized partition table" not in str(e):
            raise
        info = probe(path)
        return Disk(path, sector, sectors, whole_fs=info.get("TYPE", ""))
    try:
        table = json.loads(out)["partitiontable"]
    except (ValueError, KeyError, TypeError) as e:
        raise DiskError(f"cannot read sfdisk's view of {path}: {e}") from None
    label = str(table.get("label", ""))
    if label not in ("gpt", "dos"):
        raise DiskError(f"{path} has a {label} partition table (only gpt and msdos/dos)")
    parts = []
    for p in table.get("partitions", []):
        node = str(p.get("node", ""))
        m = re.search(r"(\d+)$", node)
        start, size = int(p["start"]), int(p["size"])
        info = probe(path, start * sector, size * sector)
        fs = info.get("TYPE", "")
        parts.append(Part(
            int(m.group(1)) if m else len(parts) + 1, start, size,
            type=str(p.get("type", "")), name=str(p.get("name", "")),
            attrs=str(p.get("attrs", "")), bootable=bool(p.get("bootable", False)),
            fs=fs, fs_label=info.get("LABEL", ""),
            fs_bytes=ext_bytes(path, start * sector) if fs in EXT else None))
    return Disk(path, sector, sectors, label, str(table.get("id", "")),
                int(table.get("firstlba", 0) or 0), int(table.get("lastlba", 0) or 0),
                tuple(parts))


def empty_gpt(disk: Disk, guid: str) -> Disk:
    """What `disk` looks like after a new empty GPT is written on it."""
    blank = Disk(disk.path, disk.sector_size, disk.sectors, "gpt", guid.upper())
    return Disk(disk.path, disk.sector_size, disk.sectors, "gpt", guid.upper(),
                blank.align, blank.usable_end)


# ------------------------------------------------------------------ changes


class InitDisk(Record):
    """Write a new, empty GPT on a whole disk (yip's init_disk)."""

    device: str
    guid: str
    done: bool = False

    def describe(self) -> str:
        return f"write a new empty GPT on {self.device} (disk GUID {self.guid})"

    def diff(self) -> str:
        return ""

    def apply(self, root: Any) -> None:
        try:
            run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--wipe", "always",
                 self.device], stdin=f"label: gpt\nlabel-id: {self.guid}\n")
        except DiskError as e:
            raise ApplyError(f"cannot write a GPT on {self.device}: {e}") from None
        with contextlib.suppress(DiskError):
            run(["partx", "-d", self.device], ok=(0, 1))  # forget stale partitions
        settle()
        self.done = True

    def record(self, root: Any) -> None:
        """Disks are not part of the dry-run overlay."""


def _relocate(device: str) -> None:
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--relocate", "gpt-bak-std",
         device])


def _wait_node(device: str, number: int) -> str:
    deadline = time.monotonic() + NODE_WAIT
    logged = False
    while True:
        node = partition_node(device, number)
        if node and os.path.exists(node):
            return node
        if time.monotonic() >= deadline:
            raise DiskError(f"no device node for partition {number} of {device} after "
                            f"{NODE_WAIT:g} s")
        if not logged:
            log.info("layout: waiting up to %g s for the node of partition %d of %s",
                     NODE_WAIT, number, device)
            logged = True
        time.sleep(0.1)


def mkfs_argv(fs: str, label: str, node: str) -> list[str]:
    """The command that makes filesystem `fs` labelled `label` on `node`."""
    if fs in EXT or fs in ("xfs", "btrfs"):
        force = "-F" if fs in EXT else "-f"
        return [f"mkfs.{fs}", force, *(["-L", label] if label else []), node]
    if fs in FAT:
        size = {"fat16": ["-F", "16"], "fat32": ["-F", "32"]}.get(fs, [])
        return ["mkfs.fat", *size, *(["-n", label] if label else []), node]
    if fs == "swap":
        return ["mkswap", *(["-L", label] if label else []), node]
    raise DiskError(f"unknown filesystem '{fs}'")


def mkfs_tool(fs: str) -> str | None:
    if fs in NO_FS:
        return None
    return mkfs_argv(fs, "", "x")[0]


class AddPartition(Record):
    """Add one partition and make its filesystem. If the kernel cannot be told about it
    or its filesystem cannot be made, the partition is deleted again, so a failed add
    leaves the disk as it was."""

    device: str
    number: int
    start: int
    size: int  # sectors
    sector_size: int
    type: str
    name: str = ""  # pLabel (GPT only)
    attrs: str = ""
    bootable: bool = False  # msdos: the active flag
    fs: str = ""  # "" = no filesystem
    fs_label: str = ""
    relocate: bool = False  # move the backup GPT to the disk's end first
    done: bool = False

    def describe(self) -> str:
        what = f"{self.fs} filesystem" if self.fs else "no filesystem"
        if self.fs and self.fs_label:
            what += f" '{self.fs_label}'"
        plabel = f", partition label '{self.name}'" if self.name else ""
        boot = ", bootable" if self.bootable or self.attrs else ""
        mib = self.size * self.sector_size // MIB
        return (f"add partition {self.number} to {self.device}: {mib} MiB at sector "
                f"{self.start}, {what}{plabel}{boot}")

    def diff(self) -> str:
        return ""

    def script(self) -> str:
        fields = [f"start={self.start}", f"size={self.size}", f"type={self.type}"]
        if self.name:
            fields.append(f'name="{self.name}"')
        if self.attrs:
            fields.append(f'attrs="{self.attrs}"')
        if self.bootable:
            fields.append("bootable")
        return ", ".join(fields) + "\n"

    def apply(self, root: Any) -> None:
        try:
            if self.relocate:
                _relocate(self.device)
            run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--append", self.device],
                stdin=self.script())
        except DiskError as e:
            raise ApplyError(f"cannot add partition {self.number} to {self.device}: {e}"
                             ) from None
        number = self.number
        with contextlib.suppress(DiskError):
            for p in read_disk(self.device).parts:
                if p.start == self.start:
                    number = p.number
        self.number = number
        try:
            run(["partx", "-u", "--nr", str(number), self.device])
            node = _wait_node(self.device, number)
            if self.fs:
                run(["wipefs", "-q", "-a", node])
                run(mkfs_argv(self.fs, self.fs_label, node), timeout=exec_.command_timeout())
        except DiskError as e:
            undone = self._undo(number)
            raise ApplyError(f"partition {number} of {self.device}: {e}; {undone}") from None
        settle()
        self.done = True

    def _undo(self, number: int) -> str:
        try:
            run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--delete", self.device,
                 str(number)])
        except DiskError as e:
            return f"and the new partition could not be removed again: {e}"
        with contextlib.suppress(DiskError):
            run(["partx", "-d", "--nr", str(number), self.device], ok=(0, 1))
        settle()
        return f"the new partition {number} was removed again"

    def record(self, root: Any) -> None:
        """Disks are not part of the dry-run overlay."""


class ExpandPartition(Record):
    """Grow a partition (keeping its start, type, label and GUID) and its filesystem."""

    device: str
    number: int
    start: int
    old_size: int  # sectors
    new_size: int  # sectors; equal to old_size: grow only the filesystem
    sector_size: int
    fs: str = ""
    relocate: bool = False
    done: bool = False

    def describe(self) -> str:
        mib = self.sector_size / MIB
        fs = f" and its {self.fs} filesystem" if self.fs in GROWABLE else ""
        if self.new_size == self.old_size:
            return (f"grow the {self.fs} filesystem of partition {self.number} of "
                    f"{self.device} to the partition's {int(self.new_size * mib)} MiB")
        return (f"grow partition {self.number} of {self.device} from "
                f"{int(self.old_size * mib)} MiB to {int(self.new_size * mib)} MiB{fs}")

    def diff(self) -> str:
        return ""

    def apply(self, root: Any) -> None:
        where = f"partition {self.number} of {self.device}"
        if self.new_size != self.old_size:
            try:
                if self.relocate:
                    _relocate(self.device)
                run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "-N",
                     str(self.number), self.device],
                    stdin=f"start={self.start}, size={self.new_size}\n")
            except DiskError as e:
                raise ApplyError(f"cannot grow {where}: {e}") from None
        try:
            run(["partx", "-u", "--nr", str(self.number), self.device])
            if self.fs in GROWABLE:
                grow_filesystem(self.fs, _wait_node(self.device, self.number))
        except DiskError as e:
            grown = "the partition is grown but " if self.new_size != self.old_size else ""
            raise ApplyError(f"{where}: {grown}its filesystem was not: {e} (it keeps its "
                             "old size; the next run tries again)") from None
        settle()
        self.done = True

    def record(self, root: Any) -> None:
        """Disks are not part of the dry-run overlay."""


def grow_filesystem(fs: str, node: str) -> None:
    """Grow the filesystem on `node` to fill it: ext online or after a check, xfs and
    btrfs through a mount (a temporary one when it is not mounted)."""
    timeout = exec_.command_timeout()
    mounted = mountpoint(node)
    if fs in EXT:
        if not mounted:
            run(["e2fsck", "-f", "-y", node], timeout=timeout, ok=(0, 1, 2))
        run(["resize2fs", node], timeout=timeout)
        return
    with _mounted(node, fs, mounted) as where:
        if fs == "xfs":
            run(["xfs_growfs", where], timeout=timeout)
        else:
            run(["btrfs", "filesystem", "resize", "max", where], timeout=timeout)


@contextlib.contextmanager
def _mounted(node: str, fs: str, mounted: str | None):  # type: ignore[no-untyped-def]
    if mounted:
        yield mounted
        return
    import tempfile

    base = "/run" if os.path.isdir("/run") and os.access("/run", os.W_OK) else None
    where = tempfile.mkdtemp(prefix="edgeinit-grow-", dir=base)
    try:
        run(["mount", "-t", fs, node, where])
        try:
            yield where
        finally:
            run(["umount", where])
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(where)


# ------------------------------------------------------------------ planning (pure)


class Wanted(Record):
    """One add_partitions entry, checked."""

    fs_label: str
    p_label: str
    size_mib: int  # 0 = the rest of the disk
    fs: str  # "" = none
    bootable: bool


def matches(part: Part, want: Wanted) -> bool:
    """An existing partition is the wanted one: same partition label (yip) or same
    filesystem label (Elemental)."""
    return bool((want.p_label and part.name == want.p_label)
                or (want.fs_label and part.fs_label == want.fs_label))


def part_type(disk: Disk, want: Wanted) -> tuple[str, str, bool]:
    """(type, GPT attributes, msdos active flag) for a new partition."""
    fs = want.fs
    if disk.label == "dos":
        code = "82" if fs == "swap" else ("0e" if fs == "fat16" else "0c") if fs in FAT \
            else "83"
        return code, "", want.bootable
    if fs == "swap":
        return GPT_SWAP, "", False
    if fs in FAT:
        return (GPT_ESP, "RequiredPartition", False) if want.bootable \
            else (GPT_BASIC_DATA, "", False)
    return GPT_LINUX, "LegacyBIOSBootable" if want.bootable else "", False


def _next_number(disk: Disk, used: set[int]) -> int:
    n = 1
    while n in used:
        n += 1
    if disk.label == "dos" and n > 4:
        raise DiskError(f"{disk.path} has an msdos table with no free primary partition "
                        "(logical partitions are not supported)")
    return n


def plan_layout(disk: Disk, expand_mib: int | None, wanted: list[Wanted],
                elsewhere: Callable[[str], str | None],
                warn: Callable[[str], None]) -> list[ExpandPartition | AddPartition]:
    """The changes that make `disk` hold the layout: expand first, then add (Elemental's
    order). Every check is made before the first change, so a layout that cannot be done
    (no room, no table) changes nothing."""
    if disk.label is None:
        what = f" (it holds a {disk.whole_fs} filesystem)" if disk.whole_fs else ""
        raise DiskError(f"{disk.path} has no partition table{what}; init_disk: true "
                        "writes a new GPT on a disk without partitions")
    ss = disk.sector_size
    mib = MIB // ss
    limit_end = disk.usable_end
    relocate = disk.backup_misplaced
    if disk.label == "gpt" and disk.last_lba > limit_end:
        raise DiskError(f"the partition table of {disk.path} describes a larger disk "
                        "than the device is; refusing to change it")
    parts = {p.number: p for p in disk.parts}
    changes: list[ExpandPartition | AddPartition] = []

    if expand_mib is not None:
        ours = [p for p in disk.by_position() if not any(matches(p, w) for w in wanted)]
        if not ours:
            raise DiskError(f"{disk.path} has no partition to expand")
        target = ours[-1]
        after = [p.start for p in disk.parts if p.start > target.start]
        room_end = min(after) - 1 if after else limit_end
        if expand_mib == 0:
            new_end = room_end if room_end - target.end >= mib else target.end
        else:
            new_end = target.start + expand_mib * mib - 1
            if new_end < target.end:
                warn(f"expand_partition only grows: partition {target.number} of "
                     f"{disk.path} is already {target.size // mib} MiB (asked "
                     f"{expand_mib} MiB)")
                new_end = target.end
            elif new_end > room_end:
                raise DiskError(
                    f"not enough free space on {disk.path} to grow partition "
                    f"{target.number} to {expand_mib} MiB: required "
                    f"{(new_end - target.end) // mib} MiB more, available "
                    f"{max(0, room_end - target.end) // mib} MiB")
        if target.fs and target.fs not in GROWABLE and new_end > target.end:
            raise DiskError(f"partition {target.number} of {disk.path} holds a {target.fs} "
                            "filesystem, which cannot be grown (ext2/3/4, xfs, btrfs can)")
        new_size = new_end - target.start + 1
        fs_short = (target.fs in EXT and target.fs_bytes is not None
                    and target.fs_bytes + MIB <= new_size * ss)
        if new_end > target.end or fs_short:
            if not target.fs:
                warn(f"partition {target.number} of {disk.path} holds no filesystem "
                     "edgeinit knows; only the partition is grown")
            changes.append(ExpandPartition(disk.path, target.number, target.start,
                                           target.size, new_size, ss, target.fs, relocate))
            relocate = False
            parts[target.number] = Part(target.number, target.start, new_size, target.type,
                                        target.name, fs=target.fs, fs_label=target.fs_label)

    if sum(1 for w in wanted if w.size_mib == 0) > 1 or any(
            w.size_mib == 0 for w in wanted[:-1]):
        raise DiskError("only the last of add_partitions may have size 0 (the rest of the "
                        "disk)")
    if sum(1 for w in wanted if w.bootable) > 1:
        warn("more than one partition of add_partitions is marked bootable")
    used = set(parts)
    last_end = max((p.end for p in parts.values()), default=0)
    for want in wanted:
        name = want.fs_label or want.p_label or f"#{wanted.index(want) + 1}"
        found = [p for p in parts.values() if matches(p, want)]
        if found:
            p = found[0]
            by = "PLabel" if want.p_label and p.name == want.p_label else "FSLabel"
            value = want.p_label if by == "PLabel" else want.fs_label
            log.info("layout: Partition with %s: %s already exists, ignoring (partition %d "
                     "of %s)", by, value, p.number, disk.path)
            continue
        if want.fs_label:
            other = elsewhere(want.fs_label)
            if other:
                warn(f"Partition with FSLabel: {want.fs_label} already exists on {other}, "
                     "ignoring")
                continue
        start = max(last_end + 1, disk.first_lba or mib)
        start = -(-start // mib) * mib
        available = max(0, limit_end - start + 1)
        size = available if want.size_mib == 0 else want.size_mib * mib
        if size > available or size < mib:
            raise DiskError(
                f"not enough free space on {disk.path} for partition '{name}': required "
                f"{want.size_mib if want.size_mib else 1} MiB, available "
                f"{available // mib} MiB")
        if disk.label == "dos" and want.p_label:
            warn(f"{disk.path} has an msdos table, which has no partition labels: "
                 f"pLabel '{want.p_label}' is not stored")
        number = _next_number(disk, used)
        ptype, attrs, active = part_type(disk, want)
        changes.append(AddPartition(
            disk.path, number, start, size, ss, ptype,
            want.p_label if disk.label == "gpt" else "", attrs, active, want.fs,
            want.fs_label, relocate))
        relocate = False
        used.add(number)
        parts[number] = Part(number, start, size, ptype, want.p_label, fs=want.fs,
                             fs_label=want.fs_label)
        last_end = start + size - 1
    return changes
