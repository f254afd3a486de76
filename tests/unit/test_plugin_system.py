"""environment (yip-behaviour 3.10), dns (3.11), sysctl (3.12), modules (3.13) and
timesyncd (3.14): planned on pyfakefs (a fake target, or a fake `/` with a fake /proc for
the running-system plugins), then environment and timesyncd applied on a real root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from edgeinit.target.changes import LoadModule, MakeDir, WriteFile, WriteKernelParam
from tests.conftest import needs_root
from tests.unit.plugin_harness import fake_root_user, run_step

T = "/target"


@pytest.fixture
def fake(fs: FakeFilesystem) -> str:
    fake_root_user()
    fs.create_file(f"{T}/etc/hostname", contents="edge-01\n")
    fs.create_file(f"{T}/etc/machine-id", contents="0123456789abcdef0123456789abcdef\n")
    return T


# ---------------------------------------------------------------- environment


def test_environment_default_file_new(fake: str) -> None:
    """Default /etc/environment, written exactly as yip writes it (sorted, ints bare)."""
    run = run_step('environment: {foo: "0", BAR: "a b", N: 12}', fake)
    assert run.changes == [WriteFile("/etc/environment", f"{T}/etc/environment",
                                     b'BAR="a b"\nN=12\nfoo=0\n', 0o644, 0, 0)]


def test_environment_file_layout_env(fake: str) -> None:
    """cos-layout.env example: parents 0755 (SPEC 7.2; yip 0744), file 0644."""
    run = run_step("""
environment_file: /run/cos/cos-layout.env
environment:
  OVERLAY: "tmpfs:25%"
  VOLUMES: "LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local"
""", fake)
    assert [(type(c).__name__, c.path, c.mode) for c in run.changes] == [  # type: ignore
        ("MakeDir", "/run", 0o755), ("MakeDir", "/run/cos", 0o755),
        ("WriteFile", "/run/cos/cos-layout.env", 0o644)]
    assert run.changes[-1].content == (  # type: ignore[union-attr]
        b'OVERLAY="tmpfs:25%"\nVOLUMES="LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local"\n')


def test_environment_values_are_templated(fake: str) -> None:
    """Values are templated with node data (yip-behaviour 1.5); keys are not."""
    run = run_step({"environment": {"NODE": "{{ .Values.node.hostname }}"}}, fake)
    assert run.changes[0].content == b'NODE="edge-01"\n'  # type: ignore[union-attr]


def test_environment_merges_into_an_existing_file(fs: FakeFilesystem, fake: str) -> None:
    """Existing lines and comments stay, the file keeps its mode; changed keys in place."""
    fs.create_file(f"{T}/etc/environment",
                   contents='# system-wide\nPATH="/usr/bin:/bin"\nLANG=C\n')
    os.chmod(f"{T}/etc/environment", 0o600)
    run = run_step("environment: {LANG: en_US.UTF-8, EDITOR: vi}", fake)
    (w,) = run.of(WriteFile)
    assert w.content == b'# system-wide\nPATH="/usr/bin:/bin"\nLANG="en_US.UTF-8"\nEDITOR="vi"\n'
    assert w.mode == 0o600


def test_environment_already_set_is_no_change(fs: FakeFilesystem, fake: str) -> None:
    """SPEC 7.13: values already in the file -> nothing planned."""
    fs.create_file(f"{T}/etc/environment", contents="# x\nA=1\nB='two'\n")
    run = run_step("environment: {A: 1, B: two}", fake)
    assert run.changes == [] and not run.entry.changed


def test_environment_file_without_environment_does_nothing(fake: str) -> None:
    """yip runs the plugin only when `environment` is non-empty."""
    run = run_step("environment_file: /run/x.env", fake)
    assert run.changes == [] and run.status == "ok"


def test_environment_file_escaping_the_root_fails(fake: str) -> None:
    run = run_step("{environment_file: /../x.env, environment: {A: b}}", fake)
    assert run.status == "failed" and "climbs above the root" in run.error


# ---------------------------------------------------------------- dns


def test_dns_yip_example(fake: str) -> None:
    """yip test: nameservers [8.8.8.8] -> `nameserver 8.8.8.8\\n` in /etc/resolv.conf."""
    run = run_step("dns: {nameservers: [8.8.8.8]}", fake)
    assert run.changes == [WriteFile("/etc/resolv.conf", f"{T}/etc/resolv.conf",
                                     b"nameserver 8.8.8.8\n", 0o644, 0, 0)]


def test_dns_search_and_options(fake: str) -> None:
    """search line first, one nameserver line each, then options."""
    run = run_step("dns: {nameservers: [1.1.1.1, 9.9.9.9], search: [a.lan, b.lan], "
                   "options: [ndots:2, rotate]}", fake)
    (w,) = run.of(WriteFile)
    assert w.content == (b"search a.lan b.lan\nnameserver 1.1.1.1\nnameserver 9.9.9.9\n"
                         b"options ndots:2 rotate\n")


def test_dns_search_dot_is_omitted(fake: str) -> None:
    """yip: a search list of exactly `.` writes no search line."""
    (w,) = run_step("dns: {nameservers: [1.1.1.1], search: ['.']}", fake).of(WriteFile)
    assert w.content == b"nameserver 1.1.1.1\n"


def test_dns_without_nameservers_does_nothing(fake: str) -> None:
    """yip runs dns only with nameservers; search alone writes nothing."""
    assert run_step("dns: {search: [a.lan]}", fake).changes == []


def test_dns_custom_path(fake: str) -> None:
    (w,) = run_step("dns: {nameservers: [1.1.1.1], path: /etc/resolv.alt}", fake).of(WriteFile)
    assert w.host_path == f"{T}/etc/resolv.alt"


def test_dns_writes_through_an_absolute_symlink_inside_the_root(fs: FakeFilesystem,
                                                               fake: str) -> None:
    """A symlinked resolv.conf is written through (yip), to the target inside the root."""
    fs.create_symlink(f"{T}/etc/resolv.conf", "/run/systemd/resolve/stub-resolv.conf")
    run = run_step("dns: {nameservers: [1.1.1.1]}", fake)
    assert [c.host_path for c in run.changes] == [  # type: ignore[union-attr]
        f"{T}/run", f"{T}/run/systemd", f"{T}/run/systemd/resolve",
        f"{T}/run/systemd/resolve/stub-resolv.conf"]
    assert os.path.islink(f"{T}/etc/resolv.conf")


# ---------------------------------------------------------------- sysctl


@pytest.fixture
def live(fs: FakeFilesystem) -> str:
    """A fake running system: `/` with /proc/sys and /proc/modules files."""
    fake_root_user()
    fs.create_file("/proc/sys/vm/swappiness", contents="60\n")
    fs.create_file("/proc/sys/net/ipv4/ip_forward", contents="0\n")
    fs.create_file("/proc/sys/net/ipv4/tcp_rmem", contents="4096\t131072\t6291456\n")
    fs.create_file("/proc/sys/debug/exception-trace", contents="1\n")
    fs.create_file("/proc/modules", contents=(
        "loop 32768 0 - Live 0x0000000000000000\n"
        "dm_crypt 61440 0 - Live 0x0000000000000000\n"))
    fs.create_dir("/etc")
    return "/"


def test_sysctl_not_live_root_warns_and_changes_nothing(fake: str) -> None:
    """SPEC 1: under a root other than /, /proc/sys is not the target's: warning, no change."""
    run = run_step("sysctl: {vm.swappiness: 10, net.ipv4.ip_forward: 1}", fake)
    assert run.changes == []
    assert run.status == "ok"
    assert run.warnings == [
        "sysctl values not set: the root is not / (vm.swappiness, net.ipv4.ip_forward)"]


