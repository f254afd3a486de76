"""`git` (issue #7): clone or update a repository inside a scratch target root, with the
real git binary, against LOCAL repositories only: bare repositories inside the root
(file:// URLs and plain paths), a dumb-HTTP server with Basic auth on 127.0.0.1, and a
stand-in `ssh` on PATH that records how git calls it. No network beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from edgeinit.target import fs
from edgeinit.target.changes import GitClone, GitUpdate, MakeDir
from edgeinit.target.gitrepo import MASK, Remote, session
from tests.conftest import needs_root
from tests.unit.plugin_harness import run_step

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
PRIVATE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
               "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
               "QyNTUxOQAAACDkZXN0aW5lZC10by1iZS1tYXNrZWQtc2VjcmV0LWtleS0xMjM0NQAAAJ\n"
               "-----END OPENSSH PRIVATE KEY-----\n")
KEY_LINE = PRIVATE_KEY.splitlines()[2]


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "safe.directory=*", *args], cwd=cwd, env=GIT_ENV,
                          check=True, capture_output=True, text=True).stdout.strip()


class Origin:
    """A bare repository inside the root (at /srv/origin.git) and a clone to push from."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.bare = root / "srv" / "origin.git"
        self.bare.parent.mkdir(parents=True)
        git("init", "-q", "--bare", "-b", "main", str(self.bare))
        self.work = tmp / "pusher"
        git("clone", "-q", str(self.bare), str(self.work))
        git("checkout", "-q", "-b", "main", cwd=self.work)
        self.commit("README", "v1\n")
        git("checkout", "-q", "-b", "stable", cwd=self.work)
        self.commit("STABLE", "stable\n", branch="stable")
        git("checkout", "-q", "main", cwd=self.work)

    def commit(self, name: str, text: str, branch: str = "main") -> str:
        (self.work / name).write_text(text)
        git("add", name, cwd=self.work)
        git("commit", "-q", "-m", f"{name}: {text.strip()}", cwd=self.work)
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        return self.head(branch)

    def head(self, branch: str = "main") -> str:
        return git("rev-parse", f"refs/heads/{branch}", cwd=self.bare)


@pytest.fixture
def origin(target: Path, tmp_path: Path) -> Origin:
    return Origin(target, tmp_path)


def step(url: str, path: str = "/opt/repo", **extra: object) -> dict:
    return {"git": {"url": url, "path": path, **extra}}


def apply(data: dict, root: Path):
    return run_step(data, root, dry_run=False)


def head_of(repo: Path) -> tuple[str, str]:
    return git("rev-parse", "HEAD", cwd=repo), git("symbolic-ref", "--short", "HEAD", cwd=repo)


def no_debris(root: Path) -> bool:
    return not list(root.rglob(f"*{fs.TEMP_SUFFIX}"))


# -- clone -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["file:///srv/origin.git", "/srv/origin.git"])
def test_clone_into_a_new_path_of_the_root(target: Path, origin: Origin, url: str) -> None:
    """A local URL is a path inside the root (SPEC 1); the clone's origin keeps the URL as
    written, so it still means the same repository when the image boots."""
    run = apply(step(url), target)
    assert run.status == "ok", run.error
    repo = target / "opt" / "repo"
    assert (repo / "README").read_text() == "v1\n"
    assert head_of(repo) == (origin.head(), "main")
    assert git("remote", "get-url", "origin", cwd=repo) == url
    assert [type(c) for c in run.changes] == [MakeDir, GitClone]
    assert run.entry.changes[-1] == (f"clone {url} (branch main at {origin.head()[:12]}) "
                                     "into /opt/repo")
    assert no_debris(target)


def test_without_branch_the_remotes_default_branch_is_cloned(target: Path,
                                                            origin: Origin) -> None:
    """Not `master` (yip's git-binary default): the remote's HEAD, as `git clone` does."""
    git("symbolic-ref", "HEAD", "refs/heads/stable", cwd=origin.bare)
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "ok", run.error
    assert head_of(target / "opt" / "repo") == (origin.head("stable"), "stable")


