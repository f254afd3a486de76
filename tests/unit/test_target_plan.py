"""plan_write / plan_dirs / plan_attrs: what changes, from what is on disk (SPEC 7.2, 7.10, 7.13).

Planning only reads, so these run on pyfakefs: owners other than ours can be set
without root. A target root lives at /target in the fake filesystem.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from edgeinit.target.changes import MakeDir, SetAttrs, WriteFile
from edgeinit.target.plan import plan_attrs, plan_dirs, plan_write
from edgeinit.target.root import FileState, PathError, TargetRoot
from tests.unit.plugin_harness import fake_root_user

ROOT = "/target"


@pytest.fixture
def root(fs: FakeFilesystem) -> TargetRoot:
    fake_root_user()
    fs.create_dir(f"{ROOT}/etc")
    return TargetRoot(ROOT)


def _file(fs: FakeFilesystem, path: str, data: bytes, mode: int, uid: int, gid: int) -> None:
    fs.create_file(ROOT + path, contents=data)
    os.chmod(ROOT + path, mode)
    os.chown(ROOT + path, uid, gid)


def test_new_file_defaults_to_0644_root_root(root: TargetRoot) -> None:
    """SPEC 7.2/7.10: a created file without permissions/owner is 0644 and 0:0."""
    changes = plan_write(root, "/etc/motd", b"hello\n")
    assert changes == [WriteFile("/etc/motd", f"{ROOT}/etc/motd", b"hello\n", 0o644, 0, 0,
                                 None, None, False)]


def test_new_file_with_explicit_attrs(root: TargetRoot) -> None:
    """Given mode/owner are used as given for a new file."""
    (change,) = plan_write(root, "/etc/x", b"x", mode=0o600, uid=7, gid=8)
    assert isinstance(change, WriteFile)
    assert (change.mode, change.uid, change.gid) == (0o600, 7, 8)


def test_new_file_missing_parents_are_planned_first_with_0755(root: TargetRoot) -> None:
    """Missing ancestors come first, outermost first, each 0755 0:0 (SPEC 7.2)."""
    changes = plan_write(root, "/opt/app/conf/app.ini", b"a=1\n", mode=0o600, uid=5, gid=5)
    assert [type(c) for c in changes] == [MakeDir, MakeDir, MakeDir, WriteFile]
    dirs = [(c.host_path, c.mode, c.uid, c.gid) for c in changes[:3]]  # type: ignore[union-attr]
    assert dirs == [(f"{ROOT}/opt", 0o755, 0, 0), (f"{ROOT}/opt/app", 0o755, 0, 0),
                    (f"{ROOT}/opt/app/conf", 0o755, 0, 0)]
    assert [c.path for c in changes[:3]] == ["/opt", "/opt/app", "/opt/app/conf"]


def test_parent_attrs_are_passed_through(root: TargetRoot) -> None:
    """Callers (files) choose the parents' mode/owner; plan_dirs uses them for each."""
    changes = plan_write(root, "/srv/a/f", b"", parent_mode=0o750, parent_uid=3, parent_gid=4)
    assert [(c.mode, c.uid, c.gid) for c in changes[:2]] == [(0o750, 3, 4)] * 2  # type: ignore


def test_existing_file_keeps_mode_and_owner(fs: FakeFilesystem, root: TargetRoot) -> None:
    """SPEC 7.10: rewriting without mode/uid/gid keeps the file's own mode and owner."""
    _file(fs, "/etc/secret.conf", b"old\n", 0o640, 1000, 2000)
    (change,) = plan_write(root, "/etc/secret.conf", b"new\n")
    assert isinstance(change, WriteFile)
    assert (change.mode, change.uid, change.gid) == (0o640, 1000, 2000)
    assert change.old == b"old\n"
    assert change.old_state == FileState("file", 0o640, 1000, 2000, 4)


def test_existing_file_partial_owner_keeps_the_rest(fs: FakeFilesystem,
                                                    root: TargetRoot) -> None:
    """Only the attributes given change; the others are the file's."""
    _file(fs, "/etc/a", b"old", 0o640, 1000, 2000)
    (change,) = plan_write(root, "/etc/a", b"new", uid=0)
    assert (change.mode, change.uid, change.gid) == (0o640, 0, 2000)  # type: ignore[union-attr]


def test_identical_file_plans_nothing(fs: FakeFilesystem, root: TargetRoot) -> None:
    """SPEC 7.13 idempotency: same content, same attrs -> no change at all."""
    _file(fs, "/etc/same", b"same\n", 0o644, 0, 0)
    assert plan_write(root, "/etc/same", b"same\n") == []
    assert plan_write(root, "/etc/same", b"same\n", mode=0o644, uid=0, gid=0) == []


