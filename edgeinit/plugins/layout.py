"""`layout`: partitioning (yip's and Elemental's layout plugin), with the system's tools.

- The disk: `device.path` (a whole disk; `script://CMD` runs CMD, whose one line of
  output names it, as in yip) or `device.label` (the disk holding the filesystem with
  that label; waited for up to disks.LABEL_WAIT seconds, as Elemental retries). With
  both, they must name the same disk when the label exists. Neither: a warning and
  nothing done (yip and Elemental). A path that names a partition is refused: only the
  disk the step names is ever touched.
- `init_disk` (path only, as in yip) writes a new empty GPT, with yip's disk GUID
  (UUIDv5 of `disk_name`, default `YIP_DISK`), on a disk with no partitions. A disk whose
  partitions are all ones this step adds (by pLabel or fsLabel) was initialised by an
  earlier run: nothing to do. A disk with any other partition, or a filesystem on the
  whole disk, is refused: yip would wipe it at every run.
- Then Elemental's order, expand before add (Elemental's code and yip's README agree;
  only yip's code adds first, which makes the expand always hit the partition just
  added). `expand_partition` grows the last partition that is not one of this step's
  add_partitions (so a second run does not grow the added one) and its filesystem:
  `size` MiB, 0 = all the room after it; it never shrinks; ext2/3/4 grow with resize2fs
  (after e2fsck when unmounted), xfs and btrfs through a mount.
- `add_partitions` appends partitions after the last one, 1 MiB aligned, and makes their
  filesystems (`filesystem` default ext4 as Elemental, not yip's ext2: a journal, so a
  power cut does not cost an fsck, and ext4 is what Elemental images and their
  COS_* partitions use). An entry is skipped when a partition with its pLabel exists on
  the disk (yip's check) or a filesystem with its fsLabel exists on the disk or on any
  other device (Elemental's check): logged (their wording) for this disk, a warning for
  another device. `bootable`: a FAT partition becomes an EFI system partition (as yip);
  any other gets the GPT legacy-BIOS-bootable attribute (yip makes it a BIOS boot
  partition, where grub would write over the filesystem); on msdos, the active flag.
  GPT and msdos tables (msdos: primary partitions, no pLabel), as Elemental.
- Everything that can be checked is checked before the first change: unknown
  filesystem, labels too long, missing mkfs tool, not enough room (with required and
  available MiB). A partition whose filesystem cannot be made is deleted again, and the
  partitions after it are not added. A grown partition whose filesystem could not be
  grown stays grown; the next run grows an ext2/3/4 filesystem that is smaller than its
  partition (xfs and btrfs sizes are not checked).
- Under `--root` other than `/` nothing is done, with a warning: the devices are the
  running machine's, while the config names the target machine's disks (a path like
  /dev/sda on a build host is the build host's disk). At boot edgeinit runs with `/`
  (chrooted into the real root with /dev bound), where layout does run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target import disks
from edgeinit.target.changes import Change


class Device(Record):
    path: str = spec("", doc="Disk device path; script://CMD: CMD prints the path.")
    label: str = spec("", doc="Find the disk by a filesystem label on it.")
    init_disk: bool = spec(False, doc="Write a new, empty GPT.")
    disk_name: str = spec("", doc="Name used to derive the disk GUID.")


class Expand(Record):
    size: int = spec(0, ge=0, doc="New size in MiB of the last partition; 0 = all free space.")


class Partition(Record):
    fsLabel: str = spec("", doc="Filesystem label.")
    pLabel: str = spec("", doc="Partition label.")
    size: int = spec(0, ge=0, doc="Size in MiB; 0 = the rest of the disk.")
    filesystem: str = spec("", doc="ext2/3/4 (default ext4), xfs, btrfs, vfat/fat..., swap, "
                                   "or none.")
    bootable: bool = spec(False, doc="Mark the partition bootable.")


class Layout(Record):
    device: Device | None = spec(None, doc="The disk to work on.")
    expand_partition: Expand | None = spec(None, doc="Grow the last partition.")
    add_partitions: list[Partition] = spec(factory=list, doc="Partitions to add.")


class Args(Record):
    layout: Layout | None = spec(None, doc="Disk partitioning.")


DEFAULT_FS = "ext4"
DEFAULT_DISK_NAME = "YIP_DISK"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def disk_guid(name: str) -> str:
    """yip's disk GUID: UUIDv5 in the URL namespace of the disk name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name or DEFAULT_DISK_NAME)).upper()


