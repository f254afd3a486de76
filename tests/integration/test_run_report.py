"""The run report (SPEC section 5) and `edgeinit status` (SPEC section 1): shape and
types, what each field means, where the report is stored, and how status reads it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

REPORT_KEYS = {"stage", "root", "ok", "dry_run", "started", "duration_s", "steps"}
STEP_KEYS = {"stage", "source", "name", "status", "changed", "reason", "error", "warnings",
             "duration_s"}
# Not in SPEC 5: edgeinit adds the list of changes made (or planned) to each entry.
EXTRA_STEP_KEYS = {"changes"}

MIXED = """\
name: mixed
stages:
  boot.before:
    - name: writes
      files: [{path: /written, content: "x\\n"}]
  boot:
    - name: skipped-one
      node: '^no-such-host$'
    - files: [{path: /blocker/child, content: x}]
  boot.after:
    - name: typo
      permissons: 0600
"""

BAD_YAML = """\
stages:
  boot.before:
    - name: a
  boot:
    - name: a: b
  boot.after:
    - name: c
"""


def check_shape(report: dict, *, dry_run: bool = False) -> None:
    """Every key of SPEC 5 with its type; nothing but known keys."""
    assert set(report) == REPORT_KEYS
    assert isinstance(report["stage"], str) and isinstance(report["root"], str)
    assert isinstance(report["ok"], bool) and report["dry_run"] is dry_run
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", report["started"])
    assert isinstance(report["duration_s"], int | float) and not isinstance(
        report["duration_s"], bool) and report["duration_s"] >= 0
    assert isinstance(report["steps"], list)
    for step in report["steps"]:
        expected = STEP_KEYS | ({"diff"} if dry_run else set())
        assert expected <= set(step) <= expected | EXTRA_STEP_KEYS, set(step) ^ expected
        assert isinstance(step["stage"], str) and isinstance(step["source"], str)
        assert step["name"] is None or isinstance(step["name"], str)
        assert step["status"] in ("ok", "failed", "skipped")
        assert isinstance(step["changed"], bool)
        assert step["reason"] is None or isinstance(step["reason"], str)
        assert step["error"] is None or isinstance(step["error"], str)
        assert isinstance(step["warnings"], list)
        assert all(isinstance(w, str) for w in step["warnings"])
        assert isinstance(step["duration_s"], int | float) and step["duration_s"] >= 0
        assert (step["reason"] is not None) == (step["status"] == "skipped")
        assert (step["error"] is not None) == (step["status"] == "failed")
        if dry_run:
            assert isinstance(step["diff"], str)
        if "changes" in step:
            assert all(isinstance(c, str) for c in step["changes"])


def run_json(cli, *args) -> tuple[int, dict]:
    res = cli("run", *map(str, args), "--json")
    return res.code, res.json()


# -- shape -----------------------------------------------------------------------------------


def test_report_keys_and_types(cli, target, write):
    """The report and each step entry have exactly SPEC 5's keys, with its types."""
    (target / "blocker").write_text("file\n")
    code, report = run_json(cli, "--stage", "boot", "--root", target,
                            write("m.yaml", MIXED), write("bad.yaml", BAD_YAML))
    assert code == 1
    check_shape(report)
    assert {s["status"] for s in report["steps"]} == {"ok", "failed", "skipped"}
    assert report["stage"] == "boot" and report["dry_run"] is False
    assert report["root"] == os.path.realpath(target)


def test_report_shape_of_an_empty_run(cli, target):
    """A run with nothing to do still has the full shape, ok and no steps."""
    code, report = run_json(cli, "--stage", "nothing", "--root", target)
    assert code == 0
    check_shape(report)
    assert report["steps"] == [] and report["ok"] is True and report["stage"] == "nothing"


def test_each_entry_names_its_sub_stage_and_source(cli, target, write):
    """`stage` is the sub-stage of the entry, `source` the file it came from."""
    src = write("m.yaml", MIXED)
    (target / "blocker").write_text("file\n")
    _, report = run_json(cli, "--stage", "boot", "--root", target, src)
    assert [(s["stage"], s["source"]) for s in report["steps"]] == [
        ("boot.before", str(src)), ("boot", str(src)), ("boot", str(src)),
        ("boot.after", str(src))]


def test_name_is_the_step_name_or_its_index(cli, target, write):
    """`name` is the step's `name:`, or its 0-based index in the stage's list as a string."""
    src = write("n.yaml", "stages:\n  boot.before:\n    - {}\n  boot:\n    - name: first\n"
                          "    - {}\n    - name: ''\n    - name: last\n    - {}\n")
    _, report = run_json(cli, "--stage", "boot", "--root", target, src)
    assert [s["name"] for s in report["steps"]] == ["0", "first", "1", "2", "last", "4"]


