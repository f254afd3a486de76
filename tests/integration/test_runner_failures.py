"""How the runner reports what could not be done: one clear error, no false `changed`."""

from __future__ import annotations

from pathlib import Path

NO_SHELL = """
stages:
  boot:
    - name: cmd
      commands: [echo hi]
    - name: guarded
      if: "true"
      files: [{path: /guarded, content: x}]
"""


def test_commands_without_a_shell_fail_and_change_nothing(cli, target: Path, write) -> None:
    """A root with no /bin/sh: the command never started, so the step is not `changed`,
    and an `if:` that cannot be judged fails its step instead of skipping it."""
    report = cli("run", "--stage", "boot", "--root", target, "--json",
                 write("a.yaml", NO_SHELL)).json()
    cmd, guarded = report["steps"]
    assert cmd["status"] == "failed" and cmd["changed"] is False
    assert "no /bin/sh in the root" in cmd["error"]
    assert guarded["status"] == "failed" and "no /bin/sh" in guarded["error"]
    assert not (target / "guarded").exists()


BLOCKED = """
stages:
  boot:
    - name: blocked
      files:
        - {path: /blocker/a/b/one, content: "1"}
        - {path: /blocker/a/b/two, content: "2"}
        - {path: /fine, content: ok}
"""


def test_a_directory_that_cannot_be_made_is_reported_once_per_entry(cli, target: Path,
                                                                    write) -> None:
    """/blocker is a regular file: each entry under it fails with one message naming it,
    not one more error per missing directory below, and the other entry is written."""
    (target / "blocker").write_text("a file\n")
    report = cli("run", "--stage", "boot", "--root", target, "--json",
                 write("b.yaml", BLOCKED)).json()
    (step,) = report["steps"]
    assert step["status"] == "failed"
    errors = step["error"].split("; ")
    assert len(errors) == 2
    assert all("'/blocker' exists and is not a directory" in e for e in errors)
    assert (target / "fine").read_text() == "ok"
    assert (target / "blocker").read_text() == "a file\n"


IMMUTABLE = """
stages:
  boot:
    - name: deep
      files:
        - {path: /locked/a/b/c/file, content: x}
"""


def test_a_failed_mkdir_is_not_followed_by_an_error_per_child(cli, target: Path, write) -> None:
    """When making a directory fails on disk (here: an immutable parent), the changes
    below it are not attempted one by one: the step carries the one error that says why."""
    import shutil
    import subprocess

    import pytest

    from tests.conftest import IS_ROOT

    if not IS_ROOT or shutil.which("chattr") is None:
        pytest.skip("needs root and chattr to make a directory immutable")
    locked = target / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], check=False).returncode != 0:
        pytest.skip("this filesystem does not support the immutable attribute")
    try:
        report = cli("run", "--stage", "boot", "--root", target, "--json",
                     write("c.yaml", IMMUTABLE)).json()
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    (step,) = report["steps"]
    assert step["status"] == "failed"
    assert step["error"].count(";") == 0
    assert "cannot create directory /locked/a" in step["error"]
    assert step["changed"] is False


SECRET_COMMAND = """
stages:
  boot:
    - commands:
        - "usermod -p '$6$saltsalt$abcdefghijklmnopqrstuvwxyz0123456789' rey"
        - "echo password=hunter2 > /dev/null"
"""


def test_password_hashes_in_commands_are_masked_in_logs_and_report(cli, target: Path,
                                                                   write) -> None:
    """SPEC 7.9: a hash or a password= value in a command never reaches the log or the
    report (the commands fail here, no shell in the root, and still say nothing)."""
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              write("s.yaml", SECRET_COMMAND))
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in res.out + res.err
    assert "hunter2" not in res.out + res.err
    dry = cli("run", "--stage", "boot", "--root", target, "--dry-run",
              write("s.yaml", SECRET_COMMAND))
    assert "run: usermod -p '********' rey" in dry.out
    assert "hunter2" not in dry.out + dry.err
