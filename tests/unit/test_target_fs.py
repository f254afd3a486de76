"""Atomic writes and directory creation (SPEC 7.10): exact mode and owner, no debris.

A file is written through a fixed temp name beside it; whatever happens (success,
failure, an earlier crash, a full disk) no temp file may stay behind and the old file
must keep its complete old content when the write fails.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeinit.target import fs
from tests.conftest import IS_ROOT, needs_root, small_tmpfs


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def _leftovers(d: Path) -> list[str]:
    return sorted(n for n in os.listdir(d) if n.endswith(fs.TEMP_SUFFIX))


@pytest.fixture
def umask_077() -> Iterator[None]:
    """A strict umask, to show modes do not depend on it."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_temp_path_is_hidden_beside_the_file() -> None:
    """The temp name is fixed per file, so the next write finds a crashed write's debris."""
    assert fs.temp_path_for("/etc/hosts") == "/etc/.hosts.edgeinit-new"


def test_new_file_gets_exact_mode_whatever_the_umask(tmp_path: Path, umask_077: None) -> None:
    """0644 asked is 0644 on disk even under umask 077 (SPEC 7.10: whatever the umask)."""
    p = tmp_path / "f"
    fs.atomic_write(str(p), b"data", 0o644, os.geteuid(), os.getegid())
    assert p.read_bytes() == b"data"
    assert _mode(p) == 0o644
    assert _leftovers(tmp_path) == []


def test_rewrite_sets_the_given_mode(tmp_path: Path) -> None:
    """atomic_write applies exactly the mode it is given (callers decide to keep the old one)."""
    p = tmp_path / "f"
    p.write_bytes(b"old")
    p.chmod(0o600)
    fs.atomic_write(str(p), b"new", 0o600, os.geteuid(), os.getegid())
    assert (p.read_bytes(), _mode(p)) == (b"new", 0o600)
    fs.atomic_write(str(p), b"newer", 0o640, os.geteuid(), os.getegid())
    assert (p.read_bytes(), _mode(p)) == (b"newer", 0o640)


def test_empty_content(tmp_path: Path) -> None:
    """An empty file is a valid write (the write loop must not spin or skip the rename)."""
    p = tmp_path / "empty"
    p.write_bytes(b"something")
    fs.atomic_write(str(p), b"", 0o644, os.geteuid(), os.getegid())
    assert p.read_bytes() == b""


def test_replaces_the_inode(tmp_path: Path) -> None:
    """The write is a rename of a new file: a reader holding the old file sees old content."""
    p = tmp_path / "f"
    p.write_bytes(b"old")
    with open(p, "rb") as reader:
        fs.atomic_write(str(p), b"new", 0o644, os.geteuid(), os.getegid())
        assert reader.read() == b"old"
    assert p.read_bytes() == b"new"


@needs_root
def test_owner_is_set_to_another_user(tmp_path: Path) -> None:
    """A file owned by another uid:gid (as root) is created with that owner."""
    p = tmp_path / "owned"
    fs.atomic_write(str(p), b"x", 0o640, 4242, 4343)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid, _mode(p)) == (4242, 4343, 0o640)


@needs_root
def test_setuid_bit_survives_the_chown(tmp_path: Path) -> None:
    """chown clears set-id bits, so the mode must be applied after it."""
    p = tmp_path / "suid"
    fs.atomic_write(str(p), b"#!/bin/sh\n", 0o4755, 1000, 1000)
    assert _mode(p) == 0o4755
    assert os.stat(p).st_uid == 1000


