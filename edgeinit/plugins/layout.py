"""`layout`: partitioning (schema only until the yip-parity issue, #7)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class Device(Record):
    path: str = spec("", doc="Disk device path.")
    label: str = spec("", doc="Find the disk by a filesystem label on it.")
    init_disk: bool = spec(False, doc="Write a new, empty GPT.")
    disk_name: str = spec("", doc="Name used to derive the disk GUID.")


class Expand(Record):
    size: int = spec(0, ge=0, doc="New size in MiB of the last partition; 0 = all free space.")


class Partition(Record):
    fsLabel: str = spec("", doc="Filesystem label.")
    pLabel: str = spec("", doc="Partition label.")
    size: int = spec(0, ge=0, doc="Size in MiB; 0 = the rest of the disk.")
    filesystem: str = spec("", doc="ext2/3/4, xfs, btrfs, vfat/fat..., swap, or none.")
    bootable: bool = spec(False, doc="Mark the partition bootable.")


class Layout(Record):
    device: Device | None = spec(None, doc="The disk to work on.")
    expand_partition: Expand | None = spec(None, doc="Grow the last partition.")
    add_partitions: list[Partition] = spec(factory=list, doc="Partitions to add.")


class Args(Record):
    layout: Layout | None = spec(None, doc="Disk partitioning.")


PLUGIN = Plugin("layout", Args, None, issue="#7")
