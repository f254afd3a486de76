"""Git repositories in the target, cloned and updated with the host's git binary.

The host's git (the running system's, on a device the target itself) works on the host
path that `TargetRoot.resolve` gave for the repository, so the destination stays inside
the root; the target needs no git of its own (an immutable image seldom ships one) and
no working /bin/sh or network setup inside a chroot.

Every git command here:
- is bounded: EDGEINIT_COMMAND_TIMEOUT for the whole command (its process group is
  killed), and a transfer gives up after EDGEINIT_FETCH_TIMEOUT (at most 30 s) below
  1 byte/s over HTTP, or after three unanswered 10 s keepalives over SSH (SPEC 8);
- never prompts (GIT_TERMINAL_PROMPT=0, ssh BatchMode) and ignores the host's system
  and global git configuration, so its result does not depend on who runs it;
- names the git directory and the work tree itself and turns off hooks and fsmonitor,
  so the configuration of a repository already in the target cannot send writes or
  commands elsewhere (`core.worktree`, hooks, `protocol.ext.allow`, `http.sslVerify`
  are all overridden on the command line).

Credentials: an HTTPS user name and password reach git through GIT_ASKPASS, a script
that prints two environment variables of the git process, so the password is never on
a command line or on disk; an SSH private key is written 0600 into a private (0700)
temp directory outside the target and removed afterwards. Every message from git is
masked (passwords in URLs, the password, the key) before it is raised.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator

from edgeinit.model import Record

MASK = "********"
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@\s:]*:)[^/@\s]*@")
ASKPASS = """#!/bin/sh
case "$1" in
    [Uu]sername*) printf '%s\\n' "$_EDGEINIT_ASKPASS_USER" ;;
    *) printf '%s\\n' "$_EDGEINIT_ASKPASS_SECRET" ;;
esac
"""


class GitError(Exception):
    """A git command that failed; the message is masked and names what failed."""


def mask_url(text: str) -> str:
    """`text` with the password of every `scheme://user:password@` masked."""
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)


class Remote(Record):
    """Where a repository comes from, and the credentials to reach it."""

    url: str  # as the config gives it: origin's URL in the clone, and what we show
    fetch_url: str  # what git fetches from (a local path resolved inside the root)
    username: str = ""
    password: str = ""
    private_key: str = ""
    public_key: str = ""  # the server's host key (known_hosts form), to pin it
    insecure: bool = False

    def __repr__(self) -> str:  # never the password or the key
        return f"Remote({self.shown!r})"

    @property
    def shown(self) -> str:
        return mask_url(self.url)

    def mask(self, text: str) -> str:
        """`text` (a message from git) with every secret of this remote masked."""
        from urllib.parse import quote

        from edgeinit.target.diff import mask_text

        text = mask_url(text)
        secrets = []
        if self.password:
            secrets += [self.password, quote(self.password, safe="")]
        secrets += [line.strip() for line in self.private_key.splitlines()
                    if line.strip() and not line.strip().startswith("-----")]
        for secret in sorted(set(secrets), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return mask_text(text)


class Local(Record):
    """A repository's state in the target."""

    commit: str  # "" when nothing is checked out yet
    branch: str  # "" when HEAD is detached
    origin: str  # remote.origin.url, "" when there is no origin
    dirty: bool  # tracked files differ from the commit


