"""`git`: clone a repository into a path of the target, or bring it to the branch head.

As yip: a `path` that is not a repository yet is cloned (`--single-branch` with
`branch_only`); one that is gets the branch fetched and its work tree hard-reset to the
branch head (local changes to tracked files are discarded; untracked files stay).
`auth.username`/`auth.password` are for HTTPS, `auth.private_key` for SSH, with the
host key checked (`auth.public_key` pins it; `auth.insecure` skips host key and TLS
checks). An empty `url` does nothing, as in yip.

Differences, on purpose: with no `branch`, the remote's default branch (its HEAD) is
used, as `git clone` does (yip's git binary variant assumes `master`). The remote head
is asked first (`git ls-remote`, also in a dry run: read-only), so a repository already
at that commit, on that branch, with a clean work tree and the same origin URL, is left
alone and the step reports no change. A clone is built beside the path and renamed into
place, so a failed clone leaves nothing behind. A path that exists and is neither empty
nor a repository is refused, not cloned into. A `file://` URL or a local path is a path
inside the root, like every path of a config (SPEC 1); the clone's origin keeps the URL
as written. Over SSH the user name comes from the URL (`git@host:...`).

The host's git binary does the work; see target/gitrepo.py for why, for the bounds on
time and for how credentials are kept out of command lines, logs and reports.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target.changes import Change, GitClone, GitUpdate
from edgeinit.target.plan import plan_dirs
from edgeinit.target.root import TargetRoot


class Auth(Record):
    username: str = spec("", doc="User name for HTTPS.")
    password: str = spec("", secret=True, doc="Password for HTTPS.")
    private_key: str = spec("", secret=True, doc="SSH private key.")
    insecure: bool = spec(False, doc="Skip host key / TLS verification.")
    public_key: str = spec("", doc="The SSH server's host key (known_hosts form), pinned.")


class Git(Record):
    url: str = spec("", doc="Repository URL.")
    path: str = spec("", doc="Where to clone it.")
    branch: str = spec("", doc="Branch to check out.")
    branch_only: bool = spec(False, doc="Fetch only that branch.")
    auth: Auth | None = spec(None, doc="Credentials.")


class Args(Record):
    git: Git | None = spec(None, doc="A repository to clone or update.")


def fetch_url(url: str, root: TargetRoot) -> str:
    """What git fetches from: a local path (or file:// URL) resolved inside the root."""
    if url.startswith("/"):
        return root.resolve(url)
    if url.lower().startswith("file://"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        if parts.netloc in ("", "localhost"):
            return "file://" + root.resolve(unquote(parts.path) or "/")
    return url


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    from edgeinit.target.gitrepo import GitError

    entry = args.git
    if entry is None or not entry.url.strip():
        return
    try:
        yield from _plan(entry, ctx)
    except GitError as e:
        raise PluginError(f"{entry.path}: {e}") from None


def _plan(entry: Git, ctx: Context) -> Iterator[Change]:
    from edgeinit.target.gitrepo import Remote, session

    root = ctx.root
    if not entry.path.strip():
        raise PluginError("a repository needs a path")
    url = ctx.render(entry.url).strip()
    path = ctx.render(entry.path)
    host = root.resolve(path)
    st = root.state(host)
    auth = entry.auth or Auth()
    remote = Remote(url, fetch_url(url, root), auth.username, auth.password, auth.private_key,
                    auth.public_key, auth.insecure)
    if st is not None and st.kind != "dir":
        raise PluginError(f"'{path}' exists and is not a directory")
    dotgit = root.state(os.path.join(host, ".git")) if st is not None else None
    if st is not None and dotgit is None and root.list_dir(host):
        raise PluginError(f"'{path}' exists, is not empty and is not a git repository; "
                          "left as it is")
    if dotgit is not None and dotgit.kind != "dir":
        raise PluginError(f"'{path}/.git' is not a directory (a link or a gitdir file); "
                          "left as it is")
    with session(remote) as git:
        branch, commit = git.remote_head(entry.branch.strip())
        local = git.local(host) if dotgit is not None and os.path.isdir(host + "/.git") else None
    if dotgit is None:
        if st is None:
            parent = posixpath.dirname(root.display(host)) or "/"
            yield from plan_dirs(root, parent)
        like = None if st is None else (st.mode, st.uid, st.gid)
        yield GitClone(path, host, remote, branch, commit, entry.branch_only, like)
        return
    if local is None:  # cloned earlier in this dry run: it would be at the head
        return
    what = []
    if local.commit != commit:
        what.append(f"{local.commit[:12] or 'nothing'} -> {commit[:12]}")
    if local.branch != branch:
        what.append(f"branch {local.branch or '(detached)'} -> {branch}")
    if local.dirty:
        what.append("local changes discarded")
    if local.origin != url:
        what.append(f"origin -> {remote.shown}")
    if what:
        yield GitUpdate(path, host, remote, branch, commit, local, tuple(what))


PLUGIN = Plugin("git", Args, plan)
