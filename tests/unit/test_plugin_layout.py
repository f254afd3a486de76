"""`layout` (yip-behaviour 3.17): the plan, from hand-made disk snapshots.

`disks.plan_layout` is pure (a `Disk` snapshot and the wanted layout in, changes out),
so sizes, order, skips and refusals are checked here without any device; the plugin's
own checks (models, --root, filesystem names, init_disk) go through the real engine.
Real partitioning of loop devices is in tests/integration/test_layout_partitions.py.
"""

from __future__ import annotations

import pytest

from edgeinit.plugins import layout
from edgeinit.target import disks
from edgeinit.target.disks import AddPartition, Disk, DiskError, ExpandPartition, Part, Wanted
from tests.unit.plugin_harness import run_step

MIB = 2048  # sectors of 512 bytes
SIZE = 256 * MIB  # a 256 MiB disk
LAST = SIZE - 34  # its last usable sector under a standard GPT


def gpt(*parts: Part, sectors: int = SIZE, last_lba: int | None = None) -> Disk:
    return Disk("/dev/vdz", 512, sectors, "gpt", "ID", 2048,
                LAST if last_lba is None else last_lba, tuple(parts))


def want(fs_label: str = "", p_label: str = "", size: int = 0, fs: str = "ext4",
         bootable: bool = False) -> Wanted:
    return Wanted(fs_label, p_label, size, fs, bootable)


def plan(disk: Disk, expand: int | None = None, wanted: list[Wanted] | None = None,
         elsewhere: dict[str, str] | None = None) -> tuple[list, list[str]]:
    warnings: list[str] = []
    changes = disks.plan_layout(disk, expand, wanted or [],
                                lambda label: (elsewhere or {}).get(label), warnings.append)
    return changes, warnings


# ------------------------------------------------------------------ add_partitions


def test_add_to_an_empty_gpt_aligned_in_order_rest_last() -> None:
    """1 MiB aligned, one after the other, size 0 takes the rest up to the last usable
    sector; numbers 1.., types from the filesystem."""
    changes, _ = plan(gpt(), wanted=[want("COS_OEM", "oem", 64),
                                     want("SWAP", "swap", 32, fs="swap"),
                                     want("COS_PERSISTENT", "persistent", 0)])
    assert [(c.number, c.start, c.size, c.type, c.name, c.fs, c.fs_label) for c in changes] == [
        (1, MIB, 64 * MIB, disks.GPT_LINUX, "oem", "ext4", "COS_OEM"),
        (2, 65 * MIB, 32 * MIB, disks.GPT_SWAP, "swap", "swap", "SWAP"),
        (3, 97 * MIB, LAST - 97 * MIB + 1, disks.GPT_LINUX, "persistent", "ext4",
         "COS_PERSISTENT")]
    assert all(isinstance(c, AddPartition) and not c.relocate for c in changes)


def test_add_after_the_last_partition_by_position_not_number() -> None:
    """Partition 1 sits after partition 2 on the disk: new ones go after partition 1."""
    disk = gpt(Part(2, MIB, 10 * MIB, name="a"), Part(1, 20 * MIB, 10 * MIB + 5, name="b"))
    (c,), _ = plan(disk, wanted=[want("X", "x", 8)])
    assert (c.number, c.start) == (3, 31 * MIB)  # the end 30 MiB + 5 sectors, aligned up


def test_existing_plabel_or_fslabel_is_skipped_both_checked() -> None:
    """yip skips by pLabel, Elemental by fsLabel: edgeinit skips on either, silently on
    this disk (an info log), and the rest is still added."""
    disk = gpt(Part(1, MIB, 10 * MIB, name="oem", fs="ext4", fs_label="OTHER"),
               Part(2, 11 * MIB, 10 * MIB, name="", fs="ext4", fs_label="COS_STATE"))
    changes, warnings = plan(disk, wanted=[want("COS_OEM", "oem", 8),
                                           want("COS_STATE", "state", 8),
                                           want("NEW", "new", 8)])
    assert [(c.name, c.fs_label, c.number) for c in changes] == [("new", "NEW", 3)]
    assert warnings == []


def test_fslabel_on_another_device_is_skipped_with_a_warning() -> None:
    changes, warnings = plan(gpt(), wanted=[want("COS_OEM", "oem", 8), want("B", "b", 8)],
                             elsewhere={"COS_OEM": "/dev/sdb1"})
    assert [c.fs_label for c in changes] == ["B"]
    assert warnings == ["Partition with FSLabel: COS_OEM already exists on /dev/sdb1, ignoring"]


