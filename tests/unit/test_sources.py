"""Sources -> loaded documents (SPEC 1 `run` SOURCE, SPEC 2 Order, SPEC 7.4).

A source is a file, a directory, `-`, an http(s) URL, or the kernel command line; with
none, the default directories under the root. Loading never raises: what cannot be
read or parsed becomes a Failure with file and line, and the rest still loads.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeinit.config.fetch import MAX_TIMEOUT, fetch_timeout
from edgeinit.config.sources import DEFAULT_DIRS, Document, Failure, is_url, load_sources
from edgeinit.target.root import TargetRoot

Write = Callable[[str, str], Path]


def load(specs: list, root: Path | str = "/", **kw) -> list[Document | Failure]:
    return load_sources([str(s) for s in specs], TargetRoot(str(root)), **kw)


def only_doc(loaded: list) -> Document:
    assert len(loaded) == 1 and isinstance(loaded[0], Document), loaded
    return loaded[0]


def only_failure(loaded: list) -> Failure:
    assert len(loaded) == 1 and isinstance(loaded[0], Failure), loaded
    return loaded[0]


# -- kinds of source -----------------------------------------------------------------


def test_file_source(write: Write) -> None:
    f = write("one.yaml", "name: one\nstages:\n  boot:\n    - commands: [x]\n")
    doc = only_doc(load([f]))
    assert (doc.group, doc.origin, doc.name) == (0, str(f), "one")
    assert doc.data["stages"]["boot"] == [{"commands": ["x"]}]
    assert doc.text is not None


def test_file_source_of_any_extension(write: Write) -> None:
    """yip reads a file given explicitly whatever its name (only the walk filters)."""
    f = write("config.txt", "name: txt\n")
    assert only_doc(load([f])).name == "txt"


def test_directory_source(write: Write) -> None:
    write("d/a.yaml", "name: a\n")
    d = write("d/b.yml", "name: b\n").parent
    loaded = load([d])
    assert [(e.group, e.name) for e in loaded] == [(0, "a"), (0, "b")]


def test_stdin_source() -> None:
    doc = only_doc(load(["-"], stdin=io.StringIO("name: piped\nstages:\n  boot: []\n")))
    assert (doc.origin, doc.name) == ("-", "piped")


def test_missing_file_source_is_a_failure(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    failure = only_failure(load([missing]))
    assert failure.origin == str(missing)
    assert failure.message == "no such file or directory"


def test_empty_file_is_a_document_with_no_stages(write: Write) -> None:
    f = write("empty.yaml", "")
    doc = only_doc(load([f]))
    assert doc.data["stages"] == {}
    assert doc.name == str(f)  # no name: the path names the config


def test_file_with_no_stages_is_valid(write: Write) -> None:
    doc = only_doc(load([write("n.yaml", "name: only-a-name\n")]))
    assert doc.data == {"name": "only-a-name", "stages": {}}
    assert doc.problems == []


def test_cloud_config_file_is_converted(write: Write) -> None:
    doc = only_doc(load([write("cc.yaml", "#cloud-config\nhostname: h\n")]))
    assert doc.cloud_config is not None
    assert doc.data["stages"] == {"initramfs": [{"hostname": "h"}]}


def test_is_url() -> None:
    assert is_url("http://a/b") and is_url("https://a/b")
    assert not is_url("ftp://a/b") and not is_url("/http://x") and not is_url("-")


# -- URLs (real HTTP server on 127.0.0.1) --------------------------------------------


def test_url_source_200(http_server) -> None:
    base = http_server({"/a.yaml": (200, "name: web\nstages:\n  boot:\n    - name: s\n")})
    doc = only_doc(load([f"{base}/a.yaml"]))
    assert (doc.origin, doc.name) == (f"{base}/a.yaml", "web")
    assert doc.data["stages"]["boot"] == [{"name": "s"}]


def test_url_cloud_config(http_server) -> None:
    base = http_server({"/cc": (200, "#cloud-config\nruncmd: [echo hi]\n")})
    doc = only_doc(load([f"{base}/cc"]))
    assert doc.data["stages"]["boot"][0]["commands"] == ["echo hi"]


def test_url_source_404_is_a_failure_naming_the_url(http_server) -> None:
    base = http_server()
    failure = only_failure(load([f"{base}/nope.yaml"]))
    assert failure.origin == f"{base}/nope.yaml"
    assert "404" in failure.message and f"{base}/nope.yaml" in failure.message


def test_url_with_invalid_yaml_names_the_line(http_server) -> None:
    base = http_server({"/bad.yaml": (200, "name: x\nstages: [\n")})
    failure = only_failure(load([f"{base}/bad.yaml"]))
    assert failure.line == 3
    assert failure.message.startswith("invalid YAML")


def test_url_slow_response_gives_up(http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGEINIT_FETCH_TIMEOUT bounds the wait (SPEC 8: no wait without a bound)."""
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "1")
    base = http_server({"/slow.yaml": (200, "name: slow\n", 4.0)})
    failure = only_failure(load([f"{base}/slow.yaml"]))
    assert failure.origin == f"{base}/slow.yaml"
    assert "no response within 1 s" in failure.message


