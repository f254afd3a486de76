"""Bad input never breaks a run (the issue's list; SPEC 1, 2, 5, 7.1, 7.4, 7.10): each bad
file, step or path gives a clear message naming the file (and line where there is one),
only that source or step fails, everything else still runs (exit 1), and nothing on
disk is left half-written."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import small_tmpfs
from tests.integration.test_dry_run import snapshot, snapshot_diff

GOOD = ("name: good\nstages:\n  boot:\n    - name: good-step\n"
        "      files: [{path: /good, content: ok}]\n")


def temp_debris(*roots: Path) -> list[Path]:
    """Temp files of interrupted or failed writes (`*.edgeinit-new`) anywhere under roots."""
    return [p for r in roots for p in r.rglob("*") if p.name.endswith(".edgeinit-new")]


def run(cli, root: Path, *sources, **kw) -> tuple[int, dict, str]:
    res = cli("run", "--stage", "boot", "--root", root, "--json", *sources, **kw)
    return res.code, res.json(), res.err


def failed(report: dict) -> list[dict]:
    return [s for s in report["steps"] if s["status"] == "failed"]


def good_ran(report: dict, root: Path) -> bool:
    return (root / "good").read_text() == "ok" and any(
        s["name"] == "good-step" and s["status"] == "ok" for s in report["steps"])


# -- sources that cannot be loaded ---------------------------------------------------------------


def test_malformed_yaml_fails_its_file_only(cli, target, write, tmp_path):
    """A file that does not parse is a failed source naming file and line; the files
    before and after it in the same directory still run (SPEC 7.4)."""
    write("d/10_first.yaml", GOOD.replace("good", "first"))
    bad = write("d/20_bad.yaml", "stages:\n  boot:\n    - name: x\n\t  files: []\n")
    write("d/30_last.yaml", GOOD)
    code, report, err = run(cli, target, tmp_path / "src" / "d")
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == str(bad) and entry["name"] is None
    assert re.search(rf"{re.escape(str(bad))}:4:\d+: ", entry["error"]), entry["error"]
    assert "YAML" in entry["error"]
    assert (target / "first").exists() and good_ran(report, target)
    assert str(bad) in err  # also logged


def test_malformed_yaml_on_stdin(cli, target, write):
    """Bad YAML on standard input fails the `-` source, with its line."""
    code, report, _ = run(cli, target, "-", write("g.yaml", GOOD), stdin="a: b: c\n")
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == "-" and re.search(r":1:\d+: ", entry["error"])
    assert good_ran(report, target)


@pytest.mark.parametrize(("text", "line"), [
    ("stages: [foo, bar]\n", 1),
    ("name: x\nstages:\n  - boot\n", 3),
    ("- just\n- a list\n", 1),
    ("name: x\nstages:\n  boot: 12\n", 3),
    ("name: x\nname: y\n", 2),  # a key repeated in one mapping
])
def test_wrong_shape_at_the_top_fails_the_source(cli, target, write, text, line):
    """A file whose top level has the wrong type is a failed source naming file and line."""
    bad = write("bad.yaml", text)
    code, report, _ = run(cli, target, bad, write("g.yaml", GOOD))
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == str(bad) and entry["name"] is None
    assert entry["error"].startswith(f"{bad}:{line}:"), entry["error"]
    assert good_ran(report, target)


def test_not_utf8_fails_the_source(cli, target, write, tmp_path):
    """A file that is not UTF-8 text is a failed source naming it."""
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"stages:\n  boot: \xff\xfe\n")
    code, report, _ = run(cli, target, bad, write("g.yaml", GOOD))
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == str(bad) and "UTF-8" in entry["error"]
    assert good_ran(report, target)


def test_missing_file_source(cli, target, write, tmp_path):
    """A SOURCE that does not exist fails, named; the other sources run."""
    missing = tmp_path / "nope.yaml"
    code, report, err = run(cli, target, missing, write("g.yaml", GOOD))
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == str(missing) and str(missing) in entry["error"]
    assert "no such file" in entry["error"].lower()
    assert good_ran(report, target)
    assert str(missing) in err


def test_url_404(cli, target, write, http_server):
    """An http URL answering 404 fails that source, naming the URL and the status."""
    url = http_server({"/gone.yaml": (404, "no")}) + "/gone.yaml"
    code, report, _ = run(cli, target, url, write("g.yaml", GOOD))
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == url and url in entry["error"] and "404" in entry["error"]
    assert good_ran(report, target)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_url_connection_refused(cli, target, write):
    """A URL whose server refuses the connection fails that source, named."""
    url = f"http://127.0.0.1:{_closed_port()}/c.yaml"
    code, report, _ = run(cli, target, url, write("g.yaml", GOOD))
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == url and url in entry["error"]
    assert "refused" in entry["error"].lower()
    assert good_ran(report, target)


def test_url_timeout(cli, target, write, monkeypatch):
    """A URL that never answers fails after EDGEINIT_FETCH_TIMEOUT seconds, named."""
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "1")
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow.yaml"
        code, report, _ = run(cli, target, url, write("g.yaml", GOOD))
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == url and url in entry["error"]
    assert re.search(r"(within 1 s|timed out)", entry["error"]), entry["error"]
    assert good_ran(report, target)


def test_url_that_is_not_yaml(cli, target, write, http_server):
    """A URL serving something that is not YAML fails that source, with the URL and line."""
    url = http_server({"/page": (200, "<html>\n  <body: x: y>\n")}) + "/page"
    code, report, _ = run(cli, target, url, write("g.yaml", GOOD))
    assert code == 1
    (entry,) = failed(report)
    assert entry["source"] == url and entry["error"].startswith(f"{url}:")
    assert good_ran(report, target)


# -- steps with bad values ----------------------------------------------------------------------


@pytest.mark.parametrize(("step", "line", "col"), [
    ("    - files: notalist\n", 3, 14),
    ("    - files:\n        - path: /x\n          permissions: abc\n", 5, 24),
    ("    - files:\n        - path: /x\n          permissions: 077777\n", 5, 24),
    ("    - files: [{path: /x, owner: -1}]\n", 3, 33),
    ("    - hostname: [a, b]\n", 3, 17),
    ("    - if_files: {all: /etc}\n", 3, 23),
    ("    - commands: {a: b}\n", 3, 17),
])
def test_wrong_type_fails_the_step_naming_file_and_line(cli, target, write, step, line, col):
    """A value of the wrong type fails its step with FILE:LINE:COL; the step does nothing
    and the other steps of the file still run."""
    src = write("t.yaml", "stages:\n  boot:\n" + step + GOOD.split("  boot:\n")[1])
    code, report, _ = run(cli, target, src)
    assert code == 1
    (entry,) = failed(report)
    assert entry["name"] == "0"
    assert entry["error"].startswith(f"{src}:{line}:{col}: "), entry["error"]
    assert not (target / "x").exists()
    assert good_ran(report, target)


def test_unknown_key_warns_and_the_step_still_runs(cli, target, write):
    """An unknown key: a warning with file:line:col and a suggestion; the step runs."""
    src = write("u.yaml", "stages:\n  boot:\n    - name: s\n      commandz: [x]\n"
                          "      files:\n        - path: /f\n          contnet: hi\n"
                          "          permissions: 0600\n")
    code, report, err = run(cli, target, src)
    assert code == 0
    (step,) = report["steps"]
    assert step["status"] == "ok"
    assert sorted(step["warnings"]) == sorted([
        f"{src}:4:7: unknown key 'commandz'; did you mean 'commands'?",
        f"{src}:7:11: unknown key 'contnet'; did you mean 'content'?"])
    assert (target / "f").read_text() == "" and (target / "f").stat().st_mode & 0o777 == 0o600
    assert f"{src}:4:7" in err and f"{src}:7:11" in err


def test_permissions_are_integers_as_yaml_reads_them(cli, target, write):
    """`0644` and `0o640` are octal; a plain `644` is the decimal 644 (mode 01204, as in
    yip), applied with a warning that says what to write instead."""
    src = write("p.yaml", "stages:\n  boot:\n    - files:\n"
                          "        - {path: /octal, content: x, permissions: 0644}\n"
                          "        - {path: /go-octal, content: x, permissions: 0o640}\n"
                          "        - {path: /decimal, content: x, permissions: 644}\n")
    code, report, _ = run(cli, target, src)
    assert code == 0
    modes = {p: (target / p).stat().st_mode & 0o7777 for p in ("octal", "go-octal", "decimal")}
    assert modes == {"octal": 0o644, "go-octal": 0o640, "decimal": 644}
    (warning,) = report["steps"][0]["warnings"]
    assert "/decimal" in warning and "0644" in warning


def test_unknown_top_level_key_is_logged_with_suggestion(cli, target, write):
    """`stage:` for `stages:` (the immutable-rootfs README's typo) is logged, not silent."""
    src = write("t.yaml", "stage:\n  boot:\n    - files: [{path: /x, content: x}]\n")
    code, report, err = run(cli, target, src)
    assert code == 0 and report["steps"] == []
    assert f"{src}:1:1: unknown key 'stage'; did you mean 'stages'?" in err


def test_unsupported_encoding_and_bad_base64_fail_the_step(cli, target, write):
    """Content that cannot be decoded fails the step, names the file, and writes nothing."""
    src = write("e.yaml", "stages:\n  boot:\n"
                          "    - files: [{path: /enc1, content: aGk=, encoding: base65}]\n"
                          "    - files: [{path: /enc2, content: '**aGk=**', encoding: b64}]\n"
                          "    - files: [{path: /enc3, content: aGk=, encoding: gzip+b64}]\n"
                          "    - files: [{path: /ok, content: \"aGkK\\naGkK\\n\",\n"
                          "                encoding: b64}]\n")
    code, report, _ = run(cli, target, src)
    assert code == 1
    assert [s["status"] for s in report["steps"]] == ["failed", "failed", "failed", "ok"]
    for i, entry in enumerate(report["steps"][:3], 1):
        assert f"/enc{i}" in entry["error"], entry["error"]
        assert not (target / f"enc{i}").exists()
    assert (target / "ok").read_bytes() == b"hi\nhi\n"  # line breaks in base64 are fine


# -- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/../../etc/x", "/a/../../x", "/..", "etc/relative"])
def test_path_that_leaves_the_root_fails_its_step(cli, target, write, tmp_path, path):
    """A config path climbing above the root (or not absolute) fails, naming the path,
    and nothing is written anywhere."""
    src = write("p.yaml", "stages:\n  boot:\n"
                          f"    - files: [{{path: '{path}', content: x}}]\n"
                          f"    - directories: [{{path: '{path}/d'}}]\n"
                          + GOOD.split("  boot:\n")[1])
    before = snapshot(tmp_path)
    code, report, _ = run(cli, target, src)
    assert code == 1
    assert [s["status"] for s in report["steps"]] == ["failed", "failed", "ok"]
    for entry in failed(report):
        assert path in entry["error"] and entry["source"] == str(src)
    changed = snapshot_diff(before, snapshot(tmp_path))
    assert [p for p in changed if not p.startswith(str(tmp_path / "state"))] == [
        str(target / "good")]
    assert not (tmp_path.parent / "etc" / "x").exists()


def test_env_file_and_resolv_conf_paths_cannot_leave_the_root(cli, target, write, tmp_path):
    """`environment_file` and `dns.path` follow the same rule as every config path."""
    up = "/.." * len(target.parts)
    src = write("p.yaml", "stages:\n  boot:\n"
                          f"    - environment_file: '{up}{tmp_path}/escaped.env'\n"
                          "      environment: {A: b}\n"
                          "    - dns: {nameservers: [192.0.2.1],\n"
                          f"            path: '{up}{tmp_path}/resolv'}}\n"
                          + GOOD.split("  boot:\n")[1])
    code, report, _ = run(cli, target, src)
    assert code == 1
    assert [s["status"] for s in report["steps"]] == ["failed", "failed", "ok"]
    assert "escaped.env" in report["steps"][0]["error"]
    assert "resolv" in report["steps"][1]["error"]
    assert not (tmp_path / "escaped.env").exists() and not (tmp_path / "resolv").exists()


def test_absolute_symlinks_resolve_inside_the_root(cli, target, write, tmp_path):
    """An absolute symlink in the target is followed as if the root were `/`."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / "link").symlink_to(str(outside))
    (target / "etc-link").symlink_to("/etc")
    (target / "up").symlink_to("../../../../../../../../..")
    src = write("s.yaml", "stages:\n  boot:\n    - files:\n"
                          "        - {path: /link/f, content: x}\n"
                          "        - {path: /etc-link/via-link, content: y}\n"
                          "        - {path: /up/tmp/climbed, content: z}\n")
    code, report, _ = run(cli, target, src)
    assert code == 0, report
    assert list(outside.iterdir()) == []
    assert (target / str(outside).lstrip("/") / "f").read_text() == "x"
    assert (target / "etc" / "via-link").read_text() == "y"
    assert (target / "tmp" / "climbed").read_text() == "z"
    assert not Path("/etc/via-link").exists() and not Path("/tmp/climbed").exists()


def test_parent_is_a_regular_file(cli, target, write):
    """Writing under a path whose parent is a regular file fails that step, naming the
    path; the file in the way is left intact."""
    (target / "etc" / "plain").write_text("do not touch\n")
    src = write("p.yaml", "stages:\n  boot:\n"
                          "    - files: [{path: /etc/plain/child, content: x}]\n"
                          "    - directories: [{path: /etc/plain/sub/dir}]\n"
                          + GOOD.split("  boot:\n")[1])
    code, report, _ = run(cli, target, src)
    assert code == 1
    assert [s["status"] for s in report["steps"]] == ["failed", "failed", "ok"]
    for entry in failed(report):
        assert "/etc/plain" in entry["error"]
    assert (target / "etc" / "plain").read_text() == "do not touch\n"
    assert temp_debris(target) == []


def test_file_where_a_directory_is_and_directory_where_a_file_is(cli, target, write):
    """A file path that is a directory, or a directory path that is a file, fails; both
    stay as they were."""
    (target / "adir").mkdir()
    (target / "afile").write_text("keep\n")
    src = write("p.yaml", "stages:\n  boot:\n"
                          "    - files: [{path: /adir, content: x}]\n"
                          "    - directories: [{path: /afile}]\n" + GOOD.split("  boot:\n")[1])
    code, report, _ = run(cli, target, src)
    assert code == 1
    assert [s["status"] for s in report["steps"]] == ["failed", "failed", "ok"]
    assert "/adir" in report["steps"][0]["error"] and "/afile" in report["steps"][1]["error"]
    assert (target / "adir").is_dir() and (target / "afile").read_text() == "keep\n"


def test_owner_string_unknown_user_fails_without_writing(cli, target, write):
    """An owner by name the target does not know fails the entry, naming the user."""
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (target / "etc" / "group").write_text("root:x:0:\n")
    src = write("o.yaml", "stages:\n  boot:\n    - files:\n"
                          "        - {path: /o1, content: x, owner_string: nobody-here}\n"
                          "        - {path: /o2, content: y, owner_string: 'root:root'}\n")
    code, report, _ = run(cli, target, src)
    assert code == 1
    (entry,) = failed(report)
    assert "nobody-here" in entry["error"] and "/o1" in entry["error"]
    assert not (target / "o1").exists() and (target / "o2").read_text() == "y"


def test_failing_commands_do_not_stop_other_steps(cli, shell_target, write):
    """A failing command fails its step, its output tail is in the error, and the next
    steps run."""
    src = write("c.yaml", "stages:\n  boot:\n    - commands: ['echo boom-output; exit 7']\n"
                + GOOD.split("  boot:\n")[1])
    code, report, _ = run(cli, shell_target, src)
    assert code == 1
    (entry,) = failed(report)
    assert "7" in entry["error"] and "boom-output" in entry["error"]
    assert good_ran(report, shell_target)


# -- the whole run --------------------------------------------------------------------------------


def test_everything_bad_at_once(cli, target, write, tmp_path, http_server):
    """All the bad inputs in one run: each fails alone, the good ones all run, existing
    files stay intact, no temp file is left anywhere, and the report is stored."""
    (target / "etc" / "plain").write_text("intact\n")
    (target / "etc" / "motd").write_text("old motd\n")
    d = tmp_path / "src" / "dir"
    write("dir/00.yaml", "stages:\n  boot:\n    - files: [{path: /etc/motd, content: new}]\n")
    write("dir/10_broken.yaml", "stages: [\n")
    write("dir/20_type.yaml", "stages:\n  boot:\n    - files: [{path: /t, permissions: x}]\n")
    write("dir/30_escape.yaml", "stages:\n  boot:\n    - files: [{path: /../../x, content: x}]\n")
    write("dir/40_parent.yaml",
          "stages:\n  boot:\n    - files: [{path: /etc/plain/x, content: x}]\n")
    write("dir/50_unknown.yaml", "stages:\n  boot:\n    - files: [{path: /u, content: u}]\n"
                                 "      fils: []\n")
    write("dir/60_good.yaml", GOOD)
    url404 = http_server() + "/missing.yaml"
    refused = f"http://127.0.0.1:{_closed_port()}/x.yaml"
    code, report, _ = run(cli, target, d, tmp_path / "missing.yaml", url404, refused, "-",
                          stdin="{{{\n")
    assert code == 1 and report["ok"] is False
    sources = [s["source"] for s in failed(report)]
    assert sorted(sources) == sorted([
        str(d / "10_broken.yaml"), str(d / "20_type.yaml"), str(d / "30_escape.yaml"),
        str(d / "40_parent.yaml"), str(tmp_path / "missing.yaml"), url404, refused, "-"])
    assert (target / "etc" / "motd").read_text() == "new"
    assert (target / "u").read_text() == "u"
    assert good_ran(report, target)
    assert (target / "etc" / "plain").read_text() == "intact\n"
    assert not (target / "t").exists()
    assert temp_debris(tmp_path) == []
    stored = json.loads((tmp_path / "state" / "boot.json").read_text())
    assert stored == report


# -- a full disk (SPEC 7.10) ---------------------------------------------------------------


@pytest.fixture
def small_fs(target: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted at ROOT/small (root only)."""
    with small_tmpfs(target / "small") as mnt:
        yield mnt


def test_full_disk_fails_the_step_and_keeps_the_old_file(cli, target, write, small_fs):
    """A write that runs out of space fails its step, leaves the old file as it was and
    leaves no temp file behind; the next steps still run."""
    (small_fs / "conf").write_text("old content\n")
    (small_fs / "conf").chmod(0o640)
    big = "x" * (256 * 1024)
    src = write("big.yaml", "stages:\n  boot:\n    - files:\n        - path: /small/conf\n"
                            f"          content: {big}\n" + GOOD.split("  boot:\n")[1])
    code, report, _ = run(cli, target, src)
    assert code == 1
    (entry,) = failed(report)
    assert "/small/conf" in entry["error"]
    assert (small_fs / "conf").read_text() == "old content\n"
    assert (small_fs / "conf").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in small_fs.iterdir()) == ["conf"]
    assert good_ran(report, target)
