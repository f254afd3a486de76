"""`run --dry-run` (SPEC section 1, 7.9): nothing on disk changes, no command runs,
`if:` is still evaluated, each file to write gets a unified diff (in the step's `diff`
with --json), and secrets never show in a diff."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

Snapshot = dict[str, tuple]


def snapshot(root: Path) -> Snapshot:
    """Every path under `root` (itself included): kind, mode, owner, content or link."""
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[path] = ("link", mode, st.st_uid, st.st_gid, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[path] = ("dir", mode, st.st_uid, st.st_gid, None)
            elif stat.S_ISREG(st.st_mode):
                out[path] = ("file", mode, st.st_uid, st.st_gid, Path(path).read_bytes())
            else:
                out[path] = ("other", mode, st.st_uid, st.st_gid, None)
    return out


def snapshot_diff(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths that differ, for readable assertion messages."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


EVERYTHING = """\
stages:
  boot.before:
    - name: dirs
      directories:
        - {path: /var/lib/app, permissions: 0700}
        - {path: /existing-dir, permissions: 0700}
  boot:
    - name: files
      files:
        - path: /etc/motd
          content: "new line\\n"
        - path: /var/lib/app/conf
          content: "key=value\\n"
        - path: /etc/chmod-me
          content: "same\\n"
          permissions: 0600
      commands:
        - 'echo ran > /ran'
    - name: system
      hostname: dry-node
      dns: {nameservers: [192.0.2.1]}
      timesyncd: {NTP: ntp.example}
      environment: {FOO: bar}
      environment_file: /etc/app.env
  boot.after:
    - name: commands-only
      commands: ['echo ran-after > /ran-after']
"""


@pytest.fixture
def populated(shell_target: Path) -> Path:
    """A shell target with some existing files the config would change."""
    (shell_target / "etc" / "motd").write_text("old line\n")
    (shell_target / "etc" / "chmod-me").write_text("same\n")
    (shell_target / "existing-dir").mkdir(mode=0o755)
    (shell_target / "etc" / "hostname").write_text("old-node\n")
    (shell_target / "etc" / "app.env").write_text("# keep\nOTHER=1\n")
    return shell_target


def test_dry_run_changes_nothing_and_runs_no_commands(cli, populated, write, state_dir):
    """A dry run leaves the full tree (content, mode, owner) and the state dir as they were,
    and runs no command, while the report says what would change."""
    src = write("all.yaml", EVERYTHING)
    before = snapshot(populated)
    res = cli("run", "--stage", "boot", "--root", populated, "--dry-run", "--json", src)
    assert res.code == 0, res.err
    assert snapshot_diff(before, snapshot(populated)) == []
    assert not (populated / "ran").exists() and not (populated / "ran-after").exists()
    assert not (state_dir / "boot.json").exists()
    report = res.json()
    assert report["dry_run"] is True and report["ok"] is True
    assert {s["name"]: (s["status"], s["changed"]) for s in report["steps"]} == {
        "dirs": ("ok", True), "files": ("ok", True), "system": ("ok", True),
        "commands-only": ("ok", True)}


def test_dry_run_then_real_run_do_the_same(cli, populated, write):
    """What a dry run says would change is what a real run then changes."""
    src = write("all.yaml", EVERYTHING)
    dry = cli("run", "--stage", "boot", "--root", populated, "--dry-run", "--json", src).json()
    real = cli("run", "--stage", "boot", "--root", populated, "--json", src).json()
    assert [(s["name"], s["status"], s["changed"]) for s in dry["steps"]] == [
        (s["name"], s["status"], s["changed"]) for s in real["steps"]]
    assert (populated / "ran").read_text() == "ran\n"
    assert (populated / "etc" / "motd").read_text() == "new line\n"
    assert (populated / "existing-dir").stat().st_mode & 0o7777 == 0o700


def test_if_is_still_evaluated(cli, shell_target, write):
    """`if:` runs in a dry run: a false one skips the step, a true one lets it plan."""
    src = write("if.yaml", "stages:\n  boot:\n"
                           "    - name: gated\n      if: '[ -e /flag ]'\n"
                           "      files: [{path: /out, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--dry-run", "--json", src)
    (step,) = res.json()["steps"]
    assert step["status"] == "skipped" and step["reason"].startswith("if")
    assert step["diff"] == ""
    (shell_target / "flag").write_text("")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--dry-run", "--json", src)
    (step,) = res.json()["steps"]
    assert step["status"] == "ok" and step["changed"] is True and "+++ /out" in step["diff"]
    assert not (shell_target / "out").exists()


def test_text_dry_run_prints_a_unified_diff_per_file(cli, target, write):
    """Without --json, each file to write is shown as a unified diff on stdout."""
    (target / "etc" / "motd").write_text("keep\nold line\n")
    src = write("d.yaml", "stages:\n  boot:\n    - files:\n"
                          "        - {path: /etc/motd, content: \"keep\\nnew line\\n\"}\n"
                          "        - {path: /etc/new.conf, content: \"fresh\\n\"}\n")
    before = snapshot(target)
    res = cli("run", "--stage", "boot", "--root", target, "--dry-run", src)
    assert res.code == 0, res.err
    out = res.out
    assert "--- /etc/motd" in out and "+++ /etc/motd" in out
    assert "-old line" in out and "+new line" in out and " keep" in out
    assert "--- /dev/null" in out and "+++ /etc/new.conf" in out and "+fresh" in out
    assert out.count("+++ /etc/motd") == 1 and out.count("+++ /etc/new.conf") == 1
    assert "@@" in out
    assert snapshot_diff(before, snapshot(target)) == []


def test_json_dry_run_puts_the_diff_in_the_step_and_only_json_on_stdout(cli, target, write):
    """With --json, the diff is each step's `diff` field; stdout is only the report."""
    (target / "etc" / "motd").write_text("old line\n")
    src = write("d.yaml", "stages:\n  boot:\n"
                          "    - name: one\n      files: [{path: /etc/motd, content: \"new\\n\"}]\n"
                          "    - name: two\n      files: [{path: /etc/two, content: \"2\\n\"}]\n"
                          "    - name: none\n")
    res = cli("run", "--stage", "boot", "--root", target, "--dry-run", "--json", src)
    report = json.loads(res.out)  # all of stdout is one JSON document
    diffs = {s["name"]: s["diff"] for s in report["steps"]}
    assert "--- /etc/motd" in diffs["one"] and "-old line" in diffs["one"]
    assert "+new" in diffs["one"] and "/etc/two" not in diffs["one"]
    assert "+++ /etc/two" in diffs["two"] and "+2" in diffs["two"]
    assert diffs["none"] == ""
    assert "-old line" not in res.err  # the diff is in the report only