def test_source_under_root_starts_with_the_root(cli, target):
    """A config found under --root is reported by its path on the running machine."""
    oem = target / "oem"
    oem.mkdir()
    (oem / "a.yaml").write_text("stages:\n  boot:\n    - name: s\n")
    _, report = run_json(cli, "--stage", "boot", "--root", target)
    assert [s["source"] for s in report["steps"]] == [str(target / "oem" / "a.yaml")]


# -- status, changed, reason, error, warnings ---------------------------------------------------


def test_changed_is_true_only_when_something_changed(cli, shell_target, write):
    """`changed` is true for a step that changed the disk or ran commands, else false."""
    (shell_target / "same").write_text("same\n")
    src = write("c.yaml", """\
stages:
  boot:
    - name: new-file
      files: [{path: /new, content: "n\\n"}]
    - name: unchanged-file
      files: [{path: /same, content: "same\\n"}]
    - name: command
      commands: ['true']
    - name: empty
    - name: chmod-only
      files: [{path: /same, content: "same\\n", permissions: 0600}]
""")
    code, report = run_json(cli, "--stage", "boot", "--root", shell_target, src)
    assert code == 0
    assert {s["name"]: s["changed"] for s in report["steps"]} == {
        "new-file": True, "unchanged-file": False, "command": True, "empty": False,
        "chmod-only": True}


def test_skipped_entry_has_a_reason_and_no_error(cli, target, write):
    """Only a false condition skips; `reason` names the condition, `error` stays null."""
    src = write("s.yaml", "stages:\n  boot:\n    - name: s\n      only_os: '^plan9$'\n")
    code, report = run_json(cli, "--stage", "boot", "--root", target, src)
    (step,) = report["steps"]
    assert code == 0 and report["ok"] is True
    assert step["status"] == "skipped" and "only_os" in step["reason"] and step["error"] is None


def test_failed_entry_error_says_why(cli, target, write):
    """`error` of a failed step names what failed (here the path in the way)."""
    (target / "blocker").write_text("file\n")
    src = write("f.yaml", "stages:\n  boot:\n    - files: [{path: /blocker/child, content: x}]\n")
    code, report = run_json(cli, "--stage", "boot", "--root", target, src)
    (step,) = report["steps"]
    assert code == 1 and step["status"] == "failed" and step["reason"] is None
    assert "/blocker" in step["error"]


def test_unknown_key_warning_has_file_line_and_suggestion(cli, target, write):
    """An unknown key is a warning with file, line and a did-you-mean; the step runs."""
    src = write("u.yaml", "stages:\n  boot:\n    - name: s\n      files:\n        - path: /f\n"
                          "          content: x\n          permissons: 0600\n")
    code, report = run_json(cli, "--stage", "boot", "--root", target, src)
    (step,) = report["steps"]
    assert code == 0 and step["status"] == "ok"
    (warning,) = step["warnings"]
    assert warning.startswith(f"{src}:7:11: ")
    assert "unknown key 'permissons'" in warning and "did you mean 'permissions'" in warning
    assert (target / "f").stat().st_mode & 0o7777 == 0o644  # the typo was not applied
    assert "permissons" in cli("run", "--stage", "boot", "--root", target, src).err  # logged


def test_actions_left_out_under_root_are_warnings(cli, target, write):
    """Under --root, kernel hostname, sysctl and module loading are left out and named."""
    src = write("w.yaml", "stages:\n  boot:\n    - hostname: rooted\n"
                          "      sysctl: {vm.swappiness: 10}\n      modules: [loop]\n")
    code, report = run_json(cli, "--stage", "boot", "--root", target, src)
    (step,) = report["steps"]
    assert code == 0 and step["status"] == "ok"
    joined = "\n".join(step["warnings"])
    assert "hostname" in joined and "vm.swappiness" in joined and "loop" in joined
    assert len(step["warnings"]) == 3
    assert (target / "etc" / "hostname").read_text() == "rooted\n"


def test_whole_file_warnings_are_logged_not_per_step(cli, target, write):
    """Warnings about a whole file (unsupported cloud-config keys) go to the log."""
    src = write("cc.yaml", "#cloud-config\nhostname: h1\nchpasswd: {expire: false}\n")
    res = cli("run", "--stage", "initramfs", "--root", target, "--json", src)
    assert res.code == 0
    assert any("chpasswd" in line and line.startswith("warning") for line in res.err.splitlines())
    assert not any("chpasswd" in w for s in res.json()["steps"] for w in s["warnings"])


# -- failed sources ------------------------------------------------------------------------------


