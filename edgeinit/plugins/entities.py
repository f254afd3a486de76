"""`ensure_entities` / `delete_entities`: passwd, group, shadow and gshadow lines.

Each entry is `{path, entity}`; `entity` is a YAML text (templated first, as yip does)
with `kind:` user, group, shadow or gshadow and the fields of yip's entities library
(yip-behaviour 3.7). Ensure replaces the line for the entity's name or appends one;
delete removes the line for that name. Every entry is one `accounts.plan_edit`: read,
edit and written under the shadow-utils lock, atomically, in an order that keeps each
passwd user with its shadow line and each group with its gshadow line.

On purpose, unlike yip (SPEC 7.7, 7.9, 7.13):
- a user or group without an id keeps its existing id, else gets the first free one at
  or above UID_MIN/GID_MIN of the target's login.defs (yip: uid 0, an empty gid);
- deletes match by name, and a name that is not there changes nothing (yip can delete
  the first line of /etc/group); deleting a user also removes its shadow line and its
  group memberships, deleting a group its gshadow line; a group that is still some
  user's primary group, or a shadow/gshadow line whose user/group is still there, is
  not deleted;
- a new user in /etc/passwd also gets a locked shadow line, a new group in /etc/group
  a gshadow line, and gshadow members follow the group's members (pwck/grpck clean);
- a shadow password in plain text is hashed (SHA-512 crypt, as yip) but a stored hash
  that matches it is kept, so a second run changes nothing; user, group and gshadow
  passwords are stored as written (as yip), with a warning when that is plain text;
- a password left out keeps the current one; a new passwd line gets `x` and a new
  shadow line `!` (yip writes an empty field there: a login without a password);
- `last_changed: now` keeps the stored day when the password did not change;
- the file must exist (edgeinit edits account files, it does not create them).
Passwords and the entity text never appear in logs, errors, the report or diffs.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from typing import Any

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target import accounts as acc
from edgeinit.target.changes import Change
from edgeinit.target.root import PathError


class Entity(Record):
    path: str = spec("", doc="File to edit; default by kind (/etc/passwd, /etc/group, ...).")
    entity: str = spec("", secret=True,
                       doc="YAML text with `kind:` user, group, shadow or gshadow and its fields.")


class EnsureArgs(Record):
    ensure_entities: list[Entity] = spec(factory=list, doc="Lines to add or replace.")


class DeleteArgs(Record):
    delete_entities: list[Entity] = spec(factory=list, doc="Lines to remove.")


# -- the entity texts, as yip's entities library reads them ------------------------------

class UserEntity(Record):
    kind: str = ""
    username: str = ""
    password: str = spec("", secret=True)
    uid: int | None = None
    gid: int | None = None
    group: str = ""
    info: str = ""
    homedir: str = ""
    shell: str = ""


class GroupEntity(Record):
    kind: str = ""
    group_name: str = ""
    password: str = spec("", secret=True)
    gid: int | None = None
    users: str = ""


class ShadowEntity(Record):
    kind: str = ""
    username: str = ""
    password: str = spec("", secret=True)
    last_changed: str = ""
    minimum_changed: str = ""
    maximum_changed: str = ""
    warn: str = ""
    inactive: str = ""
    expire: str = ""
    reserved: str = ""


class GShadowEntity(Record):
    kind: str = ""
    name: str = ""
    password: str = spec("", secret=True)
    administrators: str = ""
    members: str = ""


# kind -> (record, the field holding the name)
KINDS: dict[str, tuple[type, str]] = {
    "user": (UserEntity, "username"),
    "group": (GroupEntity, "group_name"),
    "shadow": (ShadowEntity, "username"),
    "gshadow": (GShadowEntity, "name"),
}
SHADOW_AGING = ("last_changed", "minimum_changed", "maximum_changed", "warn", "inactive",
                "expire", "reserved")
DEFAULT_INFO = "Created by entities"
# shadow-utils' is_valid_name (Debian): not all digits, no ':', ',', blanks or newlines.
_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?")
_DAYS = re.compile(r"\d*")
# Password fields that are not passwords: stored as given.
_NOT_SECRET = ("", "x", "*")


class Parsed(Record):
    """One entry, understood: which file, which kind, which name, and the fields."""

    label: str  # names the entry in messages: "ensure_entities[0]"
    path: str  # the file inside the target (normalised)
    kind: str
    name: str
    record: Any  # the kind's entity record
    given: frozenset[str]  # the keys the entity wrote (a field left out != empty)


# -- parsing --------------------------------------------------------------------------

def parse(entry: Entity, label: str, ctx: Context) -> Parsed:
    """The entry's entity, validated; warnings for unknown fields, PluginError else."""
    from edgeinit.config import yamlload
    from edgeinit.schema.coerce import build
    from edgeinit.schema.problems import ERROR, Problem, suggest

    text = ctx.render(entry.entity)
    if not text.strip():
        raise PluginError(f"{label}: the entity is empty (it needs kind: and a name)")
    try:
        data = yamlload.load(text)
    except yamlload.YamlError as e:  # the message names line and column, never the text
        raise PluginError(f"{label}: the entity is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise PluginError(f"{label}: the entity must be a mapping with kind: and its fields")
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        raise PluginError(f"{label}: the entity has no kind: (user, group, shadow or gshadow)")
    if kind not in KINDS:
        hint = suggest(kind, KINDS)
        raise PluginError(f"{label}: unknown kind '{kind}'"
                          + (f"; did you mean '{hint}'?" if hint else "")
                          + " (kinds: user, group, shadow, gshadow)")
    cls, name_field = KINDS[kind]
    problems: list[Problem] = []
    record = build(cls, data, (), problems)

    def where(problem: Problem) -> str:
        line, _ = yamlload.locate(text, problem.path, key=problem.at_key)
        return f"{label}: entity line {line}: {problem.message}"

    errors = [where(p) for p in problems if p.kind == ERROR]
    if errors:
        raise PluginError("; ".join(errors))
    for problem in problems:
        ctx.warn(where(problem))
    name = getattr(record, name_field)
    if not name:
        raise PluginError(f"{label}: {kind} entity without {name_field}")
    check_name(name, f"{label}: {kind} {name_field}")
    path = entity_path(ctx, entry.path, kind, label)
    return Parsed(f"{label} ({kind} '{name}')", path, kind, name, record,
                  frozenset(str(k) for k in data))


def check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name) or name.isdigit() or len(name) > 256:
        raise PluginError(f"{what} '{name}' is not a valid name (letters, digits, '_', "
                          f"'.', '-'; not only digits)")


