"""Step conditions and templates, end to end (SPEC section 2): every condition runs or
skips a real step on a real root, skipped steps carry a `reason`, and templates fill
in node data read from the target."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
HOST_ARCH = GO_ARCH.get(os.uname().machine, os.uname().machine)
OTHER_ARCH = "s390x" if HOST_ARCH != "s390x" else "amd64"


def step(condition: str, marker: str = "/ran") -> str:
    """A boot step with `condition` (YAML lines for the step) that writes `marker`."""
    body = "\n".join("      " + line for line in condition.strip("\n").splitlines())
    return (f"stages:\n  boot:\n    - name: cond\n{body}\n"
            f"      files: [{{path: {marker}, content: ran}}]\n")


@pytest.fixture
def run_cond(cli, target, write):
    """Run one conditional step on `target`; returns (its report entry, whether it ran)."""

    def go(condition: str) -> tuple[dict, bool]:
        marker = target / "ran"
        if marker.exists():
            marker.unlink()
        res = cli("run", "--stage", "boot", "--root", target, "--json",
                  write("cond.yaml", step(condition)))
        assert res.code == 0, res.err  # a skip is never a failure
        (entry,) = res.json()["steps"]
        ran = marker.exists()
        assert (entry["status"] == "ok") == ran
        return entry, ran

    return go


def assert_skipped(entry: dict, condition: str) -> None:
    """A skipped entry: status skipped, a reason naming the condition, nothing else."""
    assert entry["status"] == "skipped"
    assert isinstance(entry["reason"], str) and entry["reason"].startswith(condition), entry
    assert entry["changed"] is False and entry["error"] is None


# -- if ------------------------------------------------------------------------------------


def test_if_runs_the_step_when_the_shell_test_succeeds(run_cond, shell_target):
    """`if:` exit 0 runs the step; it runs chrooted, so it sees the root's files."""
    (shell_target / "flag").write_text("")
    entry, ran = run_cond("if: '[ -e /flag ]'")
    assert ran and entry["reason"] is None


def test_if_skips_the_step_when_the_shell_test_fails(run_cond, shell_target):
    """`if:` non-zero skips the step, with a reason naming `if`."""
    entry, ran = run_cond("if: '[ -e /flag ]'")
    assert not ran
    assert_skipped(entry, "if")


def test_if_does_not_see_the_host_filesystem(run_cond, shell_target, tmp_path):
    """Under --root, `if:` runs inside the root: a host-only path does not exist there."""
    host_only = tmp_path / "host-only"
    host_only.write_text("")
    entry, ran = run_cond(f"if: '[ -e {host_only} ]'")
    assert not ran
    assert_skipped(entry, "if")


def test_if_is_templated(run_cond, shell_target):
    """`if:` gets `{{ .Values.node.hostname }}` from the target's /etc/hostname."""
    (shell_target / "etc" / "hostname").write_text("tmpl-host\n")
    assert run_cond("""if: '[ "{{ .Values.node.hostname }}" = tmpl-host ]'""")[1]
    assert not run_cond("""if: '[ "{{ .Values.node.hostname }}" = other ]'""")[1]


# -- node ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("regex", "runs"), [
    ("edge-node-7", True), ("node", True), ("^edge-.*-7$", True), ("'[0-9]$'", True),
    ("^node", False), ("other", False), ("'['", False),
])
def test_node_regex_searched_in_the_targets_hostname(run_cond, target, regex, runs):
    """`node` is an unanchored regex search in the hostname read from the target;
    an invalid regex matches nothing."""
    (target / "etc" / "hostname").write_text("edge-node-7\n")
    entry, ran = run_cond(f"node: {regex}")
    assert ran is runs
    if not runs:
        assert_skipped(entry, "node")


# -- only_os / only_os_version ---------------------------------------------------------------


@pytest.mark.parametrize(("regex", "runs"), [
    ("debian", True),  # ID
    ("Debian GNU", True),  # NAME
    ("^deb", True), ("'^(ubuntu|debian)$'", True),
    ("ubuntu", False), ("'^Debian$'", False), ("'('", False),
])
def test_only_os_matches_id_or_name_of_the_targets_os_release(run_cond, regex, runs):
    """`only_os` is a regex on os-release ID or NAME of the target."""
    entry, ran = run_cond(f"only_os: {regex}")
    assert ran is runs
    if not runs:
        assert_skipped(entry, "only_os")


def test_only_os_skips_when_the_target_has_no_os_release(run_cond, target):
    """Without os-release, an `only_os` condition cannot hold."""
    (target / "etc" / "os-release").unlink()
    entry, ran = run_cond("only_os: '.*'")
    assert not ran
    assert_skipped(entry, "only_os")


def test_only_os_reads_usr_lib_os_release(run_cond, target):
    """/usr/lib/os-release is the fallback when /etc/os-release is missing."""
    (target / "etc" / "os-release").unlink()
    (target / "usr" / "lib").mkdir(parents=True)
    (target / "usr" / "lib" / "os-release").write_text('ID=opensuse-leap\nNAME="openSUSE Leap"\n')
    assert run_cond("only_os: leap")[1]


