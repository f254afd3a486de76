"""`commands` (yip-behaviour 3.4) and `systemd_firstboot` (3.15), and plugin order (SPEC 3).

Plans on pyfakefs; commands really run only on a chroot-able tmp root (needs root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from edgeinit.engine.facts import go_arch
from edgeinit.target.changes import MakeDir, RunCommand, WriteFile
from tests.unit.plugin_harness import fake_root_user, run_step

T = "/target"


@pytest.fixture
def fake(fs: FakeFilesystem) -> str:
    fake_root_user()
    fs.create_file(f"{T}/etc/hostname", contents="edge-01\n")
    fs.create_file(f"{T}/etc/hosts", contents="127.0.0.1 localhost\n")
    fs.create_file(f"{T}/etc/os-release", contents='NAME="Edge OS"\nID=edge\nVERSION_ID=3\n')
    return T


def test_one_run_per_non_empty_command_in_order(fake: str) -> None:
    """Blank commands are skipped; the rest become RunCommand in file order."""
    run = run_step("commands: ['echo foo', '', '   ', 'echo bar']", fake)
    assert run.changes == [RunCommand("echo foo"), RunCommand("echo bar")]
    assert run.entry.changes == ["run: echo foo", "run: echo bar"]
    assert run.entry.changed  # SPEC 5: a step that runs commands counts as changed


def test_commands_are_templated_with_target_facts(fake: str) -> None:
    """yip test: `echo {{.Values.os.architecture}}` -> `echo <GOARCH>`; node data: the target's."""
    run = run_step({"commands": ["echo {{.Values.os.architecture}}",
                                 "echo {{ .Values.node.hostname }} {{ .Values.os.vendor }}"]},
                   fake)
    assert [c.command for c in run.of(RunCommand)] == [f"echo {go_arch()}", "echo edge-01 edge"]


def test_unknown_template_in_a_command_is_kept_and_warned(fake: str) -> None:
    """An expression edgeinit does not understand stays verbatim (SPEC 2 Templates)."""
    run = run_step({"commands": ["echo {{ .Nope }}"]}, fake)
    assert [c.command for c in run.of(RunCommand)] == ["echo {{ .Nope }}"]
    assert len(run.warnings) == 1 and "not understood" in run.warnings[0]


def test_plugins_run_in_yips_order_whatever_the_key_order(fake: str) -> None:
    """SPEC 3: dns, directories, files, commands, hostname, timesyncd, environment,
    systemd_firstboot -- regardless of the order the keys are written in."""
    run = run_step("""
systemd_firstboot: {keymap: us}
environment: {A: "1"}
timesyncd: {NTP: pool}
hostname: node1
commands: [echo hi]
files: [{path: /etc/f, content: x}]
directories: [{path: /d}]
dns: {nameservers: [1.1.1.1]}
""", fake)
    kinds = []
    for c in run.changes:
        if isinstance(c, WriteFile | MakeDir):
            kinds.append(c.path)
        elif isinstance(c, RunCommand):
            kinds.append(c.command)
    assert kinds == ["/etc/resolv.conf", "/d", "/etc/f", "echo hi", "/etc/hostname",
                     "/etc/hosts", "/etc/systemd", "/etc/systemd/timesyncd.conf.d",
                     "/etc/systemd/timesyncd.conf.d/10-yip.conf", "/etc/environment",
                     "systemd-firstboot --keymap=us"]


# ---------------------------------------------------------------- systemd_firstboot


def test_systemd_firstboot_yip_example(fake: str) -> None:
    """yip test: {keymap: us, LOCALE: en_US.UTF-8, force: "true"} -> one sorted command."""
    run = run_step('systemd_firstboot: {keymap: us, LOCALE: en_US.UTF-8, force: "true"}', fake)
    assert run.changes == [
        RunCommand("systemd-firstboot --force --keymap=us --locale=en_US.UTF-8")]


def test_systemd_firstboot_unquoted_true_and_false(fake: str) -> None:
    """`force: true` (plain YAML) is the text "true" too; "false" becomes `--x=false`."""
    run = run_step("systemd_firstboot: {force: true, delete-root-password: false}", fake)
    assert [c.command for c in run.of(RunCommand)] == [
        "systemd-firstboot --delete-root-password=false --force"]


def test_systemd_firstboot_values_are_shell_quoted(fake: str) -> None:
    """A value with spaces or shell characters is one argument, not shell syntax."""
    run = run_step({"systemd_firstboot": {"hostname": "a b;reboot"}}, fake)
    assert [c.command for c in run.of(RunCommand)] == [
        "systemd-firstboot '--hostname=a b;reboot'"]


def test_systemd_firstboot_root_password_never_shown(fake: str) -> None:
    """SPEC 7.9: a root password is in the command but never in the report."""
    run = run_step({"systemd_firstboot": {"root-password": "hunter2", "locale": "C"}}, fake)
    (c,) = run.of(RunCommand)
    assert "--root-password=hunter2" in c.command
    assert "hunter2" not in c.describe()
    assert all("hunter2" not in line for line in run.entry.changes)


def test_empty_systemd_firstboot_runs_nothing(fake: str) -> None:
    run = run_step("systemd_firstboot: {}", fake)
    assert run.changes == [] and run.status == "ok"


# ---------------------------------------------------------------- really run


def test_commands_run_chrooted_in_the_target(shell_target: Path) -> None:
    """Under --root a command runs inside the root: `/` is the target's root."""
    commands = ["echo one > /proof", 'read id < /etc/machine-id; echo "$id" >> /proof']
    run = run_step({"commands": commands}, shell_target, dry_run=False)
    assert run.status == "ok", run.error
    assert (shell_target / "proof").read_text() == "one\n0123456789abcdef0123456789abcdef\n"
    assert not os.path.exists("/proof")


def test_failing_command_fails_the_step_and_the_rest_still_run(shell_target: Path) -> None:
    """yip: a failing command is an error, later commands still run; output in the error."""
    run = run_step({"commands": ["echo before > /a", "echo oops; exit 3", "echo after > /b"]},
                   shell_target, dry_run=False)
    assert run.status == "failed"
    assert "command 'echo oops; exit 3' exited with 3" in run.error
    assert "oops" in run.error
    assert (shell_target / "a").exists() and (shell_target / "b").exists()


def test_dry_run_runs_no_command(shell_target: Path) -> None:
    """SPEC 1: --dry-run runs no commands."""
    run = run_step({"commands": ["echo x > /should-not-exist"]}, shell_target, dry_run=True)
    assert run.entry.changes == ["run: echo x > /should-not-exist"]
    assert not (shell_target / "should-not-exist").exists()
