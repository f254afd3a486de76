"""`ensure_entities` / `delete_entities` (yip-behaviour 3.7, SPEC 7.7, 7.9, 7.13).

Steps run through the real engine (plugin_harness) on a scratch root with real account
files, so each edit goes through plan_edit, the lock and commit as on a device.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from edgeinit.target import accounts as acc
from edgeinit.target import crypt
from edgeinit.target.accounts import EditAccounts
from tests.conftest import needs_root
from tests.unit.plugin_harness import StepRun, run_step

DAY = 20000  # "today" for every test: days_since_epoch is fixed below

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "edge:x:1000:1000:Edge:/home/edge:/bin/sh\n")
SHADOW = ("root:*:19000:0:99999:7:::\n"
          "daemon:*:19000:0:99999:7:::\n"
          "edge:!:19000:0:99999:7:::\n")
GROUP = "root:x:0:\ndaemon:x:1:\nsudo:x:27:edge\nedge:x:1000:\n"
GSHADOW = "root:*::\ndaemon:*::\nsudo:*:root:edge\nedge:!::\n"


@pytest.fixture(autouse=True)
def fixed_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "days_since_epoch", lambda now=None: DAY)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    for name, text in (("passwd", PASSWD), ("shadow", SHADOW), ("group", GROUP),
                       ("gshadow", GSHADOW)):
        (r / "etc" / name).write_text(text)
    os.chmod(r / "etc" / "shadow", 0o640)
    os.chmod(r / "etc" / "gshadow", 0o640)
    return r


def read(root: Path, name: str) -> str:
    return (root / "etc" / name).read_text()


def files(root: Path) -> dict[str, str]:
    return {n: read(root, n) for n in ("passwd", "shadow", "group", "gshadow")
            if (root / "etc" / n).exists()}


def ensure(root: Path, *entities: str | tuple[str, str], dry_run: bool = False,
           key: str = "ensure_entities") -> StepRun:
    """Run one step with these entities (an entity text, or (path, entity text))."""
    entries = [{"path": e[0], "entity": e[1]} if isinstance(e, tuple) else {"entity": e}
               for e in entities]
    return run_step({key: entries}, root, dry_run=dry_run)


def delete(root: Path, *entities: str | tuple[str, str]) -> StepRun:
    return ensure(root, *entities, key="delete_entities")


def assert_converged(root: Path, *entities: str | tuple[str, str],
                     key: str = "ensure_entities") -> None:
    """A second run changes nothing: no change planned, no byte different."""
    before = files(root)
    again = ensure(root, *entities, key=key)
    assert again.status == "ok", again.error
    assert again.changes == [] and not again.entry.changed
    assert files(root) == before


ADMIN = 'kind: "group"\ngroup_name: "admin"\npassword: "x"\ngid: 900\n'
ELEMENTAL = 'kind: "shadow"\nusername: "root"\npassword: "elemental"\n'


# -- the real configs ---------------------------------------------------------------------

def test_seed_admin_group(root):
    run = ensure(root, ADMIN)
    assert run.status == "ok" and run.entry.changed, run.error
    assert run.entry.changes == ["ensure group 'admin' in /etc/group"]
    assert read(root, "group") == GROUP + "admin:x:900:\n"
    assert read(root, "gshadow") == GSHADOW + "admin:!::\n"
    assert read(root, "group-") == GROUP  # shadow-utils' backup
    assert_converged(root, ADMIN)


def test_elemental_root_password(root):
    """Elemental's 04_accounting.yaml: root's password hashed, its aging kept."""
    run = ensure(root, ("/etc/shadow", ELEMENTAL))
    assert run.status == "ok", run.error
    line = read(root, "shadow").splitlines()[0]
    name, hashed, *aging = line.split(":")
    assert name == "root" and hashed.startswith("$6$") and crypt.verify("elemental", hashed)
    assert aging == ["19000", "0", "99999", "7", "", "", ""]
    assert read(root, "shadow").splitlines()[1:] == SHADOW.splitlines()[1:]
    assert_converged(root, ("/etc/shadow", ELEMENTAL))


@needs_root
def test_elemental_root_password_keeps_mode_and_owner(root):
    os.chown(root / "etc" / "shadow", 0, 42)
    ensure(root, ("/etc/shadow", ELEMENTAL))
    st = (root / "etc" / "shadow").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 42)


def test_yip_executor_group_example(tmp_path):
    """yip's own test: nm-openconnect:x:979: + foo -> exactly this /etc/group."""
    r = tmp_path / "r"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "group").write_text("nm-openconnect:x:979:\n")
    run = ensure(r, "kind: group\ngroup_name: foo\npassword: xx\ngid: 1\nusers: one,two,tree\n")
    assert run.status == "ok", run.error
    assert read(r, "group") == "nm-openconnect:x:979:\nfoo:xx:1:one,two,tree\n"
    assert not (r / "etc" / "gshadow").exists()  # not created where the target has none
    # The password is kept as yip keeps it, with a warning that does not repeat it.
    assert any("plain text" in w for w in run.warnings)
    assert not any("xx" in w for w in run.warnings)


