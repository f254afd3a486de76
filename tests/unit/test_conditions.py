"""Step conditions (SPEC 2 "Conditions"; yip-behaviour.md section 2).

Every fact is read from the TARGET root (hostname, os-release, service manager, paths),
except the architecture, which is the running machine's, in Go's naming.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeinit.config.yamlload import load
from edgeinit.engine import conditions, templates
from edgeinit.engine.facts import Facts, go_arch
from edgeinit.schema.step import build_step
from edgeinit.target.root import TargetRoot


def check(root: Path, step_yaml: str) -> str | None:
    """The skip reason of a step (None = runs), with fresh facts of `root`."""
    step = build_step(load(step_yaml), ("stages", "boot", 0))
    assert step.problems == [], step.problems
    target = TargetRoot(str(root))
    facts = Facts(target)

    def render(text: str) -> str:
        def lookup(name: str) -> object:
            if name.startswith("Values."):
                return facts.value(name.split(".")[1:])
            raise KeyError(name)

        return templates.render(text, lookup, lambda _message: None)

    return conditions.check(step.header, facts, target, render)


@pytest.fixture
def node(target: Path) -> Path:
    (target / "etc" / "hostname").write_text("edge-node-42\n")
    return target


# -- node ----------------------------------------------------------------------------


@pytest.mark.parametrize("regex", ["edge-node-42", "node-4", "^edge", "42$", "e.ge", "x|node"])
def test_node_regex_is_searched_in_the_hostname(node: Path, regex: str) -> None:
    """Go regexp.MatchString is unanchored: a regex anywhere in the hostname matches."""
    assert check(node, f"node: '{regex}'") is None


@pytest.mark.parametrize("regex", ["^node", "barz", "edge-node-420", "EDGE"])
def test_node_regex_not_matching_skips(node: Path, regex: str) -> None:
    reason = check(node, f"node: '{regex}'")
    assert reason is not None
    assert reason.startswith("node:")
    assert "edge-node-42" in reason and regex in reason


def test_node_reads_the_targets_hostname_not_the_hosts(node: Path) -> None:
    import socket

    host = socket.gethostname()
    if host == "edge-node-42":
        pytest.skip("the test machine has the fixture's hostname")
    assert check(node, f"node: '^{host}$'") is not None


# -- only_os / only_os_version -------------------------------------------------------


@pytest.mark.parametrize("regex", ["debian", "^debian$", "Debian GNU", "GNU/Linux", "deb|ubuntu"])
def test_only_os_matches_id_or_name(target: Path, regex: str) -> None:
    """The fixture's os-release has ID=debian, NAME="Debian GNU/Linux"."""
    assert check(target, f"only_os: '{regex}'") is None


def test_only_os_not_matching_names_what_the_target_is(target: Path) -> None:
    reason = check(target, "only_os: ubuntu")
    assert reason is not None and reason.startswith("only_os:")
    assert "debian" in reason and "ubuntu" in reason


def test_only_os_reads_the_targets_os_release(target: Path) -> None:
    """A target that is openSUSE while the host is anything else: the target decides."""
    (target / "etc" / "os-release").write_text('NAME="openSUSE Leap Micro"\nID="opensuse-leap'
                                               '-micro"\nVERSION_ID="5.5"\n')
    assert check(target, "only_os: opensuse") is None
    assert check(target, "only_os: debian") is not None
    assert check(target, "only_os_version: ^5\\.5$") is None


def test_only_os_falls_back_to_usr_lib_os_release(target: Path) -> None:
    (target / "etc" / "os-release").unlink()
    (target / "usr" / "lib").mkdir(parents=True)
    (target / "usr" / "lib" / "os-release").write_text("ID=alpine\nVERSION_ID=3.19.1\n")
    assert check(target, "only_os: alpine") is None


def test_only_os_without_os_release_skips(target: Path) -> None:
    (target / "etc" / "os-release").unlink()
    reason = check(target, "only_os: .*")
    assert reason is not None and "os-release" in reason


@pytest.mark.parametrize("regex", ["12", "^12$", "1"])
def test_only_os_version_matches_version_id(target: Path, regex: str) -> None:
    assert check(target, f"only_os_version: '{regex}'") is None


def test_only_os_version_not_matching_skips(target: Path) -> None:
    reason = check(target, "only_os_version: '^11$'")
    assert reason is not None and reason.startswith("only_os_version:") and "12" in reason


def test_only_os_version_without_version_id_skips(target: Path) -> None:
    (target / "etc" / "os-release").write_text("ID=arch\n")
    assert check(target, "only_os_version: .*") is not None


