"""Writes to the target's filesystem: atomic, mode- and owner-keeping, leaving no debris.

A file is replaced by writing a temp file beside it, fsyncing it, and renaming it over
the old one, then fsyncing the directory. After a crash at any moment the file holds
its complete old or new content. The temp file has a fixed name per target file
(`.NAME.edgeinit-new`), so a write interrupted by a crash is cleaned up by the next
write of the same file, and a failed write (a full disk) removes it at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable

TEMP_SUFFIX = ".edgeinit-new"


def temp_path_for(host_path: str) -> str:
    head, tail = os.path.split(host_path)
    return os.path.join(head, f".{tail}{TEMP_SUFFIX}")


def atomic_write(host_path: str, data: bytes, mode: int, uid: int, gid: int, *,
                 sync_dir: bool = True) -> None:
    """Replace `host_path` with `data`, owned uid:gid with permission bits `mode`.

    The file is fsynced before the rename, so it is never seen half-written. With
    sync_dir=False the caller fsyncs the directory later (once for many renames):
    until then a crash may bring back the old file, complete.
    """
    tmp = temp_path_for(host_path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # debris of an earlier, interrupted write
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            _fchown(fd, uid, gid)
            os.fchmod(fd, mode)  # after chown: chown clears set-id bits
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, host_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(os.path.dirname(host_path))


def stage_stream(host_path: str, chunks: Iterable[bytes]) -> str:
    """Write `chunks` (a body too large to hold in memory) to the temp file beside
    `host_path`, 0600 and fsynced; return its path. The file itself is not touched:
    commit_staged renames the temp over it, discard_staged drops it. Any failure
    (the source failing mid-way, a full disk) removes the temp file.
    """
    tmp = temp_path_for(host_path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # debris of an earlier, interrupted write
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        discard_staged(tmp)
        raise
    return tmp


def commit_staged(tmp: str, host_path: str, mode: int, uid: int, gid: int, *,
                  sync_dir: bool = True) -> None:
    """Give a staged temp file (stage_stream) its owner and mode and rename it over
    `host_path`; on failure the temp file is removed and `host_path` is as it was."""
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            _fchown(fd, uid, gid)
            os.fchmod(fd, mode)  # after chown: chown clears set-id bits
        finally:
            os.close(fd)
        os.rename(tmp, host_path)
    except BaseException:
        discard_staged(tmp)
        raise
    if sync_dir:
        fsync_dir(os.path.dirname(host_path))


def discard_staged(tmp: str) -> None:
    """Remove a staged temp file that is not to be committed ("" = nothing staged)."""
    if tmp:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def make_dir(host_path: str, mode: int, uid: int, gid: int, *, sync_dir: bool = True) -> None:
    """Create one directory with exactly `mode` (whatever the umask) and owner."""
    os.mkdir(host_path, 0o700)
    try:
        st = os.lstat(host_path)
        if (st.st_uid, st.st_gid) != (uid, gid):  # a setgid parent hands down its group
            os.chown(host_path, uid, gid)
        os.chmod(host_path, mode)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(host_path)
        raise
    if sync_dir:
        fsync_dir(os.path.dirname(host_path))


def set_attrs(host_path: str, mode: int | None, uid: int | None, gid: int | None) -> None:
    """Change owner and/or mode in place (owner first: chown clears set-id bits)."""
    if uid is not None or gid is not None:
        os.chown(host_path, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.chmod(host_path, mode)


def fsync_dir(host_dir: str) -> None:
    try:
        fd = os.open(host_dir or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems cannot fsync a directory
        if e.errno not in (errno.EINVAL, errno.EROFS, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _fchown(fd: int, uid: int, gid: int) -> None:
    st = os.fstat(fd)
    if (st.st_uid, st.st_gid) != (uid, gid):  # a setgid parent hands down its group
        os.fchown(fd, uid, gid)


def make_symlink(host_path: str, target: str, *, sync_dir: bool = True) -> None:
    """Make `host_path` a symbolic link to `target`, replacing a link already there at
    once (a new link under the temp name, renamed over it): the name always exists."""
    try:
        os.symlink(target, host_path)
    except FileExistsError:
        if not os.path.islink(host_path):
            raise
        tmp = temp_path_for(host_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # debris of an earlier, interrupted replacement
        os.symlink(target, tmp)
        try:
            os.rename(tmp, host_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    if sync_dir:
        fsync_dir(os.path.dirname(host_path))


def make_tree(host_path: str, mode: int, uid: int, gid: int, source: str | None) -> None:
    """Create directory `host_path` (mode, owner) holding a copy of `source` (files,
    directories and symlinks, modes kept, all owned uid:gid), all at once.

    Built as `.NAME.edgeinit-new` beside it, every file fsynced, then renamed into
    place: after a crash the directory is absent or complete, never half-copied.
    """
    import shutil

    tmp = temp_path_for(host_path)
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)  # debris of an interrupted attempt
    os.mkdir(tmp, 0o700)
    try:
        if source is not None:
            _copy_into(source, tmp, uid, gid)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        fsync_dir(tmp)
        os.rename(tmp, host_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _copy_into(src: str, dest: str, uid: int, gid: int) -> None:
    import stat

    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dest, name)
        st = os.lstat(s)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(d, 0o700)
            _copy_into(s, d, uid, gid)
            fsync_dir(d)
            os.chown(d, uid, gid)
            os.chmod(d, stat.S_IMODE(st.st_mode))
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(s), d)
            os.lchown(d, uid, gid)
        elif stat.S_ISREG(st.st_mode):
            with open(s, "rb") as f:
                data = f.read()
            fd = os.open(d, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchown(fd, uid, gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                os.fsync(fd)
            finally:
                os.close(fd)
        # sockets, fifos and devices in a skeleton are not copied