def test_plan_and_apply_agree_on_the_hash(root):
    """The edit runs twice (plan, then under the lock); the plaintext is hashed once."""
    run = ensure(root, ("/etc/shadow", ELEMENTAL))
    (change,) = run.of(EditAccounts)
    assert change.preview["/etc/shadow"][1] == read(root, "shadow")


def test_templated_entity(root):
    (root / "etc" / "hostname").write_text("edge01\n")
    run = ensure(root, "kind: group\ngroup_name: '{{ .Values.node.hostname }}-ops'\ngid: 950\n")
    assert run.status == "ok", run.error
    assert read(root, "group").endswith("edge01-ops::950:\n")


# -- group --------------------------------------------------------------------------------

def test_group_without_gid_gets_the_first_free_one(root):
    (root / "etc" / "login.defs").write_text("GID_MIN 1000\nGID_MAX 2000\n")
    ensure(root, "kind: group\ngroup_name: a\n", "kind: group\ngroup_name: b\ngid: -1\n")
    assert read(root, "group").endswith("a::1001:\nb::1002:\n")  # 1000 is edge's


def test_group_gid_from_login_defs(root):
    (root / "etc" / "login.defs").write_text("GID_MIN\t\t5000\n")
    ensure(root, "kind: group\ngroup_name: a\n")
    assert read(root, "group").endswith("a::5000:\n")


def test_existing_group_keeps_gid_and_password_and_merges_members(root):
    run = ensure(root, "kind: group\ngroup_name: sudo\nusers: rey,edge,rey,kai\n")
    assert run.status == "ok", run.error
    assert "sudo:x:27:edge,rey,kai\n" in read(root, "group")
    # gshadow follows the members; its password and administrators stay.
    assert "sudo:*:root:edge,rey,kai\n" in read(root, "gshadow")
    assert_converged(root, "kind: group\ngroup_name: sudo\nusers: rey,edge,rey,kai\n")


def test_existing_group_with_no_members_takes_the_new_list(root):
    ensure(root, "kind: group\ngroup_name: edge\npassword: '!'\nusers: b,a\n")
    assert "edge:!:1000:b,a\n" in read(root, "group")
    assert "edge:!::b,a\n" in read(root, "gshadow")


def test_group_gid_held_by_another_group_fails_naming_it(root):
    run = ensure(root, "kind: group\ngroup_name: admin\ngid: 27\n", ADMIN)
    assert run.status == "failed"
    assert "ensure_entities[0] (group 'admin')" in run.error
    assert "gid 27 is already held by 'sudo'" in run.error
    assert read(root, "group") == GROUP + "admin:x:900:\n"  # the second entry still ran


def test_group_member_with_a_bad_name_fails(root):
    run = ensure(root, "kind: group\ngroup_name: a\nusers: 'ok,bad name'\n")
    assert run.status == "failed" and "'bad name' is not a valid name" in run.error
    assert files(root)["group"] == GROUP


# -- user ---------------------------------------------------------------------------------

REY = "kind: user\nusername: rey\ngroup: admin\nhomedir: /home/rey\nshell: /bin/bash\n"