def wanted(entries: list[Partition]) -> list[disks.Wanted]:
    """The add_partitions entries, checked; PluginError for the first bad one."""
    out = []
    for i, p in enumerate(entries):
        fs = (p.filesystem or DEFAULT_FS).strip().lower()
        name = p.fsLabel or p.pLabel or f"#{i + 1}"
        if fs not in disks.FILESYSTEMS:
            raise PluginError(f"partition '{name}': unknown filesystem '{p.filesystem}' "
                              f"(known: {', '.join(disks.FILESYSTEMS)})")
        if fs in disks.NO_FS:
            fs = ""
            if p.fsLabel:
                raise PluginError(f"partition '{name}': fsLabel needs a filesystem")
        limit = disks.LABEL_MAX.get(fs)
        if limit and len(p.fsLabel.encode()) > limit:
            raise PluginError(f"partition '{name}': a {fs} label is at most {limit} "
                              f"characters")
        if any(c in p.pLabel for c in '"\\') or _CONTROL.search(p.pLabel + p.fsLabel):
            raise PluginError(f"partition '{name}': a label may not hold control characters, "
                              "and a pLabel no quotes or backslashes")
        if len(p.pLabel) > 36:
            raise PluginError(f"partition '{name}': a GPT partition label is at most 36 "
                              "characters")
        out.append(disks.Wanted(p.fsLabel, p.pLabel, p.size, fs, p.bootable))
    return out


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    lay = args.layout
    if lay is None:
        return
    dev = lay.device
    if dev is None or not (dev.path.strip() or dev.label.strip()):
        ctx.warn("layout: no device path or label given; nothing to do")
        return
    if not (dev.init_disk or lay.expand_partition or lay.add_partitions):
        return
    named = dev.path.strip() or f"label {dev.label.strip()}"
    if not ctx.root.is_live:
        ctx.warn(f"layout of {named} not done: the root is not / (disks belong to the "
                 "running machine)")
        return
    try:
        yield from _plan(lay, dev, ctx)
    except disks.DiskError as e:
        raise PluginError(f"{named}: {e}") from None


def find_disk(dev: Device) -> str:
    """The whole disk the step names; DiskError when there is none or it is ambiguous."""
    path = dev.path.strip()
    label = dev.label.strip()
    by_path = None
    if path:
        if path.startswith("script://"):
            path = disks.script_device(path[len("script://"):])
        by_path = disks.block_device(path)
        parent = disks.parent_disk(by_path)
        if parent:
            raise disks.DiskError(f"{path} is a partition (of {parent}); device.path must "
                                  "name a whole disk")
    if not label:
        assert by_path is not None
        return by_path
    found = disks.wait_for_label(label, 0 if by_path else None)
    if not found:
        if by_path:
            return by_path
        raise disks.DiskError(f"no device has a filesystem labelled {label}")
    if len(found) > 1:
        raise disks.DiskError(f"label {label} is on more than one device: "
                              f"{', '.join(found)}")
    by_label = disks.parent_disk(found[0]) or found[0]
    if by_path and by_label != by_path:
        raise disks.DiskError(f"device.path {path} and device.label {label} (on "
                              f"{found[0]}) name different disks")
    return by_label


def _plan(lay: Layout, dev: Device, ctx: Context) -> Iterator[Change]:
    if dev.init_disk and not dev.path.strip():
        raise PluginError("init_disk needs device.path (the disk to initialise), as in yip")
    wants = wanted(lay.add_partitions)
    disk = disks.read_disk(find_disk(dev))
    init = _init(disk, dev, wants) if dev.init_disk else None
    expand = lay.expand_partition.size if lay.expand_partition else None

    def elsewhere(label: str) -> str | None:
        found = [d for d in disks.devices_with_label(label)
                 if (disks.parent_disk(d) or d) != disk.path]
        return found[0] if found else None

    # Everything is planned (and so checked) before the first change, on the disk as
    # it will be after init_disk.
    start = disks.empty_gpt(disk, init.guid) if init else disk
    changes = disks.plan_layout(start, expand, wants, elsewhere, ctx.warn)
    for change in changes:
        tool = disks.mkfs_tool(change.fs) if isinstance(change, disks.AddPartition) \
            and change.fs else None
        if tool and not disks.which(tool):
            raise PluginError(f"partition '{change.fs_label or change.name or change.number}'"
                              f": {tool} is not installed (needed for filesystem {change.fs})")
    if init:
        yield init
        if not ctx.dry_run:
            if not init.done:
                return
            changes = disks.plan_layout(disks.read_disk(disk.path), expand, wants, elsewhere,
                                        lambda _: None)  # warned about above
    for change in changes:
        yield change
        if not ctx.dry_run and not change.done:
            return  # its error is reported; the disk is as it was before this change


def _init(disk: disks.Disk, dev: Device, wants: list[disks.Wanted]) -> disks.InitDisk | None:
    """The InitDisk change init_disk asks for, None when the disk is already initialised
    (no partitions and yip's GUID, or only partitions of this step); DiskError when the
    disk holds anything else."""
    guid = disk_guid(dev.disk_name)
    foreign = [p for p in disk.parts if not any(disks.matches(p, w) for w in wants)]
    if foreign:
        listed = ", ".join(f"{p.number}" + (f" ({p.name or p.fs_label})"
                                            if p.name or p.fs_label else "")
                           for p in foreign)
        raise disks.DiskError(
            f"init_disk refuses to write a new GPT on {disk.path}: it has partitions "
            f"this step does not describe: {listed} (wipe the disk first to start over)")
    if disk.whole_fs:
        raise disks.DiskError(f"init_disk refuses to write a new GPT on {disk.path}: "
                              f"it holds a {disk.whole_fs} filesystem on the whole disk")
    if disk.parts or (disk.label == "gpt" and disk.table_id.upper() == guid):
        return None
    return disks.InitDisk(disk.path, guid)


PLUGIN = Plugin("layout", Args, plan)