@needs_root
def test_owner_of_existing_file_is_replaced_by_the_given_one(tmp_path: Path) -> None:
    """The new file carries the given owner (plan passes the old owner to keep it)."""
    p = tmp_path / "f"
    p.write_bytes(b"old")
    os.chown(p, 1234, 1234)
    fs.atomic_write(str(p), b"new", 0o644, 1234, 1234)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    fs.atomic_write(str(p), b"new2", 0o644, 0, 0)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_failed_write_leaves_no_temp_and_keeps_the_old(tmp_path: Path) -> None:
    """A rename that fails (the target is a non-empty directory) removes the temp file."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "keep").write_text("k")
    with pytest.raises(OSError):
        fs.atomic_write(str(d), b"data", 0o644, os.geteuid(), os.getegid())
    assert d.is_dir()
    assert (d / "keep").read_text() == "k"
    assert _leftovers(tmp_path) == []


def test_missing_parent_fails_without_debris(tmp_path: Path) -> None:
    """No parent directory: FileNotFoundError, and nothing created anywhere."""
    with pytest.raises(FileNotFoundError):
        fs.atomic_write(str(tmp_path / "no" / "f"), b"x", 0o644, os.geteuid(), os.getegid())
    assert os.listdir(tmp_path) == []


def test_stale_temp_from_a_crash_is_cleaned(tmp_path: Path) -> None:
    """Debris of an interrupted write is removed by the next write of the same file."""
    p = tmp_path / "hosts"
    p.write_text("old\n")
    stale = Path(fs.temp_path_for(str(p)))
    stale.write_text("half-written garbage")
    stale.chmod(0o000)
    fs.atomic_write(str(p), b"new\n", 0o644, os.geteuid(), os.getegid())
    assert p.read_text() == "new\n"
    assert not stale.exists()
    assert _leftovers(tmp_path) == []


def test_stale_temp_symlink_is_not_followed(tmp_path: Path) -> None:
    """A symlink planted at the temp name is removed, never written through."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    d = tmp_path / "d"
    d.mkdir()
    p = d / "f"
    os.symlink(victim, fs.temp_path_for(str(p)))
    fs.atomic_write(str(p), b"new", 0o644, os.geteuid(), os.getegid())
    assert victim.read_text() == "precious"
    assert p.read_bytes() == b"new"
    assert not p.is_symlink()
    assert _leftovers(d) == []


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, to make a real full disk."""
    with small_tmpfs(tmp_path / "tiny") as mnt:
        yield mnt


def test_full_disk_keeps_the_old_file_and_leaves_no_temp(tiny_tmpfs: Path) -> None:
    """SPEC 7.10: a full disk fails the write and leaves the old file exactly as it was."""
    p = tiny_tmpfs / "big.conf"
    old = b"old content\n" * 100
    p.write_bytes(old)
    p.chmod(0o640)
    before = os.stat(p)
    with pytest.raises(OSError) as info:
        fs.atomic_write(str(p), b"x" * (1024 * 1024), 0o644, os.geteuid(), os.getegid())
    assert info.value.errno is not None
    after = os.stat(p)
    assert p.read_bytes() == old
    assert (after.st_ino, stat.S_IMODE(after.st_mode)) == (before.st_ino, 0o640)
    assert _leftovers(tiny_tmpfs) == []
    # and the disk space of the temp file is given back: a small write still works
    fs.atomic_write(str(p), b"small\n", 0o644, os.geteuid(), os.getegid())
    assert p.read_bytes() == b"small\n"


def test_make_dir_exact_mode_whatever_the_umask(tmp_path: Path, umask_077: None) -> None:
    """0755 asked is 0755 under umask 077; group-writable and sticky bits too."""
    for name, mode in (("a", 0o755), ("b", 0o775), ("c", 0o1777), ("d", 0o700), ("e", 0o000)):
        d = tmp_path / name
        fs.make_dir(str(d), mode, os.geteuid(), os.getegid())
        assert d.is_dir()
        assert _mode(d) == mode, name


def test_make_dir_with_zero_umask_is_not_wider(tmp_path: Path) -> None:
    """With umask 0 the directory still gets exactly the mode asked, not 0777."""
    old = os.umask(0)
    try:
        fs.make_dir(str(tmp_path / "d"), 0o750, os.geteuid(), os.getegid())
    finally:
        os.umask(old)
    assert _mode(tmp_path / "d") == 0o750


def test_make_dir_existing_raises(tmp_path: Path) -> None:
    """make_dir creates one directory; an existing one is the caller's business."""
    with pytest.raises(FileExistsError):
        fs.make_dir(str(tmp_path), 0o755, os.geteuid(), os.getegid())


