"""`files` (yip-behaviour 3.1, SPEC 2, 7.2, 7.10): what is planned, then what lands on disk.

Plans run on pyfakefs (a fake target at /target); a few steps are applied to a real
tmp_path root to check the bytes, modes and owners on disk.
"""

from __future__ import annotations

import base64
import gzip
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from edgeinit.target.changes import MakeDir, SetAttrs, WriteFile
from tests.conftest import needs_root, small_tmpfs
from tests.unit.plugin_harness import fake_root_user, run_step

T = "/target"
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:777:778:not the host's daemon:/:/bin/false\n"
          "edge:x:4242:4343:Edge:/home/edge:/bin/sh\n")
GROUP = "root:x:0:\ndaemon:x:778:\nedge:x:4343:\nwheel:x:5555:edge\n"


@pytest.fixture
def fake(fs: FakeFilesystem) -> str:
    """A fake target whose users differ from the host's (daemon is 777 here, 1 on Debian)."""
    fake_root_user()
    fs.create_file(f"{T}/etc/passwd", contents=PASSWD)
    fs.create_file(f"{T}/etc/group", contents=GROUP)
    fs.create_file(f"{T}/etc/hostname", contents="edge-01\n")
    fs.create_file(f"{T}/etc/machine-id", contents="0123456789abcdef0123456789abcdef\n")
    return T


def _one_file(run: object) -> WriteFile:
    writes = run.of(WriteFile)  # type: ignore[attr-defined]
    assert len(writes) == 1, run.changes  # type: ignore[attr-defined]
    return writes[0]


def test_new_file_defaults(fake: str) -> None:
    """No permissions/owner: 0644 root:root (SPEC 7.2; yip would write 0000)."""
    run = run_step("files: [{path: /etc/motd, content: hi}]", fake)
    assert run.status == "ok" and run.entry.changed
    assert run.changes == [WriteFile("/etc/motd", f"{T}/etc/motd", b"hi", 0o644, 0, 0)]
    assert run.entry.changes == ["create /etc/motd (mode 0644, owner 0:0)"]


def test_permissions_owner_group(fake: str) -> None:
    """Octal `0640` in YAML is mode 0640; owner/group are numeric ids."""
    run = run_step("files: [{path: /etc/a, content: x, permissions: 0640, owner: 12, group: 34}]",
                   fake)
    w = _one_file(run)
    assert (w.mode, w.uid, w.gid) == (0o640, 12, 34)


def test_parent_directories_created_0755_with_the_files_owner(fake: str) -> None:
    """Missing parents are made 0755 (SPEC 7.2), owned like the file (yip), parents first."""
    run = run_step("files: [{path: /opt/app/conf/x.ini, content: a, permissions: 0600, "
                   "owner: 4242, group: 4343}]", fake)
    assert [type(c) for c in run.changes] == [MakeDir, MakeDir, MakeDir, WriteFile]
    assert [(c.path, c.mode, c.uid, c.gid) for c in run.of(MakeDir)] == [
        ("/opt", 0o755, 4242, 4343), ("/opt/app", 0o755, 4242, 4343),
        ("/opt/app/conf", 0o755, 4242, 4343)]
    w = _one_file(run)
    assert (w.path, w.mode, w.uid, w.gid) == ("/opt/app/conf/x.ini", 0o600, 4242, 4343)


@pytest.mark.parametrize("encoding", ["b64", "base64", "B64", " base64 "])
def test_base64(fake: str, encoding: str) -> None:
    """b64 and base64 decode (names are not case- or space-sensitive)."""
    run = run_step({"files": [{"path": "/etc/b", "content": "aGVsbG8K",
                               "encoding": encoding}]}, fake)
    assert _one_file(run).content == b"hello\n"


@pytest.mark.parametrize("encoding", ["gz+b64", "gzip+base64", "gz+base64", "gzip+b64"])
def test_gzip_in_base64(fake: str, encoding: str) -> None:
    """gz+b64 and its spellings: base64 first, then gunzip, then the template."""
    payload = base64.b64encode(gzip.compress(b"zipped {{ .Values.node.hostname }}\n")).decode()
    run = run_step({"files": [{"path": "/etc/z", "content": payload,
                               "encoding": encoding}]}, fake)
    assert run.status == "ok", run.error
    assert _one_file(run).content == b"zipped edge-01\n"


