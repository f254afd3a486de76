"""The command line itself (SPEC section 1): exit codes, argument order, --version,
`python -m edgeinit`, where output and logs go, `validate` and `schema`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import edgeinit

FILE_A = """\
name: a
stages:
  boot:
    - name: one
      files:
        - path: /from-a
          content: "a\\n"
"""

FILE_B = """\
name: b
stages:
  boot:
    - name: two
      files:
        - path: /from-b
          content: "b\\n"
"""

FAILING = """\
stages:
  boot:
    - name: broken
      files:
        - path: /blocker/child
          content: "x"
    - name: after-the-failure
      files:
        - path: /still-written
          content: "y\\n"
"""


# -- exit status ---------------------------------------------------------------------


def test_exit_0_when_every_step_succeeds(cli, target, write):
    """Exit 0 means every step succeeded (SPEC 1, exit status)."""
    res = cli("run", "--stage", "boot", "--root", target, write("a.yaml", FILE_A))
    assert res.code == 0, res.err
    assert (target / "from-a").read_text() == "a\n"


def test_exit_0_when_steps_are_only_skipped(cli, target, write):
    """A step skipped by its condition is not a failure: still exit 0."""
    src = write("skip.yaml", "stages:\n  boot:\n    - node: '^no-such-host$'\n"
                             "      files: [{path: /never, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 0, res.err
    assert [s["status"] for s in res.json()["steps"]] == ["skipped"]
    assert not (target / "never").exists()


def test_exit_1_when_a_step_fails_and_later_steps_still_run(cli, target, write):
    """Exit 1 when anything failed, and every other step still ran."""
    (target / "blocker").write_text("i am a file\n")
    res = cli("run", "--stage", "boot", "--root", target, write("f.yaml", FAILING))
    assert res.code == 1
    assert (target / "still-written").read_text() == "y\n"
    assert (target / "blocker").read_text() == "i am a file\n"


@pytest.mark.parametrize("argv", [
    ("run", "--root", "/"),  # missing --stage
    ("run", "--stage", "boot", "--no-such-option"),
    ("run", "--stage"),  # --stage without its value
    ("status", "--bogus"),
    ("validate", "--bogus"),
    ("schema", "--bogus"),
    ("no-such-command",),
    (),
])
def test_exit_2_for_a_wrong_command_line(cli, argv):
    """A wrong command line (unknown option, missing --stage) exits 2 and says why."""
    res = cli(*argv)
    assert res.code == 2
    assert "error" in res.err.lower()
    assert res.out == ""


def test_missing_stage_message_names_the_option(cli, target):
    """The usage error for a missing --stage names the missing option."""
    res = cli("run", "--root", target)
    assert res.code == 2
    assert "--stage" in res.err


def test_unknown_option_message_names_it(cli, target):
    """The usage error for an unknown option names that option."""
    res = cli("run", "--stage", "boot", "--root", target, "--frobnicate")
    assert res.code == 2
    assert "--frobnicate" in res.err


def test_root_that_is_not_a_directory_is_a_usage_error(cli, tmp_path):
    """--root naming a missing directory is a wrong command line: exit 2, nothing runs."""
    res = cli("run", "--stage", "boot", "--root", tmp_path / "missing")
    assert res.code == 2
    assert "missing" in res.err


# -- argument order --------------------------------------------------------------------


def test_options_may_come_after_sources(cli, target, write):
    """`run SRC --stage S --root R` works like `run --stage S --root R SRC`."""
    src = write("a.yaml", FILE_A)
    res = cli("run", src, "--stage", "boot", "--root", target, "--json")
    assert res.code == 0, res.err
    report = res.json()
    assert report["stage"] == "boot"
    assert [s["source"] for s in report["steps"]] == [str(src)]
    assert (target / "from-a").exists()


def test_options_between_sources_keep_source_order(cli, target, write):
    """Sources split around options are all used, in the order given."""
    a, b = write("a.yaml", FILE_A), write("b.yaml", FILE_B)
    res = cli("run", b, "--stage", "boot", "--json", a, "--root", target)
    assert res.code == 0, res.err
    assert [s["name"] for s in res.json()["steps"]] == ["two", "one"]


# -- --version and python -m ------------------------------------------------------------


def test_version(cli):
    """`edgeinit --version` prints the program name and version and exits 0."""
    res = cli("--version")
    assert res.code == 0
    assert res.out.strip() == f"edgeinit {edgeinit.__version__}"
    assert re.fullmatch(r"edgeinit \d+\.\d+\.\d+\S*", res.out.strip())


def test_python_m_edgeinit_version_matches(cli, cli_process):
    """`python -m edgeinit --version` is the same program as `edgeinit --version`."""
    assert cli_process("--version").out == cli("--version").out
    assert cli_process("--version").code == 0


def test_python_m_edgeinit_runs_a_stage(cli_process, target, write):
    """A real process run writes the files and reports through the same exit codes."""
    res = cli_process("run", "--stage", "boot", "--root", str(target), "--json",
                      str(write("a.yaml", FILE_A)))
    assert res.code == 0, res.err
    assert res.json()["ok"] is True
    assert (target / "from-a").read_text() == "a\n"


def test_python_m_edgeinit_exit_1_on_failure(cli_process, target, write):
    """The real process exits 1 when a step failed (and still runs the rest)."""
    (target / "blocker").write_text("file\n")
    res = cli_process("run", "--stage", "boot", "--root", str(target),
                      str(write("f.yaml", FAILING)))
    assert res.code == 1
    assert (target / "still-written").exists()


def test_python_m_edgeinit_exit_2_on_usage(cli_process):
    """The real process exits 2 for a missing --stage, with usage on stderr."""
    res = cli_process("run")
    assert res.code == 2
    assert "usage" in res.err.lower()
    assert res.out == ""


def test_python_m_edgeinit_reads_stdin(cli_process, target):
    """`-` as a source reads standard input in a real process."""
    res = cli_process("run", "--stage", "boot", "--root", str(target), "--json", "-",
                      stdin=FILE_A)
    assert res.code == 0, res.err
    assert [s["source"] for s in res.json()["steps"]] == ["-"]
    assert (target / "from-a").exists()


# -- where output goes -----------------------------------------------------------------


def test_json_stdout_is_only_the_report_and_logs_go_to_stderr(cli, target, write):
    """With --json, stdout parses as one JSON document; log lines are on stderr."""
    src = write("warn.yaml", "stages:\n  boot:\n    - files: [{path: /w, content: x}]\n"
                             "      permissons: 1\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 0, res.err
    report = json.loads(res.out)
    assert report["steps"][0]["status"] == "ok"
    assert "unknown key 'permissons'" in res.err  # the warning was logged, on stderr
    assert "create /w" in res.err


def test_text_mode_prints_a_summary_on_stdout_and_logs_on_stderr(cli, target, write):
    """Without --json, stdout has the human report; logs still go to stderr."""
    res = cli("run", "--stage", "boot", "--root", target, write("a.yaml", FILE_A))
    assert res.code == 0
    assert "one" in res.out and "boot" in res.out
    assert "create /from-a" in res.err
    with pytest.raises(json.JSONDecodeError):
        json.loads(res.out)


@pytest.mark.parametrize(("level", "info_shown", "warning_shown"), [
    ("debug", True, True), ("info", True, True), ("warning", False, True),
    ("error", False, False),
])
def test_log_level_variable(cli, target, write, monkeypatch, level, info_shown, warning_shown):
    """EDGEINIT_LOG_LEVEL filters what is logged to stderr."""
    monkeypatch.setenv("EDGEINIT_LOG_LEVEL", level)
    src = write("w.yaml", "stages:\n  boot:\n    - files: [{path: /w, content: x}]\n"
                          "      permissons: 1\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 0
    assert ("create /w" in res.err) is info_shown
    assert ("unknown key 'permissons'" in res.err) is warning_shown
    assert json.loads(res.out)["steps"][0]["warnings"]  # the report keeps it regardless


# -- validate (SPEC 1) --------------------------------------------------------------------


def test_validate_clean_file_exits_0_with_no_output(cli, write):
    """A valid file: exit 0 and no output."""
    res = cli("validate", write("a.yaml", FILE_A))
    assert (res.code, res.out) == (0, "")


def test_validate_reports_file_line_column_and_suggestion(cli, write):
    """One `FILE:LINE:COLUMN: message` line per problem, with a did-you-mean."""
    src = write("typo.yaml", "stages:\n  boot:\n    - files:\n        - path: /x\n"
                             "          permissons: 0600\n")
    res = cli("validate", src)
    assert res.code == 1
    assert res.out.splitlines() == [
        f"{src}:5:11: unknown key 'permissons'; did you mean 'permissions'?"]


@pytest.fixture
def unimplemented_layout(monkeypatch):
    """`layout` as an accepted but unimplemented key, whatever its state in the code:
    the "not supported" mechanism outlives the plugins that used it."""
    from edgeinit import plugins
    from edgeinit.model import replace

    monkeypatch.setitem(plugins._LOADED, "layout", replace(plugins.load("layout"), plan=None,
                                                           issue="#7"))


def test_validate_reports_unimplemented_keys_as_unsupported(cli, write, unimplemented_layout):
    """Keys yip knows but edgeinit does not implement are reported as unsupported."""
    src = write("u.yaml", "stages:\n  boot:\n    - layout:\n        device: {path: /dev/x}\n")
    res = cli("validate", src)
    assert res.code == 1
    (line,) = res.out.splitlines()
    assert line.startswith(f"{src}:3:7: ") and "layout" in line and "not supported" in line


def test_validate_is_as_lenient_as_yip(cli, write):
    """Scalars where strings go, numbers in sysctl, null lists, no stages: all valid."""
    files = [
        write("s.yaml", "stages:\n  boot:\n    - sysctl: {vm.swappiness: 10}\n"
                        "      hostname: 12345\n      files: ~\n      commands:\n"),
        write("empty.yaml", "name: nothing here\n"),
        write("blank.yaml", ""),
        write("ds.yaml", "stages:\n  boot:\n    - dns: {nameservers: [1.1.1.1]}\n"),
    ]
    res = cli("validate", *files)
    assert (res.code, res.out) == (0, ""), res.out


def test_validate_does_not_run_anything(cli, write, tmp_path):
    """validate runs no commands and writes no files."""
    marker = tmp_path / "ran"
    src = write("c.yaml", f"stages:\n  boot:\n    - commands: ['touch {marker}']\n"
                          f"      files: [{{path: {tmp_path}/written, content: x}}]\n")
    assert cli("validate", src).code == 0
    assert not marker.exists() and not (tmp_path / "written").exists()


def test_validate_bad_yaml_names_the_line(cli, write):
    """A file that does not parse is one problem line with its line number."""
    src = write("bad.yaml", "stages:\n  boot:\n    - name: [unclosed\n")
    res = cli("validate", src)
    assert res.code == 1
    assert re.match(rf"{re.escape(str(src))}:\d+:\d+: ", res.out)


# -- schema -----------------------------------------------------------------------------


def test_schema_is_draft_2020_12_json(cli):
    """`edgeinit schema` prints a draft 2020-12 JSON Schema on stdout."""
    res = cli("schema")
    assert res.code == 0
    schema = json.loads(res.out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "stages" in json.dumps(schema)


def test_report_is_never_written_inside_the_root(cli, target, write, state_dir):
    """The report goes to the state directory of the running system, not under --root."""
    assert cli("run", "--stage", "boot", "--root", target, write("a.yaml", FILE_A)).code == 0
    assert (state_dir / "boot.json").is_file()
    assert not list(Path(target).rglob("*.json"))