@needs_root
def test_make_dir_owner_and_setgid(tmp_path: Path) -> None:
    """A setgid directory for another owner keeps its setgid bit after the chown."""
    d = tmp_path / "shared"
    fs.make_dir(str(d), 0o2775, 1500, 1600)
    st = os.stat(d)
    assert (st.st_uid, st.st_gid, _mode(d)) == (1500, 1600, 0o2775)


def test_set_attrs_mode_only_keeps_owner(tmp_path: Path) -> None:
    """set_attrs with uid/gid None changes only the mode."""
    p = tmp_path / "f"
    p.write_text("x")
    owner = (os.stat(p).st_uid, os.stat(p).st_gid)
    fs.set_attrs(str(p), 0o600, None, None)
    assert _mode(p) == 0o600
    assert (os.stat(p).st_uid, os.stat(p).st_gid) == owner


@needs_root
def test_set_attrs_owner_then_mode(tmp_path: Path) -> None:
    """Owner first, then mode: a setuid mode survives a change of owner."""
    p = tmp_path / "f"
    p.write_text("x")
    fs.set_attrs(str(p), 0o4750, 321, None)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid, _mode(p)) == (321, 0, 0o4750)


@pytest.fixture
def setgid_dir(tmp_path: Path) -> Path:
    """A setgid directory owned by group 100: new entries inherit gid 100 from the kernel."""
    if not IS_ROOT:
        pytest.skip("needs root to give a directory another group")
    d = tmp_path / "sgid"
    d.mkdir()
    os.chown(d, 0, 100)
    d.chmod(0o2775)
    return d


def test_new_file_in_a_setgid_directory_gets_the_asked_group(setgid_dir: Path) -> None:
    """SPEC 7.10: a new file belongs to the gid asked (0), not the group a setgid dir passes on."""
    p = setgid_dir / "f"
    fs.atomic_write(str(p), b"x", 0o644, os.geteuid(), os.getegid())
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())


def test_new_dir_in_a_setgid_directory_gets_the_asked_group(setgid_dir: Path) -> None:
    """Same for make_dir, and the mode is exact (no inherited setgid bit)."""
    d = setgid_dir / "d"
    fs.make_dir(str(d), 0o755, os.geteuid(), os.getegid())
    st = os.stat(d)
    assert (st.st_uid, st.st_gid, _mode(d)) == (os.geteuid(), os.getegid(), 0o755)


def test_run_tool_bounds_kills_the_group_and_says_why(tmp_path: Path) -> None:
    """The one bounded runner the target layer's tools share: output captured, a
    missing program and a hang are ToolErrors of their kind, and a hang's children die
    with it (the process group is killed)."""
    import time

    from edgeinit.target.exec import ToolError, run_tool

    done = run_tool(["/bin/sh", "-c", "printf out; printf err >&2; exit 3"])
    assert (done.returncode, done.out, done.err, done.message) == (3, "out", "err", "err")
    assert run_tool(["/bin/cat"], input="fed").out == "fed"
    with pytest.raises(ToolError) as missing:
        run_tool([str(tmp_path / "no-such-tool")])
    assert missing.value.kind == "missing" and "no-such-tool is not installed" in str(missing.value)
    pidfile = tmp_path / "child.pid"
    with pytest.raises(ToolError) as hung:
        run_tool(["/bin/sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert hung.value.kind == "timeout" and "did not finish within 0.5 s" in str(hung.value)
    child = int(pidfile.read_text())
    for _ in range(50):  # the kill is asynchronous; the child is gone within moments
        if not os.path.exists(f"/proc/{child}") or "Z" in Path(
                f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the hung tool's child {child} survived")
