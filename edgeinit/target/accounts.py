"""/etc/passwd, /etc/shadow, /etc/group and /etc/gshadow of the target, edited safely.

- Tables keep every line as written; a line that does not parse (wrong field count, a
  non-numeric id) is kept verbatim and reported, never dropped or "fixed".
- An edit is a function applied to freshly read tables while holding the shadow-utils
  lock (an fcntl write lock on ROOT/etc/.pwd.lock, as lckpwdf(3) and `useradd -R`
  take it), so a concurrent useradd cannot interleave with the read-modify-write.
- Changed files are written atomically (temp, fsync, rename), keep their mode and
  owner, get a `-` backup as shadow-utils keeps one, and are written in an order
  that keeps every passwd user with its shadow line (and every group with its
  gshadow line) at every moment: a crash leaves files that pwck/grpck accept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from edgeinit.model import Record
from edgeinit.target.root import TargetRoot

PASSWD, SHADOW, GROUP, GSHADOW = "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"
KIND_FILE = {"user": PASSWD, "shadow": SHADOW, "group": GROUP, "gshadow": GSHADOW}
FILE_KIND = {path: kind for kind, path in KIND_FILE.items()}
KIND_FIELDS = {"user": 7, "shadow": 9, "group": 4, "gshadow": 4}
SECRET_FILES = (SHADOW, GSHADOW)
LOCK_FILE = "/etc/.pwd.lock"
LOCK_TIMEOUT = 15.0  # seconds, as lckpwdf(3)
DEFAULT_LIMITS = {"UID_MIN": 1000, "UID_MAX": 60000, "GID_MIN": 1000, "GID_MAX": 60000,
                  "SYS_UID_MIN": 100, "SYS_UID_MAX": 999, "SYS_GID_MIN": 100,
                  "SYS_GID_MAX": 999}


class AccountsError(Exception):
    """An edit that cannot be made; the message says which name, id or file."""


def days_since_epoch(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 86400)


class Table:
    """One colon-separated account file: its lines as written, rows found by name."""

    def __init__(self, path: str, text: str | None, kind: str) -> None:
        self.path = path
        self.kind = kind  # user (passwd), shadow, group or gshadow
        self.exists = text is not None
        self.nfields = KIND_FIELDS[kind]
        # split("\n"), not splitlines(): a form feed or U+2028 in a gecos is no line end
        self.lines: list[str] = (text or "").split("\n")
        if self.lines[-1] == "":
            self.lines.pop()
        self.original = text
        self._original_lines = list(self.lines)

    def _row(self, line: str) -> list[str] | None:
        if not line or line.startswith("#"):
            return None
        fields = line.split(":")
        if len(fields) != self.nfields or not fields[0]:
            return None
        ids = fields[2:4] if self.kind == "user" else fields[2:3] if self.kind == "group" else []
        if not all(i.isdigit() for i in ids):
            return None
        return fields

    def malformed(self) -> list[tuple[int, str]]:
        """(1-based line number, line) of every line that does not parse; they are kept."""
        return [(i + 1, line) for i, line in enumerate(self.lines)
                if line and not line.startswith("#") and self._row(line) is None]

    def rows(self) -> Iterator[list[str]]:
        for line in self.lines:
            row = self._row(line)
            if row is not None:
                yield row

    def names(self) -> list[str]:
        return [row[0] for row in self.rows()]

    def get(self, name: str) -> list[str] | None:
        for row in self.rows():
            if row[0] == name:
                return row
        return None

    def set(self, fields: list[str]) -> None:
        """Replace the first line for fields[0], or append one."""
        if len(fields) != self.nfields:
            raise AccountsError(f"{self.path}: a line needs {self.nfields} fields")
        if any(":" in f or "\n" in f for f in fields):
            raise AccountsError(f"{self.path}: a field cannot contain ':' or a newline")
        line = ":".join(fields)
        for i, existing in enumerate(self.lines):
            row = self._row(existing)
            if row is not None and row[0] == fields[0]:
                self.lines[i] = line
                return
        self.lines.append(line)

    def remove(self, name: str) -> bool:
        for i, existing in enumerate(self.lines):
            row = self._row(existing)
            if row is not None and row[0] == name:
                del self.lines[i]
                return True
        return False

    def ids(self, index: int = 2) -> set[int]:
        return {int(row[index]) for row in self.rows() if row[index].isdigit()}

    def text(self) -> str | None:
        if not self.exists and not self.lines:
            return None
        return "".join(line + "\n" for line in self.lines)

    @property
    def changed(self) -> bool:
        """Whether a line was set or removed (a missing final newline alone is no change)."""
        return self.lines != self._original_lines if self.exists else bool(self.lines)


class Accounts:
    """The account tables of one target, read through its root (overlay-aware)."""

    def __init__(self, root: TargetRoot) -> None:
        self.root = root
        self.tables: dict[str, Table] = {}
        self._limits: dict[str, int] | None = None

    def table(self, path: str, kind: str | None = None) -> Table:
        """The table at `path` (read on first use); `kind` for a non-standard path."""
        table = self.tables.get(path)
        if table is None:
            kind = kind or FILE_KIND.get(path)
            if kind is None:
                raise AccountsError(f"{path}: cannot tell what kind of account file it is")
            table = Table(path, self.root.read_text(path), kind)
            self.tables[path] = table
        return table

    @property
    def passwd(self) -> Table:
        return self.table(PASSWD)

    @property
    def shadow(self) -> Table:
        return self.table(SHADOW)

    @property
    def group(self) -> Table:
        return self.table(GROUP)

    @property
    def gshadow(self) -> Table:
        return self.table(GSHADOW)

    def limits(self) -> dict[str, int]:
        """UID_MIN, GID_MAX, SYS_UID_MAX, ... from the target's /etc/login.defs."""
        if self._limits is None:
            limits = dict(DEFAULT_LIMITS)
            for line in (self.root.read_text("/etc/login.defs") or "").splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] in limits and parts[1].isdigit():
                    limits[parts[0]] = int(parts[1])
            self._limits = limits
        return self._limits

    def free_id(self, kind: str, *, system: bool = False) -> int:
        """The first free uid ("UID") or gid ("GID") of the range; system ids count down
        from SYS_*_MAX, as useradd -r does."""
        limits = self.limits()
        used = self.passwd.ids(2) if kind == "UID" else self.group.ids(2)
        if system:
            low, high = limits[f"SYS_{kind}_MIN"], limits[f"SYS_{kind}_MAX"]
            for n in range(high, low - 1, -1):
                if n not in used:
                    return n
        else:
            low, high = limits[f"{kind}_MIN"], limits[f"{kind}_MAX"]
            for n in range(low, high + 1):
                if n not in used:
                    return n
        raise AccountsError(f"no free {kind.lower()} left in {low}-{high}")

    def texts(self) -> dict[str, tuple[str | None, str | None]]:
        """path -> (old, new) for every table the edit changed."""
        return {p: (t.original, t.text()) for p, t in self.tables.items() if t.changed}


