"""`authorized_keys`: SSH public keys per user, merged into ~/.ssh/authorized_keys.

A key is given literally or as `github:NAME` / `gitlab:NAME` (fetched from the forge's
public `NAME.keys`, base URLs from EDGEINIT_GITHUB_KEYS_URL / EDGEINIT_GITLAB_KEYS_URL)
or an http(s) URL. The user, their ids and home come from the target's /etc/passwd.
Keys already in the file stay; new ones are appended once (exact line match, SPEC 7.8);
a fetched body gives one key per line. `.ssh` is made 0700 and the file 0600, owned
by the user. A fetch that fails fails the step, names the user and the source, and
leaves that user's file as it was. TLS certificates are verified.

`.ssh` and `authorized_keys` live in a directory the user controls, so neither is
followed when it is a symbolic link (root would otherwise chmod, chown or write
whatever it points at). Public keys are not secret: the dry-run diff shows them
although the file is 0600.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target import ids
from edgeinit.target.changes import Change, WriteFile
from edgeinit.target.plan import plan_attrs, plan_dirs, plan_write
from edgeinit.target.root import PathError

FORGES = {
    "github": ("EDGEINIT_GITHUB_KEYS_URL", "https://github.com/{user}.keys"),
    "gitlab": ("EDGEINIT_GITLAB_KEYS_URL", "https://gitlab.com/{user}.keys"),
}


class Args(Record):
    authorized_keys: dict[str, list[str]] = spec(
        factory=dict, doc="user -> keys; a key may be github:NAME or gitlab:NAME.")


def source_url(key: str) -> str | None:
    """The URL a key entry names (github:NAME, gitlab:NAME, http(s)://...), else None."""
    forge, sep, name = key.partition(":")
    if sep and forge in FORGES:
        variable, default = FORGES[forge]
        template = os.environ.get(variable) or default
        return template.replace("{user}", name.strip())
    if key.startswith(("https://", "http://")):
        return key
    return None


def fetch_keys(url: str) -> list[str]:
    """The keys served at `url`, one per non-empty, non-comment line."""
    from http.client import HTTPException

    from edgeinit.config.fetch import FetchError, fetch

    try:
        body = fetch(url, limit=1024 * 1024).decode("utf-8", "replace")
    except (ValueError, HTTPException) as e:  # a URL urllib cannot take, a cut-off body
        raise FetchError(f"cannot fetch {url}: {type(e).__name__}: {e}") from None
    return [line.strip() for line in body.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def merge(existing: str | None, keys: list[str]) -> str:
    """`existing` with each key not already there (as a whole line) appended once.

    The existing text is kept exactly as it is (a file that already holds every key
    is not rewritten, not even to add a final newline).
    """
    text = existing or ""
    present = {line.strip() for line in text.splitlines()}
    added: list[str] = []
    for key in keys:
        if key not in present:
            added.append(key)
            present.add(key)
    if not added:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(key + "\n" for key in added)


class KeysFile(WriteFile):
    """An authorized_keys write: 0600, but public keys, so the dry-run diff shows them."""

    def diff(self) -> str:
        from edgeinit.target.diff import file_diff

        return file_diff(self.path, self.old, self.content, secret=self.secret)


def plan_user_keys(user: str, keys: list[str], ctx: Context) -> Iterator[Change]:
    """Changes that put `keys` into `user`'s authorized_keys (also used by `users`)."""
    from edgeinit.config.fetch import FetchError

    try:
        uid, gid, home = ids.passwd_entry(ctx.root, user)
    except ids.LookupError_ as e:
        ctx.fail(f"authorized_keys: {e}")
        return
    wanted: list[str] = []
    for key in (k.strip() for k in keys):
        if not key:
            continue
        url = source_url(key)
        if url is None:  # a literal entry; a block of several lines is several keys
            wanted.extend(line.strip() for line in key.splitlines() if line.strip())
            continue
        forge, _, name = key.partition(":")
        try:
            if forge in FORGES and not name.strip():
                raise FetchError(f"no {forge} user name after '{forge}:'")
            wanted.extend(fetch_keys(url))
        except FetchError as e:
            ctx.fail(f"authorized_keys: keys of '{user}' from {key}: {e}; "
                     f"{user}'s authorized_keys left as it was")
            return
    if not wanted:
        return
    try:
        yield from _plan_file(ctx, uid, gid, home, wanted)
    except PathError as e:
        ctx.fail(f"authorized_keys: '{user}': {e}")


def _plan_file(ctx: Context, uid: int, gid: int, home: str, keys: list[str]) -> Iterator[Change]:
    root = ctx.root
    host_home = root.resolve(home)
    home_state = root.state(host_home)
    if home_state is None or home_state.kind != "dir":
        raise PathError(f"home directory {home} does not exist")
    ssh = posixpath.join(home, ".ssh")
    host_ssh = root.resolve(ssh, follow=False)
    st = root.state(host_ssh)
    if st is None:
        yield from plan_dirs(root, ssh, 0o700, uid, gid)
    elif st.kind == "link":
        raise PathError(f"{ssh} is a symbolic link; not followed")
    elif st.kind != "dir":
        raise PathError(f"{ssh} exists and is not a directory")
    else:
        yield from plan_attrs(root, ssh, host_ssh, st, 0o700, uid, gid)
    path = posixpath.join(ssh, "authorized_keys")
    host = root.resolve(path, follow=False)
    st = root.state(host)
    if st is not None and st.kind == "link":
        raise PathError(f"{path} is a symbolic link; not followed")
    if st is not None and st.kind != "file":
        raise PathError(f"{path} exists and is not a regular file")
    data = root.read_bytes(host) if st is not None else None
    old = None if data is None else data.decode("utf-8", "surrogateescape")
    content = merge(old, keys).encode("utf-8", "surrogateescape")
    for change in plan_write(root, path, content, mode=0o600, uid=uid, gid=gid):
        if type(change) is WriteFile:
            change = KeysFile(*(getattr(change, f.name) for f in WriteFile.__fields__))
        yield change


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    for user in sorted(args.authorized_keys):
        yield from plan_user_keys(user, args.authorized_keys[user], ctx)


PLUGIN = Plugin("authorized_keys", Args, plan)
