"""`users`: create and update accounts in the target's passwd, shadow, group, gshadow.

yip's users plugin (yip-behaviour 3.6), with SPEC 7.6, 7.9, 7.10 and 7.13:

- Users run in sorted name order, so ids are allocated the same way on every node.
  Whether a user exists is read from the target's /etc/passwd, never the host's NSS.
- A new user gets the defaults of the target's /etc/default/useradd (SHELL, HOME,
  GROUP), a group named after it (`NAME:x:GID:NAME`, as yip writes it; an existing
  group of that name keeps its gid), the first free uid at or above UID_MIN (system
  users: the highest free one below SYS_UID_MAX, as `useradd -r`), gecos "Created by
  entities" (yip's), and a home with a copy of the target's /etc/skel, made only when
  the home does not exist yet.
- An existing user gets its password, shell, gecos and supplementary groups applied;
  groups are added, never removed. Its uid, home and primary group stay.
- Missing supplementary groups (and a missing `primary_group`) are created.
- A plaintext password is hashed with SHA-512 crypt unless the stored hash already
  verifies against it; a hash, `!...` or `*` is stored as given. A new user without
  `passwd` is locked (`!`, as useradd leaves it; yip writes an empty password, which
  lets anyone log in). `lock_passwd` prefixes `!` (usermod -L).
- Every edit of the account files goes through accounts.plan_edit: the whole edit of
  one user is one function, applied again to freshly read files under the shadow-utils
  lock, so no user is ever in passwd without its shadow line.
- Passwords and hashes never appear in descriptions, warnings or errors.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from typing import Any

from edgeinit.formats import dotenv
from edgeinit.model import Record, spec
from edgeinit.plugins.authorized_keys import plan_user_keys
from edgeinit.plugins.base import Context, Plugin
from edgeinit.target import ids
from edgeinit.target.accounts import (
    GROUP,
    GSHADOW,
    PASSWD,
    SHADOW,
    Accounts,
    AccountsError,
    EditAccounts,
    Table,
    days_since_epoch,
    plan_edit,
)
from edgeinit.target.changes import Change, CreateHome
from edgeinit.target.crypt import CryptError, shadow_password
from edgeinit.target.plan import plan_dirs
from edgeinit.target.root import PathError, TargetRoot, check_config_path

SKEL = "/etc/skel"
CREATED_GECOS = "Created by entities"  # yip's default gecos for a new user
_NAME = re.compile(r"[a-z_][a-z0-9_-]*\$?")
NAME_MAX = 32
ID_MAX = 4294967294  # (uid_t)-1 means "no change" to the kernel


class User(Record):
    name: str = spec("", doc="Defaults to the map key.")
    passwd: str = spec("", secret=True, doc="Plain text (hashed with SHA-512) or a crypt hash.")
    ssh_authorized_keys: list[str] = spec(factory=list, doc="Keys, or github:NAME / gitlab:NAME.")
    gecos: str = spec("", doc="Comment field.")
    homedir: str = spec("", doc="Home directory (default /home/NAME).")
    no_create_home: bool = spec(False, doc="Do not create the home directory.")
    primary_group: str = spec("", doc="Primary group (default: a group named after the user).")
    groups: list[str] = spec(factory=list, doc="Supplementary groups (created if missing).")
    no_user_group: bool = spec(False, doc="Do not create a group named after the user.")
    system: bool = spec(False, doc="A system account (id below 1000).")
    no_log_init: bool = spec(False, doc="Accepted for compatibility.")
    shell: str = spec("", doc="Login shell.")
    lock_passwd: bool = spec(False, doc="Lock the password.")
    uid: str = spec("", doc="Numeric uid.")


class Args(Record):
    users: dict[str, User] = spec(factory=dict, doc="Accounts by name.")


class UserError(Exception):
    """A user entry that cannot be applied; the message says why (never the password)."""


class Defaults(Record):
    """What a new user gets when the entry does not say: useradd's and login.defs'."""

    shell: str = "/bin/sh"
    home_base: str = "/home"
    group: str = "100"  # the primary group with no_user_group (GROUP=)
    home_mode: int = 0o755


def valid_name(name: str) -> bool:
    """shadow-utils' rule for user and group names (is_valid_user_name, no
    non-portable names): [a-z_][a-z0-9_-]*[$]?, at most 32 characters."""
    return len(name) <= NAME_MAX and _NAME.fullmatch(name) is not None


def read_defaults(root: TargetRoot) -> Defaults:
    """Defaults from the target's /etc/default/useradd and /etc/login.defs."""
    useradd = dotenv.parse(root.read_text("/etc/default/useradd") or "")
    settings: dict[str, str] = {}
    for line in (root.read_text("/etc/login.defs") or "").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            settings[parts[0]] = parts[1]
    home_mode = _octal(settings.get("HOME_MODE"))
    if home_mode is None:
        umask = _octal(settings.get("UMASK"))
        home_mode = 0o777 & ~(0o022 if umask is None else umask)
    return Defaults(
        shell=useradd.get("SHELL", "").strip() or "/bin/sh",
        home_base=useradd.get("HOME", "").strip() or "/home",
        group=useradd.get("GROUP", "").strip() or "100",
        home_mode=home_mode,
    )