def test_only_mode_changed_is_set_attrs(fs: FakeFilesystem, root: TargetRoot) -> None:
    """Same content, other mode: chmod in place, not a rewrite; owner untouched."""
    _file(fs, "/etc/f", b"x", 0o644, 10, 20)
    (change,) = plan_write(root, "/etc/f", b"x", mode=0o600)
    assert isinstance(change, SetAttrs)
    assert (change.mode, change.uid, change.gid) == (0o600, None, None)
    assert change.describe() == "set /etc/f: mode 0644 -> 0600"


def test_only_owner_changed_is_set_attrs_with_both_ids(fs: FakeFilesystem,
                                                       root: TargetRoot) -> None:
    """A chown plan names both ids (the unchanged one from disk); mode stays None."""
    _file(fs, "/etc/f", b"x", 0o644, 10, 20)
    (change,) = plan_write(root, "/etc/f", b"x", uid=11)
    assert isinstance(change, SetAttrs)
    assert (change.mode, change.uid, change.gid) == (None, 11, 20)
    assert change.describe() == "set /etc/f: owner 10:20 -> 11:20"


def test_parent_is_a_regular_file(fs: FakeFilesystem, root: TargetRoot) -> None:
    """Writing under a file fails with a PathError naming the file in the way."""
    _file(fs, "/etc/hosts", b"", 0o644, 0, 0)
    with pytest.raises(PathError, match="'/etc/hosts' exists and is not a directory"):
        plan_write(root, "/etc/hosts/extra", b"x")


def test_ancestor_is_a_regular_file(fs: FakeFilesystem, root: TargetRoot) -> None:
    """A file further up is named too, not the nearest missing directory."""
    _file(fs, "/opt", b"", 0o644, 0, 0)
    with pytest.raises(PathError, match="'/opt' exists and is not a directory"):
        plan_write(root, "/opt/a/b/c", b"x")


def test_path_is_a_directory(root: TargetRoot) -> None:
    """A directory where the file should be is an error, not an overwrite."""
    with pytest.raises(PathError, match="'/etc' is a directory"):
        plan_write(root, "/etc", b"x")


def test_path_is_a_special_file(fs: FakeFilesystem, root: TargetRoot) -> None:
    """A FIFO or device is never replaced by a regular file."""
    fs.create_file(f"{ROOT}/etc/fifo")
    os.chmod(f"{ROOT}/etc/fifo", 0o644)
    fs.get_object(f"{ROOT}/etc/fifo").st_mode = 0o010644  # S_IFIFO
    with pytest.raises(PathError, match="not a regular file"):
        plan_write(root, "/etc/fifo", b"x")


def test_symlinked_file_is_written_through(fs: FakeFilesystem, root: TargetRoot) -> None:
    """An absolute symlink (resolv.conf) is followed inside the root; the target is written."""
    fs.create_symlink(f"{ROOT}/etc/resolv.conf", "/run/resolve/stub.conf")
    changes = plan_write(root, "/etc/resolv.conf", b"nameserver 1.1.1.1\n")
    assert [c.host_path for c in changes] == [  # type: ignore[union-attr]
        f"{ROOT}/run", f"{ROOT}/run/resolve", f"{ROOT}/run/resolve/stub.conf"]
    assert [c.path for c in changes[:2]] == ["/run", "/run/resolve"]  # type: ignore[union-attr]


def test_dry_run_overlay_makes_a_second_plan_idempotent(root: TargetRoot) -> None:
    """After recording a plan, planning the same write again gives nothing."""
    dry = TargetRoot(ROOT, dry_run=True)
    changes = plan_write(dry, "/opt/d/f", b"x")
    for c in changes:
        c.record(dry)
    assert plan_write(dry, "/opt/d/f", b"x") == []
    assert not Path(f"{ROOT}/opt").exists()


def test_plan_dirs_existing_is_empty_and_file_in_the_way_fails(fs: FakeFilesystem,
                                                               root: TargetRoot) -> None:
    """plan_dirs stops at the first existing directory; a file there is an error."""
    assert plan_dirs(root, "/etc") == []
    assert plan_dirs(root, "/") == []
    _file(fs, "/etc/f", b"", 0o644, 0, 0)
    with pytest.raises(PathError, match="'/etc/f' exists and is not a directory"):
        plan_dirs(root, "/etc/f/sub")


def test_plan_dirs_with_dotdot_plans_only_the_directory_named(root: TargetRoot) -> None:
    """`/x/y/..` names /x: only /x is made, once (not /x, /x/y and /x again)."""
    changes = plan_dirs(root, "/x/y/..")
    assert [c.host_path for c in changes] == [f"{ROOT}/x"]  # type: ignore[union-attr]


def test_plan_attrs_nothing_to_do() -> None:
    """Nothing named, or everything already as named: no change."""
    st = FileState("dir", 0o755, 0, 0)
    root = TargetRoot("/")
    assert plan_attrs(root, "/d", "/d", st, None, None, None) == []
    assert plan_attrs(root, "/d", "/d", st, 0o755, 0, 0) == []
    (change,) = plan_attrs(root, "/d", "/d", st, None, None, 9)
    assert (change.mode, change.uid, change.gid) == (None, 0, 9)  # type: ignore[union-attr]
