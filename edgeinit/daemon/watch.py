"""Watch the config directories under the root with inotify (through ctypes on libc).

Every directory of /system/oem, /oem and /usr/local/oem (as resolved inside the root)
is watched, recursively. A config directory that does not exist, or vanishes while
watched, is logged, and its nearest existing ancestor is watched instead so that the
directory is watched again as soon as it comes back. Changes to `.yaml`/`.yml` files
and to directories are debounced into one call of `on_change`.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
from collections.abc import Callable, Sequence

from edgeinit.config.sources import DEFAULT_DIRS
from edgeinit.log import log
from edgeinit.target.root import PathError, TargetRoot

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

WATCH_MASK = (IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
              | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_ONLYDIR | IN_DONT_FOLLOW)
SELF_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT
CONFIG_SUFFIXES = (".yaml", ".yml")
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len


class Event:
    __slots__ = ("mask", "name", "wd")

    def __init__(self, wd: int, mask: int, name: str) -> None:
        self.wd, self.mask, self.name = wd, mask, name

    def __repr__(self) -> str:
        return f"Event(wd={self.wd}, mask={self.mask:#x}, name={self.name!r})"


def _libc() -> ctypes.CDLL:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes import util

        return ctypes.CDLL(util.find_library("c"), use_errno=True)


class Inotify:
    """A non-blocking inotify instance: add/remove watches, read events."""

    def __init__(self) -> None:
        self._libc = _libc()
        self._libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd

    def add(self, path: str, mask: int = WATCH_MASK) -> int:
        """The watch descriptor of `path` (the same one again for a watched inode)."""
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return wd

    def remove(self, wd: int) -> None:
        self._libc.inotify_rm_watch(self.fd, wd)  # EINVAL: already gone; nothing to do

    def read(self) -> list[Event]:
        """The events queued so far; [] when there are none."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            if not data:
                return events
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                raw = data[offset:offset + length].split(b"\0", 1)[0]
                offset += length
                events.append(Event(wd, mask, os.fsdecode(raw)))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Debouncer:
    """Calls `callback` once `delay` seconds after the last poke (but no later than
    `max_delay` after the first one, so a steady stream of changes still gets through)."""

    def __init__(self, delay: float, callback: Callable[[], None],
                 loop: asyncio.AbstractEventLoop, max_delay: float | None = None) -> None:
        self.delay = delay
        self.max_delay = max(delay * 10, 60.0) if max_delay is None else max_delay
        self.callback = callback
        self.loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._first: float | None = None

    @property
    def pending(self) -> bool:
        return self._handle is not None

    def poke(self) -> None:
        now = self.loop.time()
        if self._first is None:
            self._first = now
        when = min(now + self.delay, self._first + self.max_delay)
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.loop.call_at(when, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._first = None

    def _fire(self) -> None:
        self._handle = None
        self._first = None
        self.callback()


class ConfigWatcher:
    """Watches the config directories under `root`; calls `on_change` (debounced)."""

    def __init__(self, root: str, on_change: Callable[[], None], *, debounce: float = 5.0,
                 dirs: Sequence[str] = DEFAULT_DIRS,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.root = TargetRoot(root)
        self.dirs = list(dirs)
        self.loop = loop or asyncio.get_running_loop()
        self.debouncer = Debouncer(debounce, on_change, self.loop)
        self.inotify: Inotify | None = None
        # wd -> (host path, the config directory it belongs to; "" for an ancestor
        # watched while that config directory is missing)
        self.watches: dict[int, tuple[str, str]] = {}
        self.present: dict[str, bool] = {}  # config dir (target path) -> exists
        self._full_warned = False

    def start(self) -> None:
        self.inotify = Inotify()
        self.loop.add_reader(self.inotify.fd, self._readable)
        self.resync(initial=True)
        found = [d for d in self.dirs if self.present.get(d)]
        log.info("watching config directories %s under %s%s", ", ".join(found) or "(none yet)",
                 self.root.path, "" if len(found) == len(self.dirs) else
                 "; waiting for " + ", ".join(d for d in self.dirs if not self.present.get(d)))

    def close(self) -> None:
        self.debouncer.cancel()
        if self.inotify is not None:
            self.loop.remove_reader(self.inotify.fd)
            self.inotify.close()
            self.inotify = None
        self.watches.clear()

    def watched_paths(self) -> set[str]:
        return {path for path, _owner in self.watches.values()}

    # -- the watch set ---------------------------------------------------------------

    def _wanted(self) -> tuple[dict[str, str], dict[str, bool]]:
        wanted: dict[str, str] = {}
        present: dict[str, bool] = {}
        self.root.forget_links()
        for d in self.dirs:
            try:
                host = self.root.resolve(d)
            except PathError as e:
                log.warning("config directory %s: %s", d, e)
                present[d] = False
                continue
            if os.path.isdir(host):
                present[d] = True
                for dirpath, _dirs, _files in os.walk(host):
                    wanted[dirpath] = d
            else:
                present[d] = False
                parent = os.path.dirname(host)
                while not os.path.isdir(parent) and len(parent) > len(self.root.path):
                    parent = os.path.dirname(parent)
                wanted.setdefault(parent, "")
        return wanted, present

    def resync(self, *, initial: bool = False) -> bool:
        """Bring the watches in line with the tree; True when a config directory
        appeared or vanished."""
        assert self.inotify is not None
        wanted, present = self._wanted()
        for _ in range(10):
            new = self._add_watches(wanted)
            # What changed between the scan and the new watches made no event: scan
            # again until the tree holds still.
            again, present_again = self._wanted()
            if again == wanted and present_again == present:
                break
            wanted, present = again, present_again
        for wd in self.watches.keys() - new.keys():
            self.inotify.remove(wd)
        self.watches = new
        toggled = False
        for d, now in present.items():
            before = self.present.get(d)
            if not initial and before is not None and before != now:
                toggled = True
                if now:
                    log.info("config directory %s is back; watching it again", d)
                else:
                    log.warning("config directory %s vanished; watching for it to come back",
                                d)
        self.present = present
        return toggled

    def _add_watches(self, wanted: dict[str, str]) -> dict[int, tuple[str, str]]:
        assert self.inotify is not None
        new: dict[int, tuple[str, str]] = {}
        for path, owner in wanted.items():
            try:
                wd = self.inotify.add(path)
            except OSError as e:
                if e.errno == errno.ENOSPC and not self._full_warned:
                    self._full_warned = True
                    log.warning("cannot watch %s: the inotify watch limit is reached "
                                "(fs.inotify.max_user_watches); changes there are only "
                                "seen at the next interval", path)
                elif e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENOSPC):
                    log.warning("cannot watch %s: %s", path, e.strerror or e)
                continue  # a directory gone meanwhile: its parent's event resyncs again
            new[wd] = (path, owner)
        return new

    # -- events ------------------------------------------------------------------------

    def _readable(self) -> None:
        if self.inotify is None:
            return
        try:
            events = self.inotify.read()
        except OSError as e:
            log.error("reading inotify events failed: %s", e.strerror or e)
            return
        try:
            changed, resync = self.classify(events)
            if resync:
                changed = self.resync() or changed
        except Exception as e:  # a watcher bug must not stop the daemon's loop
            log.exception("config watcher: %s: %s", type(e).__name__, e)
            changed = True
        if changed:
            self.debouncer.poke()

    def classify(self, events: list[Event]) -> tuple[bool, bool]:
        """(a config change was seen, the watch set must be resynced)."""
        changed = resync = False
        for ev in events:
            if ev.mask & IN_Q_OVERFLOW:
                changed = resync = True
                continue
            if ev.mask & IN_IGNORED:
                self.watches.pop(ev.wd, None)
                resync = True
                continue
            entry = self.watches.get(ev.wd)
            if entry is None:
                continue
            path, owner = entry
            if not owner:  # an ancestor of a missing config directory
                resync = True
                continue
            if ev.mask & (SELF_GONE | IN_ISDIR):
                changed = resync = True
            elif ev.name.endswith(CONFIG_SUFFIXES):
                changed = True
            else:
                continue
            log.debug("config change: %s (%#x)", os.path.join(path, ev.name), ev.mask)
        return changed, resync