def test_new_user_with_group_gets_a_free_uid_and_a_locked_shadow_line(root):
    run = ensure(root, ADMIN, REY)
    assert run.status == "ok", run.error
    assert read(root, "passwd") == PASSWD + \
        "rey:x:1001:900:Created by entities:/home/rey:/bin/bash\n"
    assert read(root, "shadow") == SHADOW + f"rey:!:{DAY}::::::\n"
    assert_converged(root, ADMIN, REY)


def test_existing_user_keeps_uid_gid_and_password(root):
    run = ensure(root, "kind: user\nusername: edge\ninfo: Edge Node\nhomedir: /srv\n"
                       "shell: /bin/bash\n")
    assert run.status == "ok", run.error
    assert "edge:x:1000:1000:Edge Node:/srv:/bin/bash\n" in read(root, "passwd")
    assert read(root, "shadow") == SHADOW  # edge had its shadow line already


def test_user_explicit_ids_and_password(root):
    ensure(root, "kind: user\nusername: svc\npassword: x\nuid: 4000\ngid: 27\n"
                 "homedir: /\nshell: /bin/false\ninfo: service\n")
    assert read(root, "passwd").endswith("svc:x:4000:27:service:/:/bin/false\n")


def test_user_uid_zero_is_allowed_for_root_itself(root):
    run = ensure(root, "kind: user\nusername: root\nuid: 0\ngid: 0\ninfo: root\n"
                       "homedir: /root\nshell: /bin/sh\n")
    assert run.status == "ok", run.error
    assert read(root, "passwd").startswith("root:x:0:0:root:/root:/bin/sh\n")


def test_user_without_gid_or_group_gets_gid_0_with_a_warning(root):
    run = ensure(root, "kind: user\nusername: kai\n")
    assert run.status == "ok", run.error
    assert read(root, "passwd").endswith("kai:x:1001:0:Created by entities::\n")
    assert any("gid 0" in w for w in run.warnings)


def test_user_uid_held_by_another_user_fails_naming_it(root):
    run = ensure(root, "kind: user\nusername: rey\nuid: 1000\ngid: 1000\n", ADMIN)
    assert run.status == "failed"
    assert "ensure_entities[0] (user 'rey'): uid 1000 is already held by 'edge'" in run.error
    assert "rey" not in read(root, "passwd") and "rey" not in read(root, "shadow")
    assert "admin" in read(root, "group")  # the other entry still ran


def test_user_with_unknown_group_fails(root):
    run = ensure(root, REY)
    assert run.status == "failed" and "group 'admin' not found in /etc/group" in run.error
    assert files(root)["passwd"] == PASSWD


def test_user_plain_password_is_kept_as_yip_with_a_warning(root):
    run = ensure(root, "kind: user\nusername: kai\ngid: 0\npassword: hunter2\n")
    assert run.status == "ok"
    assert read(root, "passwd").endswith("kai:hunter2:1001:0:Created by entities::\n")
    assert any("plain text" in w for w in run.warnings)
    assert "hunter2" not in repr(run.entry.to_dict(dry_run=True))


def test_user_field_with_a_colon_fails(root):
    run = ensure(root, "kind: user\nusername: kai\ngid: 0\ninfo: 'a:b'\n")
    assert run.status == "failed" and "info cannot contain ':'" in run.error
    assert files(root)["passwd"] == PASSWD


def test_user_without_a_shadow_file_gets_no_shadow_line(root):
    (root / "etc" / "shadow").unlink()
    run = ensure(root, "kind: user\nusername: kai\ngid: 0\n")
    assert run.status == "ok", run.error
    assert not (root / "etc" / "shadow").exists()


# -- shadow -------------------------------------------------------------------------------

def test_shadow_fields_and_now(root):
    run = ensure(root, "kind: shadow\nusername: edge\npassword: '$6$abc$def'\n"
                       "last_changed: now\nminimum_changed: 1\nmaximum_changed: 365\n"
                       "warn: 14\ninactive: 30\nexpire: 20500\n")
    assert run.status == "ok", run.error
    assert f"edge:$6$abc$def:{DAY}:1:365:14:30:20500:\n" in read(root, "shadow")


def test_shadow_keeps_aging_where_the_entity_has_none(root):
    ensure(root, "kind: shadow\nusername: edge\npassword: '!'\nwarn: 3\n")
    assert "edge:!:19000:0:99999:3:::\n" in read(root, "shadow")


