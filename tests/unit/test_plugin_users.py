"""`users` (yip-behaviour 3.6, SPEC 2, 7.6, 7.9, 7.10, 7.13) on real scratch roots.

Each test builds a target root under tmp_path with its own passwd, shadow, group,
gshadow, login.defs, default/useradd and skel (never the host's), runs a `users` step
through the real engine and reads the files back. Tests that create homes chown them
to new users and need root; pwck/grpck run with -R (a chroot) and need root too.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from edgeinit.plugins import users as users_plugin
from edgeinit.target import crypt
from edgeinit.target.accounts import EditAccounts, days_since_epoch, plan_edit
from edgeinit.target.changes import CreateHome
from edgeinit.target.root import TargetRoot
from tests.conftest import IS_ROOT, needs_root
from tests.unit.plugin_harness import StepRun, run_step

OLD_PASSWORD = "old-secret"
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "old:x:1000:1000:Old User:/home/old:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
SHADOW = ("root:*:19000:0:99999:7:::\n"
          "daemon:*:19000:0:99999:7:::\n"
          "old:{old}:19000:0:99999:7:::\n"
          "nobody:*:19000:0:99999:7:::\n")
GROUP = ("root:x:0:\ndaemon:x:1:\nwheel:x:10:old\nshadow:x:42:\nusers:x:100:\n"
         "old:x:1000:\nnogroup:x:65534:\n")
GSHADOW = ("root:*::\ndaemon:*::\nwheel:*::old\nshadow:*::\nusers:*::\n"
           "old:!::\nnogroup:*::\n")
LOGIN_DEFS = ("# test login.defs\nUID_MIN 1000\nUID_MAX 60000\nGID_MIN 1000\nGID_MAX 60000\n"
              "SYS_UID_MAX 999\nSYS_GID_MAX 999\nUMASK 022\n")
TODAY = str(days_since_epoch())
MISSING = object()


def make_root(tmp_path: Path, *, passwd: object = PASSWD, shadow: object = None,
              group: object = GROUP, gshadow: object = GSHADOW,
              login_defs: object = LOGIN_DEFS, useradd: object = "SHELL=/bin/sh\n",
              skel: bool = True) -> Path:
    """A scratch target; a file given as MISSING is left out."""
    root = tmp_path / "root"
    etc = root / "etc"
    (etc / "default").mkdir(parents=True)
    if shadow is None:
        shadow = SHADOW.format(old=crypt.sha512_crypt(OLD_PASSWORD))
    for name, text, mode in (("passwd", passwd, 0o644), ("shadow", shadow, 0o640),
                             ("group", group, 0o644), ("gshadow", gshadow, 0o640),
                             ("login.defs", login_defs, 0o644),
                             ("default/useradd", useradd, 0o644)):
        if text is MISSING:
            continue
        path = etc / name
        path.write_text(str(text))
        os.chmod(path, mode)
        if IS_ROOT and mode == 0o640:
            os.chown(path, 0, 42)
    if skel:
        (etc / "skel" / ".config").mkdir(parents=True)
        (etc / "skel" / ".profile").write_text("# profile\n")
        (etc / "skel" / ".private").write_text("private\n")
        os.chmod(etc / "skel" / ".private", 0o600)
        os.chmod(etc / "skel" / ".config", 0o700)
        (etc / "skel" / ".config" / "app.conf").write_text("a=1\n")
        os.symlink(".profile", etc / "skel" / ".bash_profile")
    for shell in ("bin/sh", "bin/bash", "usr/sbin/nologin"):  # so pwck finds the shells
        (root / shell).parent.mkdir(parents=True, exist_ok=True)
        (root / shell).write_text("")
        os.chmod(root / shell, 0o755)
    return root


def rows(root: Path, name: str) -> dict[str, list[str]]:
    """The well-formed lines of ROOT/etc/NAME by their first field."""
    out: dict[str, list[str]] = {}
    for line in (root / "etc" / name).read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 4:
            out.setdefault(fields[0], fields)
    return out


def assert_consistent(root: Path) -> None:
    """Every passwd user has a shadow line; with a gshadow, every group has a gshadow
    line with the same members (what pwck/grpck check)."""
    passwd, shadow = rows(root, "passwd"), rows(root, "shadow")
    assert set(passwd) <= set(shadow), f"users without shadow: {set(passwd) - set(shadow)}"
    if (root / "etc" / "gshadow").exists():
        group, gshadow = rows(root, "group"), rows(root, "gshadow")
        assert set(group) == set(gshadow)
        for name, fields in group.items():
            assert set(filter(None, fields[3].split(","))) == \
                set(filter(None, gshadow[name][3].split(","))), name


def checks(root: Path) -> set[str]:
    """Problems `pwck -r -R` and `grpck -r -R` report (empty when not root: -R chroots)."""
    if not IS_ROOT:
        return set()
    out: set[str] = set()
    for tool in ("pwck", "grpck"):
        proc = subprocess.run([tool, "-r", "-R", str(root)], capture_output=True, text=True,
                              check=False)
        out |= {f"{tool}: {line}" for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and not line.endswith("no changes")}
    return out


def snapshot(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            data = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[path] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                         st.st_gid, data)
    return out


def account_files(root: Path) -> dict[str, str]:
    return {n: (root / "etc" / n).read_text() for n in ("passwd", "shadow", "group", "gshadow")
            if (root / "etc" / n).exists()}


def run(root: Path, step: str | dict, *, dry_run: bool = False) -> StepRun:
    return run_step(step, root, dry_run=dry_run)


# -- new users -----------------------------------------------------------------------------

@needs_root
def test_new_user_defaults(tmp_path: Path) -> None:
    """A bare entry: first free uid/gid, yip's gecos, useradd's shell and home, a group
    named after the user with the user as member, locked password, skel copied."""
    root = make_root(tmp_path)
    result = run(root, "users: {foo: {}}")
    assert result.status == "ok", result.error
    assert result.entry.changed
    assert (root / "etc/passwd").read_text().endswith(
        "foo:x:1001:1001:Created by entities:/home/foo:/bin/sh\n")
    assert rows(root, "shadow")["foo"] == ["foo", "!", TODAY, "", "", "", "", "", ""]
    assert rows(root, "group")["foo"] == ["foo", "x", "1001", "foo"]
    assert rows(root, "gshadow")["foo"] == ["foo", "!", "", "foo"]
    home = root / "home/foo"
    st = home.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 1001, 1001)
    assert (root / "home").stat().st_uid == 0
    assert (home / ".profile").read_text() == "# profile\n"
    for rel, mode in ((".profile", 0o644), (".private", 0o600), (".config", 0o700),
                      (".config/app.conf", 0o644)):
        st = (home / rel).lstat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, 1001, 1001), rel
    link = home / ".bash_profile"
    assert link.is_symlink() and os.readlink(link) == ".profile"
    assert (link.lstat().st_uid, link.lstat().st_gid) == (1001, 1001)
    assert_consistent(root)
    assert result.entry.changes[0] == ("add user foo (uid 1001, gid 1001, home /home/foo, "
                                       "shell /bin/sh, password locked); new groups foo (1001)")


@needs_root
def test_defaults_from_the_targets_useradd_and_login_defs(tmp_path: Path) -> None:
    """SHELL and HOME of /etc/default/useradd, HOME_MODE of login.defs; missing parents
    of the home are 0755 root:root."""
    root = make_root(tmp_path, useradd='SHELL="/bin/bash"\nHOME=/srv/people\n',
                     login_defs=LOGIN_DEFS + "HOME_MODE 0700\n")
    assert run(root, "users: {foo: {}}").status == "ok"
    assert rows(root, "passwd")["foo"][5:] == ["/srv/people/foo", "/bin/bash"]
    assert stat.S_IMODE((root / "srv/people/foo").stat().st_mode) == 0o700
    parent = (root / "srv/people").stat()
    assert (stat.S_IMODE(parent.st_mode), parent.st_uid) == (0o755, 0)


@needs_root
def test_home_mode_from_umask_and_builtin_defaults(tmp_path: Path) -> None:
    """No HOME_MODE: 0777 & ~UMASK; no useradd file at all: /bin/sh and /home."""
    root = make_root(tmp_path, useradd=MISSING, login_defs="UMASK 027\n")
    assert run(root, "users: {foo: {shell: /bin/bash}}").status == "ok"
    assert rows(root, "passwd")["foo"][5:] == ["/home/foo", "/bin/bash"]
    assert stat.S_IMODE((root / "home/foo").stat().st_mode) == 0o750


def test_recreates_users_with_the_same_uid_and_in_order(tmp_path: Path) -> None:
    """yip's test: a->1000, bar->1001, foo->1002, x->1003 whatever the map order, and
    the same ids on a fresh /etc (sorted order); later users do not move earlier ones."""
    passwd = "root:x:0:0:root:/root:/bin/sh\n"
    config = "users: {x: {no_create_home: true}, foo: {no_create_home: true}, " \
             "bar: {no_create_home: true}, a: {no_create_home: true}}"
    uids = []
    for attempt in ("first", "second"):
        root = make_root(tmp_path / attempt, passwd=passwd, shadow="root:*:19000::::::\n",
                         group="root:x:0:\n", gshadow="root:*::\n")
        assert run(root, config).status == "ok"
        uids.append({n: r[2] for n, r in rows(root, "passwd").items() if n != "root"})
    assert uids[0] == uids[1] == {"a": "1000", "bar": "1001", "foo": "1002", "x": "1003"}
    again = run(root, config)
    assert again.status == "ok" and not again.entry.changed
    assert run(root, "users: {b: {no_create_home: true}, foo: {}}").status == "ok"
    assert rows(root, "passwd")["b"][2] == "1004"
    assert rows(root, "passwd")["foo"][2] == "1002"


def test_adds_users_to_group(tmp_path: Path) -> None:
    """yip's test "adds users to group": byte for byte, with no gshadow in the target."""
    root = make_root(tmp_path, passwd="root:x:0:0:root:/root:/bin/sh\n",
                     shadow="root:*:19000::::::\n",
                     group="admin:x:1000:admin,bar\nbar:x:1001:bar\n", gshadow=MISSING)
    result = run(root, "users: {baz: {groups: [admin], no_create_home: true}}")
    assert result.status == "ok", result.error
    assert (root / "etc/group").read_text() == \
        "admin:x:1000:admin,bar,baz\nbar:x:1001:bar\nbaz:x:1002:baz\n"
    assert not (root / "etc/gshadow").exists()


