"""`layout` on real disks: loop devices over sparse images in a temp dir (as root).

`losetup -P` gives no partition nodes on these machines, so the tests do not rely on the
kernel scanning the image: edgeinit tells the kernel about each partition it adds or
grows with `partx -u --nr N` (nodes /dev/loopNpM appear through devtmpfs, no udev
needed), and the tests use `partx -a` for partitions they make themselves. Every loop
device is detached (its partitions deleted first) in a finally. Only loop devices of
images made here are ever named in a config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT

TOOLS = ("losetup", "sfdisk", "partx", "blkid", "wipefs", "mkfs.ext4", "mkfs.ext2", "e2fsck",
         "resize2fs", "dumpe2fs", "mkswap", "mount", "umount")
MISSING = [t for t in TOOLS if not shutil.which(t)]
pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="needs root (loop devices, partitioning)"),
    pytest.mark.skipif(bool(MISSING), reason=f"tools missing: {', '.join(MISSING)} "
                       "(Debian packages util-linux, fdisk, e2fsprogs, mount)"),
]

MIB = 2048  # sectors


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


@pytest.fixture
def loopdisk(tmp_path: Path) -> Iterator[Callable[[int], tuple[str, Path]]]:
    """loopdisk(MiB) -> (/dev/loopN, image): a sparse image on a fresh loop device."""
    attached: list[str] = []

    def make(mib: int) -> tuple[str, Path]:
        img = tmp_path / f"disk{len(attached)}.img"
        with open(img, "wb") as f:
            f.truncate(mib * 1024 * 1024)
        proc = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot attach a loop device here: {proc.stderr.strip()}")
        dev = proc.stdout.strip()
        attached.append(dev)
        return dev, img

    try:
        yield make
    finally:
        for dev in attached:
            subprocess.run(["partx", "-d", dev], capture_output=True, check=False)
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)


def table(dev: str) -> dict:
    proc = subprocess.run(["sfdisk", "--json", dev], capture_output=True, text=True,
                          check=False)
    return json.loads(proc.stdout)["partitiontable"] if proc.returncode == 0 else {}


def parts(dev: str) -> list[dict]:
    return table(dev).get("partitions", [])


def blkid(node: str) -> dict[str, str]:
    out = sh("blkid", "-p", "-o", "export", node, check=False)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def label(prefix: str) -> str:
    """A filesystem label no other device on this machine has (labels are looked up
    machine-wide); at most 12 characters."""
    return f"{prefix}{uuid.uuid4().hex[:12 - len(prefix)]}".upper()


def make_partition(dev: str, start: int, size: int, name: str, fs_label: str) -> str:
    """A partition with an ext4 filesystem, made with the tools, not with edgeinit."""
    if not table(dev):
        _sh_input("sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev,
                  input_text="label: gpt\n")
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "--append", dev],
                   input=f'start={start}, size={size}, name="{name}"\n', text=True,
                   check=True, capture_output=True)
    sh("partx", "-u", dev)
    node = next(p["node"] for p in parts(dev) if p["start"] == start)
    sh("mkfs.ext4", "-q", "-F", "-L", fs_label, node)
    return node


def _sh_input(*argv: str, input_text: str) -> str:
    return subprocess.run(argv, input=input_text, text=True, capture_output=True,
                          check=True).stdout


def run_layout(cli, write, body: str, *extra: str) -> tuple[dict, object]:
    src = write("layout.yaml", "stages:\n  t:\n    - name: disk\n      layout:\n" + body)
    res = cli("run", "--stage", "t", "--json", *extra, src)
    report = res.json()
    (entry,) = report["steps"]
    return entry, res


def ext_size(node: str) -> int:
    out = sh("dumpe2fs", "-h", node)
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return int(fields["Block count"]) * int(fields["Block size"])


# ------------------------------------------------------------------ add_partitions


def test_init_disk_and_add_partitions_labels_visible_with_blkid(cli, write, loopdisk) -> None:
    """A blank disk: new GPT (yip's disk GUID), three partitions 1 MiB aligned, their
    filesystems and labels as blkid sees them; the second run changes nothing."""
    dev, _ = loopdisk(64)
    oem, swap, data = label("EO"), label("ES"), label("ED")
    body = (f"        device: {{path: {dev}, init_disk: true}}\n"
            "        add_partitions:\n"
            f"          - {{fsLabel: {oem}, pLabel: oem, size: 16}}\n"
            f"          - {{fsLabel: {swap}, pLabel: swap, size: 8, filesystem: swap}}\n"
            f"          - {{fsLabel: {data}, pLabel: data, size: 0, filesystem: ext2}}\n")
    entry, res = run_layout(cli, write, body)
    assert res.code == 0, entry
    assert entry["status"] == "ok" and entry["changed"]
    t = table(dev)
    assert t["label"] == "gpt" and t["id"] == "769727DD-FF87-5C57-9C07-674630FC7A00"
    got = [(p["start"], p["size"], p.get("name")) for p in t["partitions"]]
    assert got == [(MIB, 16 * MIB, "oem"), (17 * MIB, 8 * MIB, "swap"),
                   (25 * MIB, t["lastlba"] - 25 * MIB + 1, "data")]
    nodes = [p["node"] for p in t["partitions"]]
    assert [(blkid(n)["TYPE"], blkid(n)["LABEL"]) for n in nodes] == [
        ("ext4", oem), ("swap", swap), ("ext2", data)]
    assert sh("blkid", "-c", "/dev/null", "-o", "device", "-t", f"LABEL={oem}").split() \
        == [nodes[0]]

    again, res = run_layout(cli, write, body)
    assert res.code == 0 and again["status"] == "ok" and not again["changed"]
    assert again["changes"] == [] and table(dev) == t


def test_existing_labels_are_skipped(cli, write, loopdisk) -> None:
    """A partition whose pLabel exists (yip's check) or whose fsLabel exists (Elemental's)
    is not added again; the others are."""
    dev, _ = loopdisk(64)
    have = label("EH")
    make_partition(dev, MIB, 8 * MIB, "oem", have)
    new = label("EN")
    before = parts(dev)
    body = (f"        device: {{path: {dev}}}\n"
            "        add_partitions:\n"
            f"          - {{fsLabel: {label('EX')}, pLabel: oem, size: 8}}\n"
            f"          - {{fsLabel: {have}, pLabel: other, size: 8}}\n"
            f"          - {{fsLabel: {new}, pLabel: new, size: 8}}\n")
    entry, res = run_layout(cli, write, body)
    assert res.code == 0 and entry["status"] == "ok", entry
    after = parts(dev)
    assert after[0] == before[0]
    assert [(p["start"], p.get("name")) for p in after[1:]] == [(9 * MIB, "new")]
    assert blkid(after[1]["node"])["LABEL"] == new
    assert len(entry["changes"]) == 1


def test_a_label_finds_the_disk(cli, write, loopdisk) -> None:
    """device.label: the disk that holds the labelled filesystem."""
    dev, _ = loopdisk(64)
    mark = label("EL")
    make_partition(dev, MIB, 8 * MIB, "first", mark)
    body = (f"        device: {{label: {mark}}}\n"
            f"        add_partitions: [{{fsLabel: {label('EA')}, pLabel: added, size: 4}}]\n")
    entry, res = run_layout(cli, write, body)
    assert res.code == 0, entry
    assert [p.get("name") for p in parts(dev)] == ["first", "added"]


# ------------------------------------------------------------------ expand_partition


def test_expand_last_partition_and_its_filesystem_on_a_grown_disk(cli, write, loopdisk) -> None:
    """The image grew from 64 to 160 MiB: the last partition takes all the new room and
    its ext4 grows with it (resize2fs); the data on it is intact; again: no change."""
    dev, img = loopdisk(64)
    mark = label("EP")
    make_partition(dev, MIB, 8 * MIB, "first", label("EF"))
    node = make_partition(dev, 9 * MIB, 40 * MIB, "persistent", mark)
    mnt = img.parent / "mnt"
    mnt.mkdir()
    sh("mount", node, str(mnt))
    (mnt / "keep").write_text("data\n")
    sh("umount", str(mnt))
    old_fs = ext_size(node)
    sh("partx", "-d", dev)
    os.truncate(img, 160 * 1024 * 1024)
    sh("losetup", "-c", dev)
    sh("partx", "-a", dev)

    body = f"        device: {{label: {mark}}}\n        expand_partition: {{size: 0}}\n"
    entry, res = run_layout(cli, write, body)
    assert res.code == 0 and entry["status"] == "ok" and entry["changed"], entry
    t = table(dev)
    last = t["partitions"][-1]
    assert t["lastlba"] == 160 * MIB - 34  # the backup GPT moved to the new end
    assert (last["start"], last["start"] + last["size"] - 1) == (9 * MIB, 160 * MIB - 34)
    assert old_fs == 40 * 1024 * 1024 and ext_size(node) > 150 * 1024 * 1024
    assert subprocess.run(["e2fsck", "-f", "-n", node], capture_output=True).returncode == 0
    sh("mount", "-o", "ro", node, str(mnt))
    try:
        assert (mnt / "keep").read_text() == "data\n"
    finally:
        sh("umount", str(mnt))

    again, res = run_layout(cli, write, body)
    assert res.code == 0 and not again["changed"] and table(dev) == t


def test_expand_to_a_size(cli, write, loopdisk) -> None:
    dev, _ = loopdisk(64)
    node = make_partition(dev, MIB, 10 * MIB, "p", label("EZ"))
    body = f"        device: {{path: {dev}}}\n        expand_partition: {{size: 30}}\n"
    entry, res = run_layout(cli, write, body)
    assert res.code == 0, entry
    assert parts(dev)[0]["size"] == 30 * MIB
    assert ext_size(node) == 30 * 1024 * 1024


# ------------------------------------------------------------------ bad input


def test_not_enough_space_changes_nothing(cli, write, loopdisk) -> None:
    """A first partition that fits is not added when the second does not: the error names
    the step, the disk, required and available MiB."""
    dev, _ = loopdisk(64)
    sh("sh", "-c", f"echo 'label: gpt' | sfdisk -q --no-reread --no-tell-kernel {dev}")
    before = table(dev)
    body = (f"        device: {{path: {dev}}}\n"
            "        add_partitions:\n"
            f"          - {{fsLabel: {label('E1')}, size: 16}}\n"
            f"          - {{fsLabel: {label('E2')}, size: 500}}\n")
    entry, res = run_layout(cli, write, body)
    assert res.code == 1 and entry["status"] == "failed" and entry["name"] == "disk"
    assert entry["error"].startswith(f"layout: {dev}: not enough free space on {dev} for "
                                     "partition '")
    assert entry["error"].endswith("required 500 MiB, available 46 MiB")
    assert table(dev) == before
    assert "step 'disk'" in res.err and "required 500 MiB" in res.err


def test_missing_device_and_missing_label(cli, write, monkeypatch) -> None:
    from edgeinit.target import disks

    monkeypatch.setattr(disks, "LABEL_WAIT", 0.2)
    entry, res = run_layout(cli, write, "        device: {path: /dev/edgeinit-none}\n"
                                        "        expand_partition: {size: 0}\n")
    assert res.code == 1 and entry["error"] == (
        "layout: /dev/edgeinit-none: device /dev/edgeinit-none does not exist")
    gone = label("EG")
    entry, res = run_layout(cli, write, f"        device: {{label: {gone}}}\n"
                                        "        expand_partition: {size: 0}\n")
    assert res.code == 1 and entry["error"] == (
        f"layout: label {gone}: no device has a filesystem labelled {gone}")


def test_init_disk_refuses_a_disk_with_other_partitions(cli, write, loopdisk) -> None:
    dev, _ = loopdisk(64)
    make_partition(dev, MIB, 8 * MIB, "precious", label("EK"))
    before = table(dev)
    body = (f"        device: {{path: {dev}, init_disk: true}}\n"
            f"        add_partitions: [{{fsLabel: {label('EI')}, pLabel: mine, size: 8}}]\n")
    entry, res = run_layout(cli, write, body)
    assert res.code == 1 and entry["status"] == "failed"
    assert "init_disk refuses to write a new GPT" in entry["error"]
    assert "1 (precious)" in entry["error"]
    assert table(dev) == before


def test_mkfs_failure_removes_the_new_partition(cli, write, loopdisk, tmp_path,
                                                monkeypatch) -> None:
    """A partition whose filesystem cannot be made is deleted again and the partitions
    after it are not added: the disk is as before."""
    dev, _ = loopdisk(64)
    sh("sh", "-c", f"echo 'label: gpt' | sfdisk -q --no-reread --no-tell-kernel {dev}")
    before = table(dev)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mkfs.ext4").write_text("#!/bin/sh\necho 'mkfs.ext4: no space for you' >&2\n"
                                    "exit 1\n")
    (fake / "mkfs.ext4").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ.get('PATH', '')}")
    body = (f"        device: {{path: {dev}}}\n"
            "        add_partitions:\n"
            f"          - {{fsLabel: {label('EM')}, pLabel: a, size: 8}}\n"
            f"          - {{fsLabel: {label('EN')}, pLabel: b, size: 8}}\n")
    entry, res = run_layout(cli, write, body)
    assert res.code == 1 and entry["status"] == "failed"
    assert "no space for you" in entry["error"]
    assert entry["error"].endswith("the new partition 1 was removed again")
    assert table(dev) == before
    assert not os.path.exists(f"{dev}p1")


def test_dry_run_and_another_root_touch_nothing(cli, write, loopdisk, tmp_path) -> None:
    dev, img = loopdisk(64)
    body = (f"        device: {{path: {dev}, init_disk: true}}\n"
            f"        add_partitions: [{{fsLabel: {label('ED')}, pLabel: d, size: 8}}]\n")
    entry, res = run_layout(cli, write, body, "--dry-run")
    assert res.code == 0 and entry["changes"][0].startswith(f"write a new empty GPT on {dev}")
    assert entry["changes"][1].startswith(f"add partition 1 to {dev}: 8 MiB at sector 2048")
    root = tmp_path / "root"
    root.mkdir()
    entry, res = run_layout(cli, write, body, "--root", str(root))
    assert res.code == 0 and entry["changes"] == [] and entry["warnings"] == [
        f"layout of {dev} not done: the root is not / (disks belong to the running machine)"]
    assert table(dev) == {}
    with open(img, "rb") as f:
        head = f.read(1024 * 1024)
        f.seek(-1024 * 1024, os.SEEK_END)
        tail = f.read()
    assert head == bytes(len(head)) and tail == bytes(len(tail))


# ------------------------------------------------------------------ other filesystems


def fs_bytes(node: str, mnt: Path) -> int:
    """The size of the filesystem on `node`, as the kernel sees it mounted."""
    mnt.mkdir(exist_ok=True)
    sh("mount", "-o", "ro", node, str(mnt))
    try:
        st = os.statvfs(mnt)
        return st.f_blocks * st.f_frsize
    finally:
        sh("umount", str(mnt))


def kernel_has(fs: str) -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == fs for line in f if line.strip())


@pytest.mark.skipif(not all(shutil.which(t) for t in ("mkfs.fat", "mkfs.xfs", "mkfs.btrfs")),
                    reason="needs mkfs.fat, mkfs.xfs, mkfs.btrfs (Debian packages dosfstools, "
                    "xfsprogs, btrfs-progs)")
def test_vfat_esp_xfs_and_btrfs_partitions(cli, write, loopdisk) -> None:
    """A bootable FAT partition is an EFI system partition; xfs and btrfs get their labels."""
    dev, _ = loopdisk(1024)
    efi, xfs, btr = "EFI" + uuid.uuid4().hex[:5].upper(), label("EX"), label("EB")
    body = (f"        device: {{path: {dev}, init_disk: true, disk_name: edge}}\n"
            "        add_partitions:\n"
            f"          - {{fsLabel: {efi}, pLabel: efi, size: 64, filesystem: vfat, "
            "bootable: true}\n"
            f"          - {{fsLabel: {xfs}, pLabel: xfs, size: 320, filesystem: xfs}}\n"
            f"          - {{fsLabel: {btr}, pLabel: btrfs, size: 0, filesystem: btrfs}}\n")
    entry, res = run_layout(cli, write, body)
    assert res.code == 0, entry
    t = table(dev)
    assert t["id"] != "769727DD-FF87-5C57-9C07-674630FC7A00"  # disk_name: edge
    got = [(p["type"], p.get("attrs", ""), blkid(p["node"])["TYPE"], blkid(p["node"])["LABEL"])
           for p in t["partitions"]]
    assert got == [("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "RequiredPartition", "vfat", efi),
                   ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "", "xfs", xfs),
                   ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "", "btrfs", btr)]


@pytest.mark.parametrize("fs", ["xfs", "btrfs"])
def test_expand_grows_xfs_and_btrfs_through_a_mount(cli, write, loopdisk, tmp_path, fs) -> None:
    """xfs and btrfs grow only mounted: edgeinit mounts them on a temporary directory."""
    if not shutil.which(f"mkfs.{fs}") or not kernel_has(fs):
        pytest.skip(f"needs mkfs.{fs} and {fs} in the kernel (Debian package "
                    f"{'xfsprogs' if fs == 'xfs' else 'btrfs-progs'})")
    dev, img = loopdisk(400)
    mark = label("EG")
    node = make_partition(dev, MIB, 320 * MIB, "grow", label("EQ"))
    sh(f"mkfs.{fs}", "-f", "-L", mark, node)
    before = fs_bytes(node, tmp_path / "mnt")
    sh("partx", "-d", dev)
    os.truncate(img, 800 * 1024 * 1024)
    sh("losetup", "-c", dev)
    sh("partx", "-a", dev)
    body = f"        device: {{label: {mark}}}\n        expand_partition: {{size: 0}}\n"
    entry, res = run_layout(cli, write, body)
    assert res.code == 0 and entry["changed"], entry
    assert parts(dev)[0]["size"] > 790 * MIB
    after = fs_bytes(node, tmp_path / "mnt")
    assert before < 330 * 1024 * 1024 and after > 700 * 1024 * 1024, (before, after)
    assert not [m for m in Path("/run").glob("edgeinit-grow-*")]


def test_a_missing_mkfs_matters_only_for_partitions_to_add(cli, write, loopdisk,
                                                           monkeypatch) -> None:
    """A partition that exists needs no mkfs; one to add does, checked before anything
    is changed (so the first entry, which could be made, is not made either)."""
    from edgeinit.target import disks

    real_which = disks.which
    monkeypatch.setattr(disks, "which",
                        lambda tool: None if tool == "mkfs.btrfs" else real_which(tool))
    dev, _ = loopdisk(64)
    make_partition(dev, MIB, 8 * MIB, "have", label("EH"))
    before = table(dev)
    have = (f"        device: {{path: {dev}}}\n        add_partitions:\n"
            "          - {pLabel: have, size: 8, filesystem: btrfs}\n")
    entry, res = run_layout(cli, write, have)
    assert res.code == 0 and not entry["changed"], entry
    more = have + ("          - {pLabel: new1, size: 8}\n"
                   "          - {pLabel: new2, size: 8, filesystem: btrfs}\n")
    entry, res = run_layout(cli, write, more)
    assert res.code == 1 and entry["error"] == (
        "layout: partition 'new2': mkfs.btrfs is not installed (needed for filesystem btrfs)")
    assert table(dev) == before