def test_shadow_last_changed_now_kept_when_the_password_did_not_change(root, monkeypatch):
    entity = "kind: shadow\nusername: edge\npassword: kairos\nlast_changed: now\n"
    ensure(root, entity)
    assert f":{DAY}:" in read(root, "shadow")
    monkeypatch.setattr(acc, "days_since_epoch", lambda now=None: DAY + 5)
    assert_converged(root, entity)  # a day later: same hash, same day


@pytest.mark.parametrize("value", ["$y$j9T$abc$def", "!", "*", "!$6$a$b"])
def test_shadow_hashes_and_locks_are_stored_as_given(root, value):
    ensure(root, f"kind: shadow\nusername: edge\npassword: '{value}'\n")
    assert f"edge:{value}:19000:" in read(root, "shadow")


def test_shadow_without_password_keeps_the_current_one(root):
    hashed = crypt.sha512_crypt("pw")
    (root / "etc" / "shadow").write_text(SHADOW.replace("edge:!:", f"edge:{hashed}:"))
    ensure(root, "kind: shadow\nusername: edge\nexpire: 1\n")
    assert f"edge:{hashed}:19000:0:99999:7::1:\n" in read(root, "shadow")


def test_new_shadow_line_without_password_is_locked_and_warns_without_passwd_user(root):
    run = ensure(root, "kind: shadow\nusername: ghost\n")
    assert read(root, "shadow").endswith("ghost:!:::::::\n")
    assert any("'ghost' is not in /etc/passwd" in w for w in run.warnings)


def test_shadow_bad_aging_value_fails(root):
    run = ensure(root, "kind: shadow\nusername: edge\nwarn: soon\n")
    assert run.status == "failed" and "warn must be a number of days" in run.error
    assert read(root, "shadow") == SHADOW


# -- gshadow ------------------------------------------------------------------------------

def test_gshadow_entity(root):
    run = ensure(root, "kind: gshadow\nname: sudo\npassword: '!'\nadministrators: root\n"
                       "members: edge\n")
    assert run.status == "ok" and run.warnings == []
    assert "sudo:!:root:edge\n" in read(root, "gshadow")
    run = ensure(root, "kind: gshadow\nname: sudo\nmembers: edge,rey\n")
    assert "sudo:!::edge,rey\n" in read(root, "gshadow")
    assert any("members differ" in w for w in run.warnings)


# -- paths --------------------------------------------------------------------------------

def test_custom_path_edits_that_file_only(root):
    (root / "etc" / "extra-group").write_text("x:x:5:\n")
    run = ensure(root, ("/etc/extra-group", "kind: group\ngroup_name: g\ngid: 6\n"))
    assert run.status == "ok", run.error
    assert read(root, "extra-group") == "x:x:5:\ng::6:\n"
    assert files(root)["gshadow"] == GSHADOW and files(root)["group"] == GROUP


def test_path_spelled_differently_is_the_default_file(root):
    ensure(root, ("//etc/./shadow", ELEMENTAL))
    assert read(root, "shadow").startswith("root:$6$")


@pytest.mark.parametrize(("path", "message"), [
    ("/etc/passwd", "a group entity does not belong in /etc/passwd"),
    ("/../../etc/group", "climbs above the root"),
    ("etc/group", "not absolute"),
    ("/etc/nothing-here", "/etc/nothing-here does not exist"),
])
def test_bad_paths_fail(root, path, message):
    run = ensure(root, (path, ADMIN))
    assert run.status == "failed" and message in run.error, run.error
    assert files(root)["group"] == GROUP


def test_missing_default_file_fails(root):
    (root / "etc" / "gshadow").unlink()
    run = ensure(root, "kind: gshadow\nname: sudo\n")
    assert run.status == "failed" and "/etc/gshadow does not exist" in run.error
    assert not (root / "etc" / "gshadow").exists()


# -- delete -------------------------------------------------------------------------------