# -- writing --------------------------------------------------------------------------

def write_order(accounts: Accounts) -> list[tuple[str, str]]:
    """(path, text) writes that take the files from old to new keeping every passwd
    user with a shadow line and every group with a gshadow line at every step.

    The shadow file goes first, holding both the new rows and those of names about to
    leave passwd; then passwd; then shadow again if it still held leaving names.
    Groups go before users (a new user's primary group exists before the user).
    """
    writes: list[tuple[str, str]] = []
    for main, shadow in ((GROUP, GSHADOW), (PASSWD, SHADOW)):
        m, s = accounts.tables.get(main), accounts.tables.get(shadow)
        if s is not None and s.changed and s.text() is not None:
            leaving = set(Table(main, m.original, m.kind).names()) - set(m.names()) \
                if m is not None else set()
            old_s = Table(shadow, s.original, s.kind)
            interim = Table(shadow, s.text(), s.kind)
            for name in sorted(leaving):
                row = old_s.get(name)
                if row is not None and interim.get(name) is None:
                    interim.set(row)
            writes.append((shadow, interim.text() or ""))
            if m is not None and m.changed:
                writes.append((main, m.text() or ""))
            if interim.text() != s.text():
                writes.append((shadow, s.text() or ""))
        elif m is not None and m.changed:
            writes.append((main, m.text() or ""))
    for path, table in accounts.tables.items():
        if path not in FILE_KIND and table.changed:
            writes.append((path, table.text() or ""))
    return writes