def test_system_user_gets_the_highest_free_ids_below_1000(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert run(root, "users: {svc: {system: true, no_create_home: true}}").status == "ok"
    assert rows(root, "passwd")["svc"][2:4] == ["999", "999"]
    assert run(root, "users: {svc2: {system: true, no_create_home: true}}").status == "ok"
    assert rows(root, "passwd")["svc2"][2:4] == ["998", "998"]


def test_explicit_uid_and_primary_groups(tmp_path: Path) -> None:
    """uid as given; primary_group existing (no own group), missing (created, no
    members), by gid; no_user_group takes GROUP= (default 100)."""
    root = make_root(tmp_path)
    result = run(root, """
users:
  a: {uid: "4242", primary_group: wheel, no_create_home: true}
  b: {primary_group: staff, no_create_home: true}
  c: {no_user_group: true, no_create_home: true}
  d: {primary_group: "10", no_create_home: true}
""")
    assert result.status == "ok", result.error
    passwd, group = rows(root, "passwd"), rows(root, "group")
    assert passwd["a"][2:4] == ["4242", "10"]
    assert "a" not in group and group["wheel"] == ["wheel", "x", "10", "old"]
    assert group["staff"] == ["staff", "x", "1001", ""] and passwd["b"][3] == "1001"
    assert passwd["c"][3] == "100" and "c" not in group
    assert passwd["d"][3] == "10"
    assert_consistent(root)


def test_no_user_group_with_a_group_name_in_useradd(tmp_path: Path) -> None:
    root = make_root(tmp_path, useradd="GROUP=wheel\n")
    assert run(root, "users: {c: {no_user_group: true, no_create_home: true}}").status == "ok"
    assert rows(root, "passwd")["c"][3] == "10"


def test_existing_group_named_after_the_user_keeps_its_gid(tmp_path: Path) -> None:
    """yip would rewrite the group with a newly chosen gid; here it keeps gid 5000 and
    gets the user as member (in gshadow too)."""
    root = make_root(tmp_path, group=GROUP + "foo:x:5000:someone\n",
                     gshadow=GSHADOW + "foo:!::someone\n")
    assert run(root, "users: {foo: {no_create_home: true}}").status == "ok"
    assert rows(root, "passwd")["foo"][3] == "5000"
    assert rows(root, "group")["foo"] == ["foo", "x", "5000", "someone,foo"]
    assert rows(root, "gshadow")["foo"] == ["foo", "!", "", "someone,foo"]


def test_supplementary_groups_created_and_joined(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result = run(root, "users: {foo: {groups: [wheel, admin], no_create_home: true}}")
    assert result.status == "ok", result.error
    group = rows(root, "group")
    assert group["wheel"] == ["wheel", "x", "10", "old,foo"]
    assert group["foo"] == ["foo", "x", "1001", "foo"]
    assert group["admin"] == ["admin", "x", "1002", "foo"]
    assert rows(root, "gshadow")["admin"] == ["admin", "!", "", "foo"]
    assert rows(root, "gshadow")["wheel"][3] == "old,foo"
    assert_consistent(root)
    assert "new groups foo (1001), admin (1002); foo joins wheel, admin" in \
        result.entry.changes[0]


def test_joined_group_without_a_gshadow_line_gets_one(tmp_path: Path) -> None:
    """A group that another tool added to /etc/group only (yip's group entity does):
    joining it writes its gshadow line with the same members, so grpck stays clean."""
    root = make_root(tmp_path, group=GROUP + "legacy:x:500:old\n")
    before = checks(root)
    result = run(root, "users: {foo: {groups: [legacy], homedir: /, no_create_home: true}}")
    assert result.status == "ok", result.error
    assert rows(root, "group")["legacy"] == ["legacy", "x", "500", "old,foo"]
    assert rows(root, "gshadow")["legacy"] == ["legacy", "!", "", "old,foo"]
    assert_consistent(root)
    if IS_ROOT:
        assert any("add group 'legacy' in /etc/gshadow" in line for line in before)
        assert checks(root) == {line for line in before
                                if "legacy" not in line and "gshadow" not in line}


# -- existing users ------------------------------------------------------------------------

def test_existing_user_gets_password_shell_gecos_groups_only(tmp_path: Path) -> None:
    """SPEC 7.6: read from the target's passwd; uid, home and primary group stay (with
    a warning for what is not applied); groups are added, never removed."""
    root = make_root(tmp_path)
    before = rows(root, "shadow")["old"]
    result = run(root, """
users:
  old:
    passwd: new-secret
    shell: /bin/bash
    gecos: Renamed
    uid: "4000"
    homedir: /srv/old
    primary_group: wheel
    groups: [extra]
""")
    assert result.status == "ok", result.error
    assert rows(root, "passwd")["old"] == ["old", "x", "1000", "1000", "Renamed", "/home/old",
                                           "/bin/bash"]
    shadow = rows(root, "shadow")["old"]
    assert shadow[1] != before[1] and crypt.verify("new-secret", shadow[1])
    assert shadow[2] == TODAY and shadow[3:] == before[3:]  # aging fields kept
    assert rows(root, "group")["wheel"][3] == "old"
    assert rows(root, "group")["extra"][3] == "old"
    assert not (root / "home/old").exists() and not (root / "srv").exists()
    assert any("uid 4000 not applied" in w for w in result.warnings)
    assert any("homedir /srv/old not applied" in w for w in result.warnings)
    assert any("primary_group not applied" in w for w in result.warnings)
    assert result.entry.changes[0] == ("update user old: password, shell, gecos; "
                                       "new groups extra (1001); old joins extra")
    assert_consistent(root)


def test_existing_user_unchanged_when_nothing_differs(tmp_path: Path) -> None:
    """The stored hash verifies against the plaintext: not hashed again (SPEC 7.13)."""
    root = make_root(tmp_path)
    (root / "home" / "old").mkdir(parents=True)
    before = snapshot(root)
    result = run(root, f"users: {{old: {{passwd: {OLD_PASSWORD}, shell: /bin/sh, "
                       "groups: [wheel]}}")
    assert result.status == "ok" and not result.entry.changed
    assert result.changes == []
    assert snapshot(root) == before


# -- passwords -----------------------------------------------------------------------------

def test_plaintext_hashed_once_then_kept(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert run(root, "users: {foo: {passwd: s3cret, no_create_home: true}}").status == "ok"
    first = rows(root, "shadow")["foo"]
    assert first[1].startswith("$6$") and crypt.verify("s3cret", first[1])
    assert first[2:] == [TODAY, "", "", "", "", "", ""]
    again = run(root, "users: {foo: {passwd: s3cret, no_create_home: true}}")
    assert again.status == "ok" and not again.entry.changed
    assert rows(root, "shadow")["foo"] == first


@pytest.mark.parametrize("given", ["$6$abcdefgh$Wm8Sl2K5zqLqj2Dq0B1b7M7d2mGzq9Yb1x0v1QhJ3v.",
                                   "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC",
                                   "!", "*"])
def test_hashes_and_locks_stored_as_given(tmp_path: Path, given: str) -> None:
    root = make_root(tmp_path)
    result = run(root, {"users": {"foo": {"passwd": given, "no_create_home": "true"}}})
    assert result.status == "ok", result.error
    assert rows(root, "shadow")["foo"][1] == given


def test_lock_passwd(tmp_path: Path) -> None:
    """lock_passwd prefixes `!` (usermod -L); with no password a new user is `!`; an
    existing user's hash is locked, not replaced; all stable on a second run."""
    root = make_root(tmp_path)
    hashed = rows(root, "shadow")["old"][1]
    config = ("users: {a: {passwd: pw, lock_passwd: true, no_create_home: true}, "
              "b: {lock_passwd: true, no_create_home: true}, old: {lock_passwd: true}}")
    assert run(root, config).status == "ok"
    shadow = rows(root, "shadow")
    assert shadow["a"][1].startswith("!$6$") and crypt.verify("pw", shadow["a"][1][1:])
    assert shadow["b"][1] == "!"
    assert shadow["old"][1] == "!" + hashed and shadow["old"][2] == "19000"
    again = run(root, config)
    assert again.status == "ok" and not again.entry.changed
    # The same password without lock_passwd unlocks, keeping the hash.
    assert run(root, f"users: {{old: {{passwd: {OLD_PASSWORD}}}}}").status == "ok"
    assert rows(root, "shadow")["old"][1] == hashed


def test_password_never_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC 7.9: not in the log, the report's changes, warnings, errors or dry-run diff."""
    from edgeinit.log import DEBUG, log

    monkeypatch.setattr(log, "level", DEBUG)
    root = make_root(tmp_path)
    secret = "Hunter2-plain"
    config = {"users": {"foo": {"passwd": secret, "no_create_home": "true"},
                        "old": {"passwd": secret, "uid": "1"},
                        "Bad": {"passwd": secret}}}
    dry = run(root, config, dry_run=True)
    real = run(root, config)
    hashes = [rows(root, "shadow")[n][1] for n in ("foo", "old")]
    assert crypt.verify(secret, hashes[0])
    shown = capsys.readouterr()
    for result in (dry, real):
        text = "\n".join([*result.entry.changes, *result.warnings, result.error,
                          result.entry.diff, shown.out, shown.err])
        assert "Bad" in result.error  # the failing entry is reported...
        for leak in (secret, *hashes, *(h.split("$")[2] for h in hashes)):
            assert leak not in text  # ...but no password, hash or salt anywhere
    assert "/etc/shadow" in dry.entry.diff and "masked" in dry.entry.diff


# -- dry run, keys, homes ------------------------------------------------------------------

def test_dry_run_writes_nothing_but_later_plans_see_the_user(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    before = snapshot(root)
    result = run(root, "users: {foo: {ssh_authorized_keys: ['ssh-ed25519 AAAA foo@x']}}",
                 dry_run=True)
    assert result.status == "ok", result.error
    assert snapshot(root) == before
    assert result.entry.changes[0].startswith("add user foo (uid 1001")
    assert ("create home /home/foo (mode 0755, owner 1001:1001) with a copy of /etc/skel"
            in result.entry.changes)
    assert "mkdir /home/foo/.ssh (mode 0700, owner 1001:1001)" in result.entry.changes
    assert "+foo:x:1001:1001:Created by entities:/home/foo:/bin/sh" in result.entry.diff


@needs_root
def test_ssh_authorized_keys_after_the_user_exists(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result = run(root, "users: {foo: {ssh_authorized_keys: ['ssh-ed25519 AAAA foo@x']}}")
    assert result.status == "ok", result.error
    keys = root / "home/foo/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAA foo@x\n"
    st = keys.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 1001, 1001)


@needs_root
def test_existing_home_is_never_touched(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    home = root / "home/foo"
    home.mkdir(parents=True)
    (home / "mine").write_text("keep\n")
    result = run(root, "users: {foo: {}}")
    assert result.status == "ok", result.error
    st = home.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o755)
    assert sorted(os.listdir(home)) == ["mine"]
    assert not any(isinstance(c, CreateHome) for c in result.changes)


def test_no_create_home(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert run(root, "users: {foo: {no_create_home: true}}").status == "ok"
    assert rows(root, "passwd")["foo"][5] == "/home/foo"
    assert not (root / "home").exists()


@needs_root
def test_second_run_changes_nothing(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    config = ("users: {foo: {passwd: pw, groups: [admin, wheel], shell: /bin/bash, "
              "gecos: Foo, ssh_authorized_keys: ['ssh-ed25519 AAAA foo@x']}, "
              "bar: {system: true, lock_passwd: true}}")
    assert run(root, config).status == "ok"
    before = snapshot(root)
    again = run(root, config)
    assert again.status == "ok" and not again.entry.changed and again.changes == []
    assert snapshot(root) == before


def test_edit_is_applied_to_the_files_as_they_are_under_the_lock(tmp_path: Path) -> None:
    """The edit is planned, then another tool adds a user with the uid the plan chose:
    applying re-reads the files and allocates the next free uid, keeping both."""
    root_dir = make_root(tmp_path)
    root = TargetRoot(str(root_dir))
    defaults = users_plugin.read_defaults(root)
    summary: dict = {}
    entry = users_plugin.User(passwd="pw", no_create_home=True)
    edit = users_plugin.user_edit("foo", entry, None, "/home/foo", defaults,
                                  days_since_epoch(), summary)
    change, _ = plan_edit(root, "add foo", edit)
    assert isinstance(change, EditAccounts) and summary["uid"] == 1001
    planned_hash = next(line for line in change.preview["/etc/shadow"][1].splitlines()
                        if line.startswith("foo:")).split(":")[1]
    with open(root_dir / "etc/passwd", "a") as f:
        f.write("other:x:1001:1001::/home/other:/bin/sh\n")
    with open(root_dir / "etc/shadow", "a") as f:
        f.write("other:!:19000::::::\n")
    change.apply(root)
    passwd = rows(root_dir, "passwd")
    assert passwd["other"][2] == "1001" and passwd["foo"][2] == "1002"
    assert rows(root_dir, "shadow")["foo"][1] == planned_hash  # hashed once, not per call
    backup = rows(root_dir, "passwd-")  # the backup is what the edit found under the lock
    assert "other" in backup and "foo" not in backup
    assert_consistent(root_dir)


# -- bad inputs ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Bad", "1abc", "a" * 33, "foo.bar", "-x", "a$b"])
def test_invalid_user_name_fails_that_user_only(tmp_path: Path, name: str) -> None:
    root = make_root(tmp_path)
    before = checks(root)
    result = run(root, {"users": {name: {"no_create_home": "true"},
                                  "good": {"homedir": "/", "no_create_home": "true"}}})
    assert result.status == "failed"
    assert f"users: '{name}': invalid user name" in result.error
    assert name not in rows(root, "passwd") and "good" in rows(root, "passwd")
    assert_consistent(root)
    assert checks(root) <= before


def test_dollar_suffix_name_is_valid(tmp_path: Path) -> None:
    """A trailing `$` is allowed (Samba machine accounts)."""
    root = make_root(tmp_path)
    result = run(root, {"users": {"host1$": {"no_create_home": "true"}}})
    assert result.status == "ok", result.error
    assert "host1$" in rows(root, "passwd")


def test_name_field_must_match_the_key(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result = run(root, "users: {foo: {name: bar, no_create_home: true}}")
    assert result.status == "failed"
    assert "name 'bar' differs from its key 'foo'" in result.error
    assert "foo" not in rows(root, "passwd") and "bar" not in rows(root, "passwd")


@pytest.mark.parametrize(("config", "message"), [
    ("users: {foo: {uid: '1000', no_create_home: true}}",
     "users: 'foo': uid 1000 is already held by user 'old'"),
    ("users: {foo: {uid: abc}}", "users: 'foo': uid 'abc' is not a number"),
    ("users: {foo: {uid: '-1'}}", "users: 'foo': uid '-1' is not a number"),
    ("users: {foo: {groups: [Admins]}}", "users: 'foo': invalid group name 'Admins'"),
    ("users: {foo: {primary_group: '4711'}}",
     "users: 'foo': primary group 4711: no group has this gid"),
    ("users: {foo: {homedir: /../../x}}",
     "users: 'foo': home directory: path '/../../x' climbs above the root"),
    ("users: {foo: {homedir: home/foo}}",
     "users: 'foo': home directory: path 'home/foo' is not absolute"),
    ("users: {foo: {shell: '/bin/sh:x'}}", "users: 'foo': the shell cannot contain ':'"),
    ("users: {foo: {homedir: /etc/passwd/foo}}",
     "users: 'foo': home directory: '/etc/passwd' exists and is not a directory"),
    ("users: {foo: {homedir: /etc/group}}",
     "users: 'foo': home directory: '/etc/group' exists and is not a directory"),
])
def test_bad_entry_fails_cleanly(tmp_path: Path, config: str, message: str) -> None:
    """Each a clear message; the step fails; the other users still run; files as
    before for the failed user and consistent."""
    root = make_root(tmp_path)
    before_files = account_files(root)
    before_checks = checks(root)
    result = run(root, config)
    assert result.status == "failed"
    assert message in result.error
    assert account_files(root) == before_files
    assert not (tmp_path / "x").exists() and not (root / "home").exists()
    assert checks(root) <= before_checks
    with_other = run(root, config.replace("users: {", "users: {zed: {no_create_home: true}, "))
    assert with_other.status == "failed" and "zed" in rows(root, "passwd")


def test_no_free_gid_for_a_new_group(tmp_path: Path) -> None:
    """GID_MIN = GID_MAX = 1000, already used: the group cannot be made, the user is not
    created (no passwd line without its group or shadow line)."""
    root = make_root(tmp_path, login_defs=LOGIN_DEFS + "GID_MIN 1000\nGID_MAX 1000\n")
    before_files, before_checks = account_files(root), checks(root)
    result = run(root, "users: {foo: {no_create_home: true}, old: {groups: [newgroup]}}")
    assert result.status == "failed"
    assert "users: 'foo': no free gid left in 1000-1000" in result.error
    assert "users: 'old': no free gid left in 1000-1000" in result.error
    assert account_files(root) == before_files
    assert checks(root) <= before_checks


def test_malformed_lines_kept_with_a_warning(tmp_path: Path) -> None:
    """A line that does not parse is kept verbatim and named by its line number (never
    shown: it may hold a hash); the step goes on."""
    root = make_root(tmp_path, passwd=PASSWD + "broken line without colons\n"
                     "bad:x:notanumber:1:x:/:/bin/sh\n",
                     group=GROUP + "junk\n")
    result = run(root, "users: {foo: {no_create_home: true}}")
    assert result.status == "ok", result.error
    text = (root / "etc/passwd").read_text()
    assert "broken line without colons\nbad:x:notanumber:1:x:/:/bin/sh\n" in text
    assert text.endswith("foo:x:1001:1001:Created by entities:/home/foo:/bin/sh\n")
    assert "junk\n" in (root / "etc/group").read_text()
    assert "/etc/passwd: malformed lines 5, 6 kept as they are" in result.warnings
    assert "/etc/group: malformed line 8 kept as it is" in result.warnings
    assert not any("broken" in w or "notanumber" in w for w in result.warnings)


def test_malformed_line_of_the_same_user_fails_that_user(tmp_path: Path) -> None:
    """Adding a second line for a name whose line is broken would make two entries."""
    root = make_root(tmp_path, passwd=PASSWD + "foo:x:12\n")
    before = account_files(root)
    result = run(root, "users: {foo: {passwd: pw, no_create_home: true}}")
    assert result.status == "failed"
    assert "/etc/passwd line 5, the entry of 'foo', is malformed" in result.error
    assert account_files(root) == before


@pytest.mark.parametrize("missing", ["shadow", "passwd", "group"])
def test_missing_account_file_fails_the_step_and_writes_nothing(tmp_path: Path,
                                                                missing: str) -> None:
    root = make_root(tmp_path, **{missing: MISSING})
    before = snapshot(root)
    result = run(root, "users: {foo: {passwd: pw}, bar: {}}")
    assert result.status == "failed"
    assert f"users: the target has no /etc/{missing}: no user was created or changed" == \
        result.error
    assert snapshot(root) == before


def test_cloud_config_users_list(tmp_path: Path, cli, write) -> None:
    """cloud-init's `users:` list becomes the map (boot stage); `groups` may be a
    comma-separated string; an entry's name is its key."""
    root = make_root(tmp_path)
    src = write("user-data.yaml", "#cloud-config\nusers:\n"
                "  - name: bob\n    passwd: pw\n    groups: 'wheel, ops'\n"
                "    shell: /bin/bash\n    no_create_home: true\n")
    result = cli("run", "--stage", "boot", "--root", root, "--json", src)
    assert result.code == 0, result.out + result.err
    assert rows(root, "passwd")["bob"][2:] == ["1001", "1001", "Created by entities",
                                               "/home/bob", "/bin/bash"]
    assert crypt.verify("pw", rows(root, "shadow")["bob"][1])
    assert rows(root, "group")["ops"] == ["ops", "x", "1002", "bob"]
    assert rows(root, "group")["wheel"][3] == "old,bob"
    again = cli("run", "--stage", "boot", "--root", root, "--json", src)
    assert [s["changed"] for s in again.json()["steps"]] == [False]


@needs_root
def test_home_is_made_at_once_and_a_crash_before_it_converges(tmp_path: Path,
                                                              monkeypatch) -> None:
    """SPEC 7.10: a run stopped after the account edit but before the home (here:
    making the home fails once) ends, on the next run, where an uninterrupted run ends:
    the existing user whose configured home is missing gets it, skel copied; and a
    half-built home never appears under its real name."""
    from edgeinit.target import fs

    root = make_root(tmp_path)
    real = fs.make_tree
    calls = []

    def crash(host_path, mode, uid, gid, source):  # type: ignore[no-untyped-def]
        calls.append(host_path)
        os.mkdir(fs.temp_path_for(host_path))  # the debris a crash mid-copy leaves
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fs, "make_tree", crash)
    first = run(root, "users: {foo: {}}")
    assert first.status == "failed" and "home" in first.error
    assert "foo" in rows(root, "passwd") and not (root / "home/foo").exists()
    monkeypatch.setattr(fs, "make_tree", real)
    second = run(root, "users: {foo: {}}")
    assert second.status == "ok", second.error
    home = root / "home/foo"
    assert (home / ".config" / "app.conf").read_text() == "a=1\n"
    assert home.stat().st_uid == int(rows(root, "passwd")["foo"][2])
    assert not (root / "home" / ".foo.edgeinit-new").exists()
    assert len(calls) == 1


@needs_root
def test_existing_user_gets_its_missing_configured_home(tmp_path: Path) -> None:
    """A user listed in `users:` that exists but lacks the home the config names (or
    the default one) gets it, skel copied: what an interrupted first run left out."""
    root = make_root(tmp_path)
    result = run(root, "users: {old: {}}")
    assert result.status == "ok", result.error
    assert (root / "home" / "old" / ".profile").read_text() == "# profile\n"
    assert run(root, "users: {old: {}}").entry.changed is False
