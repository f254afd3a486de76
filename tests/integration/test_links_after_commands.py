"""Path resolution stays right when a command changes the tree mid-stage.

TargetRoot remembers which directories are not symbolic links (a stage with thousands
of files would otherwise lstat every component again and again); a command can turn
such a directory into a link, so that memory must not outlive a command.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import _ldd_paths

CONFIG = """
stages:
  boot:
    - files: [{path: /data/first, content: "1"}]
    - commands: ["/bin/mv /data /moved", "/bin/ln -s /moved /data"]
    - files: [{path: /data/second, content: "2"}]
"""


def _install(root: Path, *tools: str) -> None:
    for tool in tools:
        binary = os.path.realpath(shutil.which(tool) or f"/bin/{tool}")
        for src in [binary, *_ldd_paths(binary)]:
            dest = root / src.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(src), dest)
        link = root / "bin" / tool
        if not link.exists():
            link.symlink_to(os.path.relpath(root / binary.lstrip("/"), link.parent))


def test_a_directory_a_command_replaced_by_a_link_is_followed(cli, shell_target: Path,
                                                              write) -> None:
    """Step 1 writes under /data; a command moves /data away and links it; step 3's
    write must go through the new link (inside the root), not into a stale path."""
    _install(shell_target, "mv", "ln")
    res = cli("run", "--stage", "boot", "--root", shell_target, write("c.yaml", CONFIG))
    assert res.code == 0, res.out + res.err
    assert (shell_target / "data").is_symlink()
    assert (shell_target / "moved" / "first").read_text() == "1"
    assert (shell_target / "moved" / "second").read_text() == "2"


def test_memory_is_dropped_by_forget_links(target: Path) -> None:
    """Unit view: after forget_links(), a directory turned into a link is followed."""
    from edgeinit.target.root import TargetRoot

    (target / "d").mkdir()
    root = TargetRoot(str(target))
    assert root.resolve("/d/x") == str(target / "d" / "x")
    (target / "d").rmdir()
    (target / "real").mkdir()
    (target / "d").symlink_to("/real")
    root.forget_links()
    assert root.resolve("/d/x") == str(target / "real" / "x")