class Session:
    """The git binary, its environment and private temp directory for one remote."""

    def __init__(self, remote: Remote, git: str, tmp: str) -> None:
        from edgeinit.config.fetch import fetch_timeout

        self.remote = remote
        self.git = git
        self.tmp = tmp
        askpass = os.path.join(tmp, "askpass")
        _write_private(askpass, ASKPASS, 0o700)
        ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
               "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]
        if remote.private_key:
            key = os.path.join(tmp, "key")
            text = remote.private_key.replace("\r\n", "\n")
            _write_private(key, text if text.endswith("\n") else text + "\n", 0o600)
            ssh += ["-i", key, "-o", "IdentitiesOnly=yes"]
        if remote.insecure:
            ssh += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        elif remote.public_key.strip():
            known = os.path.join(tmp, "known_hosts")
            _write_private(known, f"* {remote.public_key.strip()}\n", 0o600)
            ssh += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}"]
        else:
            ssh += ["-o", "StrictHostKeyChecking=yes"]
        import shlex

        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GIT_") and k not in ("SSH_ASKPASS", "LANGUAGE")}
        env.update({
            "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C",
            "GIT_ASKPASS": askpass, "GIT_SSH_COMMAND": shlex.join(ssh),
            "_EDGEINIT_ASKPASS_USER": remote.username, "_EDGEINIT_ASKPASS_SECRET": remote.password,
        })
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        self.env = env
        self.config = [
            "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
            "-c", "credential.helper=", "-c", "protocol.ext.allow=never",
            "-c", f"http.sslVerify={'false' if remote.insecure else 'true'}",
            "-c", "http.lowSpeedLimit=1", "-c", f"http.lowSpeedTime={max(1, int(fetch_timeout()))}",
            "-c", "advice.detachedHead=false", "-c", "safe.directory=*",
        ]

    def argv(self, args: tuple[str, ...], repo: str | None) -> list[str]:
        where = [f"--git-dir={repo}/.git", f"--work-tree={repo}"] if repo else []
        return [self.git, *self.config, *where, *args]

    def run(self, *args: str, repo: str | None = None, check: bool = True) -> str:
        """git ARGS (in `repo` when given); its standard output. GitError when it fails
        (unless check=False: then "" for a non-zero exit)."""
        from edgeinit.target.exec import ToolError, run_tool

        try:
            done = run_tool(self.argv(args, repo), env=self.env, cwd=repo or self.tmp)
        except ToolError as e:
            if e.kind == "timeout":
                raise GitError(f"git {args[0]} did not finish within {e.timeout:g} s "
                               "(EDGEINIT_COMMAND_TIMEOUT)") from None
            raise GitError(f"cannot run git: {e}") from None
        if done.returncode != 0:
            if not check:
                return ""
            lines = [line for line in done.message.splitlines() if line.strip()][-8:]
            why = "; ".join(lines) or f"exit status {done.returncode}"
            raise GitError(self.remote.mask(f"git {args[0]} failed: {why}"))
        return done.out

    # -- queries --------------------------------------------------------------------

    def remote_head(self, branch: str) -> tuple[str, str]:
        """The branch to check out (`branch`, or the remote's default) and its commit."""
        shown = self.remote.shown
        pattern = f"refs/heads/{branch}" if branch else "HEAD"
        try:
            out = self.run("ls-remote", "--symref", "--", self.remote.fetch_url, pattern)
        except GitError as e:
            raise GitError(f"cannot read {shown}: {e}") from None
        refs: dict[str, str] = {}
        head = ""
        for line in out.splitlines():
            left, _, name = line.partition("\t")
            if left.startswith("ref: "):
                if name == "HEAD":
                    head = left[5:]
            else:
                refs[name] = left
        if branch:
            if pattern not in refs:
                raise GitError(f"branch '{branch}' not found in {shown}")
            return branch, refs[pattern]
        if "HEAD" not in refs or not head.startswith("refs/heads/"):
            raise GitError(f"{shown} has no default branch (an empty repository?); "
                           "name one with `branch`")
        return head[len("refs/heads/"):], refs["HEAD"]

    def local(self, repo: str) -> Local:
        out = self.run("status", "--porcelain=v2", "--branch", "--untracked-files=no",
                       repo=repo)
        commit = branch = ""
        dirty = False
        for line in out.splitlines():
            if line.startswith("# branch.oid "):
                commit = line.split()[2]
            elif line.startswith("# branch.head "):
                branch = line.split(maxsplit=2)[2]
            elif line and not line.startswith("#"):
                dirty = True
        commit = "" if commit == "(initial)" else commit
        branch = "" if branch == "(detached)" else branch
        origin = self.run("config", "--get", "remote.origin.url", repo=repo, check=False)
        return Local(commit, branch, origin.strip(), dirty)

    # -- changes --------------------------------------------------------------------

    def clone(self, host: str, branch: str, single_branch: bool,
              like: tuple[int, int, int] | None) -> None:
        """Clone into `host`, all at once: built as `.NAME.edgeinit-new` beside it and
        renamed into place (over an empty directory, whose mode and owner `like` keeps),
        so a failed or interrupted clone leaves nothing at `host`."""
        from edgeinit.target.fs import fsync_dir, temp_path_for

        tmp = temp_path_for(host)
        _remove(tmp)  # debris of an interrupted clone
        try:
            args = ["clone", "--branch", branch] + (["--single-branch"] if single_branch else [])
            self.run(*args, "--", self.remote.fetch_url, tmp)
            if self.remote.url != self.remote.fetch_url:
                self.run("remote", "set-url", "origin", self.remote.url, repo=tmp)
            if like is not None:
                mode, uid, gid = like
                os.chown(tmp, uid, gid)
                os.chmod(tmp, mode)
            os.sync()  # every file of the clone on disk before its name appears
            os.rename(tmp, host)
        except BaseException:
            _remove(tmp)
            raise
        fsync_dir(os.path.dirname(host))

    def update(self, repo: str, branch: str, local: Local) -> None:
        """Fetch `branch` and make the work tree exactly its head (local changes to
        tracked files are discarded, as yip's hard reset does; untracked files stay)."""
        url = self.remote.url
        if local.origin != url:
            self.run("remote", "set-url" if local.origin else "add", "origin", url, repo=repo)
        tracking = f"refs/remotes/origin/{branch}"
        self.run("fetch", "--", self.remote.fetch_url, f"+refs/heads/{branch}:{tracking}",
                 repo=repo)
        self.run("checkout", "-f", "-B", branch, tracking, repo=repo)
        os.sync()


@contextlib.contextmanager
def session(remote: Remote) -> Iterator[Session]:
    """A Session whose private temp directory (outside the target) is removed after."""
    import tempfile

    git = shutil.which("git")
    if git is None:
        raise GitError("git is not installed on this system (the git plugin runs the "
                       "system's git binary)")
    tmp = tempfile.mkdtemp(prefix="edgeinit-git-")
    try:
        yield Session(remote, git, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_private(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