def test_url_failure_does_not_stop_the_next_source(http_server, write: Write) -> None:
    base = http_server()
    f = write("after.yaml", "name: after\n")
    loaded = load([f"{base}/missing", f])
    assert isinstance(loaded[0], Failure)
    assert isinstance(loaded[1], Document) and loaded[1].group == 1


@pytest.mark.parametrize(("env", "value"), [("5", 5.0), ("100", MAX_TIMEOUT), ("0", MAX_TIMEOUT),
                                            ("-3", MAX_TIMEOUT), ("soon", MAX_TIMEOUT),
                                            ("0.5", 0.5)])
def test_fetch_timeout_is_bounded(monkeypatch: pytest.MonkeyPatch, env: str,
                                  value: float) -> None:
    """Never more than 30 s without progress, whatever the environment says."""
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", env)
    assert fetch_timeout() == value


# -- default directories under the root ----------------------------------------------


def test_default_dirs_are_the_three_oem_dirs_in_order(target: Path) -> None:
    assert DEFAULT_DIRS == ("/system/oem", "/oem", "/usr/local/oem")
    for i, d in enumerate(reversed(DEFAULT_DIRS)):  # created in reverse: order is not mtime
        p = target / d.lstrip("/")
        p.mkdir(parents=True)
        (p / "c.yaml").write_text(f"name: n{len(DEFAULT_DIRS) - 1 - i}\n")
    loaded = load([], target)
    assert [(e.group, e.name, e.origin) for e in loaded] == [
        (i, f"n{i}", str(target / d.lstrip("/") / "c.yaml")) for i, d in enumerate(DEFAULT_DIRS)]


def test_missing_default_dirs_are_skipped_silently(target: Path) -> None:
    (target / "oem").mkdir()
    (target / "oem" / "o.yaml").write_text("name: o\n")
    loaded = load([], target)
    assert [(e.group, e.name) for e in loaded] == [(0, "o")]


def test_no_default_dirs_at_all_is_nothing(target: Path) -> None:
    assert load([], target) == []


def test_default_dir_that_is_a_file_is_skipped(target: Path) -> None:
    (target / "oem").write_text("not a directory")
    assert load([], target) == []


def test_explicit_sources_replace_the_default_dirs(target: Path, write: Write) -> None:
    (target / "oem").mkdir()
    (target / "oem" / "o.yaml").write_text("name: o\n")
    f = write("x.yaml", "name: x\n")
    assert [e.name for e in load([f], target)] == ["x"]


def test_default_dir_linked_inside_the_root(target: Path) -> None:
    """/system/oem -> /usr/share/oem (absolute, as on real images) resolves inside the root."""
    real = target / "usr" / "share" / "oem"
    real.mkdir(parents=True)
    (real / "r.yaml").write_text("name: r\n")
    (target / "system").mkdir()
    os.symlink("/usr/share/oem", target / "system" / "oem")
    assert [e.name for e in load([], target)] == ["r"]


# -- cmdline sources -----------------------------------------------------------------


def test_setup_path_resolved_under_the_root_and_last(target: Path, write: Write) -> None:
    (target / "cfg").mkdir()
    (target / "cfg" / "s.yaml").write_text("name: setup\n")
    f = write("x.yaml", "name: x\n")
    loaded = load([f], target, cmdline="quiet edgeinit.setup=/cfg/s.yaml")
    assert [(e.group, e.name) for e in loaded] == [(0, "x"), (1, "setup")]
    assert loaded[1].origin == str(target / "cfg" / "s.yaml")


def test_setup_directory_under_the_root(target: Path) -> None:
    (target / "cfg").mkdir()
    (target / "cfg" / "b.yaml").write_text("name: b\n")
    (target / "cfg" / "a.yaml").write_text("name: a\n")
    loaded = load([], target, cmdline="cos.setup=/cfg")
    assert [(e.group, e.name) for e in loaded] == [(0, "a"), (0, "b")]


def test_setup_path_cannot_climb_out_of_the_root(target: Path, tmp_path: Path) -> None:
    """`..` stops at the root: /../../x is ROOT/x, never a host file."""
    (tmp_path / "escape.yaml").write_text("name: escaped\n")
    for spec in ("/../escape.yaml", "/../../escape.yaml"):
        loaded = load([], target, cmdline=f"cos.setup={spec}")
        assert len(loaded) == 1 and isinstance(loaded[0], Failure), loaded


def test_setup_url(target: Path, http_server) -> None:
    base = http_server({"/s.yaml": (200, "name: remote\n")})
    loaded = load([], target, cmdline=f"elemental.setup={base}/s.yaml")
    assert [(e.origin, e.name) for e in loaded] == [(f"{base}/s.yaml", "remote")]


