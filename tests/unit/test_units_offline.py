"""The systemctl plugin offline (target/units.py): planning on scratch roots with unit
files written here, through the real engine (plugin_harness), then on disk.

What systemctl itself does with the same files is checked in
tests/integration/test_systemctl_offline_vs_systemctl.py; here are the exact changes,
messages, dry runs, the overrides and the name rules.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeinit.target import units
from edgeinit.target.changes import MakeDir, MakeSymlink, RemoveDir, RemovePath, WriteFile
from edgeinit.target.root import TargetRoot
from edgeinit.target.units import UnitError, UnitInfo
from tests.unit.plugin_harness import run_step

E = "/etc/systemd/system"
INSTALL = "[Service]\nExecStart=/bin/true\n[Install]\n"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEINIT_SYSTEMD", raising=False)


@pytest.fixture
def root(target: Path) -> Path:
    """`target` with the unit directories and a few unit files."""
    files = {
        "usr/lib/systemd/system/a.service": INSTALL + "WantedBy=multi-user.target\n"
                                                     "RequiredBy=b.target\nAlias=aa.service\n"
                                                     "Also=a.socket\n",
        "usr/lib/systemd/system/a.socket": "[Install]\nWantedBy=sockets.target\n",
        "usr/lib/systemd/system/t@.service": INSTALL + "WantedBy=multi-user.target\n"
                                                       "DefaultInstance=one\n",
        "usr/lib/systemd/system/g@.service": INSTALL + "WantedBy=getty.target\n",
        "usr/lib/systemd/system/static.service": "[Service]\nExecStart=/bin/true\n",
        "usr/lib/systemd/system/p.service": INSTALL + "WantedBy=multi-user.target\n",
        "lib/systemd/system/p.service": INSTALL + "WantedBy=multi-user.target\n",
        "lib/systemd/system/q.service": INSTALL + "WantedBy=multi-user.target\n",
        "etc/systemd/system/q.service": INSTALL + "WantedBy=multi-user.target\n",
    }
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target


def link(root: Path, rel: str) -> str | None:
    path = root / rel.lstrip("/")
    return os.readlink(path) if path.is_symlink() else None


def sym(root: Path, path: str, target: str, old: str | None = None) -> MakeSymlink:
    return MakeSymlink(path, f"{root}{path}", target, old)


def test_enable_plain_service_all_install_keys(root: Path) -> None:
    """WantedBy, RequiredBy, Alias, Also (a socket): directories made 0755, absolute links to
    the unit file as found, in systemctl's order (alias, wants, requires; Also after)."""
    run = run_step("systemctl: {enable: [a]}", root, dry_run=False)
    assert run.status == "ok", run.error
    u = "/usr/lib/systemd/system"
    assert run.changes == [
        sym(root, f"{E}/aa.service", f"{u}/a.service"),
        MakeDir(f"{E}/multi-user.target.wants", f"{root}{E}/multi-user.target.wants",
                0o755, 0, 0),
        sym(root, f"{E}/multi-user.target.wants/a.service", f"{u}/a.service"),
        MakeDir(f"{E}/b.target.requires", f"{root}{E}/b.target.requires", 0o755, 0, 0),
        sym(root, f"{E}/b.target.requires/a.service", f"{u}/a.service"),
        MakeDir(f"{E}/sockets.target.wants", f"{root}{E}/sockets.target.wants", 0o755, 0, 0),
        sym(root, f"{E}/sockets.target.wants/a.socket", f"{u}/a.socket"),
    ]
    assert link(root, f"{E}/multi-user.target.wants/a.service") == f"{u}/a.service"
    assert link(root, f"{E}/aa.service") == f"{u}/a.service"
    assert oct((root / "etc/systemd/system/b.target.requires").stat().st_mode & 0o777) == "0o755"
    assert run.entry.changes[0] == f"link {E}/aa.service -> {u}/a.service"


def test_reenable_is_no_change(root: Path) -> None:
    """SPEC 7.13: enabling what is enabled plans nothing; changed is false."""
    assert run_step("systemctl: {enable: [a, t@]}", root, dry_run=False).status == "ok"
    again = run_step("systemctl: {enable: [a, t@]}", root, dry_run=False)
    assert again.changes == [] and again.entry.changed is False and again.status == "ok"


def test_search_path_order_etc_lib_usr_lib(root: Path) -> None:
    """/etc before /lib before /usr/lib, as systemd 252 (Debian) searches."""
    run = run_step("systemctl: {enable: [p, q]}", root, dry_run=False)
    assert run.status == "ok", run.error
    assert link(root, f"{E}/multi-user.target.wants/p.service") == "/lib/systemd/system/p.service"
    assert link(root, f"{E}/multi-user.target.wants/q.service") == f"{E}/q.service"