def _octal(value: str | None) -> int | None:
    if not value:
        return None
    try:
        n = int(value, 8)
    except ValueError:
        return None
    return n if 0 <= n <= 0o7777 else None


# -- planning ---------------------------------------------------------------------------

def plan(args: Args, ctx: Context) -> Iterator[Change]:
    if not args.users:
        return
    root = ctx.root
    missing = [p for p in (PASSWD, SHADOW, GROUP) if root.read_text(p) is None]
    if missing:
        ctx.fail(f"users: the target has no {' and no '.join(missing)}: no user was created "
                 f"or changed")
        return
    _warn_malformed(ctx)
    defaults = read_defaults(root)
    for key in sorted(args.users):
        try:
            yield from _plan_user(key, args.users[key], defaults, ctx)
        except UserError as e:
            ctx.fail(f"users: '{key}': {e}")


def _warn_malformed(ctx: Context) -> None:
    """One warning per account file with lines that do not parse (they are kept).

    The lines themselves are not shown: a shadow line may hold a hash."""
    accounts = Accounts(ctx.root)
    for path in (PASSWD, SHADOW, GROUP, GSHADOW):
        bad = accounts.table(path).malformed()
        if bad:
            where = ", ".join(str(n) for n, _ in bad)
            ctx.warn(f"{path}: malformed line{'s' if len(bad) > 1 else ''} {where} "
                     f"kept as {'they are' if len(bad) > 1 else 'it is'}")


def _check_entry(key: str, entry: User, defaults: Defaults) -> tuple[int | None, str]:
    """Validate what can be checked without the tables: (uid or None, home)."""
    if not valid_name(key):
        raise UserError("invalid user name: it must match [a-z_][a-z0-9_-]*[$]? and have at "
                        f"most {NAME_MAX} characters")
    if entry.name and entry.name != key:
        raise UserError(f"name '{entry.name}' differs from its key '{key}'")
    uid: int | None = None
    if entry.uid.strip():
        text = entry.uid.strip()
        if not text.isdigit() or int(text) > ID_MAX:
            raise UserError(f"uid '{text}' is not a number from 0 to {ID_MAX}")
        uid = int(text)
    named = list(entry.groups)
    if entry.primary_group and not entry.primary_group.isdigit():  # a gid is fine too
        named.insert(0, entry.primary_group)
    for group in named:
        if not valid_name(group):
            raise UserError(f"invalid group name '{group}': it must match "
                            f"[a-z_][a-z0-9_-]*[$]? and have at most {NAME_MAX} characters")
    home = entry.homedir or posixpath.join(defaults.home_base, key)
    try:
        check_config_path(home)
    except PathError as e:
        raise UserError(f"home directory: {e}") from None
    for field, value in (("home directory", home), ("shell", entry.shell),
                         ("gecos", entry.gecos)):
        if ":" in value or "\n" in value:
            raise UserError(f"the {field} cannot contain ':' or a newline")
    return uid, home


def _plan_user(key: str, entry: User, defaults: Defaults, ctx: Context) -> Iterator[Change]:
    uid, home = _check_entry(key, entry, defaults)
    if not entry.no_create_home and not _exists(ctx.root, key):
        _check_home(ctx.root, home)
    summary: dict[str, Any] = {}
    edit = user_edit(key, entry, uid, home, defaults, days_since_epoch(), summary)
    try:
        change, _ = plan_edit(ctx.root, "", edit)
    except (AccountsError, CryptError) as e:
        raise UserError(str(e)) from None
    for note in summary["notes"]:
        ctx.warn(f"users: '{key}': {note}")
    created = summary["created"]
    if change is not None:
        yield EditAccounts(_describe(key, summary), change.edit, change.preview)
    try:
        uid_now, gid_now, home_now = ids.passwd_entry(ctx.root, key)
    except ids.LookupError_:
        return  # the edit failed to apply; the runner reported why
    # An existing user whose configured home is missing gets it too: that is where a
    # run interrupted between the account edit and the home would have ended.
    wanted = created or (home_now == home and home_now not in NO_HOME)
    if wanted and not entry.no_create_home:
        try:
            yield from _plan_home(ctx, home_now, uid_now, gid_now, defaults.home_mode)
        except PathError as e:
            raise UserError(f"home directory: {e}") from None
    if entry.ssh_authorized_keys:
        yield from plan_user_keys(key, entry.ssh_authorized_keys, ctx)