def test_real_run_report_has_no_diff(cli, target, write):
    """`diff` belongs to dry runs only."""
    src = write("d.yaml", "stages:\n  boot:\n    - files: [{path: /x, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert "diff" not in res.json()["steps"][0]


def test_dry_run_plans_against_earlier_planned_steps(cli, target, write):
    """Later steps see what earlier steps would have done: a file in a directory that
    would be created plans fine, and writing the same content again would change nothing."""
    src = write("d.yaml", "stages:\n  boot:\n"
                          "    - name: mkdir\n      directories: [{path: /new/dir}]\n"
                          "    - name: file\n      files: [{path: /new/dir/f, content: x}]\n"
                          "    - name: again\n      files: [{path: /new/dir/f, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--dry-run", "--json", src)
    assert res.code == 0, res.err
    assert [(s["name"], s["status"], s["changed"]) for s in res.json()["steps"]] == [
        ("mkdir", "ok", True), ("file", "ok", True), ("again", "ok", False)]
    assert not (target / "new").exists()


def test_dry_run_reports_failures_with_exit_1(cli, target, write):
    """A step that would fail fails in the dry run too, and nothing is written."""
    (target / "blocker").write_text("file\n")
    src = write("d.yaml", "stages:\n  boot:\n    - files: [{path: /blocker/x, content: x}]\n"
                          "    - files: [{path: /fine, content: x}]\n")
    before = snapshot(target)
    res = cli("run", "--stage", "boot", "--root", target, "--dry-run", "--json", src)
    assert res.code == 1
    assert [s["status"] for s in res.json()["steps"]] == ["failed", "ok"]
    assert snapshot_diff(before, snapshot(target)) == []


# -- secrets ------------------------------------------------------------------------------------

HASH = "$6$rounds=5000$saltsalt$Zq1Rn8K0dGkP0wTq7c5z6m3yZbQe0u2vA9c8n7m6l5k4j3h2g1f0"
SECRET = "s3cr3t-t0ken-do-not-show"


@pytest.mark.parametrize("json_mode", [False, True])
def test_password_hash_lines_are_masked(cli, target, write, json_mode):
    """A `$6$...` hash in a world-readable file never appears in the diff or the logs."""
    (target / "etc" / "cred").write_text(f"admin:{HASH}:19000:0:99999:7:::\n")
    new_hash = HASH.replace("saltsalt", "newsalt1")
    src = write("s.yaml", "stages:\n  boot:\n    - files:\n        - path: /etc/cred\n"
                          f"          content: 'admin:{new_hash}:19001:0:99999:7:::\\n'\n"
                          "          permissions: 0644\n")
    args = ["run", "--stage", "boot", "--root", target, "--dry-run", src]
    res = cli(*args, *(["--json"] if json_mode else []))
    assert res.code == 0, res.err
    shown = res.json()["steps"][0]["diff"] if json_mode else res.out
    assert "--- /etc/cred" in shown and "+++ /etc/cred" in shown
    assert "19001" in shown  # the rest of the line is still shown
    for text in (res.out, res.err):
        assert "saltsalt" not in text and "newsalt1" not in text
        assert "Zq1Rn8K0" not in text


@pytest.mark.parametrize("json_mode", [False, True])
def test_private_file_content_is_not_shown(cli, target, write, json_mode):
    """A 0600 file's content is summarised, never shown, in a dry-run diff."""
    (target / "etc" / "token").write_text("old-token-value\n")
    (target / "etc" / "token").chmod(0o600)
    src = write("s.yaml", "stages:\n  boot:\n    - files:\n        - path: /etc/token\n"
                          f"          content: '{SECRET}\\n'\n"
                          "        - path: /etc/new-secret\n"
                          f"          content: '{SECRET}-2\\n'\n          permissions: 0600\n")
    args = ["run", "--stage", "boot", "--root", target, "--dry-run", src]
    res = cli(*args, *(["--json"] if json_mode else []))
    assert res.code == 0, res.err
    shown = res.json()["steps"][0]["diff"] if json_mode else res.out
    assert "/etc/token" in shown and "/etc/new-secret" in shown
    for text in (res.out, res.err):
        assert SECRET not in text and "old-token-value" not in text
