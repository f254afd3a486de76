"""`authorized_keys` (issue #3, yip-behaviour 3.8, SPEC 7.8): keys per user, merged into
~USER/.ssh/authorized_keys of a user of the *target* root.

Pure helpers (source_url, merge, fetch_keys) first, then steps run through the real
engine (tests/unit/plugin_harness.py) on a real scratch root, with github:/gitlab: keys
served by a real HTTP server on 127.0.0.1 (the `http_server` fixture).
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeinit.config.fetch import FetchError
from edgeinit.plugins.authorized_keys import fetch_keys, merge, source_url
from edgeinit.target.changes import MakeDir, SetAttrs, WriteFile
from tests.conftest import IS_ROOT, needs_root
from tests.unit.plugin_harness import run_step

# Owners the plugin must give .ssh and the file. As root: ids the host does not have.
UID, GID = (1000, 1000) if IS_ROOT else (os.getuid(), os.getgid())
UID2, GID2 = (1001, 1002) if IS_ROOT else (os.getuid(), os.getgid())

REY_KEYS = "ssh-ed25519 AAAAC3rey1 rey@laptop\nssh-rsa AAAAB3rey2 rey@desk\n"
ADA_KEYS = "ssh-ed25519 AAAAC3ada1 ada@x\n"
LIT = "ssh-ed25519 AAAAC3literal ops@bastion"


def make_root(root: Path, *, homes: tuple[str, ...] = ("rey", "ada")) -> Path:
    """A target root with rey (UID:GID) and ada (UID2:GID2) in its passwd; their homes
    (owned by root, as `useradd` leaves /home/NAME's parent) exist when named in `homes`."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"rey:x:{UID}:{GID}:Rey:/home/rey:/bin/bash\n"
        f"ada:x:{UID2}:{GID2}:Ada:/home/ada:/bin/sh\n"
        "daemon:x:777:778:not the host's daemon:/var/daemon:/bin/false\n"
        "ghost:x:1500:1500::/home/ghost:/bin/sh\n")
    for name in homes:
        (root / "home" / name).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