NO_HOME = ("/", "/nonexistent", "/dev/null")  # homes that mean "none"


def _exists(root: TargetRoot, name: str) -> bool:
    try:
        ids.passwd_entry(root, name)
    except ids.LookupError_:
        return False
    return True


def _check_home(root: TargetRoot, home: str) -> None:
    """Fail before the account edit when the new user's home cannot be made, so that
    no user is created whose home then fails."""
    try:
        host = root.resolve(home)
        st = root.state(host)
        if st is None:
            plan_dirs(root, posixpath.dirname(root.display(host)) or "/")
        elif st.kind != "dir":
            raise PathError(f"'{home}' exists and is not a directory")
    except PathError as e:
        raise UserError(f"home directory: {e}") from None


def _describe(name: str, summary: dict[str, Any]) -> str:
    """What the edit does, for the log and report: never the password or its hash."""
    parts: list[str] = []
    if summary["created"]:
        parts.append(f"add user {name} (uid {summary['uid']}, gid {summary['gid']}, "
                     f"home {summary['home']}, shell {summary['shell']}"
                     f"{', password set' if summary['password'] else ', password locked'})")
    else:
        done = [what for what in ("password", "shell", "gecos") if summary.get(what)]
        parts.append(f"update user {name}" + (f": {', '.join(done)}" if done else ""))
    if summary["new_groups"]:
        parts.append("new groups " + ", ".join(summary["new_groups"]))
    if summary["joined"]:
        parts.append(f"{name} joins " + ", ".join(summary["joined"]))
    return "; ".join(parts)


# -- the account edit -------------------------------------------------------------------

def user_edit(name: str, entry: User, uid: int | None, home: str, defaults: Defaults,
              today: int, summary: dict[str, Any]) -> Callable[[Accounts], None]:
    """The edit of one user's accounts, as accounts.plan_edit wants it.

    Deterministic given the tables: ids come from the tables it is handed, and a
    plaintext password is hashed once (the hash is remembered for the same stored
    value), so the apply under the lock writes what the plan showed. `summary` is
    filled on every call with what the last call did (for the description).
    """
    hashes: dict[tuple[str, str], str] = {}

    def shadow_field(current: str | None) -> str:
        """The wanted shadow password field given the stored one (None: no row)."""
        unlocked = (current or "").lstrip("!")
        if entry.passwd:
            memo = (entry.passwd, unlocked)
            if memo not in hashes:
                hashes[memo] = shadow_password(entry.passwd, unlocked or None)
            wanted = hashes[memo]
        elif current is None:
            wanted = "!"  # a new user without a password is locked, as useradd does
        else:
            wanted = current
        if entry.lock_passwd and not wanted.startswith("!"):
            wanted = "!" + wanted
        return wanted

    def edit(accounts: Accounts) -> None:
        summary.clear()
        summary.update(created=False, notes=[], new_groups=[], joined=[])
        _require(accounts)
        for table in (accounts.passwd, accounts.shadow):
            _refuse_malformed(table, name)
        row = accounts.passwd.get(name)
        if row is None:
            _create(accounts, name, entry, uid, home, defaults, today, shadow_field, summary)
        else:
            _update(accounts, row, entry, uid, home, today, shadow_field, summary)
        for group in entry.groups:
            _ensure_group(accounts, group, name, entry.system, summary)

    return edit


def _require(accounts: Accounts) -> None:
    for table in (accounts.passwd, accounts.shadow, accounts.group):
        if not table.exists:
            raise AccountsError(f"the target has no {table.path}")


def _refuse_malformed(table: Table, name: str) -> None:
    """A malformed line for `name` would make a second entry: fail instead."""
    for number, line in table.malformed():
        if line.split(":", 1)[0] == name:
            raise AccountsError(f"{table.path} line {number}, the entry of '{name}', is "
                                f"malformed; fix it by hand ('{name}' was not changed)")


def _create(accounts: Accounts, name: str, entry: User, uid: int | None, home: str,
            defaults: Defaults, today: int, shadow_field: Callable[[str | None], str],
            summary: dict[str, Any]) -> None:
    if uid is None:
        uid = accounts.free_id("UID", system=entry.system)
    else:
        for row in accounts.passwd.rows():
            if int(row[2]) == uid:
                raise AccountsError(f"uid {uid} is already held by user '{row[0]}'")
    if entry.primary_group:
        gid = _primary_gid(accounts, entry.primary_group, entry.system, summary)
    elif entry.no_user_group:
        gid = _group_gid(accounts, defaults.group)
    else:
        gid = _ensure_group(accounts, name, name, entry.system, summary, primary=True)
    shell = entry.shell or defaults.shell
    accounts.passwd.set([name, "x", str(uid), str(gid), entry.gecos or CREATED_GECOS,
                         home, shell])
    old = accounts.shadow.get(name)  # a shadow line left without its passwd line
    aging = old[3:] if old is not None else [""] * 6
    accounts.shadow.set([name, shadow_field(None), str(today), *aging])
    summary.update(created=True, uid=uid, gid=gid, home=home, shell=shell,
                   password=bool(entry.passwd) and not entry.lock_passwd)