@pytest.mark.parametrize("encoding", ["gz", "gzip"])
def test_gzip_of_text_that_is_not_gzip_fails_the_entry(fake: str, encoding: str) -> None:
    """gz/gzip take raw gzip data; text that is not gzip fails that entry with the encoding."""
    run = run_step({"files": [{"path": "/etc/g", "content": "not gzip",
                               "encoding": encoding}]}, fake)
    assert run.status == "failed"
    assert f"/etc/g: cannot decode content as {encoding}" in run.error
    assert run.changes == []


def test_bad_base64_fails_the_entry(fake: str) -> None:
    """Undecodable base64 is an error naming the file, not garbage on disk."""
    run = run_step({"files": [{"path": "/etc/b", "content": "abc", "encoding": "b64"}]}, fake)
    assert run.status == "failed"
    assert "/etc/b: cannot decode content as b64" in run.error


def test_unknown_encoding_fails_that_entry_only(fake: str) -> None:
    """An unknown encoding (yip: silently raw) fails its entry; the other files are planned."""
    run = run_step("""
files:
- {path: /etc/one, content: "1"}
- {path: /etc/two, content: "2", encoding: base65}
- {path: /etc/three, content: "3"}
""", fake)
    assert run.status == "failed"
    assert "/etc/two: unknown encoding 'base65'" in run.error
    assert [w.path for w in run.of(WriteFile)] == ["/etc/one", "/etc/three"]


@pytest.mark.parametrize("key", ["owner_string", "ownerstring"])
def test_owner_string_user_uses_the_targets_passwd(fake: str, key: str) -> None:
    """`daemon` is 777:778 in the target's /etc/passwd (the host's daemon is not consulted)."""
    run = run_step({"files": [{"path": "/etc/d", "content": "x", key: "daemon"}]}, fake)
    w = _one_file(run)
    assert (w.uid, w.gid) == (777, 778)


@pytest.mark.parametrize("key", ["owner_string", "ownerstring"])
def test_owner_string_user_and_group_use_the_targets_group(fake: str, key: str) -> None:
    """`user:group` takes the gid from the target's /etc/group."""
    run = run_step({"files": [{"path": "/etc/d", "content": "x", key: "edge:wheel"}]}, fake)
    w = _one_file(run)
    assert (w.uid, w.gid) == (4242, 5555)


def test_owner_string_wins_over_owner_and_group(fake: str) -> None:
    """As in yip, the owner by name replaces numeric owner/group."""
    run = run_step({"files": [{"path": "/etc/d", "content": "x", "owner": 1, "group": 1,
                               "owner_string": "edge"}]}, fake)
    w = _one_file(run)
    assert (w.uid, w.gid) == (4242, 4343)


def test_owner_string_unknown_user_fails_the_entry(fake: str) -> None:
    """A user the target does not know fails that file (nothing written for it)."""
    run = run_step("""
files:
- {path: /etc/a, content: a, owner_string: nosuchuser}
- {path: /etc/b, content: b, owner_string: "edge:nosuchgroup"}
- {path: /etc/c, content: c}
""", fake)
    assert run.status == "failed"
    assert "user 'nosuchuser' not found in the target's /etc/passwd" in run.error
    assert "group 'nosuchgroup' not found in the target's /etc/group" in run.error
    assert [w.path for w in run.of(WriteFile)] == ["/etc/c"]


def test_both_owner_string_spellings_at_once_is_an_error(fake: str) -> None:
    """owner_string and ownerstring are one field: giving both is a conflict, not a guess."""
    run = run_step({"files": [{"path": "/etc/d", "content": "x", "owner_string": "edge",
                               "ownerstring": "daemon"}]}, fake)
    assert run.status == "failed"
    assert "ownerstring" in run.error
    assert run.changes == []


def test_content_template_uses_target_node_data(fake: str) -> None:
    """`{{ .Values.node.hostname }}` is the target's /etc/hostname."""
    content = "host={{ .Values.node.hostname }} id={{.Values.node.machineid}}\n"
    run = run_step({"files": [{"path": "/etc/who", "content": content}]}, fake)
    assert _one_file(run).content == b"host=edge-01 id=0123456789abcdef0123456789abcdef\n"
    assert run.warnings == []