def test_sysctl_live_plans_writes_for_changed_values(live: str) -> None:
    """Dots and slashes name /proc/sys paths; sorted by key; old value kept for the report."""
    run = run_step("""
sysctl:
  vm.swappiness: 10
  net/ipv4/ip_forward: "1"
  debug.exception-trace: "0"
""", live)
    assert run.status == "ok", run.error
    assert run.changes == [
        WriteKernelParam("debug.exception-trace", "0", "/proc/sys/debug/exception-trace", "1"),
        WriteKernelParam("net/ipv4/ip_forward", "1", "/proc/sys/net/ipv4/ip_forward", "0"),
        WriteKernelParam("vm.swappiness", "10", "/proc/sys/vm/swappiness", "60"),
    ]
    assert run.entry.changes[-1] == "sysctl vm.swappiness = 10 (was 60)"


def test_sysctl_same_value_is_no_change(live: str) -> None:
    """A value that reads back the same (whitespace aside) is left alone."""
    run = run_step('sysctl: {vm.swappiness: 60, net.ipv4.tcp_rmem: "4096 131072  6291456"}', live)
    assert run.changes == [] and not run.entry.changed


def test_sysctl_unknown_and_invalid_keys_fail_but_others_run(live: str) -> None:
    """An unknown key and a key escaping /proc/sys fail; valid keys are still planned."""
    run = run_step({"sysctl": {"vm.nonexistent": "1", "../../etc/passwd": "x",
                               "vm/../../../etc/shadow": "x", "vm.swappiness": "5"}}, live)
    assert run.status == "failed"
    assert "unknown sysctl key 'vm.nonexistent'" in run.error
    assert "'../../etc/passwd' is not a valid sysctl key" in run.error
    assert "'vm/../../../etc/shadow' is not a valid sysctl key" in run.error
    assert [c.key for c in run.of(WriteKernelParam)] == ["vm.swappiness"]


