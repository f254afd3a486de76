"""Paths of the target system, confined to its root.

Every path a config names (files, directories, /etc/passwd, env files, unit
directories, homes) is a path *inside* the target. `TargetRoot.resolve` turns it
into a host path the way the kernel would inside `chroot ROOT`: `..` stops at the
root and absolute symlinks restart at the root, so nothing resolves outside it.
A config path whose own `..` components climb above `/` is refused outright: that is
a mistake (or an attack) in the config, not something to repair silently.
"""

from __future__ import annotations

import os
import stat as stat_mod

from edgeinit.model import Record

MAX_SYMLINKS = 40


class PathError(Exception):
    """A config path that cannot be used inside the root."""


class FileState(Record):
    """What a path holds, as far as planning cares."""

    kind: str  # "file", "dir", "link" or "other"
    mode: int  # permission bits only (S_IMODE)
    uid: int
    gid: int
    size: int = 0


_PENDING_DELETED = object()


class TargetRoot:
    """The target system's root directory and its path rules.

    In dry-run mode the root keeps an overlay of planned writes, so that a later
    step plans against what an earlier step would have written.
    """

    def __init__(self, path: str = "/", *, dry_run: bool = False) -> None:
        self.path = os.path.realpath(path or "/")
        self.is_live = self.path == "/"
        self.dry_run = dry_run
        self._overlay: dict[str, tuple[FileState, bytes | None]] = {}
        self._unsynced_dirs: set[str] = set()
        self._plain_dirs: set[str] = set()  # resolve()'s memory; see forget_links

    # -- resolution -----------------------------------------------------------------

    def resolve(self, path: str, *, follow: bool = True) -> str:
        """Host path of `path` (a path inside the target).

        `follow=False` leaves a final symlink unresolved (for lstat-like checks).
        """
        check_config_path(path)
        todo = [p for p in reversed(path.split("/")) if p not in ("", ".")]
        prefixes = [self.path]  # the host path after each resolved component
        plain = self._plain_dirs
        links = 0
        while todo:
            part = todo.pop()
            if part == "..":
                if len(prefixes) > 1:
                    prefixes.pop()
                continue
            base = prefixes[-1]
            candidate = base + part if base.endswith("/") else base + "/" + part
            if (follow or todo) and candidate not in plain:
                if os.path.islink(candidate):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise PathError(f"too many levels of symbolic links in '{path}'")
                    target = os.readlink(candidate)
                    if target.startswith("/"):
                        prefixes = [self.path]
                    todo.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                    continue
                if todo:
                    plain.add(candidate)  # a directory on the way, known not to be a link
            prefixes.append(candidate)
        return prefixes[-1]

    def forget_links(self) -> None:
        """Forget which directories are known not to be links: something outside
        edgeinit (a command) may have changed the tree."""
        self._plain_dirs.clear()

    def display(self, host_path: str) -> str:
        """The target path a host path stands for (for messages and reports)."""
        if self.is_live:
            return host_path
        rel = os.path.relpath(host_path, self.path)
        return "/" if rel == "." else "/" + rel

    # -- reading (overlay-aware) -----------------------------------------------------

    def state(self, host_path: str) -> FileState | None:
        """State of a resolved host path, or None when nothing is there."""
        pending = self._overlay.get(host_path)
        if pending is not None:
            st, _ = pending
            return None if st is _PENDING_DELETED else st
        try:
            st = os.lstat(host_path)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        fmt = stat_mod.S_IFMT(st.st_mode)
        kind = {
            stat_mod.S_IFREG: "file",
            stat_mod.S_IFDIR: "dir",
            stat_mod.S_IFLNK: "link",
        }.get(fmt, "other")
        return FileState(kind, stat_mod.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size)

    def read_bytes(self, host_path: str) -> bytes | None:
        """Content of a regular file, or None when it does not exist."""
        pending = self._overlay.get(host_path)
        if pending is not None:
            st, data = pending
            if st is _PENDING_DELETED:
                return None
            if st.kind != "file":
                raise IsADirectoryError(host_path)
            return data
        try:
            with open(host_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read_link(self, host_path: str) -> str | None:
        """Target of a symbolic link, or None when the path is not one (overlay-aware)."""
        pending = self._overlay.get(host_path)
        if pending is not None:
            st, data = pending
            if st is _PENDING_DELETED or st.kind != "link" or data is None:
                return None
            return data.decode("utf-8", "surrogateescape")
        try:
            return os.readlink(host_path)
        except OSError:  # missing, or not a link
            return None

    def list_dir(self, host_path: str) -> list[str]:
        """Sorted names in a directory, with planned entries (dry run) added and planned
        removals left out; empty when it is not a directory."""
        try:
            names = set(os.listdir(host_path))
        except OSError:
            names = set()
        if self._overlay:
            prefix = host_path.rstrip("/") + "/"
            for path, (st, _) in self._overlay.items():
                if path.startswith(prefix) and "/" not in path[len(prefix):]:
                    if st is _PENDING_DELETED:
                        names.discard(path[len(prefix):])
                    else:
                        names.add(path[len(prefix):])
        return sorted(names)

    def read_text(self, path: str) -> str | None:
        """Text of a target file (by target path), None when missing or unreadable."""
        try:
            data = self.read_bytes(self.resolve(path))
        except (OSError, PathError):
            return None
        return None if data is None else data.decode("utf-8", "replace")

    # -- durability -----------------------------------------------------------------

    def touched(self, host_path: str) -> None:
        """A file or directory was created or renamed into place; its directory needs an
        fsync (see sync)."""
        self._unsynced_dirs.add(os.path.dirname(host_path))

    def sync(self) -> None:
        """fsync every directory that got a new entry since the last sync: once per
        directory, not once per file. Until then a crash may bring back an old file,
        complete (each file's content is fsynced before its rename)."""
        from edgeinit.target.fs import fsync_dir

        for directory in sorted(self._unsynced_dirs):
            fsync_dir(directory)
        self._unsynced_dirs.clear()

    # -- dry-run overlay ------------------------------------------------------------

    def record(self, host_path: str, state: FileState, data: bytes | None = None) -> None:
        """Remember a planned write (dry-run only)."""
        self._overlay[host_path] = (state, data)

    def record_removed(self, host_path: str) -> None:
        """Remember a planned removal (dry-run only)."""
        self._overlay[host_path] = (_PENDING_DELETED, None)  # type: ignore[assignment]


def check_config_path(path: str) -> None:
    """Refuse config paths that are empty, relative, or climb above the root."""
    if not isinstance(path, str) or not path:
        raise PathError("empty path")
    if "\0" in path:
        raise PathError(f"path {path!r} contains a NUL byte")
    if not path.startswith("/"):
        raise PathError(f"path '{path}' is not absolute")
    depth = 0
    for part in path.split("/"):
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise PathError(f"path '{path}' climbs above the root")