def test_unknown_template_is_kept_with_a_warning(fake: str) -> None:
    """Helm/Jinja text in a file survives verbatim (SPEC 2 Templates), with a warning."""
    content = "image: {{ .Release.Name }}\n"
    run = run_step({"files": [{"path": "/etc/chart.yaml", "content": content}]}, fake)
    assert run.status == "ok"
    assert _one_file(run).content == content.encode()
    assert any("{{ .Release.Name }}" in w and "not understood" in w for w in run.warnings)


def test_decimal_permissions_hint(fake: str) -> None:
    """`permissions: 644` is decimal 644 = mode 01204, as yip reads it; the step warns."""
    run = run_step("files: [{path: /etc/x, content: x, permissions: 644}]", fake)
    assert run.status == "ok"
    assert _one_file(run).mode == 644 == 0o1204
    assert run.warnings == ["/etc/x: permissions 644 is the decimal number 644 (mode 01204); "
                            "write 0644 for mode 0644"]


@pytest.mark.parametrize("perm", ["600", "640", "700", "755", "777"])
def test_decimal_permissions_hint_common_slips(fake: str, perm: str) -> None:
    """Every three-digit mode typed without its leading 0 (and >= 512) gets the hint."""
    run = run_step(f"files: [{{path: /etc/x, content: x, permissions: {perm}}}]", fake)
    assert _one_file(run).mode == int(perm)
    assert len(run.warnings) == 1 and f"write 0{perm} for mode 0{perm}" in run.warnings[0]


@pytest.mark.parametrize("perm", ["0644", "0o644", "0640", "0600", "0777", "0664", "0755",
                                  "01777", "04755", "0400", "0"])
def test_octal_permissions_do_not_warn(fake: str, perm: str) -> None:
    """Correct octal modes must not get the decimal hint (0644 is 420, 0777 is 511...)."""
    run = run_step(f"files: [{{path: /etc/x, content: x, permissions: {perm}}}]", fake)
    assert run.status == "ok"
    assert _one_file(run).mode == int(perm.replace("0o", "0"), 8)
    assert run.warnings == []


def test_existing_file_keeps_mode_and_owner(fs: FakeFilesystem, fake: str) -> None:
    """SPEC 7.10: without permissions/owner an existing file keeps its own (yip: chmod 0)."""
    fs.create_file(f"{T}/etc/app.conf", contents="old\n")
    os.chmod(f"{T}/etc/app.conf", 0o640)
    os.chown(f"{T}/etc/app.conf", 4242, 5555)
    run = run_step("files: [{path: /etc/app.conf, content: new}]", fake)
    w = _one_file(run)
    assert (w.mode, w.uid, w.gid, w.old) == (0o640, 4242, 5555, b"old\n")


def test_same_content_other_mode_is_a_chmod(fs: FakeFilesystem, fake: str) -> None:
    """Only the mode differs: SetAttrs, no rewrite."""
    fs.create_file(f"{T}/etc/x", contents="x")
    os.chmod(f"{T}/etc/x", 0o644)
    run = run_step("files: [{path: /etc/x, content: x, permissions: 0600}]", fake)
    assert [type(c) for c in run.changes] == [SetAttrs]
    assert run.changes[0].mode == 0o600  # type: ignore[union-attr]


def test_identical_file_is_no_change(fs: FakeFilesystem, fake: str) -> None:
    """SPEC 7.13: same content, mode and owner -> nothing to do, changed false."""
    fs.create_file(f"{T}/etc/x", contents="x")
    os.chmod(f"{T}/etc/x", 0o600)
    os.chown(f"{T}/etc/x", 4242, 4343)
    run = run_step("files: [{path: /etc/x, content: x, permissions: 0600, owner_string: edge}]",
                   fake)
    assert run.status == "ok"
    assert run.changes == [] and not run.entry.changed


def test_path_is_a_directory_fails(fake: str) -> None:
    """A directory in the way is an error naming the path."""
    run = run_step("files: [{path: /etc, content: x}]", fake)
    assert run.status == "failed"
    assert "/etc: '/etc' is a directory" in run.error


def test_path_escaping_the_root_fails(fake: str) -> None:
    """`..` above / in a file path is refused (SPEC 1: never leaves the root)."""
    run = run_step("files: [{path: /../etc/passwd, content: x}]", fake)
    assert run.status == "failed"
    assert "climbs above the root" in run.error


def test_missing_path_fails(fake: str) -> None:
    """An entry without a path is an error of that entry."""
    run = run_step("files: [{content: x}]", fake)
    assert run.status == "failed"
    assert "a file needs a path" in run.error


