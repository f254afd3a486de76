"""`directories` (yip-behaviour 3.2, SPEC 7.2): ancestors like the leaf; existing dirs get
only what the entry names; a non-directory in the way fails the entry."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from edgeinit.target.changes import MakeDir, SetAttrs
from tests.conftest import needs_root
from tests.unit.plugin_harness import fake_root_user, run_step

T = "/target"


@pytest.fixture
def fake(fs: FakeFilesystem) -> str:
    fake_root_user()
    fs.create_dir(f"{T}/etc")
    fs.create_dir(f"{T}/tmp")
    os.chmod(f"{T}/tmp", 0o1777)
    return T


def test_new_directory_and_ancestors_take_the_leafs_mode_and_owner(fake: str) -> None:
    """yip test: /tmp/dir/subdir1/subdir2 0740 -> each created dir 0740; /tmp untouched."""
    run = run_step("directories: [{path: /tmp/dir/subdir1/subdir2, permissions: 0740, "
                   "owner: 1000, group: 100}]", fake)
    assert run.status == "ok"
    assert [(c.path, c.mode, c.uid, c.gid) for c in run.changes] == [  # type: ignore[union-attr]
        ("/tmp/dir", 0o740, 1000, 100),
        ("/tmp/dir/subdir1", 0o740, 1000, 100),
        ("/tmp/dir/subdir1/subdir2", 0o740, 1000, 100),
    ]
    assert all(isinstance(c, MakeDir) for c in run.changes)


def test_new_directory_without_permissions_is_0755_root(fake: str) -> None:
    """SPEC 7.2: 0755 where yip would create 0000."""
    run = run_step("directories: [{path: /var/lib/app}]", fake)
    assert [(c.path, c.mode, c.uid, c.gid) for c in run.changes] == [  # type: ignore[union-attr]
        ("/var", 0o755, 0, 0), ("/var/lib", 0o755, 0, 0), ("/var/lib/app", 0o755, 0, 0)]


def test_existing_directory_gets_only_the_named_mode(fs: FakeFilesystem, fake: str) -> None:
    """yip test: an existing 0755 dir with permissions 0740 is chmodded; owner untouched."""
    fs.create_dir(f"{T}/srv")
    os.chmod(f"{T}/srv", 0o755)
    os.chown(f"{T}/srv", 5, 6)
    run = run_step("directories: [{path: /srv, permissions: 0740}]", fake)
    assert [type(c) for c in run.changes] == [SetAttrs]
    c = run.changes[0]
    assert (c.mode, c.uid, c.gid) == (0o740, None, None)  # type: ignore[union-attr]


def test_existing_directory_without_permissions_keeps_its_mode(fs: FakeFilesystem,
                                                               fake: str) -> None:
    """An entry naming only the owner changes the owner; the mode stays (yip: chmod 0)."""
    fs.create_dir(f"{T}/srv")
    os.chmod(f"{T}/srv", 0o700)
    os.chown(f"{T}/srv", 5, 6)
    run = run_step("directories: [{path: /srv, owner: 7}]", fake)
    (c,) = run.changes
    assert isinstance(c, SetAttrs)
    assert (c.mode, c.uid, c.gid) == (None, 7, 6)


def test_existing_directory_as_named_is_no_change(fs: FakeFilesystem, fake: str) -> None:
    """SPEC 7.13: nothing differs -> no change, changed false."""
    fs.create_dir(f"{T}/srv")
    os.chmod(f"{T}/srv", 0o750)
    run = run_step("directories: [{path: /srv, permissions: 0750, owner: 0, group: 0}]", fake)
    assert run.status == "ok" and run.changes == [] and not run.entry.changed
    assert run_step("directories: [{path: /srv}]", fake).changes == []


def test_existing_non_directory_fails_that_entry(fs: FakeFilesystem, fake: str) -> None:
    """A file where a directory is wanted fails the entry; the next entry still runs."""
    fs.create_file(f"{T}/etc/notadir")
    run = run_step("""
directories:
- {path: /etc/notadir}
- {path: /etc/notadir/sub}
- {path: /opt}
""", fake)
    assert run.status == "failed"
    assert "/etc/notadir: exists and is not a directory" in run.error
    assert "'/etc/notadir' exists and is not a directory" in run.error
    assert [c.path for c in run.changes] == ["/opt"]  # type: ignore[union-attr]


def test_symlink_to_a_directory_counts_as_the_directory(fs: FakeFilesystem,
                                                        fake: str) -> None:
    """An absolute symlink to a directory is followed inside the root, not replaced."""
    fs.create_dir(f"{T}/data/real")
    fs.create_symlink(f"{T}/srv", "/data/real")
    os.chmod(f"{T}/data/real", 0o755)
    run = run_step("directories: [{path: /srv, permissions: 0700}]", fake)
    (c,) = run.changes
    assert isinstance(c, SetAttrs) and c.host_path == f"{T}/data/real"


def test_dotdot_path_makes_only_the_directory_named(fake: str) -> None:
    """`/x/y/..` is /x: no stray /x/y is created."""
    run = run_step("directories: [{path: /x/y/..}]", fake)
    assert [c.host_path for c in run.changes] == [f"{T}/x"]  # type: ignore[union-attr]


def test_path_escaping_the_root_fails(fake: str) -> None:
    """A path climbing above / is refused."""
    run = run_step("directories: [{path: /../../x}]", fake)
    assert run.status == "failed" and "climbs above the root" in run.error


# ---------------------------------------------------------------- applied


@needs_root
def test_apply_exact_modes_and_owners(tmp_path: Path) -> None:
    """On disk: every created level 0740 1000:100 whatever the umask; parent untouched."""
    root = tmp_path / "root"
    (root / "tmp").mkdir(parents=True)
    (root / "tmp").chmod(0o1777)
    old = os.umask(0o077)
    try:
        run = run_step("directories: [{path: /tmp/dir/sub, permissions: 02770, owner: 1000, "
                       "group: 100}]", root, dry_run=False)
    finally:
        os.umask(old)
    assert run.status == "ok", run.error
    for d in (root / "tmp" / "dir", root / "tmp" / "dir" / "sub"):
        st = os.stat(d)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2770, 1000, 100)
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    again = run_step("directories: [{path: /tmp/dir/sub, permissions: 02770, owner: 1000, "
                     "group: 100}]", root, dry_run=False)
    assert again.changes == [] and not again.entry.changed


def test_apply_chmod_of_existing_directory(tmp_path: Path) -> None:
    """yip test: an existing 0755 directory becomes 0740."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d").chmod(0o755)
    run = run_step("directories: [{path: /d, permissions: 0740}]", root, dry_run=False)
    assert run.status == "ok" and run.entry.changed
    assert stat.S_IMODE(os.stat(root / "d").st_mode) == 0o740