def test_failed_source_appears_once_with_name_null_and_line(cli, target, write):
    """A source that fails to load is one entry: the requested stage, failed, its file,
    name null, and an error naming the line."""
    bad = write("d/bad.yaml", BAD_YAML)
    write("d/good.yaml", "stages:\n  boot:\n    - name: good\n")
    code, report = run_json(cli, "--stage", "boot", "--root", target, bad.parent)
    assert code == 1 and report["ok"] is False
    failed = [s for s in report["steps"] if s["status"] == "failed"]
    assert len(failed) == 1
    (entry,) = failed
    assert (entry["stage"], entry["source"], entry["name"]) == ("boot", str(bad), None)
    assert re.search(r"(:5:\d+:|line 5)", entry["error"]), entry["error"]
    assert [s["name"] for s in report["steps"] if s["status"] == "ok"] == ["good"]


def test_failed_url_source_appears_once(cli, target, http_server):
    """A URL that cannot be fetched is one failed entry naming the URL."""
    url = http_server() + "/missing.yaml"
    code, report = run_json(cli, "--stage", "boot", "--root", target, url)
    assert code == 1
    assert [(s["stage"], s["source"], s["name"], s["status"]) for s in report["steps"]] == [
        ("boot", url, None, "failed")]
    assert "404" in report["steps"][0]["error"]


# -- ok and the exit status -----------------------------------------------------------------------


@pytest.mark.parametrize(("config", "ok"), [
    ("stages:\n  boot:\n    - name: fine\n", True),
    ("stages:\n  boot:\n    - name: skip\n      node: '^x$'\n", True),
    ("stages:\n  boot:\n    - name: bad\n      files: notalist\n", False),
    ("stages:\n  boot:\n    - users: {bob: {}}\n", False),
    ("stages: [broken\n", False),
])
def test_ok_and_exit_status_agree(cli, target, write, config, ok):
    """`ok` is true exactly when no entry failed, and the exit status follows it."""
    code, report = run_json(cli, "--stage", "boot", "--root", target, write("c.yaml", config))
    assert report["ok"] is ok
    assert report["ok"] == all(s["status"] != "failed" for s in report["steps"])
    assert code == (0 if ok else 1)


# -- the stored report ----------------------------------------------------------------------------


def test_real_run_stores_the_report_in_the_state_dir(cli, target, write, state_dir):
    """A real run writes $EDGEINIT_STATE_DIR/STAGE.json, equal to the printed report."""
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              write("a.yaml", "stages:\n  boot:\n    - name: s\n"))
    stored = json.loads((state_dir / "boot.json").read_text())
    assert stored == res.json()
    check_shape(stored)


def test_text_mode_run_also_stores_the_report(cli, target, write, state_dir):
    """The report is stored whether or not --json is given."""
    cli("run", "--stage", "fs", "--root", target, write("a.yaml", "stages:\n  fs:\n    - {}\n"))
    assert json.loads((state_dir / "fs.json").read_text())["steps"][0]["name"] == "0"


def test_dry_run_does_not_store_a_report(cli, target, write, state_dir):
    """A dry run leaves the state directory alone (an earlier report stays as it was)."""
    src = write("a.yaml", "stages:\n  boot:\n    - files: [{path: /f, content: x}]\n")
    cli("run", "--stage", "network", "--root", target, src)
    before = {p.name: p.read_bytes() for p in state_dir.glob("*.json")}
    res = cli("run", "--stage", "boot", "--root", target, "--dry-run", "--json", src)
    assert res.code == 0 and res.json()["dry_run"] is True
    assert {p.name: p.read_bytes() for p in state_dir.glob("*.json")} == before
    assert not (state_dir / "boot.json").exists()


def test_a_new_run_replaces_the_stages_report_and_keeps_others(cli, target, write, state_dir):
    """STAGE.json holds the last run of STAGE; other stages' reports stay."""
    ok = write("ok.yaml", "stages:\n  boot:\n    - name: s\n  network:\n    - name: n\n")
    bad = write("bad.yaml", "stages:\n  boot:\n    - files: nope\n")
    cli("run", "--stage", "network", "--root", target, ok)
    cli("run", "--stage", "boot", "--root", target, ok)
    assert json.loads((state_dir / "boot.json").read_text())["ok"] is True
    cli("run", "--stage", "boot", "--root", target, bad)
    assert json.loads((state_dir / "boot.json").read_text())["ok"] is False
    assert json.loads((state_dir / "network.json").read_text())["ok"] is True


# -- edgeinit status -------------------------------------------------------------------------


def test_status_with_no_reports_exits_1(cli, state_dir):
    """No recorded report: exit 1 (text and --json)."""
    res = cli("status")
    assert res.code == 1 and res.out == ""
    res = cli("status", "--json")
    assert res.code == 1 and json.loads(res.out) == {}