# ---------------------------------------------------------------- modules


def test_modules_not_live_root_warns_and_changes_nothing(fake: str) -> None:
    """SPEC 1: no modprobe under --root; the step names the modules in a warning."""
    run = run_step("modules: [loop, 'nf_conntrack hashsize=1024']", fake)
    assert run.changes == []
    assert run.status == "ok"
    assert run.warnings == ["modules not loaded: the root is not / (loop, nf_conntrack)"]


def test_modules_live_skips_loaded_and_passes_params(live: str) -> None:
    """Loaded modules (dashes = underscores) are skipped; params follow the name."""
    run = run_step("modules: [loop, dm-crypt, 'nf_conntrack hashsize=1024 expect=1', '', "
                   "br_netfilter]", live)
    assert run.changes == [LoadModule("nf_conntrack", ("hashsize=1024", "expect=1")),
                           LoadModule("br_netfilter")]
    assert run.entry.changes == ["modprobe nf_conntrack hashsize=1024 expect=1",
                                 "modprobe br_netfilter"]


def test_modules_invalid_name_fails(live: str) -> None:
    """A name that is not a module name (a path, an option) fails; others still load.

    `-r loop` must not become `modprobe -r loop`, which would unload a module.
    """
    run = run_step("modules: [../../evil, --force, '-r loop', xfs]", live)
    assert run.status == "failed"
    assert "'../../evil' is not a valid module name" in run.error
    assert "'--force' is not a valid module name" in run.error
    assert "'-r' is not a valid module name" in run.error
    assert run.changes == [LoadModule("xfs")]


# ---------------------------------------------------------------- timesyncd


def test_timesyncd_new_drop_in(fake: str) -> None:
    """yip test: NTP: 0.pool -> timesyncd.conf.d/10-yip.conf `[Time]\\nNTP = 0.pool\\n`."""
    run = run_step("timesyncd: {NTP: 0.pool}", fake)
    assert [type(c) for c in run.changes] == [MakeDir, MakeDir, WriteFile]
    assert [(c.path, c.mode) for c in run.changes[:2]] == [  # type: ignore[union-attr]
        ("/etc/systemd", 0o755), ("/etc/systemd/timesyncd.conf.d", 0o755)]
    w = run.changes[2]
    assert isinstance(w, WriteFile)
    assert (w.path, w.content, w.mode) == ("/etc/systemd/timesyncd.conf.d/10-yip.conf",
                                           b"[Time]\nNTP = 0.pool\n", 0o644)


def test_timesyncd_merges_existing_keys(fs: FakeFilesystem, fake: str) -> None:
    """yip merges into the existing drop-in: other keys stay, named keys change."""
    fs.create_file(f"{T}/etc/systemd/timesyncd.conf.d/10-yip.conf",
                   contents="[Time]\nNTP = old.pool\nFallbackNTP = fb.pool\n")
    (w,) = run_step("timesyncd: {NTP: new.pool, RootDistanceMaxSec: 5}", fake).of(WriteFile)
    assert w.content == (b"[Time]\nNTP = new.pool\nFallbackNTP = fb.pool\n"
                         b"RootDistanceMaxSec = 5\n")


def test_timesyncd_empty_does_nothing(fake: str) -> None:
    assert run_step("timesyncd: {}", fake).changes == []


# ---------------------------------------------------------------- applied


@needs_root
def test_apply_environment_and_timesyncd_then_idempotent(target: Path) -> None:
    """Applied on a tmp root: exact bytes and modes; the second run changes nothing."""
    env = target / "etc" / "environment"
    env.write_text("# keep\nLANG=C\n")
    env.chmod(0o640)
    step = """
environment: {LANG: C.UTF-8, NODE: "{{ .Values.node.machineid }}"}
timesyncd: {NTP: 0.pool}
"""
    run = run_step(step, target, dry_run=False)
    assert run.status == "ok", run.error
    assert env.read_text() == ('# keep\nLANG="C.UTF-8"\n'
                               'NODE="0123456789abcdef0123456789abcdef"\n')
    assert stat.S_IMODE(os.stat(env).st_mode) == 0o640
    drop_in = target / "etc" / "systemd" / "timesyncd.conf.d" / "10-yip.conf"
    assert drop_in.read_text() == "[Time]\nNTP = 0.pool\n"
    assert stat.S_IMODE(os.stat(drop_in).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(drop_in.parent).st_mode) == 0o755
    again = run_step(step, target, dry_run=False)
    assert again.changes == [] and not again.entry.changed