def test_branch_and_branch_only(target: Path, origin: Origin) -> None:
    run = apply(step("file:///srv/origin.git", "/a", branch="stable"), target)
    assert run.status == "ok", run.error
    assert head_of(target / "a") == (origin.head("stable"), "stable")
    assert "origin/main" in git("branch", "-r", cwd=target / "a")  # a full clone
    run = apply(step("file:///srv/origin.git", "/b", branch="stable", branch_only=True), target)
    assert run.status == "ok", run.error
    assert git("branch", "-r", cwd=target / "b").split() == ["origin/stable"]


def test_an_existing_empty_directory_is_cloned_into_and_keeps_its_mode(target: Path,
                                                                       origin: Origin) -> None:
    (target / "opt" / "repo").mkdir(parents=True)
    os.chmod(target / "opt" / "repo", 0o750)
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "ok", run.error
    assert (target / "opt" / "repo" / "README").exists()
    assert stat.S_IMODE(os.stat(target / "opt" / "repo").st_mode) == 0o750


# -- update and idempotency ------------------------------------------------------------------


def test_second_run_at_the_remote_head_changes_nothing(target: Path, origin: Origin,
                                                       cli, write) -> None:
    src = write("g.yaml", "stages:\n  boot:\n    - name: repo\n      git:\n"
                          "        url: file:///srv/origin.git\n        path: /opt/repo\n")
    first = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert first.code == 0, first.err
    assert first.json()["steps"][0]["changed"] is True
    again = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert again.code == 0, again.err
    assert again.json()["steps"][0]["changed"] is False
    assert again.json()["steps"][0]["changes"] == []


def test_update_brings_the_work_tree_to_the_new_head(target: Path, origin: Origin) -> None:
    apply(step("file:///srv/origin.git"), target)
    old = origin.head()
    new = origin.commit("README", "v2\n")
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "ok", run.error
    assert [type(c) for c in run.changes] == [GitUpdate]
    assert run.entry.changes == [f"update /opt/repo from file:///srv/origin.git: "
                                 f"{old[:12]} -> {new[:12]}"]
    repo = target / "opt" / "repo"
    assert (repo / "README").read_text() == "v2\n" and head_of(repo) == (new, "main")
    assert not apply(step("file:///srv/origin.git"), target).entry.changed


def test_local_changes_to_tracked_files_are_discarded_untracked_files_stay(
        target: Path, origin: Origin) -> None:
    """yip resets hard; a clean repository at the head is what the config asks for."""
    apply(step("file:///srv/origin.git"), target)
    repo = target / "opt" / "repo"
    (repo / "README").write_text("edited on the device\n")
    (repo / "notes.txt").write_text("mine\n")
    run = apply(step("file:///srv/origin.git"), target)
    assert run.entry.changes == ["update /opt/repo from file:///srv/origin.git: "
                                 "local changes discarded"]
    assert (repo / "README").read_text() == "v1\n"
    assert (repo / "notes.txt").read_text() == "mine\n"


def test_a_new_branch_or_url_in_the_config_is_followed(target: Path, origin: Origin) -> None:
    apply(step("file:///srv/origin.git"), target)
    run = apply(step("/srv/origin.git", branch="stable"), target)
    assert run.status == "ok", run.error
    (change,) = run.entry.changes
    assert "branch main -> stable" in change and "origin -> /srv/origin.git" in change
    repo = target / "opt" / "repo"
    assert head_of(repo) == (origin.head("stable"), "stable")
    assert git("remote", "get-url", "origin", cwd=repo) == "/srv/origin.git"


def test_the_existing_repositorys_config_cannot_write_or_run_elsewhere(
        target: Path, origin: Origin, tmp_path: Path) -> None:
    """core.worktree and hooks in the target's repository are overridden: the update
    writes inside the repository's own directory and runs nothing of it."""
    apply(step("file:///srv/origin.git"), target)
    repo = target / "opt" / "repo"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    git("config", "core.worktree", str(elsewhere), cwd=repo)
    hook = repo / ".git" / "hooks" / "post-checkout"
    marker = tmp_path / "hook-ran"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    origin.commit("README", "v2\n")
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "ok", run.error
    assert (repo / "README").read_text() == "v2\n"
    assert list(elsewhere.iterdir()) == [] and not marker.exists()


