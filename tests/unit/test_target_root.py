"""TargetRoot: every config path resolves inside the root, as it would under chroot.

SPEC 1 (`--root`): `..` and absolute symlinks are resolved as if DIR were `/`, and a
path can never leave the root. These tests build real symlink trees in tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeinit.target.root import MAX_SYMLINKS, FileState, PathError, TargetRoot, check_config_path


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    """A root with /etc/passwd and a directory outside it holding a decoy passwd."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("OUTSIDE\n")
    return root


def test_plain_path_maps_under_the_root(root_dir: Path) -> None:
    """The simplest case: /etc/passwd is ROOT/etc/passwd."""
    root = TargetRoot(str(root_dir))
    assert root.resolve("/etc/passwd") == str(root_dir / "etc" / "passwd")
    assert root.resolve("/") == str(root_dir)
    assert root.resolve("//etc/./passwd") == str(root_dir / "etc" / "passwd")


def test_root_path_is_canonical(tmp_path: Path, root_dir: Path) -> None:
    """A root given through a symlink is used by its real path (resolve compares prefixes)."""
    (tmp_path / "alias").symlink_to(root_dir)
    root = TargetRoot(str(tmp_path / "alias"))
    assert root.path == str(root_dir)
    assert not root.is_live
    assert TargetRoot("/").is_live


def test_dotdot_inside_a_relative_symlink_is_clamped_at_the_root(root_dir: Path) -> None:
    """A relative link climbing far above the root stops at the root, as in a chroot."""
    (root_dir / "a" / "b").mkdir(parents=True)
    os.symlink("../../../../../../etc", root_dir / "a" / "b" / "up")
    root = TargetRoot(str(root_dir))
    resolved = root.resolve("/a/b/up/passwd")
    assert resolved == str(root_dir / "etc" / "passwd")
    assert Path(resolved).read_text() == "inside\n"


def test_relative_symlink_resolves_from_its_own_directory(root_dir: Path) -> None:
    """`../z` in /x/y/link means /x/z: the link's directory is the base, not the root."""
    (root_dir / "x" / "y").mkdir(parents=True)
    os.symlink("../z", root_dir / "x" / "y" / "link")
    root = TargetRoot(str(root_dir))
    assert root.resolve("/x/y/link/f") == str(root_dir / "x" / "z" / "f")


def test_absolute_symlink_is_re_rooted(root_dir: Path, tmp_path: Path) -> None:
    """An absolute link (/etc/resolv.conf -> /run/...) points into the root, not the host."""
    os.symlink("/run/systemd/resolve/stub-resolv.conf", root_dir / "etc" / "resolv.conf")
    root = TargetRoot(str(root_dir))
    assert root.resolve("/etc/resolv.conf") == str(
        root_dir / "run" / "systemd" / "resolve" / "stub-resolv.conf")


def test_absolute_symlink_to_the_host_path_of_outside_stays_inside(
        root_dir: Path, tmp_path: Path) -> None:
    """A link naming the real host path of a file outside is still read inside the root."""
    os.symlink(str(tmp_path / "etc"), root_dir / "escape")
    root = TargetRoot(str(root_dir))
    resolved = root.resolve("/escape/passwd")
    assert resolved.startswith(str(root_dir) + os.sep)
    assert resolved == str(root_dir) + str(tmp_path / "etc" / "passwd")


def test_absolute_symlink_with_dotdot_cannot_leave(root_dir: Path) -> None:
    """`/../../etc` as a link target is clamped too (target's `..` at / stays at /)."""
    os.symlink("/../../../etc", root_dir / "lnk")
    root = TargetRoot(str(root_dir))
    assert root.resolve("/lnk/passwd") == str(root_dir / "etc" / "passwd")


def test_chained_symlinks_are_followed(root_dir: Path) -> None:
    """A link to a link to a directory ends at the final directory, inside the root."""
    (root_dir / "real").mkdir()
    os.symlink("/real", root_dir / "one")
    os.symlink("one", root_dir / "two")
    root = TargetRoot(str(root_dir))
    assert root.resolve("/two/f") == str(root_dir / "real" / "f")


@pytest.mark.parametrize("path", ["/../etc/passwd", "/etc/../../passwd", "/a/b/../../../x",
                                  "/.."])
def test_config_path_climbing_above_root_is_refused(root_dir: Path, path: str) -> None:
    """A config path whose own `..` climbs above / is a config error, never repaired."""
    root = TargetRoot(str(root_dir))
    with pytest.raises(PathError, match="climbs above the root"):
        root.resolve(path)


def test_config_path_dotdot_that_stays_inside_is_fine(root_dir: Path) -> None:
    """`/a/../etc/passwd` never goes above /, so it is an ordinary path."""
    root = TargetRoot(str(root_dir))
    assert root.resolve("/a/../etc/passwd") == str(root_dir / "etc" / "passwd")


@pytest.mark.parametrize("path", ["etc/passwd", "./etc", "", "~/x"])
def test_relative_or_empty_path_is_refused(root_dir: Path, path: str) -> None:
    """Config paths must be absolute: a relative one has no meaning inside the target."""
    root = TargetRoot(str(root_dir))
    with pytest.raises(PathError):
        root.resolve(path)