@pytest.mark.parametrize(("regex", "runs"), [
    ("'^12$'", True), ("1", True), ("'^11'", False), ("'^12\\.5$'", False),
])
def test_only_os_version_matches_version_id(run_cond, regex, runs):
    """`only_os_version` is a regex on os-release VERSION_ID of the target."""
    entry, ran = run_cond(f"only_os_version: {regex}")
    assert ran is runs
    if not runs:
        assert_skipped(entry, "only_os_version")


# -- only_arch ---------------------------------------------------------------------------------


def test_only_arch_uses_go_architecture_names(run_cond):
    """`only_arch` matches the Go name of this machine's architecture (amd64, arm64)."""
    assert run_cond(f"only_arch: '^{HOST_ARCH}$'")[1]
    entry, ran = run_cond(f"only_arch: '^{OTHER_ARCH}$'")
    assert not ran
    assert_skipped(entry, "only_arch")


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="needs x86_64/aarch64")
def test_only_arch_does_not_match_the_kernel_name(run_cond):
    """`x86_64`/`aarch64` are not Go names: they do not match."""
    entry, ran = run_cond(f"only_arch: '^{os.uname().machine}$'")
    assert not ran
    assert_skipped(entry, "only_arch")


# -- only_service_manager -------------------------------------------------------------------


def _tool(root: Path, path: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("#!/bin/sh\n")
    p.chmod(0o755)


@pytest.mark.parametrize(("tools", "wanted", "runs"), [
    (["/usr/bin/systemctl"], "systemd", True),
    (["/bin/systemctl"], "SystemD", True),
    (["/usr/bin/systemctl"], "openrc", False),
    (["/sbin/openrc"], "openrc", True),
    (["/sbin/openrc"], "systemd", False),
    ([], "systemd", False),
    ([], "openrc", False),
    (["/usr/bin/systemctl", "/sbin/openrc"], "systemd", False),  # both: cannot tell
    (["/usr/bin/systemctl"], "upstart", False),  # not a supported value
])
def test_only_service_manager_looks_in_the_target(run_cond, target, tools, wanted, runs):
    """systemd when the target has systemctl, openrc when it has openrc; both or an
    unknown value skip."""
    for tool in tools:
        _tool(target, tool)
    entry, ran = run_cond(f"only_service_manager: {wanted}")
    assert ran is runs
    if not runs:
        assert_skipped(entry, "only_service_manager")


# -- if_files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cond", "runs"), [
    ("{all: [/etc/os-release, /etc/machine-id]}", True),
    ("{all: [/etc/os-release, /etc/nope]}", False),
    ("{any: [/nope, /etc/machine-id]}", True),
    ("{any: [/nope, /nope2]}", False),
    ("{none: [/nope]}", True),
    ("{none: [/nope, /etc/hosts]}", False),
    ("{all: [/etc/hosts], any: [/etc/hosts], none: [/missing]}", True),
    ("{all: [/etc/hosts], any: [/etc/hosts], none: [/etc/hosts]}", False),
])
def test_if_files_any_all_none(run_cond, cond, runs):
    """`if_files` any/all/none lists of paths; all lists must hold."""
    entry, ran = run_cond(f"if_files: {cond}")
    assert ran is runs
    if not runs:
        assert_skipped(entry, "if_files")


def test_if_files_paths_are_under_the_root(run_cond, target, tmp_path):
    """`if_files` paths are resolved in the target: a host-only file does not count, and
    an absolute symlink in the target points inside it."""
    (tmp_path / "host-only").write_text("")
    assert not run_cond(f"if_files: {{any: [{tmp_path}/host-only]}}")[1]
    (target / "link").symlink_to("/etc/os-release")
    assert run_cond("if_files: {all: [/link]}")[1]
    (target / "dangling").symlink_to(str(tmp_path / "host-only"))
    assert not run_cond("if_files: {all: [/dangling]}")[1]