@needs_root
def test_a_repository_owned_by_another_user_is_updated(target: Path, origin: Origin) -> None:
    """git's safe.directory check would refuse it; the target's files are ours to manage."""
    apply(step("file:///srv/origin.git"), target)
    repo = target / "opt" / "repo"
    for p in [repo, *repo.rglob("*")]:
        os.lchown(p, 4242, 4242)
    new = origin.commit("README", "v2\n")
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "ok", run.error
    assert head_of(repo)[0] == new


# -- refusals and failures -------------------------------------------------------------------


def test_a_missing_branch_fails_and_creates_nothing(target: Path, origin: Origin) -> None:
    run = apply(step("file:///srv/origin.git", branch="nope"), target)
    assert run.status == "failed"
    assert run.error == ("git: /opt/repo: branch 'nope' not found in file:///srv/origin.git")
    assert not (target / "opt").exists()


def test_an_unreachable_repository_fails_names_it_and_leaves_nothing(target: Path) -> None:
    run = apply(step("file:///srv/missing.git"), target)
    assert run.status == "failed"
    assert run.error.startswith("git: /opt/repo: cannot read file:///srv/missing.git: "
                                "git ls-remote failed: ")
    assert "does not appear to be a git repository" in run.error
    assert not (target / "opt").exists()