def test_delete_user_removes_passwd_shadow_and_memberships(root):
    run = delete(root, "kind: user\nusername: edge\n")
    assert run.status == "ok", run.error
    assert run.entry.changes == ["delete user 'edge' from /etc/passwd"]
    assert "edge:" not in read(root, "passwd") and "edge:" not in read(root, "shadow")
    assert "sudo:x:27:\n" in read(root, "group") and "sudo:*:root:\n" in read(root, "gshadow")
    assert "edge:x:1000:\n" in read(root, "group")  # its group is a group of its own
    assert_converged(root, "kind: user\nusername: edge\n", key="delete_entities")


def test_delete_matches_by_name_whatever_the_other_fields(root):
    run = delete(root, "kind: user\nusername: edge\nuid: 5\nshell: /nope\n")
    assert run.status == "ok" and "edge:" not in read(root, "passwd")


def test_delete_of_a_missing_name_changes_nothing(root):
    """yip would remove line 0 of /etc/group; edgeinit changes nothing (SPEC 7.7)."""
    before = files(root)
    run = delete(root, "kind: group\ngroup_name: nothere\n", "kind: user\nusername: nobody\n",
                 "kind: shadow\nusername: nobody\n", "kind: gshadow\nname: nothere\n")
    assert run.status == "ok" and run.changes == [] and not run.entry.changed
    assert files(root) == before


def test_delete_group_removes_its_gshadow_line(root):
    run = delete(root, "kind: group\ngroup_name: sudo\n")
    assert run.status == "ok", run.error
    assert "sudo" not in read(root, "group") and "sudo" not in read(root, "gshadow")


def test_delete_primary_group_of_a_user_fails(root):
    run = delete(root, "kind: group\ngroup_name: edge\n")
    assert run.status == "failed"
    assert "delete_entities[0] (group 'edge'): group 'edge' is the primary group of user " \
           "'edge'; not deleted" in run.error
    assert files(root)["group"] == GROUP and files(root)["gshadow"] == GSHADOW


def test_delete_shadow_of_a_passwd_user_fails_but_of_an_orphan_works(root):
    run = delete(root, "kind: shadow\nusername: edge\n")
    assert run.status == "failed" and "'edge' is still in /etc/passwd" in run.error
    (root / "etc" / "shadow").write_text(SHADOW + "orphan:!:1::::::\n")
    run = delete(root, "kind: shadow\nusername: orphan\n")
    assert run.status == "ok" and read(root, "shadow") == SHADOW


def test_delete_gshadow_of_a_group_fails(root):
    run = delete(root, "kind: gshadow\nname: sudo\n")
    assert run.status == "failed" and "'sudo' is still in /etc/group" in run.error


def test_delete_from_a_missing_file_warns(root):
    run = delete(root, ("/etc/none", "kind: group\ngroup_name: a\n"))
    assert run.status == "ok" and any("/etc/none does not exist" in w for w in run.warnings)


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize(("entity", "message"), [
    ("kind: [user", "ensure_entities[0]: the entity is not valid YAML: line 2, column 1"),
    ("kind: users\nusername: a\n", "unknown kind 'users'; did you mean 'user'?"),
    ("username: a\n", "the entity has no kind:"),
    ("- kind: user\n", "the entity must be a mapping"),
    ("", "the entity is empty"),
    ("kind: user\nusername: ''\n", "user entity without username"),
    ("kind: group\ngroup_name: '123'\n", "group group_name '123' is not a valid name"),
    ("kind: user\nusername: 'a:b'\n", "'a:b' is not a valid name"),
    ("kind: user\nusername: a\nuid: many\n", "entity line 3: expected an integer, got 'many'"),
    ("kind: group\ngroup_name: a\nusers: [a, b]\n", "entity line 3: expected a string"),
])
def test_bad_entity_fails_its_entry_and_the_others_run(root, entity, message):
    run = ensure(root, entity, ADMIN)
    assert run.status == "failed"
    assert message in run.error, run.error
    assert run.error.startswith("ensure_entities[0]")
    assert read(root, "group") == GROUP + "admin:x:900:\n"  # the second entry ran
    assert files(root)["passwd"] == PASSWD