def test_if_files_sees_what_an_earlier_step_wrote(cli, target, write):
    """Conditions are checked when their step's turn comes, after earlier steps ran."""
    src = write("a.yaml", "stages:\n  boot:\n    - name: gated\n      if_files: {all: [/flag]}\n"
                          "      files: [{path: /gated, content: x}]\n"
                          "    - name: maker\n      files: [{path: /flag, content: x}]\n"
                          "    - name: gated-again\n      if_files: {all: [/flag]}\n"
                          "      files: [{path: /gated-again, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert [s["status"] for s in res.json()["steps"]] == ["skipped", "ok", "ok"]
    assert not (target / "gated").exists() and (target / "gated-again").exists()


# -- all conditions must hold ---------------------------------------------------------------


def test_every_condition_must_hold(run_cond, shell_target):
    """All conditions must hold: one false condition skips the step, naming that one."""
    (shell_target / "etc" / "hostname").write_text("edge\n")
    (shell_target / "flag").write_text("")
    good = ("node: edge\nonly_os: debian\nonly_os_version: '12'\n"
            f"only_arch: '{HOST_ARCH}'\nif_files: {{all: [/flag]}}\nif: '[ -e /flag ]'")
    assert run_cond(good)[1]
    for bad, name in [("node: other", "node"), ("only_os: arch", "only_os"),
                      ("only_os_version: '99'", "only_os_version"),
                      (f"only_arch: '{OTHER_ARCH}'", "only_arch"),
                      ("if_files: {none: [/flag]}", "if_files"),
                      ("if: '[ ! -e /flag ]'", "if")]:
        key = bad.split(":")[0]
        cond = "\n".join(line for line in good.splitlines() if not line.startswith(key + ":"))
        entry, ran = run_cond(cond + "\n" + bad)
        assert not ran, bad
        assert_skipped(entry, name)


def test_a_skipped_step_runs_none_of_its_plugins(cli, shell_target, write):
    """A skipped step does nothing: no files, no commands, no hostname."""
    src = write("a.yaml", "stages:\n  boot:\n    - node: '^nomatch$'\n"
                          "      commands: ['echo ran > /ran-cmd']\n"
                          "      hostname: skipped\n"
                          "      directories: [{path: /skipped-dir}]\n")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert res.code == 0
    assert res.json()["steps"][0]["status"] == "skipped"
    for p in ("ran-cmd", "etc/hostname", "skipped-dir"):
        assert not (shell_target / p).exists()


# -- templates ------------------------------------------------------------------------------


def test_values_in_commands_and_file_content(cli, shell_target, write):
    """`{{ .Values.node.hostname }}` and `.Values.os.*` come from the target's files."""
    (shell_target / "etc" / "hostname").write_text("tmpl-node\n")
    src = write("a.yaml", """\
stages:
  boot:
    - files:
        - path: /etc/motd
          content: "host={{ .Values.node.hostname }} os={{ .Values.os.version }} short={{ trunc 4 .Values.node.hostname }}\\n"
      commands:
        - 'echo "cmd={{ .Values.node.hostname }}" > /cmd-out'
      environment:
        NODE: "{{ .Values.node.hostname }}"
      environment_file: /etc/node.env
""")  # noqa: E501
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert res.code == 0, res.err
    assert res.json()["steps"][0]["warnings"] == []
    assert (shell_target / "etc" / "motd").read_text() == "host=tmpl-node os=12 short=tmpl\n"
    assert (shell_target / "cmd-out").read_text() == "cmd=tmpl-node\n"
    assert (shell_target / "etc" / "node.env").read_text() == 'NODE="tmpl-node"\n'


def test_unknown_template_expression_is_left_verbatim_with_a_warning(cli, target, write):
    """An expression edgeinit does not understand stays as written and warns."""
    content = 'a={{ .Values.nope.missing }} b={{ include "helm" . }} c={{ .Values.os.version }}'
    src = write("a.yaml", "stages:\n  boot:\n    - files:\n        - path: /out\n"
                          f"          content: '{content}'\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 0, res.err
    assert (target / "out").read_text() == (
        'a={{ .Values.nope.missing }} b={{ include "helm" . }} c=12')
    warnings = res.json()["steps"][0]["warnings"]
    assert any("{{ .Values.nope.missing }}" in w for w in warnings), warnings
    assert any('{{ include "helm" . }}' in w for w in warnings), warnings
    assert "include" in res.err  # also logged


def test_template_trim_markers(cli, target, write):
    """`{{-` and `-}}` trim the surrounding whitespace, as Go templates do."""
    src = write("a.yaml", "stages:\n  boot:\n    - files:\n        - path: /out\n"
                          "          content: \"[ {{- .Values.os.version -}} ]\"\n")
    assert cli("run", "--stage", "boot", "--root", target, src).code == 0
    assert (target / "out").read_text() == "[12]"


@pytest.mark.parametrize(("template", "pattern"), [
    ("node-{{ trunc 4 .MachineID }}", r"node-0123"),
    ("n-{{ .MachineID | trunc 6 }}", r"n-012345"),
    ("r-{{ trunc 4 .Random }}", r"r-[0-9a-z]{4}"),
    ("x{{ .Random }}", r"x[0-9a-z]{32}"),
    ("u-{{ .UUID }}", r"u-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
])
def test_hostname_templates(cli, target, write, template, pattern):
    """Hostnames understand .MachineID (from the target), .Random, .UUID and trunc."""
    src = write("h.yaml", f"stages:\n  initramfs:\n    - hostname: '{template}'\n")
    res = cli("run", "--stage", "initramfs", "--root", target, "--json", src)
    assert res.code == 0, res.err
    name = (target / "etc" / "hostname").read_text()
    assert re.fullmatch(pattern + "\n", name), name
    assert f"127.0.0.1 localhost {name.strip()}" in (target / "etc" / "hosts").read_text()