def test_templates_default_instance_and_instances(root: Path) -> None:
    run = run_step("systemctl: {enable: ['t@', t@two.service, g@tty1]}", root, dry_run=False)
    assert run.status == "ok", run.error
    t = "/usr/lib/systemd/system/t@.service"
    assert link(root, f"{E}/multi-user.target.wants/t@one.service") == t
    assert link(root, f"{E}/multi-user.target.wants/t@two.service") == t
    assert link(root, f"{E}/getty.target.wants/g@tty1.service") == \
        "/usr/lib/systemd/system/g@.service"


def test_template_without_default_instance_fails_naming_it(root: Path) -> None:
    run = run_step("systemctl: {enable: ['g@', a]}", root, dry_run=False)
    assert run.status == "failed"
    assert "systemctl: enable g@.service: cannot enable the template g@.service" in run.error
    assert "getty.target is not a template" in run.error
    assert link(root, f"{E}/aa.service") is not None  # the other unit still ran


def test_disable_an_enabled_unit_restores_the_tree(root: Path) -> None:
    """Every link enable made goes (Also= included); directories it made and emptied go;
    /etc/systemd/system itself stays (with the unit file in it)."""
    run_step("systemctl: {enable: [a]}", root, dry_run=False)
    run = run_step("systemctl: {disable: [a]}", root, dry_run=False)
    assert run.status == "ok", run.error
    assert sorted(type(c).__name__ for c in run.changes) == \
        ["RemoveDir"] * 3 + ["RemovePath"] * 4
    assert os.listdir(root / "etc/systemd/system") == ["q.service"]
    again = run_step("systemctl: {disable: [a]}", root, dry_run=False)
    assert again.changes == [] and again.entry.changed is False


def test_disable_keeps_other_units_and_directories_not_emptied(root: Path) -> None:
    run_step("systemctl: {enable: [a, p]}", root, dry_run=False)
    run = run_step("systemctl: {disable: [a]}", root, dry_run=False)
    assert run.status == "ok"
    assert RemoveDir(f"{E}/multi-user.target.wants", f"{root}{E}/multi-user.target.wants") \
        not in run.changes
    assert link(root, f"{E}/multi-user.target.wants/p.service") == \
        "/lib/systemd/system/p.service"


def test_mask_and_remask(root: Path) -> None:
    run = run_step("systemctl: {mask: [a, later]}", root, dry_run=False)
    assert run.status == "ok", run.error
    assert sym(root, f"{E}/a.service", "/dev/null") in run.changes
    assert link(root, f"{E}/later.service") == "/dev/null"
    assert run.warnings == ["systemctl: later.service does not exist; masked all the same"]
    again = run_step("systemctl: {mask: [a, later]}", root, dry_run=False)
    assert again.changes == [] and again.warnings == []


def test_mask_refuses_a_unit_file_in_etc(root: Path) -> None:
    run = run_step("systemctl: {mask: [q]}", root, dry_run=False)
    assert run.status == "failed"
    assert run.error == (f"systemctl: mask q.service: {E}/q.service is a unit file, not a "
                         "link; remove or move it to mask q.service")
    assert (root / "etc/systemd/system/q.service").is_file()


def test_enable_masked_fails(root: Path) -> None:
    run_step("systemctl: {mask: [p]}", root, dry_run=False)
    run = run_step("systemctl: {enable: [p]}", root, dry_run=False)
    assert run.status == "failed" and "p.service is masked" in run.error


def test_unknown_unit_fails_with_its_name(root: Path) -> None:
    run = run_step("systemctl: {enable: [nope, p], disable: [gone]}", root, dry_run=False)
    assert run.status == "failed"
    assert "systemctl: enable nope.service: unit nope.service does not exist" in run.error
    assert "gone.service" not in run.error  # disabling what is not there only warns
    assert any("gone.service does not exist" in w for w in run.warnings)
    assert link(root, f"{E}/multi-user.target.wants/p.service") is not None


def test_disable_of_a_missing_unit_removes_its_leftover_links(root: Path) -> None:
    """As `systemctl --root disable`: the unit file is gone, a link named after it is
    still in a .wants directory; it goes, with a warning, and the step is ok."""
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "gone.service").symlink_to("/usr/lib/systemd/system/gone.service")
    run = run_step("systemctl: {disable: [gone]}", root, dry_run=False)
    assert run.status == "ok", run.error
    assert not (wants / "gone.service").is_symlink()


def test_no_install_section_warns_and_changes_nothing(root: Path) -> None:
    run = run_step("systemctl: {enable: [static]}", root, dry_run=False)
    assert run.status == "ok" and run.changes == []
    assert "static.service has no installation config" in run.warnings[0]


