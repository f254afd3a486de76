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


def test_files_fsynced_each_directories_once(cli, target: Path, write,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Six files over two steps: six file fsyncs, and /etc/app (new entries) and /etc (got
    /etc/app) synced once each at the end of the stage, not once per file."""
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
    assert sorted(dirs) == sorted([str(target / "etc"), str(target / "etc" / "app")])
    assert (target / "etc" / "app" / "f4").read_text() == "4"


BEFORE_COMMAND = """
stages:
  boot:
    - files: [{path: /marker, content: x}]
    - if: "true"
      commands: ["echo done"]
"""


def test_directories_synced_before_anything_external_runs(cli, shell_target: Path, write,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """An `if:` or a command may act on the machine (even reboot it): the names written
    before it are made durable first."""
    events: list[str] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            events.append("sync " + os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    from edgeinit.target import exec as exec_

    real_run = exec_.run_shell

    def recording(root: str, command: str, timeout: float | None = None):  # type: ignore[no-untyped-def]
        events.append("run " + command)
        return real_run(root, command, timeout)

    monkeypatch.setattr(os, "fsync", counting)
    monkeypatch.setattr(exec_, "run_shell", recording)
    import edgeinit.engine.conditions as conditions

    monkeypatch.setattr(conditions, "run_shell", recording)
    res = cli("run", "--stage", "boot", "--root", shell_target, write("c.yaml", BEFORE_COMMAND))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert res.code == 0, res.err
    mine = [e for e in events if str(shell_target) in e or e.startswith("run ")]
    assert mine[:2] == [f"sync {shell_target}", "run true"]