def entity_path(ctx: Context, path: str, kind: str, label: str) -> str:
    """The account file an entry edits: the kind's default, or `path` (normalised; a
    path that resolves to a default file is that file)."""
    default = acc.KIND_FILE[kind]
    path = path.strip()  # paths are not templated (yip-behaviour 1.5)
    if not path:
        return default
    try:
        host = ctx.root.resolve(path)
    except PathError as e:
        raise PluginError(f"{label}: {e}") from None
    normal = "/" + posixpath.normpath(path).lstrip("/")
    for standard in acc.FILE_KIND:
        if normal == standard or host == ctx.root.resolve(standard):
            normal = standard
            break
    holds = acc.FILE_KIND.get(normal)
    if holds is not None and holds != kind:
        raise PluginError(f"{label}: a {kind} entity does not belong in {normal} "
                          f"(it holds {holds} lines)")
    return normal


# -- the edits ------------------------------------------------------------------------

class Edit:
    """The edit of one entry: a deterministic function of the tables it is given.

    It runs at plan time and again, on freshly read tables, under the lock at apply
    time; a plain-text password is hashed once (the same hash both times) and `now` is
    the day the plan was made.
    """

    def __init__(self, parsed: Parsed, delete: bool) -> None:
        self.p = parsed
        self.delete = delete
        self.today = acc.days_since_epoch()
        self.notes: list[str] = []  # warnings of the last run of the edit
        self._fresh: dict[str, str] = {}  # plain text -> the hash made for it

    def __call__(self, accounts: acc.Accounts) -> None:
        self.notes = []
        try:
            table = self._table(accounts)
            if self.delete:
                DELETES[self.p.kind](self, accounts, table)
            else:
                ENSURES[self.p.kind](self, accounts, table)
        except acc.AccountsError as e:
            raise acc.AccountsError(f"{self.p.label}: {e}") from None

    # -- helpers --

    def _table(self, accounts: acc.Accounts) -> acc.Table:
        table = accounts.table(self.p.path, self.p.kind)
        if not table.exists and not self.delete:
            raise acc.AccountsError(f"{self.p.path} does not exist (edgeinit edits account "
                                    f"files, it does not create them)")
        self.check_unparsed(table, self.p.name)
        return table

    def check_unparsed(self, table: acc.Table, name: str) -> None:
        """A line for `name` that does not parse is not edited around: fix it by hand."""
        for number, line in table.malformed():
            if line.split(":", 1)[0] == name:
                raise acc.AccountsError(f"line {number} of {table.path} is for '{name}' but "
                                        f"does not parse; fix it by hand")

    def password(self, value: str, current: str | None) -> str:
        """The stored form of a configured password (plain text hashed once)."""
        from edgeinit.target import crypt

        if value in _NOT_SECRET or value.startswith(("$", "!")):
            return value
        fresh = self._fresh.get(value)
        if fresh is not None and fresh == current:
            return current
        try:
            stored = crypt.shadow_password(value, current)
        except crypt.CryptError as e:
            raise acc.AccountsError(str(e)) from None
        if stored != current:
            stored = self._fresh.setdefault(value, stored)
        return stored

    def as_written(self, value: str, table: acc.Table) -> str:
        """A user, group or gshadow password: stored as written, as yip does; a warning
        (which never shows it) when it is plain text."""
        if value not in _NOT_SECRET and not value.startswith(("$", "!")):
            self.notes.append(f"{self.p.label}: the password is stored in {table.path} as "
                              f"written (plain text); write 'x' or a crypt hash")
        return value

    def free_id(self, accounts: acc.Accounts, table: acc.Table, kind: str) -> int:
        limits = accounts.limits()
        low, high = limits[f"{kind}_MIN"], limits[f"{kind}_MAX"]
        used = table.ids(2)
        for n in range(low, high + 1):
            if n not in used:
                return n
        raise acc.AccountsError(f"no free {kind.lower()} left in {low}-{high} of {table.path}")

    def check_id(self, table: acc.Table, wanted: int, old: list[str] | None, what: str) -> None:
        """An explicit id another name holds fails the entry (it would share identities)."""
        if old is not None and old[2] == str(wanted):
            return
        for row in table.rows():
            if row[2] == str(wanted) and row[0] != self.p.name:
                raise acc.AccountsError(f"{what} {wanted} is already held by '{row[0]}' in "
                                        f"{table.path}")