def test_unknown_field_is_a_warning_with_a_suggestion(root):
    run = ensure(root, "kind: group\ngroup_name: admin\ngid: 900\npasword: x\n")
    assert run.status == "ok"
    assert run.warnings == ["ensure_entities[0]: entity line 4: unknown key 'pasword'; "
                            "did you mean 'password'?"]
    assert "admin::900:" in read(root, "group")


def test_malformed_lines_are_kept_and_reported_by_number(root):
    bad = "broken:$6$secret$hash:notanumber\n"
    (root / "etc" / "shadow").write_text(SHADOW + bad)
    run = ensure(root, ("/etc/shadow", ELEMENTAL))
    assert run.status == "ok", run.error
    assert read(root, "shadow").endswith(bad)
    assert "/etc/shadow: line 4 does not parse; kept as it is" in run.warnings
    assert not any("secret" in w for w in run.warnings)


def test_a_malformed_line_for_the_same_name_fails(root):
    (root / "etc" / "group").write_text(GROUP + "admin:x:nine\n")
    run = ensure(root, ADMIN)
    assert run.status == "failed"
    assert "line 5 of /etc/group is for 'admin' but does not parse" in run.error
    assert read(root, "group") == GROUP + "admin:x:nine\n"


def test_nothing_half_written_when_the_second_table_cannot_take_the_line(root):
    """A user whose shadow line cannot be added (malformed one there) is not added to
    passwd either: the whole entry is one edit."""
    (root / "etc" / "shadow").write_text(SHADOW + "kai:broken\n")
    run = ensure(root, "kind: user\nusername: kai\ngid: 0\n")
    assert run.status == "failed" and "line 4 of /etc/shadow is for 'kai'" in run.error
    assert read(root, "passwd") == PASSWD


# -- secrets ------------------------------------------------------------------------------

def test_secrets_never_in_report_logs_or_diff(cli, root, write):
    src = write("s.yaml", """\
stages:
  boot:
    - name: secrets
      ensure_entities:
        - entity: |
            kind: shadow
            username: root
            password: "S3cretPlain"
        - entity: |
            kind: user
            username: kai
            gid: 0
            password: "PlainInPasswd"
        - entity: |
            kind: gshadow
            name: sudo
            password: "$6$abc$HashInGshadow"
        - entity: |
            kind: shadow
            username: kai
            password: "BadOne"
            warn: [1]
        - entity: "kind: shadow\\npassword: \\"InBrokenYaml\\n"
""")
    for args in (("--dry-run", "--json"), ("--json",)):
        res = cli("run", "--stage", "boot", "--root", root, *args, src)
        blob = res.out + res.err
        assert res.code == 1 and "ensure_entities[3]" in blob  # the bad entries fail
        for secret in ("S3cretPlain", "PlainInPasswd", "HashInGshadow", "BadOne",
                       "InBrokenYaml"):
            assert secret not in blob, (args, secret)
    hashed = read(root, "shadow").splitlines()[0].split(":")[1]
    assert crypt.verify("S3cretPlain", hashed)
    assert hashed.split("$")[-1] not in blob  # nor the hash made of it


def test_dry_run_changes_nothing_and_later_entries_see_earlier_ones(root):
    before = files(root)
    run = ensure(root, ADMIN, REY, dry_run=True)
    assert run.status == "ok", run.error
    assert run.entry.changes == ["ensure group 'admin' in /etc/group",
                                 "ensure user 'rey' in /etc/passwd"]
    assert "+rey:x:1001:900:Created by entities:/home/rey:/bin/bash" in run.entry.diff
    assert "content masked" in run.entry.diff  # shadow and gshadow
    assert files(root) == before and not (root / "etc" / "group-").exists()


def test_delete_finishes_what_an_interrupted_delete_left(root):
    """A crash between the writes of a delete can leave the shadow (gshadow) line of a
    name already gone from passwd (group); deleting it again removes that line."""
    (root / "etc" / "shadow").write_text(SHADOW + "gone:!:19000::::::\n")
    (root / "etc" / "gshadow").write_text(GSHADOW + "gonegrp:!::\n")
    run = delete(root, "kind: user\nusername: gone\n", "kind: group\ngroup_name: gonegrp\n")
    assert run.status == "ok", run.error
    assert read(root, "shadow") == SHADOW and read(root, "gshadow") == GSHADOW
