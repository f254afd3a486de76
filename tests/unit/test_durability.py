"""What edgeinit fsyncs: every file before its rename, each directory once per step."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

FIVE_FILES = """
stages:
  boot:
    - name: five
      files:
""" + "".join(f"        - {{path: /etc/app/f{i}, content: '{i}'}}\n" for i in range(5)) + """
    - name: one more
      files:
        - {path: /etc/app/g, content: g}
"""


def test_files_fsynced_each_directories_once_per_step(cli, target: Path, write,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Five files in one step: five file fsyncs, and /etc/app (new entries) and /etc (got
    /etc/app) synced once each in that step, not once per file; the next step syncs
    /etc/app again because it added an entry there."""
    synced: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        st = os.fstat(fd)
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        synced.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    res = cli("run", "--stage", "boot", "--root", target, "--json", write("f.yaml", FIVE_FILES))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert res.code == 0, res.err
    files = [p for kind, p in synced if kind == "file" and str(target) in p]
    dirs = [p for kind, p in synced if kind == "dir" and str(target) in p]
    assert len(files) == 6
    assert sorted(dirs) == sorted([str(target / "etc"), str(target / "etc" / "app"),
                                   str(target / "etc" / "app")])
    assert (target / "etc" / "app" / "f4").read_text() == "4"