def test_not_enough_space_names_required_and_available_and_plans_nothing() -> None:
    """The check covers every entry before the first change: a first entry that fits is
    not added when a later one does not (nothing half-done)."""
    with pytest.raises(DiskError) as e:
        plan(gpt(), wanted=[want("A", "a", 100), want("B", "b", 200)])
    assert str(e.value) == ("not enough free space on /dev/vdz for partition 'B': required "
                            "200 MiB, available 154 MiB")


def test_size_zero_only_for_the_last_entry() -> None:
    with pytest.raises(DiskError, match="only the last of add_partitions may have size 0"):
        plan(gpt(), wanted=[want("A", "a", 0), want("B", "b", 8)])


def test_size_zero_with_no_room_left_is_an_error() -> None:
    disk = gpt(Part(1, MIB, LAST - MIB + 1, name="all"))
    with pytest.raises(DiskError, match="for partition 'B': required 1 MiB, available 0 MiB"):
        plan(disk, wanted=[want("B", "b", 0)])


def test_bootable_types_and_attributes() -> None:
    """Linux filesystem + bootable: the legacy BIOS bootable attribute (yip also makes it
    a BIOS boot partition, which grub overwrites: not done); FAT + bootable: an EFI
    system partition (yip too)."""
    changes, _ = plan(gpt(), wanted=[want("EFI", "efi", 8, fs="vfat", bootable=True),
                                     want("DATA", "data", 8, fs="fat32"),
                                     want("ROOT", "root", 8, bootable=True),
                                     want("", "raw", 8, fs="")])
    assert [(c.type, c.attrs) for c in changes] == [
        (disks.GPT_ESP, "RequiredPartition"), (disks.GPT_BASIC_DATA, ""),
        (disks.GPT_LINUX, "LegacyBIOSBootable"), (disks.GPT_LINUX, "")]
    assert changes[0].script() == (f"start={MIB}, size={8 * MIB}, type={disks.GPT_ESP}, "
                                   'name="efi", attrs="RequiredPartition"\n')


def test_msdos_table_primary_slots_and_no_plabel() -> None:
    disk = Disk("/dev/vdz", 512, SIZE, "dos", "0x1", 0, 0,
                (Part(1, MIB, MIB, type="83"), Part(2, 2 * MIB, MIB, type="83"),
                 Part(4, 3 * MIB, MIB, type="83")))
    (c,), warnings = plan(disk, wanted=[want("BOOT", "boot", 8, fs="vfat", bootable=True)])
    assert (c.number, c.type, c.name, c.bootable, c.start) == (3, "0c", "", True, 4 * MIB)
    assert "bootable" in c.script()
    assert warnings == ["/dev/vdz has an msdos table, which has no partition labels: "
                        "pLabel 'boot' is not stored"]
    full = Disk("/dev/vdz", 512, SIZE, "dos", "0x1", 0, 0,
                tuple(Part(n, n * MIB, MIB) for n in (1, 2, 3, 4)))
    with pytest.raises(DiskError, match="no free primary partition"):
        plan(full, wanted=[want("X", "x", 8)])


def test_no_partition_table_is_refused() -> None:
    bare = Disk("/dev/vdz", 512, SIZE, whole_fs="ext4")
    with pytest.raises(DiskError, match=r"has no partition table \(it holds a ext4 "
                                        r"filesystem\); init_disk: true"):
        plan(bare, wanted=[want("A", "a", 8)])