def test_dry_run_diff_of_a_private_file_is_masked(fake: str) -> None:
    """A file created 0600 has its content summarised in the dry-run diff (SPEC 7.9)."""
    run = run_step("files: [{path: /etc/token, content: s3cr3t, permissions: 0600}]", fake)
    assert "s3cr3t" not in run.entry.diff
    assert "content masked" in run.entry.diff


def test_second_file_plans_against_the_first(fake: str) -> None:
    """In a dry run, the second of two writes of one path sees the first (overlay)."""
    run = run_step("""
files:
- {path: /srv/a/f, content: one}
- {path: /srv/a/f, content: two}
""", fake)
    assert [type(c) for c in run.changes] == [MakeDir, MakeDir, WriteFile, WriteFile]
    assert run.changes[3].old == b"one"  # type: ignore[union-attr]


# ---------------------------------------------------------------- applied on a real root


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@needs_root
def test_apply_writes_modes_owners_and_is_idempotent(target_real: Path) -> None:
    """Applied: bytes, mode, owner on disk, parents 0755; a second run changes nothing."""
    step = """
files:
- {path: /opt/app/secret, content: aGVsbG8K, encoding: b64, permissions: 0600,
   owner_string: "edge:wheel"}
- {path: /etc/motd, content: "welcome to {{ .Values.node.hostname }}\\n"}
"""
    first = run_step(step, target_real, dry_run=False)
    assert first.status == "ok", first.error
    secret = target_real / "opt" / "app" / "secret"
    assert secret.read_bytes() == b"hello\n"
    st = os.stat(secret)
    assert (_mode(secret), st.st_uid, st.st_gid) == (0o600, 4242, 5555)
    for d in (target_real / "opt", target_real / "opt" / "app"):
        assert (_mode(d), os.stat(d).st_uid) == (0o755, 4242)
    motd = target_real / "etc" / "motd"
    assert motd.read_text() == "welcome to edge-01\n"
    assert (_mode(motd), os.stat(motd).st_uid) == (0o644, 0)
    assert not [p for p in target_real.rglob("*") if p.name.endswith(".edgeinit-new")]

    second = run_step(step, target_real, dry_run=False)
    assert second.status == "ok"
    assert second.changes == [] and not second.entry.changed


def test_apply_keeps_an_existing_files_mode(target_real: Path) -> None:
    """Applied rewrite of a 0600 file without permissions leaves it 0600 (SPEC 7.10)."""
    conf = target_real / "etc" / "app.conf"
    conf.write_text("old\n")
    conf.chmod(0o600)
    run = run_step("files: [{path: /etc/app.conf, content: new}]", target_real, dry_run=False)
    assert run.status == "ok"
    assert conf.read_text() == "new"
    assert _mode(conf) == 0o600


def test_dry_run_changes_nothing_on_disk(target_real: Path) -> None:
    """--dry-run plans the write but leaves the disk as it was."""
    run = run_step("files: [{path: /opt/x/f, content: x}]", target_real, dry_run=True)
    assert run.entry.changed and len(run.changes) == 3
    assert not (target_real / "opt").exists()


@pytest.fixture
def target_real(tmp_path: Path) -> Path:
    """A real target root with the same users as the fake one."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "etc" / "hostname").write_text("edge-01\n")
    return root


@pytest.fixture
def full_root(tmp_path: Path) -> Iterator[Path]:
    """A target root on a 64 KiB tmpfs: a real full disk."""
    with small_tmpfs(tmp_path / "tiny") as mnt:
        yield mnt


def test_full_disk_fails_the_step_and_keeps_the_old_file(full_root: Path) -> None:
    """SPEC 7.10: a full disk fails the step, the old file stays, no temp file is left;
    the next entry of the step is still written."""
    (full_root / "etc").mkdir()
    conf = full_root / "etc" / "app.conf"
    conf.write_text("old = 1\n")
    big = "x" * (256 * 1024)
    run = run_step({"files": [{"path": "/etc/app.conf", "content": big},
                              {"path": "/etc/small", "content": "ok"}]},
                   full_root, dry_run=False)
    assert run.status == "failed"
    assert "cannot write /etc/app.conf" in run.error
    assert conf.read_text() == "old = 1\n"
    assert (full_root / "etc" / "small").read_text() == "ok"
    assert sorted(os.listdir(full_root / "etc")) == ["app.conf", "small"]