# -- only_arch -----------------------------------------------------------------------


@pytest.mark.parametrize(("machine", "go"), [("x86_64", "amd64"), ("aarch64", "arm64"),
                                             ("armv7l", "arm"), ("i686", "386"),
                                             ("riscv64", "riscv64"), ("s390x", "s390x")])
def test_go_arch_names(machine: str, go: str) -> None:
    """uname's machine names map to Go's GOARCH names, which yip's only_arch matches."""
    assert go_arch(machine) == go


def test_only_arch_matches_the_go_name_of_this_machine(target: Path) -> None:
    assert check(target, f"only_arch: '^{go_arch()}$'") is None


def test_only_arch_does_not_match_the_uname_name(target: Path) -> None:
    """`only_arch: x86_64` never matches on amd64 (yip uses runtime.GOARCH)."""
    machine = os.uname().machine
    if go_arch(machine) == machine:
        pytest.skip(f"uname and Go agree on '{machine}'")
    reason = check(target, f"only_arch: '^{machine}$'")
    assert reason is not None and reason.startswith("only_arch:") and go_arch() in reason


# -- only_service_manager ------------------------------------------------------------


def _tool(root: Path, path: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("#!/bin/sh\n")
    p.chmod(0o755)


@pytest.mark.parametrize("where", ["/sbin", "/bin", "/usr/sbin", "/usr/bin"])
def test_systemd_when_systemctl_is_in_the_targets_bin_dirs(target: Path, where: str) -> None:
    _tool(target, f"{where}/systemctl")
    assert check(target, "only_service_manager: systemd") is None
    assert check(target, "only_service_manager: SystemD") is None  # case-insensitive
    reason = check(target, "only_service_manager: openrc")
    assert reason is not None and "systemd" in reason


def test_openrc_when_openrc_is_present(target: Path) -> None:
    _tool(target, "/sbin/openrc")
    assert check(target, "only_service_manager: openrc") is None
    assert check(target, "only_service_manager: systemd") is not None


def test_both_present_skips_either(target: Path) -> None:
    """yip: 'both systemd and openrc are available, cant filter' -> skip."""
    _tool(target, "/usr/bin/systemctl")
    _tool(target, "/sbin/openrc")
    for wanted in ("systemd", "openrc"):
        reason = check(target, f"only_service_manager: {wanted}")
        assert reason is not None and "both" in reason


def test_neither_present_skips(target: Path) -> None:
    reason = check(target, "only_service_manager: systemd")
    assert reason is not None and "none" in reason


def test_unknown_service_manager_skips(target: Path) -> None:
    _tool(target, "/usr/bin/systemctl")
    reason = check(target, "only_service_manager: runit")
    assert reason is not None and "runit" in reason


def test_systemctl_symlink_inside_the_root_counts(target: Path) -> None:
    """/bin -> usr/bin style merged-usr layouts; the link is resolved inside the root."""
    _tool(target, "/usr/lib/systemd/systemctl")
    (target / "usr" / "bin").mkdir(parents=True)
    os.symlink("/usr/lib/systemd/systemctl", target / "usr" / "bin" / "systemctl")
    assert check(target, "only_service_manager: systemd") is None


# -- if_files ------------------------------------------------------------------------


@pytest.fixture
def files_root(target: Path) -> Path:
    (target / "present").write_text("x")
    (target / "dir").mkdir()
    return target


@pytest.mark.parametrize(
    ("spec", "runs"),
    [
        ("{all: [/present, /dir]}", True),
        ("{all: [/present, /missing]}", False),
        ("{any: [/missing, /present]}", True),
        ("{any: [/missing, /gone]}", False),
        ("{none: [/missing, /gone]}", True),
        ("{none: [/missing, /present]}", False),
        ("{all: [/present], any: [/dir], none: [/missing]}", True),
        ("{all: [/present], any: [/dir], none: [/dir]}", False),
        ("{all: [/etc/hostname]}", False),  # /etc exists, hostname does not
        ("{}", True),
    ],
)
def test_if_files(files_root: Path, spec: str, runs: bool) -> None:
    reason = check(files_root, f"if_files: {spec}")
    assert (reason is None) is runs, reason
    if not runs:
        assert reason.startswith("if_files:")


@pytest.mark.parametrize(
    "spec",
    [
        "{any: [], all: [/missing]}",
        "{all: [], none: [/present]}",
        "{none: [], any: [/missing]}",
    ],
)
def test_an_empty_list_does_not_disable_the_other_checks(files_root: Path, spec: str) -> None:
    """yip bug (section 2): an empty list returned early for the whole check. Not here."""
    assert check(files_root, f"if_files: {spec}") is not None


def test_if_files_paths_are_under_the_root(target: Path) -> None:
    """/etc/os-release of the target exists; a host-only path does not count."""
    assert check(target, "if_files: {all: [/etc/os-release]}") is None
    outside = target.parent / "outside-file"
    outside.write_text("x")
    assert check(target, f"if_files: {{any: ['{outside}']}}") is not None


def test_if_files_symlink_out_of_the_root_is_re_rooted(target: Path) -> None:
    """An absolute link is followed as if the root were /: it names a path of the target.

    Like yip's Stat, the check follows the link; the host file it points at does not
    count, the same path inside the root does.
    """
    outside = target.parent / "host-only"
    outside.write_text("x")
    os.symlink(str(outside), target / "link")
    assert check(target, "if_files: {any: [/link]}") is not None
    inside = target / str(outside).lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("x")
    assert check(target, "if_files: {any: [/link]}") is None


# -- invalid regexes -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["node", "only_os", "only_os_version", "only_arch"])
def test_invalid_regex_skips_with_a_reason(node: Path, key: str) -> None:
    """yip: an invalid regex never matches; we skip and say the regex is invalid."""
    reason = check(node, f"{key}: '(unclosed'")
    assert reason is not None
    assert reason.startswith(f"{key}:") and "not a valid regex" in reason


# -- if: and evaluation order --------------------------------------------------------


def test_if_without_a_shell_in_the_root_fails_rather_than_skips(target: Path) -> None:
    """An empty root has no /bin/sh: the condition cannot be judged, and a silent skip
    would hide that the step never ran, so it is an error naming the missing shell."""
    from edgeinit.engine.conditions import ConditionError

    with pytest.raises(ConditionError, match="no /bin/sh in the root"):
        check(target, "if: 'true'")


def test_pure_conditions_are_checked_before_if(target: Path) -> None:
    """The reason names only_os, not if: the shell test was never attempted."""
    reason = check(target, "only_os: ubuntu\nif: 'exit 0'")
    assert reason is not None and reason.startswith("only_os:")


def test_conditions_all_hold(node: Path) -> None:
    assert check(node, f"node: edge\nonly_os: debian\nonly_os_version: '12'\n"
                       f"only_arch: {go_arch()}\nif_files: {{all: [/etc/hostname]}}") is None


def test_first_failing_condition_gives_the_reason(node: Path) -> None:
    """Order: node, only_os, only_os_version, only_arch, only_service_manager, if_files, if."""
    reason = check(node, "only_os_version: '^99$'\nif_files: {all: [/missing]}\nnode: nomatch")
    assert reason is not None and reason.startswith("node:")
    reason = check(node, "only_os_version: '^99$'\nif_files: {all: [/missing]}")
    assert reason is not None and reason.startswith("only_os_version:")


def test_if_exit_status_decides(shell_target: Path) -> None:
    """`if:` runs chrooted in the target with /bin/sh; exit 0 runs the step."""
    assert check(shell_target, "if: 'exit 0'") is None
    reason = check(shell_target, "if: 'exit 3'")
    assert reason is not None and reason.startswith("if:") and "3" in reason


def test_if_runs_inside_the_target(shell_target: Path) -> None:
    """`[ -e /etc/machine-id ]` is evaluated in the target's filesystem."""
    (shell_target / "marker").write_text("")
    assert check(shell_target, "if: '[ -e /marker ]'") is None
    assert check(shell_target, "if: '[ -e /no-such-marker ]'") is not None


def test_if_is_templated(shell_target: Path) -> None:
    """`if:` is rendered first: .Values.os.version of the target is 12."""
    assert check(shell_target, "if: '[ \"{{ .Values.os.version }}\" = 12 ]'") is None
    assert check(shell_target, "if: '[ \"{{ .Values.os.version }}\" = 11 ]'") is not None


def test_if_is_not_run_when_a_pure_condition_fails(shell_target: Path) -> None:
    """A step skipped for its OS never runs its shell test (it could have side effects)."""
    reason = check(shell_target, "only_os: ubuntu\nif: 'echo ran > /ran; exit 0'")
    assert reason is not None and reason.startswith("only_os:")
    assert not (shell_target / "ran").exists()
    assert check(shell_target, "only_os: debian\nif: 'echo ran > /ran; exit 0'") is None
    assert (shell_target / "ran").read_text() == "ran\n"