@pytest.mark.parametrize("bad", ["/etc/systemd/system/x.service", "k3s*", "a?.service",
                                 "[ab].service", "", "  ", "bad name"])
def test_bad_names_fail_naming_them_and_others_still_run(root: Path, bad: str) -> None:
    run = run_step({"systemctl": {"enable": [bad, "p"]}}, root, dry_run=False)
    assert run.status == "failed"
    assert f"systemctl: enable '{bad}': " in run.error
    assert link(root, f"{E}/multi-user.target.wants/p.service") is not None


def test_start_is_left_out_with_a_warning(root: Path) -> None:
    """SPEC 1: not the running system -> named in the warnings, the step stays ok."""
    run = run_step("systemctl: {start: [k3s, b.socket]}", root, dry_run=False)
    assert run.status == "ok" and run.changes == []
    assert run.warnings == ["systemctl: units not started (the root is not /): "
                            "k3s.service, b.socket"]


def test_dry_run_sees_its_own_links(root: Path) -> None:
    """A dry run records the links it would make, so the disable of the same step plans
    their removal; nothing is written."""
    run = run_step("systemctl: {enable: [a], disable: [a]}", root, dry_run=True)
    assert run.status == "ok", run.error
    kinds = [type(c).__name__ for c in run.changes]
    assert kinds.count("MakeSymlink") == 4 and kinds.count("RemovePath") == 4
    assert os.listdir(root / "etc/systemd/system") == ["q.service"]


def test_unknown_install_key_warns(root: Path) -> None:
    unit = root / "usr/lib/systemd/system/up.service"
    unit.write_text(INSTALL + "WantedBy=multi-user.target\nUpheldBy=x.target\n")
    run = run_step("systemctl: {enable: [up]}", root, dry_run=False)
    assert run.status == "ok"
    assert any("unknown key 'UpheldBy'" in w for w in run.warnings)
    assert not (root / "etc/systemd/system/x.target.upholds").exists()


def test_also_of_a_missing_unit_warns(root: Path) -> None:
    (root / "usr/lib/systemd/system/m.service").write_text(
        INSTALL + "WantedBy=multi-user.target\nAlso=missing.socket\n")
    run = run_step("systemctl: {enable: [m]}", root, dry_run=False)
    assert run.status == "ok"
    assert any("missing.socket" in w and "Also=" in w for w in run.warnings)


# -- overrides ---------------------------------------------------------------------------


def test_overrides_paths_names_and_content(root: Path) -> None:
    """Default name override-yip.conf; `.conf` added; `.service` added to a bare name;
    a known suffix kept (yip writes foo.timer.service.d); content verbatim, 0644."""
    run = run_step("""
systemctl:
  overrides:
    - {service: k3s, content: "[Service]\\nEnvironment=A={{ .Values.x }}\\n"}
    - {service: foo.timer, name: 10-when, content: "[Timer]\\nOnCalendar=daily\\n"}
    - {service: bar.socket, name: x.conf, content: "[Socket]\\n"}
""", root, dry_run=False)
    assert run.status == "ok", run.error
    k3s = root / "etc/systemd/system/k3s.service.d/override-yip.conf"
    assert k3s.read_text() == "[Service]\nEnvironment=A={{ .Values.x }}\n"
    assert oct(k3s.stat().st_mode & 0o7777) == "0o644"
    assert (root / "etc/systemd/system/foo.timer.d/10-when.conf").is_file()
    assert (root / "etc/systemd/system/bar.socket.d/x.conf").is_file()
    assert [type(c) for c in run.changes].count(WriteFile) == 3
    again = run_step("""
systemctl:
  overrides:
    - {service: foo.timer, name: 10-when, content: "[Timer]\\nOnCalendar=daily\\n"}
""", root, dry_run=False)
    assert again.changes == [] and again.entry.changed is False


def test_override_mode_is_set_to_0644(root: Path) -> None:
    path = root / "etc/systemd/system/k.service.d/override-yip.conf"
    path.parent.mkdir(parents=True)
    path.write_text("[Service]\n")
    path.chmod(0o600)
    run = run_step("systemctl: {overrides: [{service: k, content: \"[Service]\\n\"}]}", root,
                   dry_run=False)
    assert run.status == "ok"
    assert oct(path.stat().st_mode & 0o7777) == "0o644"


def test_override_without_service_fails_and_empty_content_warns(root: Path) -> None:
    run = run_step("""
systemctl:
  overrides:
    - {name: x, content: "[Service]\\n"}
    - {service: empty}
    - {service: ok, content: "[Unit]\\n"}
""", root, dry_run=False)
    assert run.status == "failed"
    assert run.error == "systemctl: an override needs a `service` (the unit it overrides)"
    assert run.warnings == ["systemctl: empty override content for "
                            f"{E}/empty.service.d/override-yip.conf; nothing written"]
    assert not (root / "etc/systemd/system/empty.service.d").exists()
    assert (root / "etc/systemd/system/ok.service.d/override-yip.conf").is_file()