def test_dot_notation_is_last_of_all(target: Path, write: Write) -> None:
    (target / "cfg").mkdir()
    (target / "cfg" / "s.yaml").write_text("name: setup\n")
    f = write("x.yaml", "name: x\n")
    loaded = load([f], target, cmdline="stages.boot[0].name=c cos.setup=/cfg/s.yaml")
    assert [e.origin for e in loaded][-1] == "cmdline"
    assert [e.group for e in loaded] == [0, 1, 2]
    assert loaded[-1].text is None and loaded[-1].locate(("stages",)) == (0, 0)


def test_empty_cmdline_adds_nothing(target: Path) -> None:
    assert load([], target, cmdline="BOOT_IMAGE=/vmlinuz quiet\n") == []


# -- bad files among good ones -------------------------------------------------------


def test_bad_file_among_good_ones(write: Write) -> None:
    """SPEC 7.4: one broken file is a Failure with its line; its neighbours still load."""
    write("d/01.yaml", "name: good1\n")
    write("d/02.yaml", "name: bad\nstages:\n  boot:\n    - name: x\n    name: y\n")
    d = write("d/03.yaml", "name: good3\n").parent
    loaded = load([d])
    assert [type(e).__name__ for e in loaded] == ["Document", "Failure", "Document"]
    failure = loaded[1]
    assert failure.origin == str(d / "02.yaml")
    assert failure.line == 5
    assert str(failure).startswith(f"{d / '02.yaml'}:5:")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a: 1\na: 2\n", 2, "already defined"),
        ("- just\n- a list\n", 1, "expected a mapping at the top of the file"),
        ("just text\n", 1, "expected a mapping at the top of the file"),
        ("stages: [foo, bar]\n", 1, "'stages' must be a mapping"),
        ("name: [x]\n", 1, "expected a string, got a list"),
    ],
)
def test_file_level_failures_have_lines(write: Write, text: str, line: int,
                                        fragment: str) -> None:
    failure = only_failure(load([write("f.yaml", text)]))
    assert failure.line == line
    assert fragment in failure.message


def test_undecodable_file_is_a_failure(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    failure = only_failure(load([f]))
    assert "UTF-8" in failure.message


def test_unreadable_file_is_a_failure_and_others_load(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.yaml").write_text("name: a\n")
    os.symlink(d / "nowhere.yaml", d / "b.yaml")  # a dangling link
    loaded = load([d])
    assert isinstance(loaded[0], Document)
    assert isinstance(loaded[1], Failure) and loaded[1].origin == str(d / "b.yaml")


# -- links inside the root -----------------------------------------------------------


def test_link_pointing_outside_the_root_is_re_rooted(target: Path, tmp_path: Path) -> None:
    """An absolute link in ROOT/oem is read as if ROOT were /: the host file is never read,
    the same path inside the root is."""
    host_file = tmp_path / "host" / "secret.yaml"
    host_file.parent.mkdir()
    host_file.write_text("name: HOST\n")
    (target / "oem").mkdir()
    os.symlink(str(host_file), target / "oem" / "link.yaml")
    loaded = load([], target)
    assert len(loaded) == 1 and isinstance(loaded[0], Failure)  # nothing there in the root
    inside = target / str(host_file).lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("name: INSIDE\n")
    assert [e.name for e in load([], target)] == ["INSIDE"]


def test_relative_link_climbing_out_stops_at_the_root(target: Path, tmp_path: Path) -> None:
    """`../../../x.yaml` from ROOT/oem stops at ROOT, as the kernel does in a chroot."""
    (tmp_path / "x.yaml").write_text("name: HOST\n")
    (target / "x.yaml").write_text("name: ROOT\n")
    (target / "oem").mkdir()
    os.symlink("../../../../../../x.yaml", target / "oem" / "up.yaml")
    assert [e.name for e in load([], target)] == ["ROOT"]


def test_link_within_the_root_is_followed(target: Path) -> None:
    (target / "etc" / "cfg.yaml").write_text("name: shared\n")
    (target / "oem").mkdir()
    os.symlink("/etc/cfg.yaml", target / "oem" / "10_shared.yaml")
    doc = only_doc(load([], target))
    assert doc.name == "shared"
    assert doc.origin == str(target / "oem" / "10_shared.yaml")  # the name it was found by


def test_explicit_sources_are_host_paths(target: Path, tmp_path: Path) -> None:
    """A SOURCE argument is a path of the machine running edgeinit, not of the target."""
    host = tmp_path / "host.yaml"
    host.write_text("name: host-file\n")
    d = tmp_path / "d"
    d.mkdir()
    os.symlink(str(host), d / "l.yaml")
    assert [e.name for e in load([d], target)] == ["host-file"]