def test_a_failed_clone_leaves_nothing_behind(target: Path, origin: Origin,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The remote answers ls-remote, then disappears before the clone."""
    from edgeinit.target.gitrepo import Session

    real_clone = Session.clone

    def vanish(self: Session, *args: object) -> None:
        shutil.rmtree(origin.bare)
        real_clone(self, *args)

    monkeypatch.setattr(Session, "clone", vanish)
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "failed" and "cannot clone file:///srv/origin.git into /opt/repo" \
        in run.error
    assert list((target / "opt").iterdir()) == []


def test_a_non_empty_directory_that_is_no_repository_is_left_alone(target: Path,
                                                                   origin: Origin) -> None:
    (target / "opt" / "repo").mkdir(parents=True)
    (target / "opt" / "repo" / "data").write_text("precious\n")
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "failed" and "is not empty and is not a git repository" in run.error
    assert sorted(os.listdir(target / "opt" / "repo")) == ["data"]


def test_a_gitdir_file_is_not_followed(target: Path, origin: Origin, tmp_path: Path) -> None:
    """`.git` as a file may point anywhere on the host; it is refused."""
    (target / "opt" / "repo").mkdir(parents=True)
    (target / "opt" / "repo" / ".git").write_text(f"gitdir: {tmp_path}/elsewhere.git\n")
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "failed" and "is not a directory" in run.error


def test_a_path_that_is_a_file_fails(target: Path, origin: Origin) -> None:
    (target / "opt").mkdir()
    (target / "opt" / "repo").write_text("x")
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "failed" and "exists and is not a directory" in run.error


def test_an_empty_url_does_nothing_as_in_yip(target: Path) -> None:
    run = apply({"git": {"url": "", "path": "/opt/repo"}}, target)
    assert run.status == "ok" and not run.entry.changed


def test_git_commands_are_bounded_by_the_command_timeout(target: Path, http_server,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEINIT_COMMAND_TIMEOUT", "1")
    base = http_server({"/repo.git/info/refs?service=git-upload-pack": (200, "x", 5.0)})
    run = apply(step(base + "/repo.git"), target)
    assert run.status == "failed"
    assert "git ls-remote did not finish within 1 s (EDGEINIT_COMMAND_TIMEOUT)" in run.error


def test_without_git_the_step_fails_clearly(target: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    run = apply(step("file:///srv/origin.git"), target)
    assert run.status == "failed" and "git is not installed on this system" in run.error


# -- dry run ---------------------------------------------------------------------------------


def test_dry_run_asks_the_remote_and_writes_nothing(target: Path, origin: Origin) -> None:
    run = run_step(step("file:///srv/origin.git"), target, dry_run=True)
    assert run.status == "ok" and run.entry.changed
    assert run.entry.changes[-1] == (f"clone file:///srv/origin.git (branch main at "
                                     f"{origin.head()[:12]}) into /opt/repo")
    assert not (target / "opt").exists()
    apply(step("file:///srv/origin.git"), target)
    new = origin.commit("README", "v2\n")
    run = run_step(step("file:///srv/origin.git"), target, dry_run=True)
    assert run.entry.changes == [f"update /opt/repo from file:///srv/origin.git: "
                                 f"{git('rev-parse', 'HEAD', cwd=target / 'opt' / 'repo')[:12]}"
                                 f" -> {new[:12]}"]
    assert (target / "opt" / "repo" / "README").read_text() == "v1\n"


# -- HTTPS-style auth over a local dumb-HTTP server ------------------------------------------


@pytest.fixture
def auth_server(origin: Origin) -> Iterator[Callable[[], str]]:
    """The origin served over dumb HTTP on 127.0.0.1, only with Basic auth ops:pa55word."""
    git("update-server-info", cwd=origin.bare)
    expected = "Basic " + base64.b64encode(b"ops:pa55word").decode()
    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(origin.bare)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    yield lambda: f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_username_and_password_clone(target: Path, origin: Origin, auth_server) -> None:
    run = apply(step(auth_server(), auth={"username": "ops", "password": "pa55word"}), target)
    assert run.status == "ok", run.error
    assert (target / "opt" / "repo" / "README").read_text() == "v1\n"
    config = (target / "opt" / "repo" / ".git" / "config").read_text()
    assert "pa55word" not in config  # the credentials are not stored in the clone
    assert not apply(step(auth_server(), auth={"username": "ops", "password": "pa55word"}),
                     target).entry.changed


def test_a_wrong_password_fails_without_showing_it(target: Path, origin: Origin, auth_server,
                                                   cli, write) -> None:
    src = write("g.yaml", json.dumps({"stages": {"boot": [{"name": "repo", "git": {
        "url": auth_server(), "path": "/opt/repo",
        "auth": {"username": "ops", "password": "wr0ngpass"}}}]}}))
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 1
    error = res.json()["steps"][0]["error"]
    assert "git ls-remote failed" in error and "Authentication failed" in error
    assert "wr0ngpass" not in res.out + res.err
    assert not (target / "opt").exists()


def test_a_password_inside_the_url_is_masked(target: Path, origin: Origin, auth_server) -> None:
    url = auth_server().replace("http://", "http://ops:wr0ngpass@")
    run = apply(step(url), target)
    assert run.status == "failed" and f"ops:{MASK}@" in run.error
    assert "wr0ngpass" not in run.error


# -- SSH: how git is made to call ssh ---------------------------------------------------------


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `ssh` first on PATH that records its arguments and the identity file it is given
    (its mode, its directory's mode, its content), then fails printing the key, as a
    misbehaving server or tool might."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "ssh.log"
    (bindir / "ssh").write_text(f"""#!/bin/sh
printf '%s\\n' "$@" > {log}
key=""
prev=""
for a in "$@"; do [ "$prev" = "-i" ] && key="$a"; prev="$a"; done
if [ -n "$key" ]; then
  stat -c '%a' "$key" >> {log}.key
  stat -c '%a' "$(dirname "$key")" >> {log}.key
  cat "$key" >> {log}.key
  cat "$key" >&2
fi
echo "ssh: connect to host example.invalid port 22: stand-in" >&2
exit 255
""")
    (bindir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return log


def test_ssh_uses_the_private_key_from_a_0600_file_outside_the_root(
        target: Path, fake_ssh: Path, cli, write) -> None:
    src = write("g.yaml", json.dumps({"stages": {"boot": [{"name": "repo", "git": {
        "url": "git@example.invalid:org/repo.git", "path": "/opt/repo",
        "auth": {"private_key": PRIVATE_KEY}}}]}}))
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 1
    args = fake_ssh.read_text().splitlines()
    key_path = args[args.index("-i") + 1]
    assert not key_path.startswith(str(target))
    assert "StrictHostKeyChecking=yes" in args and "BatchMode=yes" in args
    assert "git@example.invalid" in args
    mode, dir_mode, *content = Path(str(fake_ssh) + ".key").read_text().splitlines()
    assert (mode, dir_mode) == ("600", "700")
    assert "\n".join(content) + "\n" == PRIVATE_KEY
    assert not os.path.exists(key_path)  # removed after the step
    error = res.json()["steps"][0]["error"]
    assert "stand-in" in error  # ssh's own message is kept ...
    assert KEY_LINE not in res.out + res.err  # ... with the key masked


def test_insecure_skips_host_key_checking_and_tls_verification(target: Path,
                                                               fake_ssh: Path) -> None:
    run = apply(step("ssh://git@example.invalid/repo.git",
                     auth={"private_key": PRIVATE_KEY, "insecure": True}), target)
    assert run.status == "failed"
    args = fake_ssh.read_text().splitlines()
    assert "StrictHostKeyChecking=no" in args and "UserKnownHostsFile=/dev/null" in args
    remote = Remote("https://h/r.git", "https://h/r.git", insecure=True)
    with session(remote) as s:
        assert "http.sslVerify=false" in s.argv(("fetch",), None)
    with session(Remote("https://h/r.git", "https://h/r.git")) as s:
        assert "http.sslVerify=true" in s.argv(("fetch",), None)


def test_public_key_pins_the_servers_host_key(target: Path, fake_ssh: Path) -> None:
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheServer"
    apply(step("ssh://git@example.invalid/repo.git", auth={"public_key": host_key}), target)
    args = fake_ssh.read_text().splitlines()
    known = next(a for a in args if a.startswith("UserKnownHostsFile="))
    assert "StrictHostKeyChecking=yes" in args and known != "UserKnownHostsFile=/dev/null"


def test_credentials_never_reach_a_command_line() -> None:
    remote = Remote("https://h/r.git", "https://h/r.git", "ops", "pa55word", PRIVATE_KEY)
    with session(remote) as s:
        argv = " ".join(s.argv(("ls-remote", "--", remote.fetch_url), None))
        assert "pa55word" not in argv and KEY_LINE not in argv
        assert "pa55word" not in s.env["GIT_SSH_COMMAND"]
        askpass = subprocess.run([s.env["GIT_ASKPASS"], "Username for 'https://h': "],
                                 env=s.env, capture_output=True, text=True, check=True)
        assert askpass.stdout == "ops\n"
        askpass = subprocess.run([s.env["GIT_ASKPASS"], "Password for 'https://ops@h': "],
                                 env=s.env, capture_output=True, text=True, check=True)
        assert askpass.stdout == "pa55word\n"
        assert "pa55word" not in Path(s.env["GIT_ASKPASS"]).read_text()
        tmp = s.tmp
    assert not os.path.exists(tmp)
    assert "pa55word" not in repr(remote) and KEY_LINE not in repr(remote)


def test_mask_covers_urls_the_password_and_the_key() -> None:
    remote = Remote("https://ops:p%40ss@h/r.git", "https://ops:p%40ss@h/r.git", "ops", "p@ss/w",
                    PRIVATE_KEY)
    text = (f"fatal: https://ops:p%40ss@h/r.git said p@ss/w and p%40ss%2Fw\n{PRIVATE_KEY}"
            "https://x:y@other/z")
    masked = remote.mask(text)
    assert "p@ss" not in masked and "p%40ss" not in masked and KEY_LINE not in masked
    assert f"https://ops:{MASK}@h/r.git" in masked and f"https://x:{MASK}@other/z" in masked