@pytest.mark.parametrize("service,name", [("../x", ""), ("a/b", ""), ("k*", ""),
                                          ("k", "../evil"), ("k", ".hidden")])
def test_override_with_a_path_in_a_name_fails(root: Path, service: str, name: str) -> None:
    run = run_step({"systemctl": {"overrides": [{"service": service, "name": name,
                                                 "content": "[Unit]\n"}]}}, root,
                   dry_run=False)
    assert run.status == "failed" and run.changes == []


# -- names, parsing, specifiers -------------------------------------------------------


@pytest.mark.parametrize("raw,name", [("k3s", "k3s.service"), ("a.socket", "a.socket"),
                                      ("foo.bar", "foo.bar.service"), ("t@", "t@.service"),
                                      ("t@x", "t@x.service"), (" x.timer ", "x.timer"),
                                      ("dev-sda.device", "dev-sda.device")])
def test_unit_name(raw: str, name: str) -> None:
    assert units.unit_name(raw) == name


def test_name_helpers() -> None:
    assert units.name_kind("a.service") == "plain"
    assert units.name_kind("a@.service") == "template"
    assert units.name_kind("a@b@c.service") == "instance"
    assert units.name_kind("@a.service") is None
    assert units.name_kind("a.nothing") is None
    assert units.template_of("a@x.socket") == "a@.socket"
    assert units.alias_problem("b.service", "a.service") is None
    assert units.alias_problem("a.service", "a.service") == "self"
    assert "different unit types" in (units.alias_problem("b.socket", "a.service") or "")
    assert "cannot have aliases" in (units.alias_problem("b.mount", "a.mount") or "")
    assert units.alias_problem("b@x.service", "a@.service") is None
    assert "instances differ" in (units.alias_problem("b@x.service", "a@y.service") or "")


def test_specifiers() -> None:
    info = UnitInfo("web-front@blue.service")
    assert units.expand("%n|%N|%p|%i|%j|%u|%U|%%", info) == \
        "web-front@blue.service|web-front@blue|web-front|blue|front|root|0|%"
    template = UnitInfo("t@.service")
    template.default_instance = "one"
    assert units.expand("%n %i", template) == "t@one.service one"
    with pytest.raises(UnitError, match="%H"):
        units.expand("%H.target", info)


def test_words_and_continuations() -> None:
    assert units._words('a.target "b c.target" \'d\'e \\"x') == \
        ["a.target", "b c.target", "de", '\\"x']
    text = "[Install]\nWantedBy=a.target \\\n# comment inside\n  b.target\nAlias=x\n"
    assert list(units._logical_lines(text)) == [
        (1, "[Install]"), (4, "WantedBy=a.target    b.target"), (5, "Alias=x")]


def test_use_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeinit.target import systemd_bus

    monkeypatch.setattr(systemd_bus, "systemd_booted", lambda: True)
    assert systemd_bus.use_bus(True) is True
    assert systemd_bus.use_bus(False) is False
    monkeypatch.setenv("EDGEINIT_SYSTEMD", "dbus")
    assert systemd_bus.use_bus(False) is True
    monkeypatch.setenv("EDGEINIT_SYSTEMD", "offline")
    assert systemd_bus.use_bus(True) is False
    monkeypatch.setattr(systemd_bus, "systemd_booted", lambda: False)
    monkeypatch.delenv("EDGEINIT_SYSTEMD")
    assert systemd_bus.use_bus(True) is False


# -- the changes themselves -----------------------------------------------------------


def test_make_symlink_replaces_at_once_and_is_idempotent(tmp_path: Path) -> None:
    root = TargetRoot(str(tmp_path))
    (tmp_path / "l").symlink_to("/old")
    change = MakeSymlink("/l", str(tmp_path / "l"), "/new", "/old")
    change.apply(root)
    change.apply(root)
    assert os.readlink(tmp_path / "l") == "/new"
    assert os.listdir(tmp_path) == ["l"]  # no temp name left behind
    assert change.describe() == "relink /l -> /new (was -> /old)"


def test_remove_path_never_removes_a_file(tmp_path: Path) -> None:
    from edgeinit.target.changes import ApplyError

    root = TargetRoot(str(tmp_path))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ApplyError, match="no longer a symbolic link"):
        RemovePath("/f", str(tmp_path / "f")).apply(root)
    RemovePath("/gone", str(tmp_path / "gone")).apply(root)  # already gone: fine
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    RemoveDir("/d", str(tmp_path / "d")).apply(root)  # not empty (any more): left alone
    assert (tmp_path / "d" / "x").exists()
