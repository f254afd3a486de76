"""User and group names as the *target* knows them (its /etc/passwd and /etc/group).

The host's NSS is never asked: under `--root` the image being built may have users
the build machine does not, with other ids.
"""

from __future__ import annotations

from edgeinit.target.root import TargetRoot


class LookupError_(LookupError):
    """A user or group name the target does not know."""


def _table(root: TargetRoot, path: str) -> list[list[str]]:
    text = root.read_text(path) or ""
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        rows.append(line.split(":"))
    return rows


def uid_of(root: TargetRoot, user: str) -> int:
    """uid of `user` (a name, or a number given as text)."""
    if user.isdigit():
        return int(user)
    for row in _table(root, "/etc/passwd"):
        if row[0] == user and len(row) >= 4 and row[2].isdigit():
            return int(row[2])
    raise LookupError_(f"user '{user}' not found in the target's /etc/passwd")


def primary_gid_of(root: TargetRoot, user: str) -> int:
    """Primary gid of `user` (a name, or a uid given as text)."""
    for row in _table(root, "/etc/passwd"):
        named = row[0] == user or (user.isdigit() and len(row) >= 3 and row[2] == user)
        if named and len(row) >= 4 and row[3].isdigit():
            return int(row[3])
    if user.isdigit():
        return int(user)
    raise LookupError_(f"user '{user}' not found in the target's /etc/passwd")


def gid_of(root: TargetRoot, group: str) -> int:
    """gid of `group` (a name, or a number given as text)."""
    if group.isdigit():
        return int(group)
    for row in _table(root, "/etc/group"):
        if row[0] == group and len(row) >= 3 and row[2].isdigit():
            return int(row[2])
    raise LookupError_(f"group '{group}' not found in the target's /etc/group")


def owner_of(root: TargetRoot, spec: str) -> tuple[int, int]:
    """uid and gid for yip's `owner_string`: "user" (its primary group) or "user:group"."""
    user, sep, group = spec.partition(":")
    user = user.strip()
    group = group.strip()
    if not user:
        raise LookupError_(f"owner '{spec}' names no user")
    uid = uid_of(root, user)
    gid = gid_of(root, group) if sep and group else primary_gid_of(root, user)
    return uid, gid


def passwd_entry(root: TargetRoot, user: str) -> tuple[int, int, str]:
    """uid, primary gid and home directory of `user` in the target's /etc/passwd."""
    for row in _table(root, "/etc/passwd"):
        if row[0] == user and len(row) >= 7 and row[2].isdigit() and row[3].isdigit():
            return int(row[2]), int(row[3]), row[5]
    raise LookupError_(f"user '{user}' not found in the target's /etc/passwd")