def test_4k_sectors() -> None:
    disk = Disk("/dev/vdz", 4096, SIZE // 8, "gpt", "ID", 256, SIZE // 8 - 6, ())
    (c,), _ = plan(disk, wanted=[want("A", "a", 0)])
    assert (c.start, c.start + c.size - 1) == (256, SIZE // 8 - 6)  # 4 entry sectors


# ------------------------------------------------------------------ expand_partition


def test_expand_all_free_space_and_backup_gpt_moved_on_a_grown_disk() -> None:
    """The disk grew (the table's last LBA is the old one): the backup GPT is relocated
    and the partition grows to the device's real last usable sector."""
    disk = gpt(Part(1, MIB, 10 * MIB, fs="ext4"), Part(2, 11 * MIB, 50 * MIB, fs="ext4",
                                                        fs_bytes=50 * 1024 * 1024),
               sectors=SIZE, last_lba=128 * MIB - 34)
    (c,), _ = plan(disk, expand=0)
    assert isinstance(c, ExpandPartition)
    assert (c.number, c.start, c.old_size, c.new_size, c.fs, c.relocate) == (
        2, 11 * MIB, 50 * MIB, LAST - 11 * MIB + 1, "ext4", True)
    assert c.describe() == ("grow partition 2 of /dev/vdz from 50 MiB to 244 MiB and its "
                            "ext4 filesystem")


def test_expand_to_a_size_and_only_grows() -> None:
    disk = gpt(Part(1, MIB, 10 * MIB, fs="xfs"))
    (c,), _ = plan(disk, expand=100)
    assert c.new_size == 100 * MIB
    changes, warnings = plan(disk, expand=5)
    assert changes == [] and warnings == [
        "expand_partition only grows: partition 1 of /dev/vdz is already 10 MiB (asked 5 MiB)"]


def test_expand_already_done_is_no_change_and_a_short_ext_fs_is_grown() -> None:
    """Idempotent: a partition at its size with a filesystem filling it changes nothing;
    an ext filesystem left smaller by a failed resize is grown alone."""
    full = LAST - MIB + 1
    done = gpt(Part(1, MIB, full, fs="ext4", fs_bytes=full * 512 - 4096))
    assert plan(done, expand=0) == ([], [])
    short = gpt(Part(1, MIB, full, fs="ext4", fs_bytes=10 * 1024 * 1024))
    (c,), _ = plan(short, expand=0)
    assert (c.old_size, c.new_size) == (full, full)
    assert c.describe().startswith("grow the ext4 filesystem of partition 1 of /dev/vdz")


def test_expand_not_enough_space() -> None:
    disk = gpt(Part(1, MIB, 200 * MIB, fs="ext4"))
    with pytest.raises(DiskError) as e:
        plan(disk, expand=300)
    assert str(e.value) == ("not enough free space on /dev/vdz to grow partition 1 to 300 "
                            "MiB: required 100 MiB more, available 54 MiB")


def test_expand_swap_or_fat_is_refused_and_no_partition_is_an_error() -> None:
    with pytest.raises(DiskError, match="holds a swap filesystem, which cannot be grown"):
        plan(gpt(Part(1, MIB, 10 * MIB, fs="swap")), expand=0)
    with pytest.raises(DiskError, match="has no partition to expand"):
        plan(gpt(), expand=0)


def test_expand_before_add_and_the_added_partition_is_never_the_one_grown() -> None:
    """Elemental's order: expand, then add after the grown partition. On the next run
    the added partition is last, but the expand still means the partition that is not
    one of add_partitions: nothing changes."""
    disk = gpt(Part(1, MIB, 10 * MIB, name="state", fs="ext4", fs_bytes=10 * MIB * 512))
    changes, _ = plan(disk, expand=100, wanted=[want("DATA", "data", 50)])
    assert [type(c).__name__ for c in changes] == ["ExpandPartition", "AddPartition"]
    assert changes[1].start == 101 * MIB
    after = gpt(Part(1, MIB, 100 * MIB, name="state", fs="ext4", fs_bytes=100 * MIB * 512),
                Part(2, 101 * MIB, 50 * MIB, name="data", fs="ext4", fs_label="DATA"))
    assert plan(after, expand=100, wanted=[want("DATA", "data", 50)]) == ([], [])
    assert plan(after, expand=0, wanted=[want("DATA", "data", 50)]) == ([], [])


def test_a_table_describing_a_larger_disk_is_refused() -> None:
    with pytest.raises(DiskError, match="describes a larger disk than the device is"):
        plan(gpt(Part(1, MIB, MIB), last_lba=LAST + 100), expand=0)


# ------------------------------------------------------------------ tools and helpers


@pytest.mark.parametrize(("fs", "argv"), [
    ("ext4", ["mkfs.ext4", "-F", "-L", "L", "/dev/x1"]),
    ("ext2", ["mkfs.ext2", "-F", "-L", "L", "/dev/x1"]),
    ("xfs", ["mkfs.xfs", "-f", "-L", "L", "/dev/x1"]),
    ("btrfs", ["mkfs.btrfs", "-f", "-L", "L", "/dev/x1"]),
    ("vfat", ["mkfs.fat", "-n", "L", "/dev/x1"]),
    ("fat32", ["mkfs.fat", "-F", "32", "-n", "L", "/dev/x1"]),
    ("fat16", ["mkfs.fat", "-F", "16", "-n", "L", "/dev/x1"]),
    ("swap", ["mkswap", "-L", "L", "/dev/x1"]),
])
def test_mkfs_commands(fs: str, argv: list[str]) -> None:
    assert disks.mkfs_argv(fs, "L", "/dev/x1") == argv


def test_disk_guid_is_yips() -> None:
    """UUIDv5(URL namespace, disk_name or YIP_DISK), as yip's init_disk."""
    assert layout.disk_guid("") == "769727DD-FF87-5C57-9C07-674630FC7A00"
    assert layout.disk_guid("edge") != layout.disk_guid("")


def test_ext_superblock_size(tmp_path) -> None:
    """The block count and size read from a real mke2fs image (needs e2fsprogs)."""
    import shutil
    import subprocess

    if not shutil.which("mkfs.ext4"):
        pytest.skip("mkfs.ext4 is not installed (Debian package e2fsprogs)")
    img = tmp_path / "fs.img"
    img.write_bytes(b"")
    subprocess.run(["truncate", "-s", "8M", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "1024", str(img), "6000"], check=True)
    assert disks.ext_bytes(str(img), 0) == 6000 * 1024
    assert disks.ext_bytes(str(img), 4096) is None


# ------------------------------------------------------------------ the plugin


def test_no_device_is_a_warning_and_nothing_else(tmp_path) -> None:
    """yip and Elemental: no device path or label -> warn, do nothing."""
    run = run_step({"layout": {"expand_partition": {"size": 0}}}, "/")
    assert run.status == "ok" and run.changes == []
    assert run.warnings == ["layout: no device path or label given; nothing to do"]


def test_under_another_root_nothing_is_done(tmp_path) -> None:
    """The devices are the running machine's, not the target's: left out, warned."""
    run = run_step({"layout": {"device": {"path": "/dev/vda", "init_disk": True},
                               "add_partitions": [{"fsLabel": "X"}]}}, tmp_path)
    assert run.status == "ok" and run.changes == []
    assert run.warnings == ["layout of /dev/vda not done: the root is not / (disks belong "
                            "to the running machine)"]


@pytest.mark.parametrize(("entry", "message"), [
    ({"fsLabel": "A", "filesystem": "zfs"}, "partition 'A': unknown filesystem 'zfs'"),
    ({"fsLabel": "THIRTEEN_CHAR", "filesystem": "xfs"},
     "partition 'THIRTEEN_CHAR': a xfs label is at most 12 characters"),
    ({"fsLabel": "A", "filesystem": "none"}, "partition 'A': fsLabel needs a filesystem"),
    ({"pLabel": 'a"b'}, "partition 'a\"b': a label may not hold control characters"),
])
def test_bad_entries_fail_before_any_device_is_looked_at(entry, message) -> None:
    """The entries are checked first: the device (which does not exist) is not reached."""
    run = run_step({"layout": {"device": {"path": "/dev/edgeinit-no-such-disk"},
                               "add_partitions": [entry]}}, "/")
    assert run.status == "failed" and run.changes == []
    assert run.error.startswith(f"layout: {message}")


def test_init_disk_needs_a_path() -> None:
    run = run_step({"layout": {"device": {"label": "COS_X", "init_disk": True}}}, "/")
    assert run.status == "failed"
    assert run.error == ("layout: init_disk needs device.path (the disk to initialise), "
                         "as in yip")


def test_missing_device_names_it() -> None:
    run = run_step({"layout": {"device": {"path": "/dev/edgeinit-no-such-disk"},
                               "expand_partition": {"size": 0}}}, "/")
    assert run.status == "failed"
    assert run.error == ("layout: /dev/edgeinit-no-such-disk: device "
                         "/dev/edgeinit-no-such-disk does not exist")


def test_a_path_that_is_not_a_block_device(tmp_path) -> None:
    img = tmp_path / "disk.img"
    img.write_bytes(b"\0" * 4096)
    run = run_step({"layout": {"device": {"path": str(img)},
                               "expand_partition": {"size": 0}}}, "/")
    assert run.status == "failed" and run.error.endswith(f"{img} is not a block device")


def test_script_device_takes_one_line_of_output() -> None:
    assert disks.script_device("echo /dev/vdq") == "/dev/vdq"
    with pytest.raises(DiskError, match="printed nothing"):
        disks.script_device("true")
    with pytest.raises(DiskError, match="printed 2 lines"):
        disks.script_device("printf '/dev/a\\n/dev/b\\n'")
    with pytest.raises(DiskError, match=r"failed \(exit 3\): boom"):
        disks.script_device("echo boom >&2; exit 3")


def test_script_device_path_through_the_plugin() -> None:
    run = run_step({"layout": {"device": {"path": "script://echo /dev/edgeinit-nope"},
                               "expand_partition": {"size": 0}}}, "/")
    assert run.status == "failed"
    assert run.error.endswith("device /dev/edgeinit-nope does not exist")
