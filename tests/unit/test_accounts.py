"""target/accounts.py: the passwd-family tables, id allocation, the order of writes that
keeps every passwd user with its shadow line (and every group with its gshadow line) at
every moment, and commit (backups, mode and owner kept).

Crash consistency, the lock and pwck/grpck live in tests/integration/test_accounts_safety.py.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from edgeinit.target import accounts as acc
from edgeinit.target.accounts import GROUP, GSHADOW, PASSWD, SHADOW, Accounts, Table
from edgeinit.target.root import TargetRoot
from tests.conftest import needs_root

PASSWD_TEXT = ("root:x:0:0:root:/root:/bin/bash\n"
               "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
               "edge:x:1000:1000:Edge:/home/edge:/bin/sh\n")
SHADOW_TEXT = ("root:$6$salt$hash:19000:0:99999:7:::\n"
               "daemon:*:19000:0:99999:7:::\n"
               "edge:!:19000:0:99999:7:::\n")
GROUP_TEXT = "root:x:0:\ndaemon:x:1:\nsudo:x:27:edge\nedge:x:1000:\n"
GSHADOW_TEXT = "root:*::\ndaemon:*::\nsudo:*::edge\nedge:!::\n"


def etc(root: Path, files: dict[str, str] | None = None) -> Path:
    files = files or {PASSWD: PASSWD_TEXT, SHADOW: SHADOW_TEXT, GROUP: GROUP_TEXT,
                      GSHADOW: GSHADOW_TEXT}
    (root / "etc").mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        (root / path.lstrip("/")).write_text(text)
    return root


# -- Table ----------------------------------------------------------------------------

def test_table_keeps_malformed_lines_verbatim_and_reports_them():
    text = ("root:x:0:0:root:/root:/bin/bash\n"
            "# a comment\n"
            "\n"
            "short:x:1000\n"  # too few fields
            "bad:x:abc:1000::/home/bad:/bin/sh\n"  # non-numeric uid
            ":x:1001:1001::/:/bin/sh\n"  # no name
            "+::::::\n"  # NIS compat line
            "edge:x:1000:1000:Edge:/home/edge:/bin/sh\n")
    t = Table(PASSWD, text, "user")
    assert t.malformed() == [(4, "short:x:1000"), (5, "bad:x:abc:1000::/home/bad:/bin/sh"),
                             (6, ":x:1001:1001::/:/bin/sh"), (7, "+::::::")]
    assert t.names() == ["root", "edge"]
    assert t.get("short") is None and t.get("bad") is None
    assert t.text() == text and not t.changed
    t.set(["new", "x", "1001", "1001", "", "/home/new", "/bin/sh"])
    assert t.text() == text + "new:x:1001:1001::/home/new:/bin/sh\n"  # nothing else touched
    assert t.malformed()[0] == (4, "short:x:1000")


@pytest.mark.parametrize(("kind", "line"), [
    ("shadow", "root:$6$x$y:19000:0:99999:7::"),  # 8 fields
    ("group", "sudo:x:twenty:edge"),  # non-numeric gid
    ("gshadow", "sudo:*:edge"),  # 3 fields
])
def test_malformed_by_kind(kind, line):
    t = Table("/x", f"{line}\n", kind)
    assert t.malformed() == [(1, line)] and t.names() == []


def test_table_set_replaces_the_first_line_for_the_name_or_appends():
    t = Table(GROUP, GROUP_TEXT, "group")
    t.set(["sudo", "x", "27", "edge,rey"])
    t.set(["admin", "x", "900", ""])
    assert t.text() == ("root:x:0:\ndaemon:x:1:\nsudo:x:27:edge,rey\nedge:x:1000:\n"
                        "admin:x:900:\n")
    assert t.changed and t.get("admin") == ["admin", "x", "900", ""]


def test_table_set_refuses_bad_fields():
    t = Table(GROUP, GROUP_TEXT, "group")
    with pytest.raises(acc.AccountsError, match="4 fields"):
        t.set(["a", "x", "1"])
    with pytest.raises(acc.AccountsError, match="':'"):
        t.set(["a", "x", "1", "b:c"])
    with pytest.raises(acc.AccountsError, match="newline"):
        t.set(["a", "x", "1", "b\nroot:x:0:"])
    assert not t.changed


def test_table_remove():
    t = Table(GROUP, GROUP_TEXT, "group")
    assert t.remove("sudo") is True
    assert t.remove("sudo") is False and t.remove("nobody") is False
    assert t.text() == "root:x:0:\ndaemon:x:1:\nedge:x:1000:\n"


def test_missing_file_is_none_until_a_line_is_added():
    t = Table(GSHADOW, None, "gshadow")
    assert not t.exists and t.text() is None and not t.changed
    t.set(["admin", "!", "", ""])
    assert t.text() == "admin:!::\n" and t.changed


def test_text_without_final_newline_gets_one_only_when_changed():
    t = Table(GROUP, "root:x:0:", "group")
    assert not t.changed
    t.set(["root", "x", "0", ""])  # same line
    assert t.text() == "root:x:0:\n"


# -- ids ------------------------------------------------------------------------------

def accounts_from(tmp_path: Path, files: dict[str, str] | None = None,
                  login_defs: str | None = None) -> Accounts:
    root = etc(tmp_path / "root", files)
    if login_defs is not None:
        (root / "etc" / "login.defs").write_text(login_defs)
    return Accounts(TargetRoot(str(root)))


def test_free_id_first_free_at_or_above_the_minimum(tmp_path):
    a = accounts_from(tmp_path)
    assert a.free_id("UID") == 1001  # 1000 is edge's
    assert a.free_id("GID") == 1001


def test_free_id_reads_the_targets_login_defs(tmp_path):
    defs = ("# comment\nUID_MIN\t\t 2000\nUID_MAX 2001\nGID_MIN 5000\n"
            "SYS_UID_MAX 500\nSYS_UID_MIN 498\nBOGUS_LINE\nGID_MAX notanumber\n")
    passwd = PASSWD_TEXT + "a:x:2000:2000::/:/bin/sh\nsys:x:500:500::/:/bin/sh\n"
    a = accounts_from(tmp_path, {PASSWD: passwd, GROUP: GROUP_TEXT}, defs)
    assert a.limits()["GID_MAX"] == 60000  # the bad value is ignored
    assert a.free_id("UID") == 2001
    assert a.free_id("GID") == 5000
    assert a.free_id("UID", system=True) == 499  # system ids count down from SYS_UID_MAX


def test_free_id_system_defaults_count_down_from_999(tmp_path):
    a = accounts_from(tmp_path, {PASSWD: PASSWD_TEXT + "s:x:999:999::/:/bin/sh\n",
                                 GROUP: GROUP_TEXT})
    assert a.free_id("UID", system=True) == 998
    assert a.free_id("GID", system=True) == 999


def test_free_id_exhausted_range_fails(tmp_path):
    passwd = "".join(f"u{n}:x:{n}:{n}::/:/bin/sh\n" for n in (1000, 1001))
    a = accounts_from(tmp_path, {PASSWD: passwd}, "UID_MIN 1000\nUID_MAX 1001\n")
    with pytest.raises(acc.AccountsError, match="no free uid left in 1000-1001"):
        a.free_id("UID")


# -- write_order: the invariant at every intermediate write ------------------------------

def names(text: str | None, kind: str) -> set[str]:
    return set(Table("/x", text, kind).names())


def consistent(files: dict[str, str | None]) -> bool:
    """Every passwd user has a shadow line and every group a gshadow line (where the
    shadow file exists at all)."""
    ok = True
    if files.get(SHADOW) is not None:
        ok &= names(files[PASSWD], "user") <= names(files[SHADOW], "shadow")
    if files.get(GSHADOW) is not None:
        ok &= names(files[GROUP], "group") <= names(files[GSHADOW], "gshadow")
    return ok


def check_every_prefix(accounts: Accounts, writes: list[tuple[str, str]]) -> None:
    files = {p: t.original for p, t in accounts.tables.items()}
    assert consistent(files), "the starting state must be consistent"
    for i, (path, text) in enumerate(writes):
        files[path] = text
        assert consistent(files), f"inconsistent after write {i + 1} of {writes}"
    assert files == {p: t.text() if t.changed else t.original
                     for p, t in accounts.tables.items()}


def random_edit(rng: random.Random, accounts: Accounts) -> None:
    """Random adds, deletes and changes that leave the four tables consistent."""
    p, s, g, gs = accounts.passwd, accounts.shadow, accounts.group, accounts.gshadow
    for _ in range(rng.randint(1, 6)):
        action = rng.choice(["add_user", "del_user", "mod_user", "passwd_only", "add_group",
                             "del_group", "mod_group", "shadow_only"])
        users = [n for n in p.names() if n != "root"]
        groups = [n for n in g.names() if n != "root"]
        n = rng.randint(0, 40)
        if action == "add_user":
            s.set([f"u{n}", "!", "20000", "", "", "", "", "", ""])
            p.set([f"u{n}", "x", str(2000 + n), "100", "", f"/home/u{n}", "/bin/sh"])
        elif action == "del_user" and users:
            victim = rng.choice(users)
            p.remove(victim)
            s.remove(victim)
        elif action == "mod_user" and users:
            victim = rng.choice(users)
            p.set([victim, "x", str(3000 + n), "100", "changed", "/", "/bin/false"])
            s.set([victim, f"$6$s{n}$h", "20001", "", "", "", "", "", ""])
        elif action == "passwd_only" and users:
            row = p.get(rng.choice(users))
            assert row is not None
            p.set([*row[:4], f"gecos {n}", *row[5:]])
        elif action == "shadow_only" and users:
            s.set([rng.choice(users), f"$6$t{n}$h", "20002", "", "", "", "", "", ""])
        elif action == "add_group":
            g.set([f"g{n}", "x", str(4000 + n), ""])
            gs.set([f"g{n}", "!", "", ""])
        elif action == "del_group" and groups:
            victim = rng.choice(groups)
            g.remove(victim)
            gs.remove(victim)
        elif action == "mod_group" and groups:
            victim = rng.choice(groups)
            g.set([victim, "x", str(5000 + n), "root"])
            gs.set([victim, "!", "", "root"])


@pytest.mark.parametrize("seed", range(300))
def test_write_order_keeps_the_invariant_at_every_write(tmp_path, seed):
    rng = random.Random(seed)
    a = accounts_from(tmp_path)
    random_edit(rng, a)
    writes = acc.write_order(a)
    check_every_prefix(a, writes)
    # Each file is written at most twice (shadow files: interim, then final).
    for path in (PASSWD, GROUP):
        assert [w for w, _ in writes].count(path) <= 1


def test_write_order_for_a_delete_holds_the_leaving_shadow_line_until_passwd_is_written(
        tmp_path):
    a = accounts_from(tmp_path)
    a.passwd.remove("edge")
    a.shadow.remove("edge")
    writes = acc.write_order(a)
    assert [p for p, _ in writes] == [SHADOW, PASSWD, SHADOW]
    assert "edge:" in writes[0][1] and "edge:" not in writes[1][1]
    assert "edge:" not in writes[2][1]


def test_write_order_for_an_add_writes_shadow_then_passwd_groups_first(tmp_path):
    a = accounts_from(tmp_path)
    a.shadow.set(["rey", "!", "20000", "", "", "", "", "", ""])
    a.passwd.set(["rey", "x", "1001", "900", "", "/home/rey", "/bin/bash"])
    a.gshadow.set(["admin", "!", "", ""])
    a.group.set(["admin", "x", "900", ""])
    assert [p for p, _ in acc.write_order(a)] == [GSHADOW, GROUP, SHADOW, PASSWD]


def test_the_invariant_check_catches_a_naive_order(tmp_path):
    """The checker above is not vacuous: passwd before shadow is caught."""
    a = accounts_from(tmp_path)
    a.shadow.set(["rey", "!", "20000", "", "", "", "", "", ""])
    a.passwd.set(["rey", "x", "1001", "900", "", "/home/rey", "/bin/bash"])
    naive = [(PASSWD, a.passwd.text() or ""), (SHADOW, a.shadow.text() or "")]
    with pytest.raises(AssertionError, match="inconsistent after write 1"):
        check_every_prefix(a, naive)


def test_write_order_includes_non_standard_paths_last(tmp_path):
    a = accounts_from(tmp_path)
    extra = a.table("/etc/extra-passwd", "user")
    extra.set(["x1", "x", "1", "1", "", "/", "/bin/sh"])
    a.group.set(["admin", "x", "900", ""])
    assert [p for p, _ in acc.write_order(a)] == [GROUP, "/etc/extra-passwd"]


# -- commit ---------------------------------------------------------------------------

def mode_owner(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


@needs_root
def test_commit_keeps_mode_and_owner_and_makes_dash_backups(tmp_path):
    root = etc(tmp_path / "root")
    e = root / "etc"
    for name in ("shadow", "gshadow"):
        os.chown(e / name, 0, 42)  # root:shadow, as on Debian
        os.chmod(e / name, 0o640)
    os.chmod(e / "passwd", 0o644)
    os.chmod(e / "group", 0o604)  # unusual, kept as it is
    before = {n: ((e / n).read_text(), mode_owner(e / n))
              for n in ("passwd", "shadow", "group", "gshadow")}
    target = TargetRoot(str(root))
    a = Accounts(target)
    a.shadow.set(["rey", "!", "20000", "", "", "", "", "", ""])
    a.passwd.set(["rey", "x", "1001", "900", "", "/home/rey", "/bin/bash"])
    a.gshadow.set(["admin", "!", "", ""])
    a.group.set(["admin", "x", "900", ""])
    assert sorted(acc.commit(target, a)) == sorted([GSHADOW, GROUP, SHADOW, PASSWD])
    for name, (text, attrs) in before.items():
        assert mode_owner(e / name) == attrs, name
        assert (e / f"{name}-").read_text() == text, name  # the old content
        assert mode_owner(e / f"{name}-") == attrs, name
    assert (e / "passwd").read_text() == PASSWD_TEXT + "rey:x:1001:900::/home/rey:/bin/bash\n"
    assert (e / "shadow").read_text() == SHADOW_TEXT + "rey:!:20000::::::\n"
    assert not list(e.glob("*.edgeinit-new")) and not list(e.glob(".*.edgeinit-new"))


def test_commit_backup_holds_the_content_before_the_first_of_two_writes(tmp_path):
    """A delete writes shadow twice; shadow- holds the content from before the edit."""
    root = etc(tmp_path / "root")
    target = TargetRoot(str(root))
    a = Accounts(target)
    a.passwd.remove("edge")
    a.shadow.remove("edge")
    assert acc.commit(target, a) == [SHADOW, PASSWD, SHADOW]
    assert (root / "etc" / "shadow-").read_text() == SHADOW_TEXT
    assert "edge" not in (root / "etc" / "shadow").read_text()


@needs_root
def test_new_shadow_file_is_0640_root_shadow(tmp_path):
    """A gshadow created by an edit is 0640 root:shadow (the target's shadow gid)."""
    root = etc(tmp_path / "root", {GROUP: "root:x:0:\nshadow:x:42:\n"})
    target = TargetRoot(str(root))
    a = Accounts(target)
    a.gshadow.set(["root", "*", "", ""])
    acc.commit(target, a)
    assert mode_owner(root / "etc" / "gshadow") == (0o640, 0, 42)
    assert not (root / "etc" / "gshadow-").exists()  # nothing to back up


# -- EditAccounts and plan_edit ---------------------------------------------------------

def test_plan_edit_with_nothing_to_change_is_no_change(tmp_path):
    target = TargetRoot(str(etc(tmp_path / "root")))
    change, accounts = acc.plan_edit(target, "noop", lambda a: a.group.set(
        ["sudo", "x", "27", "edge"]))
    assert change is None and GROUP in accounts.tables


def test_plan_edit_previews_and_apply_runs_the_edit_again_on_fresh_tables(tmp_path):
    """Applying re-reads under the lock: a line added between plan and apply is kept."""
    root = etc(tmp_path / "root")
    target = TargetRoot(str(root))

    def edit(a: Accounts) -> None:
        a.group.set(["admin", "x", "900", ""])

    change, _ = acc.plan_edit(target, "ensure group 'admin'", edit)
    assert change is not None and change.describe() == "ensure group 'admin'"
    assert change.preview == {GROUP: (GROUP_TEXT, GROUP_TEXT + "admin:x:900:\n")}
    with open(root / "etc" / "group", "a") as f:
        f.write("late:x:1500:\n")  # another tool, after the plan
    change.apply(target)
    assert (root / "etc" / "group").read_text() == GROUP_TEXT + "late:x:1500:\nadmin:x:900:\n"


def test_diff_masks_secret_files_and_password_fields(tmp_path):
    target = TargetRoot(str(etc(tmp_path / "root")))

    def edit(a: Accounts) -> None:
        a.shadow.set(["rey", "$6$abc$secrethash", "20000", "", "", "", "", "", ""])
        a.passwd.set(["rey", "plainsecret", "1001", "900", "", "/home/rey", "/bin/bash"])
        a.group.set(["admin", "grouppass", "900", ""])
        a.group.set(["locked", "!grouppass2", "901", ""])

    change, _ = acc.plan_edit(target, "d", edit)
    assert change is not None
    diff = change.diff()
    for secret in ("secrethash", "plainsecret", "grouppass"):
        assert secret not in diff
    assert "--- /etc/shadow" in diff and "content masked" in diff
    assert "+rey:********:1001:900::/home/rey:/bin/bash" in diff
    assert "+admin:********:900:" in diff and "+locked:!********:901:" in diff
    assert " root:x:0:0:root:/root:/bin/bash" in diff  # `x` is no secret: shown


def test_pwd_lock_timeout_names_the_lock_file(tmp_path, monkeypatch):
    """With the lock held (here by another open file description of this process,
    which fcntl treats as the same owner, so use a child), the wait is bounded."""
    import subprocess
    import sys

    root = etc(tmp_path / "root")
    lock = root / "etc" / ".pwd.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys\n"
         f"fd = os.open({str(lock)!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        monkeypatch.setattr(acc, "LOCK_TIMEOUT", 0.2)
        with pytest.raises(acc.AccountsError, match=r"/etc/\.pwd\.lock is held by another "
                                                    r"process \(waited 0\.2 s\)"), \
                acc.pwd_lock(TargetRoot(str(root))):
            pass
    finally:
        child.communicate("")


def test_lines_end_only_at_newlines():
    """A form feed or U+2028 inside a gecos is part of the line, not a line end."""
    text = "a:x:1000:1000:odd\x0cgecos\u2028here:/:/bin/sh\nb:x:1001:1001::/:/bin/sh\n"
    t = Table(PASSWD, text, "user")
    assert t.names() == ["a", "b"]
    t.remove("b")
    assert t.text() == "a:x:1000:1000:odd\x0cgecos\u2028here:/:/bin/sh\n"