@contextmanager
def pwd_lock(root: TargetRoot, timeout: float | None = None) -> Iterator[None]:
    """Hold the shadow-utils lock of the target (fcntl write lock on /etc/.pwd.lock),
    waiting at most `timeout` seconds (LOCK_TIMEOUT, read at call time, by default)."""
    import fcntl

    from edgeinit.log import log

    if timeout is None:
        timeout = LOCK_TIMEOUT

    path = root.resolve(LOCK_FILE)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise AccountsError(f"cannot open {LOCK_FILE}: {e.strerror or e}") from e
    try:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise AccountsError(f"{LOCK_FILE} is held by another process (waited "
                                        f"{timeout:g} s)") from None
                if not waiting:
                    log.info("waiting for %s (another process edits the accounts)", LOCK_FILE)
                    waiting = True
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def commit(root: TargetRoot, accounts: Accounts) -> list[str]:
    """Write what `accounts` changed, in write_order, with `-` backups; returns paths."""
    from edgeinit.target.fs import atomic_write

    done: list[str] = []
    backed_up: set[str] = set()
    for path, text in write_order(accounts):
        host = root.resolve(path)
        st = root.state(host)
        mode, uid, gid = (st.mode, st.uid, st.gid) if st is not None else _new_file_attrs(
            root, path)
        original = accounts.tables[path].original
        if original is not None and path not in backed_up:
            atomic_write(host + "-", original.encode(), mode, uid, gid, sync_dir=False)
            root.touched(host + "-")
            backed_up.add(path)
        atomic_write(host, text.encode(), mode, uid, gid, sync_dir=False)
        root.touched(host)
        done.append(path)
    return done


def _new_file_attrs(root: TargetRoot, path: str) -> tuple[int, int, int]:
    """Mode and owner of an account file edgeinit creates: shadow files 0640 root:shadow
    (0400 root:root when the target has no shadow group), others 0644 root:root."""
    if path not in SECRET_FILES:
        return 0o644, 0, 0
    from edgeinit.target.ids import LookupError_, gid_of

    try:
        return 0o640, 0, gid_of(root, "shadow")
    except LookupError_:
        return 0o400, 0, 0


class EditAccounts(Record):
    """Edit the account files: `edit` is applied to freshly read tables under the lock.

    `preview` holds, per path, the old and new text as planned (for the dry run's diff
    and overlay). Applying re-reads the files under the lock and runs `edit` again, so
    a change made by another process between plan and apply is not overwritten.
    """

    description: str
    edit: Callable[[Accounts], Any]
    preview: dict[str, tuple[str | None, str | None]]

    def describe(self) -> str:
        return self.description

    def diff(self) -> str:
        from edgeinit.target.diff import file_diff

        out = []
        for path, (old, new) in self.preview.items():
            secret = path in SECRET_FILES
            out.append(file_diff(path, None if old is None else _masked(old).encode(),
                                 _masked(new or "").encode(), secret=secret,
                                 mode=0o640 if secret else 0o644))
        return "".join(out)

    def apply(self, root: TargetRoot) -> None:
        from edgeinit.target.changes import ApplyError

        try:
            with pwd_lock(root):
                fresh = Accounts(root)
                self.edit(fresh)
                commit(root, fresh)
        except (AccountsError, OSError) as e:
            raise ApplyError(f"cannot edit the accounts: {e}") from e

    def record(self, root: TargetRoot) -> None:
        from edgeinit.target.root import FileState

        for path, (_, new) in self.preview.items():
            host = root.resolve(path)
            st = root.state(host)
            mode, uid, gid = (st.mode, st.uid, st.gid) if st else _new_file_attrs(root, path)
            root.record(host, FileState("file", mode, uid, gid), (new or "").encode())


def _masked(text: str) -> str:
    """Account lines with their password field masked, unless it holds no secret (`x`,
    `*`, `!`, empty): a diff never shows a password or a hash, whatever the file."""
    from edgeinit.target.diff import MASK

    lines = []
    for line in text.splitlines(keepends=True):
        fields = line.split(":")
        if len(fields) > 2 and fields[1] not in ("", "x", "*", "!", "!!", "!*"):
            fields[1] = "!" + MASK if fields[1].startswith("!") else MASK
            line = ":".join(fields)
        lines.append(line)
    return "".join(lines)


def plan_edit(root: TargetRoot, description: str, edit: Callable[[Accounts], Any]
              ) -> tuple[EditAccounts | None, Accounts]:
    """Run `edit` on the current tables (no lock: planning only reads).

    Returns the change (None when nothing would change) and the edited tables, whose
    malformed lines the caller may report. AccountsError propagates: the plan fails.
    """
    accounts = Accounts(root)
    edit(accounts)
    texts = accounts.texts()
    if not texts:
        return None, accounts
    return EditAccounts(description, edit, texts), accounts