def fields_ok(values: dict[str, str]) -> None:
    for field, value in values.items():
        if ":" in value or "\n" in value:
            raise acc.AccountsError(f"{field} cannot contain ':' or a line break")


def member_list(text: str, what: str) -> list[str]:
    names: list[str] = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        try:
            check_name(name, what)
        except PluginError as e:
            raise acc.AccountsError(str(e)) from None
        if name not in names:
            names.append(name)
    return names


def merged(existing: str, new: list[str]) -> list[str]:
    """yip's member merge: existing + new (in order, once) when the existing list is
    not empty, else the new list."""
    old = [m for m in existing.split(",") if m]
    if not old:
        return new
    return old + [m for m in new if m not in old]


def ensure_user(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    e: UserEntity = edit.p.record
    name, given = edit.p.name, edit.p.given
    old = table.get(name)
    if e.uid is not None and e.uid >= 0:
        uid = e.uid
        edit.check_id(table, uid, old, "uid")
    elif old is not None:
        uid = int(old[2])
    else:
        uid = edit.free_id(accounts, table, "UID")
    if e.group:
        row = accounts.group.get(e.group)
        if row is None:
            raise acc.AccountsError(f"group '{e.group}' not found in {acc.GROUP}")
        gid = int(row[2])
    elif e.gid is not None and e.gid >= 0:
        gid = e.gid
    elif old is not None:
        gid = int(old[3])
    else:
        gid = 0
        edit.notes.append(f"{edit.p.label}: no gid or group given; gid 0 (root's group) "
                          f"as yip does")
    if "password" in given:
        password = edit.as_written(e.password, table)
    else:  # yip writes an empty field: a login without a password
        password = old[1] if old is not None else "x"
    info = e.info or DEFAULT_INFO
    fields_ok({"info": info, "homedir": e.homedir, "shell": e.shell})
    table.set([name, password, str(uid), str(gid), info, e.homedir, e.shell])
    if table.path == acc.PASSWD:
        shadow = accounts.shadow
        if shadow.exists and shadow.get(name) is None:
            edit.check_unparsed(shadow, name)
            shadow.set([name, "!", str(edit.today), "", "", "", "", "", ""])


def ensure_group(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    e: GroupEntity = edit.p.record
    name = edit.p.name
    old = table.get(name)
    if e.gid is not None and e.gid >= 0:
        gid = e.gid
        edit.check_id(table, gid, old, "gid")
    elif old is not None:
        gid = int(old[2])
    else:
        gid = edit.free_id(accounts, table, "GID")
    if e.password:
        password = edit.as_written(e.password, table)
    else:
        password = old[1] if old is not None else ""
    members = merged(old[3] if old else "", member_list(e.users, "group member"))
    table.set([name, password, str(gid), ",".join(members)])
    if table.path == acc.GROUP:
        gshadow = accounts.gshadow
        if gshadow.exists:
            edit.check_unparsed(gshadow, name)
            row = gshadow.get(name)
            if row is None:
                gshadow.set([name, "!", "", ",".join(members)])
            elif row[3] != ",".join(members):
                gshadow.set([name, row[1], row[2], ",".join(members)])


def ensure_shadow(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    e: ShadowEntity = edit.p.record
    name = edit.p.name
    old = table.get(name)
    if "password" in edit.p.given:
        password = edit.password(e.password, old[1] if old else None)
    else:
        password = old[1] if old is not None else "!"
    values = {f: getattr(e, f).strip() for f in SHADOW_AGING}
    if values["last_changed"] == "now":
        keep = old is not None and old[2] and old[1] == password
        values["last_changed"] = old[2] if keep else str(edit.today)
    for field, value in values.items():
        if not _DAYS.fullmatch(value):
            raise acc.AccountsError(f"{field} must be a number of days (or empty)")
    row = [name, password, *values.values()]
    if old is not None:  # an existing line keeps its aging where the entity has none
        row = row[:2] + [new or cur for new, cur in zip(row[2:], old[2:], strict=True)]
    table.set(row)
    if table.path == acc.SHADOW and accounts.passwd.exists and \
            accounts.passwd.get(name) is None:
        edit.notes.append(f"{edit.p.label}: '{name}' is not in {acc.PASSWD}")


def ensure_gshadow(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    e: GShadowEntity = edit.p.record
    name = edit.p.name
    old = table.get(name)
    if "password" in edit.p.given:
        password = edit.as_written(e.password, table)
    else:
        password = old[1] if old is not None else ""
    admins = member_list(e.administrators, "gshadow administrator")
    members = member_list(e.members, "gshadow member")
    table.set([name, password, ",".join(admins), ",".join(members)])
    if table.path == acc.GSHADOW and accounts.group.exists:
        group = accounts.group.get(name)
        if group is None:
            edit.notes.append(f"{edit.p.label}: '{name}' is not in {acc.GROUP}")
        elif [m for m in group[3].split(",") if m] != members:
            edit.notes.append(f"{edit.p.label}: the members differ from those of '{name}' "
                              f"in {acc.GROUP} (grpck will say so)")


def delete_user(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    """The passwd line, and with /etc/passwd also the shadow line and memberships, even
    when the passwd line is gone already (what a delete cut short by a crash left)."""
    name = edit.p.name
    table.remove(name)
    if table.path != acc.PASSWD:
        return
    if accounts.shadow.exists:
        accounts.shadow.remove(name)
    for companion, columns in ((accounts.group, (3,)), (accounts.gshadow, (2, 3))):
        if not companion.exists:
            continue
        for row in list(companion.rows()):
            new = list(row)
            for i in columns:
                new[i] = ",".join(m for m in row[i].split(",") if m and m != name)
            if new != row:
                companion.set(new)


def delete_group(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    """The group line, and with /etc/group also the gshadow line (even when the group
    line is gone already); never a group that is still some user's primary group."""
    name = edit.p.name
    row = table.get(name)
    if row is not None and table.path == acc.GROUP:
        others = [r for r in table.rows() if r[2] == row[2] and r[0] != name]
        users = [] if others else [u[0] for u in accounts.passwd.rows() if u[3] == row[2]]
        if users:
            raise acc.AccountsError(f"group '{name}' is the primary group of user "
                                    f"'{users[0]}'; not deleted")
    table.remove(name)
    if table.path == acc.GROUP and accounts.gshadow.exists:
        accounts.gshadow.remove(name)


def delete_shadow(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    name = edit.p.name
    if table.get(name) is None:
        return
    if table.path == acc.SHADOW and accounts.passwd.get(name) is not None:
        raise acc.AccountsError(f"'{name}' is still in {acc.PASSWD}; delete the user entity "
                                f"(it removes both lines)")
    table.remove(name)


def delete_gshadow(edit: Edit, accounts: acc.Accounts, table: acc.Table) -> None:
    name = edit.p.name
    if table.get(name) is None:
        return
    if table.path == acc.GSHADOW and accounts.group.get(name) is not None:
        raise acc.AccountsError(f"'{name}' is still in {acc.GROUP}; delete the group entity "
                                f"(it removes both lines)")
    table.remove(name)


Handler = Callable[[Edit, acc.Accounts, acc.Table], None]
ENSURES: dict[str, Handler] = {"user": ensure_user, "group": ensure_group,
                               "shadow": ensure_shadow, "gshadow": ensure_gshadow}
DELETES: dict[str, Handler] = {"user": delete_user, "group": delete_group,
                               "shadow": delete_shadow, "gshadow": delete_gshadow}


# -- planning -------------------------------------------------------------------------

def plan_entries(key: str, entries: list[Entity], ctx: Context, delete: bool
                 ) -> Iterator[Change]:
    """One accounts edit per entry; an entry that fails fails the step, the others run."""
    for index, entry in enumerate(entries):
        label = f"{key}[{index}]"
        try:
            parsed = parse(entry, label, ctx)
            if delete and ctx.root.state(ctx.root.resolve(parsed.path)) is None:
                ctx.warn(f"{parsed.label}: {parsed.path} does not exist; nothing to delete")
                continue
            edit = Edit(parsed, delete)
            what = f"{parsed.kind} '{parsed.name}'"
            description = (f"delete {what} from {parsed.path}" if delete
                           else f"ensure {what} in {parsed.path}")
            change, accounts = acc.plan_edit(ctx.root, description, edit)
        except (PluginError, PathError) as e:
            ctx.fail(str(e))
            continue
        except acc.AccountsError as e:
            ctx.fail(str(e))
            continue
        for note in edit.notes:
            ctx.warn(note)
        for path, table in accounts.tables.items():
            for number, _ in table.malformed():  # the line itself may hold a hash
                ctx.warn(f"{path}: line {number} does not parse; kept as it is")
        if change is not None:
            yield change


def plan_ensure(args: EnsureArgs, ctx: Context) -> Iterator[Change]:
    yield from plan_entries("ensure_entities", args.ensure_entities, ctx, delete=False)


def plan_delete(args: DeleteArgs, ctx: Context) -> Iterator[Change]:
    yield from plan_entries("delete_entities", args.delete_entities, ctx, delete=True)


PLUGINS = {
    "ensure_entities": Plugin("ensure_entities", EnsureArgs, plan_ensure),
    "delete_entities": Plugin("delete_entities", DeleteArgs, plan_delete),
}