@pytest.fixture
def forge(http_server: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Point github: at BASE/gh/{user}.keys and gitlab: at BASE/gl/{user}.keys; serve
    rey's and ada's keys there. Returns `serve` for more routes."""
    base = http_server({"/gh/rey.keys": (200, REY_KEYS), "/gh/ada.keys": (200, ADA_KEYS),
                        "/gl/rey.keys": (200, "ssh-ed25519 AAAAC3gitlab rey@gl\n")})
    monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL", base + "/gh/{user}.keys")
    monkeypatch.setenv("EDGEINIT_GITLAB_KEYS_URL", base + "/gl/{user}.keys")
    return http_server


def keys_file(root: Path, user: str = "rey") -> Path:
    return root / "home" / user / ".ssh" / "authorized_keys"


def attrs(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def full_state(path: Path) -> tuple:
    """Bytes, mode, owner, inode and mtime: a file left untouched keeps all of them."""
    st = os.lstat(path)
    return path.read_bytes(), st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_mtime_ns


# -- source_url --------------------------------------------------------------------------


def test_source_url_forges_use_the_configured_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL", "http://127.0.0.1:9/gh/{user}.keys")
    monkeypatch.setenv("EDGEINIT_GITLAB_KEYS_URL", "http://127.0.0.1:9/gl/{user}.keys")
    assert source_url("github:rey") == "http://127.0.0.1:9/gh/rey.keys"
    assert source_url("gitlab:rey") == "http://127.0.0.1:9/gl/rey.keys"
    assert source_url("github: rey ") == "http://127.0.0.1:9/gh/rey.keys"


def test_source_url_defaults_are_the_public_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC 1 env table: unset (or empty) variables mean github.com / gitlab.com."""
    monkeypatch.delenv("EDGEINIT_GITHUB_KEYS_URL", raising=False)
    monkeypatch.setenv("EDGEINIT_GITLAB_KEYS_URL", "")
    assert source_url("github:reylejano") == "https://github.com/reylejano.keys"
    assert source_url("gitlab:rey") == "https://gitlab.com/rey.keys"


def test_source_url_http_urls_are_fetched_as_is() -> None:
    assert source_url("https://keys.example/rey.pub") == "https://keys.example/rey.pub"
    assert source_url("http://10.0.0.1:8080/k?x=1") == "http://10.0.0.1:8080/k?x=1"


@pytest.mark.parametrize("key", [
    "ssh-ed25519 AAAAC3x me@host",
    'command="/bin/true",no-pty ssh-rsa AAAAB3x me@host',
    "foo:bar",  # yip would take this for a URL (any scheme); a documented difference
    "ftp:rey", "githubx:rey", "git:rey", "GitHubX:rey",
    "ssh-rsa AAAA host:22",
])
def test_source_url_everything_else_is_a_literal_key(key: str) -> None:
    assert source_url(key) is None


# -- merge -------------------------------------------------------------------------------


def test_merge_appends_new_keys_in_order_after_the_existing_ones() -> None:
    assert merge("old-a\nold-b\n", ["new-1", "old-b", "new-2", "new-1"]) == \
        "old-a\nold-b\nnew-1\nnew-2\n"


def test_merge_into_nothing() -> None:
    assert merge(None, ["k1", "k2"]) == "k1\nk2\n"
    assert merge("", ["k1"]) == "k1\n"


def test_merge_keeps_the_file_exactly_when_every_key_is_there() -> None:
    """No rewrite for a missing final newline, CRLF, comments or blank lines."""
    for existing in ["k1\nk2", "k1\r\nk2\r\n", "# mine\n\nk1\n  k2  \n"]:
        assert merge(existing, ["k1", "k2"]) == existing


def test_merge_adds_a_newline_before_appending_to_a_file_without_one() -> None:
    assert merge("k1", ["k2"]) == "k1\nk2\n"


def test_merge_is_exact_line_not_substring() -> None:
    """yip skips a key found anywhere in the file (substring); SPEC 7.8: whole lines."""
    assert merge("ssh-rsa AAAA me@x-and-more\n", ["ssh-rsa AAAA me@x"]) == \
        "ssh-rsa AAAA me@x-and-more\nssh-rsa AAAA me@x\n"


# -- fetch_keys --------------------------------------------------------------------------


def test_fetch_keys_one_per_line_blank_and_comment_lines_ignored(
        http_server: Callable[..., str]) -> None:
    body = "\n# keys of rey\nssh-ed25519 A1 one\r\n\n   \n  ssh-rsa B2 two  \n#x\nssh-dss C3 three"
    base = http_server({"/k": (200, body)})
    assert fetch_keys(base + "/k") == ["ssh-ed25519 A1 one", "ssh-rsa B2 two", "ssh-dss C3 three"]


def test_fetch_keys_http_error_is_a_fetch_error(http_server: Callable[..., str]) -> None:
    base = http_server({"/k": (500, "boom")})
    with pytest.raises(FetchError, match="500"):
        fetch_keys(base + "/k")


# -- applying: the happy path -----------------------------------------------------------


def test_literal_github_and_gitlab_keys_land_in_order(root: Path, forge: object) -> None:
    run = run_step({"authorized_keys": {"rey": [LIT, "github:rey", "gitlab:rey"]}}, root,
                   dry_run=False)
    assert run.status == "ok", run.error
    assert run.entry.changed
    assert keys_file(root).read_text() == (
        LIT + "\n" + REY_KEYS + "ssh-ed25519 AAAAC3gitlab rey@gl\n")
    assert attrs(root / "home" / "rey" / ".ssh") == (0o700, UID, GID)
    assert attrs(keys_file(root)) == (0o600, UID, GID)
    assert attrs(root / "home" / "rey") == (0o755, os.getuid(), os.getgid())  # home untouched
    assert [isinstance(c, (MakeDir, WriteFile)) for c in run.changes] == [True, True]
    assert isinstance(run.changes[0], MakeDir) and isinstance(run.changes[1], WriteFile)


def test_ids_and_home_come_from_the_targets_passwd(root: Path, forge: object) -> None:
    """`daemon` is uid 1 on the host; in this target it is 777:778 with home /var/daemon."""
    if not IS_ROOT:
        pytest.skip("needs root: chown to the target's uid 777")
    (root / "var" / "daemon").mkdir(parents=True)
    run = run_step({"authorized_keys": {"daemon": [LIT]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert attrs(root / "var" / "daemon" / ".ssh" / "authorized_keys") == (0o600, 777, 778)
    assert not (root / "home" / "daemon").exists()


def test_existing_keys_stay_and_nothing_is_duplicated(root: Path, forge: object) -> None:
    ssh = root / "home" / "rey" / ".ssh"
    ssh.mkdir(mode=0o700)
    os.chown(ssh, UID, GID)
    existing = ("# managed by hand\n"
                'from="10.0.0.0/8" ssh-ed25519 AAAAC3hand hand@x\n'
                "ssh-rsa AAAAB3rey2 rey@desk\n")
    keys_file(root).write_text(existing)
    os.chmod(keys_file(root), 0o600)
    os.chown(keys_file(root), UID, GID)
    run = run_step({"authorized_keys": {"rey": ["github:rey", LIT, LIT]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert keys_file(root).read_text() == (
        existing + "ssh-ed25519 AAAAC3rey1 rey@laptop\n" + LIT + "\n")


@needs_root
def test_wrong_modes_and_owners_are_repaired(root: Path, forge: object) -> None:
    """An existing .ssh 0755 root:root and file 0644 owned by someone else become
    0700 / 0600 owned by the user, also when no key needs adding."""
    ssh = root / "home" / "rey" / ".ssh"
    ssh.mkdir()
    os.chmod(ssh, 0o755)
    keys_file(root).write_text(REY_KEYS)
    os.chmod(keys_file(root), 0o644)
    os.chown(keys_file(root), 4242, 4343)
    run = run_step({"authorized_keys": {"rey": ["github:rey"]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert run.entry.changed
    assert [type(c) for c in run.changes] == [SetAttrs, SetAttrs]
    assert attrs(ssh) == (0o700, UID, GID)
    assert attrs(keys_file(root)) == (0o600, UID, GID)
    assert keys_file(root).read_text() == REY_KEYS


def test_second_run_changes_nothing(root: Path, forge: object) -> None:
    step = {"authorized_keys": {"rey": [LIT, "github:rey"], "ada": ["github:ada"]}}
    first = run_step(step, root, dry_run=False)
    assert first.status == "ok" and first.entry.changed, first.error
    before = {u: full_state(keys_file(root, u)) for u in ("rey", "ada")}
    dirs = {u: attrs(root / "home" / u / ".ssh") for u in ("rey", "ada")}
    again = run_step(step, root, dry_run=False)
    assert again.status == "ok", again.error
    assert again.entry.changed is False
    assert again.changes == []
    assert {u: full_state(keys_file(root, u)) for u in ("rey", "ada")} == before
    assert {u: attrs(root / "home" / u / ".ssh") for u in ("rey", "ada")} == dirs


def test_an_up_to_date_file_without_final_newline_is_not_rewritten(root: Path) -> None:
    ssh = root / "home" / "rey" / ".ssh"
    ssh.mkdir(mode=0o700)
    os.chown(ssh, UID, GID)
    keys_file(root).write_bytes(LIT.encode())  # no newline at the end
    os.chmod(keys_file(root), 0o600)
    os.chown(keys_file(root), UID, GID)
    before = full_state(keys_file(root))
    run = run_step({"authorized_keys": {"rey": [LIT]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert run.entry.changed is False
    assert full_state(keys_file(root)) == before


def test_bytes_of_existing_lines_are_kept_when_a_key_is_added(root: Path) -> None:
    """Old content (not UTF-8, CRLF, no final newline) is a byte-exact prefix."""
    ssh = root / "home" / "rey" / ".ssh"
    ssh.mkdir(mode=0o700)
    old = b"ssh-rsa AAAAB3old caf\xe9@latin1\r\nssh-rsa AAAAB3last x"
    keys_file(root).write_bytes(old)
    run = run_step({"authorized_keys": {"rey": [LIT]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert keys_file(root).read_bytes() == old + b"\n" + LIT.encode() + b"\n"


def test_a_literal_block_of_several_lines_is_several_keys(root: Path) -> None:
    """A YAML block scalar with two keys: two lines, and a second run adds nothing."""
    step = "authorized_keys:\n  rey:\n    - |\n      ssh-ed25519 AAAAC3one a@x\n" \
           "      ssh-ed25519 AAAAC3two b@x\n"
    first = run_step(step, root, dry_run=False)
    assert first.status == "ok", first.error
    assert keys_file(root).read_text() == "ssh-ed25519 AAAAC3one a@x\nssh-ed25519 AAAAC3two b@x\n"
    again = run_step(step, root, dry_run=False)
    assert again.status == "ok" and again.entry.changed is False


def test_http_url_keys_are_fetched_as_is(root: Path, http_server: Callable[..., str]) -> None:
    base = http_server({"/team/ops.pub": (200, "ssh-ed25519 AAAAC3ops ops@team\n")})
    run = run_step({"authorized_keys": {"rey": [base + "/team/ops.pub"]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert keys_file(root).read_text() == "ssh-ed25519 AAAAC3ops ops@team\n"


def test_colon_strings_that_are_no_source_are_literal_keys(root: Path, forge: object) -> None:
    """yip would try to download `foo:bar` (any URL scheme); edgeinit writes it as a key."""
    run = run_step({"authorized_keys": {"rey": ["foo:bar", "githubx:rey"]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert keys_file(root).read_text() == "foo:bar\ngithubx:rey\n"


def test_users_are_planned_in_sorted_order(root: Path, forge: object) -> None:
    run = run_step({"authorized_keys": {"rey": [LIT], "ada": [LIT]}}, root)
    assert [c.path for c in run.of(WriteFile)] == [
        "/home/ada/.ssh/authorized_keys", "/home/rey/.ssh/authorized_keys"]


def test_no_keys_changes_nothing(root: Path) -> None:
    run = run_step({"authorized_keys": {"rey": [], "ada": ["  "]}}, root, dry_run=False)
    assert run.status == "ok" and run.entry.changed is False
    assert not (root / "home" / "rey" / ".ssh").exists()


# -- fetch failures ------------------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused (and nobody can take it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def _existing_keys(root: Path, user: str, text: str) -> tuple:
    ssh = root / "home" / user / ".ssh"
    ssh.mkdir(mode=0o700)
    keys_file(root, user).write_text(text)
    os.chmod(keys_file(root, user), 0o600)
    return full_state(keys_file(root, user))


@pytest.mark.parametrize("failure", ["404", "500", "timeout", "refused"])
def test_failed_fetch_fails_the_step_and_leaves_the_file_alone(
        failure: str, root: Path, forge: Callable[..., str], silent_port: int,
        refused_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    base = forge({"/gh/gone.keys": (404, "Not Found"), "/gh/boom.keys": (500, "oops")})
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "1")
    name = {"404": "gone", "500": "boom", "timeout": "rey", "refused": "rey"}[failure]
    if failure == "timeout":
        monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL",
                           f"http://127.0.0.1:{silent_port}/{{user}}.keys")
    elif failure == "refused":
        monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL",
                           f"http://127.0.0.1:{refused_port}/{{user}}.keys")
    before = _existing_keys(root, "rey", "ssh-rsa AAAAB3keep keep@x\n")
    step = {"authorized_keys": {"rey": [LIT, f"github:{name}"], "ada": ["gitlab:rey", LIT]}}
    run = run_step(step, root, dry_run=False)
    assert run.status == "failed"
    assert "'rey'" in run.error and f"github:{name}" in run.error, run.error
    assert {"404": "404", "500": "500", "timeout": "1 s", "refused": "refused"}[failure] \
        in run.error
    assert full_state(keys_file(root)) == before  # literal LIT not added either
    # ada, in the same step, still got hers (gitlab: is still the working server)
    assert keys_file(root, "ada").read_text() == f"ssh-ed25519 AAAAC3gitlab rey@gl\n{LIT}\n"
    assert base.startswith("http://127.0.0.1:")


CUT_OFF = {
    # promises 100 bytes in one chunk, sends 15 and hangs up: http.client's IncompleteRead
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"64\r\nssh-rsa partial",
    # Content-Length 100, 15 bytes sent: urllib's read(n) returns the 15 without a word
    "content-length": b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nssh-rsa partial",
}


def cut_off_server(response: bytes) -> tuple[int, Callable[[], None]]:
    """A raw server sending `response` to each client, then hanging up: (port, stop)."""
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(response)

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1], sock.close


@pytest.mark.parametrize("kind", [
    "chunked",
    "content-length",
])
def test_cut_off_body_fails_the_step_naming_user_and_source(
        kind: str, root: Path, forge: object, monkeypatch: pytest.MonkeyPatch) -> None:
    port, stop = cut_off_server(CUT_OFF[kind])
    try:
        monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL", f"http://127.0.0.1:{port}/{{user}}.keys")
        before = _existing_keys(root, "rey", "ssh-rsa AAAAB3keep keep@x\n")
        run = run_step({"authorized_keys": {"rey": ["github:rey"], "ada": [LIT]}}, root,
                       dry_run=False)
    finally:
        stop()
    assert keys_file(root, "ada").read_text() == LIT + "\n"
    assert full_state(keys_file(root)) == before, keys_file(root).read_text()
    assert run.status == "failed"
    assert "internal error" not in run.error
    assert "'rey'" in run.error and "github:rey" in run.error, run.error


def test_failed_fetch_creates_nothing_for_a_user_without_ssh_dir(
        root: Path, forge: Callable[..., str]) -> None:
    run = run_step({"authorized_keys": {"rey": ["github:nobody-here"]}}, root, dry_run=False)
    assert run.status == "failed" and "github:nobody-here" in run.error
    assert not (root / "home" / "rey" / ".ssh").exists()
    assert run.changes == []


@pytest.mark.parametrize("key", ["github:", "gitlab:  ", "github:two words"])
def test_unusable_forge_names_fail_cleanly(key: str, root: Path, forge: object) -> None:
    """No name, or one no URL can hold: the step fails naming user and source (no
    internal error), and the other user still gets their keys."""
    run = run_step({"authorized_keys": {"rey": [key], "ada": [LIT]}}, root, dry_run=False)
    assert run.status == "failed"
    assert "internal error" not in run.error
    assert "'rey'" in run.error and key.strip() in run.error, run.error
    assert not (root / "home" / "rey" / ".ssh").exists()
    assert keys_file(root, "ada").read_text() == LIT + "\n"


# -- bad targets -------------------------------------------------------------------------


def test_user_missing_from_the_targets_passwd(root: Path) -> None:
    """`nobody` exists on the host; the target's passwd lacks it: the step fails."""
    run = run_step({"authorized_keys": {"nobody": [LIT], "rey": [LIT]}}, root, dry_run=False)
    assert run.status == "failed"
    assert "'nobody'" in run.error and "/etc/passwd" in run.error, run.error
    assert not (root / "home" / "nobody").exists()
    assert keys_file(root).read_text() == LIT + "\n"


def test_home_that_does_not_exist(root: Path) -> None:
    run = run_step({"authorized_keys": {"ghost": [LIT], "rey": [LIT]}}, root, dry_run=False)
    assert run.status == "failed"
    assert "/home/ghost" in run.error and "does not exist" in run.error, run.error
    assert not (root / "home" / "ghost").exists()
    assert keys_file(root).read_text() == LIT + "\n"


def test_ssh_that_is_a_regular_file(root: Path) -> None:
    ssh = root / "home" / "rey" / ".ssh"
    ssh.write_text("not a dir\n")
    before = full_state(ssh)
    run = run_step({"authorized_keys": {"rey": [LIT]}}, root, dry_run=False)
    assert run.status == "failed"
    assert "/home/rey/.ssh" in run.error and "not a directory" in run.error, run.error
    assert full_state(ssh) == before


def test_authorized_keys_that_is_a_directory(root: Path) -> None:
    keys_file(root).mkdir(parents=True)
    run = run_step({"authorized_keys": {"rey": [LIT]}}, root, dry_run=False)
    assert run.status == "failed"
    assert "/home/rey/.ssh/authorized_keys" in run.error, run.error
    assert keys_file(root).is_dir() and not any(keys_file(root).iterdir())


def test_ssh_symlink_is_not_followed(root: Path) -> None:
    """A user could point ~/.ssh at /etc: root must not chmod/chown /etc or write in it."""
    os.symlink("/etc", root / "home" / "rey" / ".ssh")
    etc_before = attrs(root / "etc")
    run = run_step({"authorized_keys": {"rey": [LIT]}}, root, dry_run=False)
    assert run.status == "failed"
    assert "/home/rey/.ssh" in run.error and "symbolic link" in run.error, run.error
    assert attrs(root / "etc") == etc_before
    assert not (root / "etc" / "authorized_keys").exists()


def test_authorized_keys_symlink_is_not_followed(root: Path) -> None:
    """~/.ssh/authorized_keys -> /etc/passwd must not merge keys into (and chown) passwd."""
    (root / "home" / "rey" / ".ssh").mkdir(mode=0o700)
    os.symlink("/etc/passwd", keys_file(root))
    before = full_state(root / "etc" / "passwd")
    run = run_step({"authorized_keys": {"rey": [LIT]}}, root, dry_run=False)
    assert run.status == "failed"
    assert "authorized_keys" in run.error and "symbolic link" in run.error, run.error
    assert full_state(root / "etc" / "passwd") == before
    assert os.path.islink(keys_file(root))


def test_home_behind_a_symlink_is_followed(tmp_path: Path) -> None:
    """/home -> var/home (ostree-style images): the home itself may be reached by a link."""
    root = make_root(tmp_path / "root", homes=())
    (root / "var" / "home" / "rey").mkdir(parents=True)
    os.symlink("var/home", root / "home")
    run = run_step({"authorized_keys": {"rey": [LIT]}}, root, dry_run=False)
    assert run.status == "ok", run.error
    assert (root / "var" / "home" / "rey" / ".ssh" / "authorized_keys").read_text() == LIT + "\n"


# -- dry run ---------------------------------------------------------------------------


def test_dry_run_fetches_shows_the_keys_in_the_diff_and_writes_nothing(
        root: Path, forge: object) -> None:
    """Public keys are not secret: the diff shows them although the file is 0600."""
    run = run_step({"authorized_keys": {"rey": ["github:rey", LIT]}}, root, dry_run=True)
    assert run.status == "ok", run.error
    assert run.entry.changed
    assert "+ssh-ed25519 AAAAC3rey1 rey@laptop\n" in run.entry.diff  # fetched
    assert "+ssh-rsa AAAAB3rey2 rey@desk\n" in run.entry.diff
    assert f"+{LIT}\n" in run.entry.diff
    assert "masked" not in run.entry.diff
    assert not (root / "home" / "rey" / ".ssh").exists()


def test_dry_run_fetch_failure_fails_the_step(root: Path, forge: object) -> None:
    run = run_step({"authorized_keys": {"rey": ["github:absent"]}}, root, dry_run=True)
    assert run.status == "failed" and "github:absent" in run.error and "404" in run.error
