"""Compare what a config wants with what is on disk, and say what would change.

These functions only read (through the root, so a dry run sees earlier planned
writes) and return changes; nothing here writes.
"""

from __future__ import annotations

import posixpath

from edgeinit.target.changes import Change, MakeDir, SetAttrs, WriteFile
from edgeinit.target.root import FileState, PathError, TargetRoot

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755


def plan_dirs(
    root: TargetRoot, path: str, mode: int = DEFAULT_DIR_MODE, uid: int = 0, gid: int = 0
) -> list[Change]:
    """Create `path` and any missing ancestors (each with mode/uid/gid), parents first.

    Raises PathError when an ancestor exists and is not a directory.
    """
    missing: list[tuple[str, str]] = []
    current = path
    while True:
        host = root.resolve(current)
        st = root.state(host)
        if st is not None:
            if st.kind != "dir":
                raise PathError(f"'{root.display(host)}' exists and is not a directory")
            break
        missing.append((current, host))
        parent = posixpath.dirname(root.display(host)) or "/"  # resolved: no `..`, no links
        if parent == current:
            break
        current = parent
    return [MakeDir(p, h, mode, uid, gid) for p, h in reversed(missing)]


def plan_attrs(
    root: TargetRoot, path: str, host: str, st: FileState,
    mode: int | None, uid: int | None, gid: int | None,
) -> list[Change]:
    """A SetAttrs for whatever of mode/uid/gid differs from `st` (None = leave as is)."""
    mode = None if mode is None or mode == st.mode else mode
    new_uid = None if uid is None or uid == st.uid else uid
    new_gid = None if gid is None or gid == st.gid else gid
    if mode is None and new_uid is None and new_gid is None:
        return []
    if new_uid is not None or new_gid is not None:  # chown needs both to be explicit
        new_uid = st.uid if new_uid is None else new_uid
        new_gid = st.gid if new_gid is None else new_gid
    return [SetAttrs(path, host, st, mode, new_uid, new_gid)]


def plan_write(
    root: TargetRoot,
    path: str,
    content: bytes,
    *,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    parent_mode: int = DEFAULT_DIR_MODE,
    parent_uid: int = 0,
    parent_gid: int = 0,
    secret: bool = False,
) -> list[Change]:
    """Changes that make `path` a regular file with `content`, mode and owner.

    mode/uid/gid None mean: keep what an existing file has; for a new file 0644, 0, 0.
    Raises PathError for a path that cannot hold a file.
    """
    host = root.resolve(path)
    st = root.state(host)
    changes: list[Change] = []
    if st is None:
        parent = posixpath.dirname(root.display(host)) or "/"
        changes.extend(plan_dirs(root, parent, parent_mode, parent_uid, parent_gid))
        changes.append(
            WriteFile(
                path, host, content,
                DEFAULT_FILE_MODE if mode is None else mode,
                0 if uid is None else uid,
                0 if gid is None else gid,
                None, None, secret,
            )
        )
        return changes
    if st.kind == "dir":
        raise PathError(f"'{path}' is a directory")
    if st.kind != "file":
        raise PathError(f"'{path}' is not a regular file")
    old = root.read_bytes(host)
    want_mode = st.mode if mode is None else mode
    want_uid = st.uid if uid is None else uid
    want_gid = st.gid if gid is None else gid
    if old != content:
        changes.append(
            WriteFile(path, host, content, want_mode, want_uid, want_gid, old, st, secret)
        )
    else:
        changes.extend(plan_attrs(root, path, host, st, mode, uid, gid))
    return changes