def test_status_all_ok(cli, target, write):
    """Every recorded report ok: exit 0, one line per stage with stage, ok, when, 0 failed."""
    src = write("a.yaml", "stages:\n  boot:\n    - name: s\n  network:\n    - name: n\n")
    reports = {s: cli("run", "--stage", s, "--root", target, "--json", src).json()
               for s in ("boot", "network")}
    res = cli("status")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert len(lines) == 2
    for stage, line in zip(("boot", "network"), lines, strict=True):
        fields = line.split()
        assert fields[0] == stage and fields[1] == "ok"
        assert reports[stage]["started"] in line
        assert re.search(r"\b0\b", " ".join(fields[2:]))


def test_status_any_failed(cli, target, write):
    """One failed stage: exit 1; its line says failed and how many steps failed."""
    src = write("a.yaml", "stages:\n  boot:\n    - files: nope\n    - files: nope\n"
                          "    - name: fine\n  network:\n    - name: n\n")
    cli("run", "--stage", "boot", "--root", target, src)
    cli("run", "--stage", "network", "--root", target, src)
    res = cli("status")
    assert res.code == 1
    by_stage = {line.split()[0]: line for line in res.out.splitlines()}
    assert set(by_stage) == {"boot", "network"}
    assert by_stage["boot"].split()[1] == "failed" and re.search(r"\b2\b", by_stage["boot"])
    assert by_stage["network"].split()[1] == "ok"


def test_status_json_maps_each_stage_to_its_last_report(cli, target, write, state_dir):
    """`status --json` is {stage: last report}; exit status as in text mode."""
    src = write("a.yaml", "stages:\n  boot:\n    - name: s\n  rootfs:\n    - files: nope\n")
    cli("run", "--stage", "boot", "--root", target, src)
    last = cli("run", "--stage", "boot", "--root", target, "--json", src).json()
    failed = cli("run", "--stage", "rootfs", "--root", target, "--json", src).json()
    res = cli("status", "--json")
    assert res.code == 1
    assert json.loads(res.out) == {"boot": last, "rootfs": failed}
    (state_dir / "rootfs.json").unlink()
    res = cli("status", "--json")
    assert res.code == 0 and json.loads(res.out) == {"boot": last}


def test_status_wait_returns_at_once_when_nothing_runs(cli, target, write):
    """`status --wait` with no run in progress returns the status right away."""
    cli("run", "--stage", "boot", "--root", target, write("a.yaml", "stages:\n  boot:\n    - {}\n"))
    res = cli("status", "--wait", "--timeout", "5")
    assert res.code == 0 and res.out.split()[:2] == ["boot", "ok"]
    assert cli("status", "--wait", "--timeout", "5", "--json").code == 0


def test_status_wait_waits_for_a_run_in_progress(cli, shell_target, write, state_dir):
    """`status --wait` does not return while a run holds the lock, and does once it ends."""
    src = write("slow.yaml", """\
stages:
  boot:
    - commands:
        - 'echo started > /started; i=0; while [ ! -e /go ] && [ $i -lt 2000000 ]; do i=$((i+1)); done'
""")  # noqa: E501
    env = {**os.environ, "EDGEINIT_STATE_DIR": str(state_dir)}
    empty = shell_target.parent / "empty-cmdline"
    empty.write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeinit", "run", "--stage", "boot", "--root", str(shell_target),
         "--cmdline", str(empty), str(src)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # until the command runs (bounded: 30 s)
            if (shell_target / "started").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert (shell_target / "started").exists()
        waiting = cli("status", "--wait", "--timeout", "0.3")
        assert waiting.code == 1 and "in progress" in waiting.err
        (shell_target / "go").write_text("")
        assert proc.wait(timeout=60) == 0
    finally:
        (shell_target / "go").touch()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    done = cli("status", "--wait", "--timeout", "5")
    assert done.code == 0 and done.out.split()[:2] == ["boot", "ok"]


def test_status_process_reads_what_run_process_wrote(cli_process, target, write):
    """A real `run` process and a real `status` process agree through the state dir."""
    src = write("a.yaml", "stages:\n  boot:\n    - files: nope\n")
    assert cli_process("run", "--stage", "boot", "--root", str(target), str(src)).code == 1
    res = cli_process("status", "--json")
    assert res.code == 1
    assert json.loads(res.out)["boot"]["ok"] is False


def test_state_dir_variable_is_honoured(cli, target, write, tmp_path, monkeypatch):
    """EDGEINIT_STATE_DIR decides where reports go and where status reads them."""
    other = tmp_path / "other-state"
    monkeypatch.setenv("EDGEINIT_STATE_DIR", str(other))
    cli("run", "--stage", "boot", "--root", target, write("a.yaml", "stages:\n  boot:\n  - {}\n"))
    assert (other / "boot.json").is_file()
    assert cli("status").code == 0
    monkeypatch.setenv("EDGEINIT_STATE_DIR", str(tmp_path / "empty-state"))
    assert cli("status").code == 1