def _update(accounts: Accounts, row: list[str], entry: User, uid: int | None, home: str,
            today: int, shadow_field: Callable[[str | None], str],
            summary: dict[str, Any]) -> None:
    name = row[0]
    if uid is not None and uid != int(row[2]):
        summary["notes"].append(f"exists with uid {row[2]}; uid {uid} not applied")
    if entry.homedir and home != row[5]:
        summary["notes"].append(f"exists with home {row[5]}; homedir {home} not applied")
    if entry.primary_group:
        summary["notes"].append("exists; primary_group not applied")
    new = list(row)
    if entry.shell:
        new[6] = entry.shell
    if entry.gecos:
        new[4] = entry.gecos
    summary["shell"] = new[6] != row[6]
    summary["gecos"] = new[4] != row[4]
    if new != row:
        accounts.passwd.set(new)
    if entry.passwd or entry.lock_passwd:
        srow = accounts.shadow.get(name)
        current = srow[1] if srow is not None else None
        wanted = shadow_field(current)
        if wanted != current:
            if srow is None:
                srow = [name, wanted, str(today), "", "", "", "", "", ""]
            else:
                srow = list(srow)
                if wanted.lstrip("!") != (current or "").lstrip("!"):
                    srow[2] = str(today)  # a new password, not only a lock
                srow[1] = wanted
            accounts.shadow.set(srow)
            summary["password"] = True


def _primary_gid(accounts: Accounts, group: str, system: bool, summary: dict[str, Any]) -> int:
    if group.isdigit():
        if int(group) not in accounts.group.ids():
            raise AccountsError(f"primary group {group}: no group has this gid")
        return int(group)
    return _ensure_group(accounts, group, None, system, summary, primary=True)


def _group_gid(accounts: Accounts, group: str) -> int:
    """The gid of GROUP= (no_user_group): a number, or a group name in /etc/group."""
    if group.isdigit():
        return int(group)
    row = accounts.group.get(group)
    if row is None:
        raise AccountsError(f"the default group '{group}' (GROUP= in /etc/default/useradd) "
                            f"is not in /etc/group")
    return int(row[2])


def _ensure_group(accounts: Accounts, group: str, member: str | None, system: bool,
                  summary: dict[str, Any], *, primary: bool = False) -> int:
    """The gid of `group`, created with the first free gid when missing; `member` is
    added to its members in /etc/group and /etc/gshadow (when that file exists)."""
    _refuse_malformed(accounts.group, group)
    gshadow = accounts.gshadow if accounts.gshadow.exists else None
    if gshadow is not None:
        _refuse_malformed(gshadow, group)
    row = accounts.group.get(group)
    if row is None:
        gid = accounts.free_id("GID", system=system)
        accounts.group.set([group, "x", str(gid), member or ""])
        if gshadow is not None:
            gshadow.set([group, "!", "", member or ""])
        summary["new_groups"].append(f"{group} ({gid})")
        if member and not primary:
            summary["joined"].append(group)
        return gid
    if member:
        members = [m for m in row[3].split(",") if m]
        if member not in members:
            members.append(member)
            accounts.group.set([*row[:3], ",".join(members)])
            if not primary:
                summary["joined"].append(group)
        if gshadow is not None:
            grow = gshadow.get(group)
            if grow is None:
                gshadow.set([group, "!", "", ",".join(members)])
            else:
                gmembers = [m for m in grow[3].split(",") if m]
                if member not in gmembers:
                    gshadow.set([*grow[:3], ",".join([*gmembers, member])])
    return int(row[2])


# -- the home ---------------------------------------------------------------------------

def _plan_home(ctx: Context, home: str, uid: int, gid: int, mode: int) -> Iterator[Change]:
    """The user's home with a copy of /etc/skel, made at once (CreateHome), unless it
    exists already (an existing home is never touched). Missing parents: 0755 root."""
    root = ctx.root
    host = root.resolve(home)
    if root.state(host) is not None:
        return
    parent = posixpath.dirname(root.display(host)) or "/"
    yield from plan_dirs(root, parent)
    skel = root.resolve(SKEL)
    st = root.state(skel)
    yield CreateHome(home, host, mode, uid, gid,
                     skel if st is not None and st.kind == "dir" else None, SKEL)


PLUGIN = Plugin("users", Args, plan)