def test_nul_byte_is_refused() -> None:
    """A NUL byte would be cut by the kernel and name another file."""
    with pytest.raises(PathError, match="NUL"):
        check_config_path("/etc/passwd\0.bak")


def test_symlink_loop_is_refused(root_dir: Path) -> None:
    """a -> b -> a must end with an error, not hang."""
    os.symlink("/b", root_dir / "a")
    os.symlink("/a", root_dir / "b")
    root = TargetRoot(str(root_dir))
    with pytest.raises(PathError, match="too many levels of symbolic links"):
        root.resolve("/a/x")
    with pytest.raises(PathError, match="too many levels"):
        root.resolve("/a")


def test_self_loop_is_refused(root_dir: Path) -> None:
    """A link to itself is the shortest loop."""
    os.symlink("self", root_dir / "self")
    with pytest.raises(PathError):
        TargetRoot(str(root_dir)).resolve("/self")


def test_long_symlink_chain_under_the_limit_resolves(root_dir: Path) -> None:
    """A chain shorter than the limit is not mistaken for a loop."""
    (root_dir / "end").mkdir()
    os.symlink("/end", root_dir / "l0")
    for i in range(1, MAX_SYMLINKS):
        os.symlink(f"l{i - 1}", root_dir / f"l{i}")
    root = TargetRoot(str(root_dir))
    assert root.resolve(f"/l{MAX_SYMLINKS - 1}/f") == str(root_dir / "end" / "f")


def test_follow_false_keeps_final_symlink_but_resolves_parents(root_dir: Path) -> None:
    """lstat-like checks see the link itself; links in parent components still resolve."""
    (root_dir / "real").mkdir()
    os.symlink("/real", root_dir / "dir")
    os.symlink("/elsewhere", root_dir / "real" / "leaf")
    root = TargetRoot(str(root_dir))
    assert root.resolve("/dir/leaf", follow=False) == str(root_dir / "real" / "leaf")
    assert root.resolve("/dir/leaf") == str(root_dir / "elsewhere")


def test_display_gives_the_target_path(root_dir: Path) -> None:
    """Messages name paths as the target sees them, never the host path."""
    root = TargetRoot(str(root_dir))
    assert root.display(str(root_dir / "etc" / "passwd")) == "/etc/passwd"
    assert root.display(str(root_dir)) == "/"
    assert TargetRoot("/").display("/etc/hosts") == "/etc/hosts"


def test_state_reports_kind_mode_and_owner(root_dir: Path) -> None:
    """state() is what planning compares against: kind, permission bits, owner."""
    f = root_dir / "etc" / "passwd"
    f.chmod(0o640)
    os.symlink("passwd", root_dir / "etc" / "pw")
    root = TargetRoot(str(root_dir))
    st = root.state(str(f))
    assert st == FileState("file", 0o640, os.getuid(), os.getgid(), len("inside\n"))
    assert root.state(str(root_dir / "etc")).kind == "dir"  # type: ignore[union-attr]
    assert root.state(str(root_dir / "etc" / "pw")).kind == "link"  # type: ignore[union-attr]
    assert root.state(str(root_dir / "nothing")) is None
    assert root.state(str(f / "under-a-file")) is None


def test_read_text_of_missing_or_escaping_path_is_none(root_dir: Path) -> None:
    """read_text is a lenient fact reader: missing files and bad paths give None."""
    root = TargetRoot(str(root_dir))
    assert root.read_text("/etc/passwd") == "inside\n"
    assert root.read_text("/etc/missing") is None
    assert root.read_text("/../etc/passwd") is None
    assert root.read_text("relative") is None


def test_dry_run_overlay_is_seen_by_state_and_read(root_dir: Path) -> None:
    """A planned write in a dry run is what later steps see, without touching the disk."""
    root = TargetRoot(str(root_dir), dry_run=True)
    host = root.resolve("/etc/passwd")
    root.record(host, FileState("file", 0o600, 5, 6, 3), b"new")
    assert root.state(host) == FileState("file", 0o600, 5, 6, 3)
    assert root.read_bytes(host) == b"new"
    assert root.read_text("/etc/passwd") == "new"
    assert (root_dir / "etc" / "passwd").read_text() == "inside\n"  # disk untouched


def test_dry_run_overlay_of_a_new_file_and_directory(root_dir: Path) -> None:
    """Planned new paths exist for later planning; a planned dir cannot be read as a file."""
    root = TargetRoot(str(root_dir), dry_run=True)
    d = root.resolve("/opt/app")
    f = root.resolve("/opt/app/conf")
    root.record(d, FileState("dir", 0o755, 0, 0))
    root.record(f, FileState("file", 0o644, 0, 0, 2), b"hi")
    assert root.state(d).kind == "dir"  # type: ignore[union-attr]
    assert root.read_bytes(f) == b"hi"
    with pytest.raises(IsADirectoryError):
        root.read_bytes(d)
    assert not (root_dir / "opt").exists()
