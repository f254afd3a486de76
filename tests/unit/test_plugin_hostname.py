"""`hostname` (yip-behaviour 3.5, SPEC 1 `--root`, 7.5, 7.13).

/etc/hostname, the 127.0.0.1 line of /etc/hosts (other lines and the file's mode kept,
a line added when there is none), the kernel name only on the running system, and
templates over the target's machine-id that stay stable across runs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
import stat
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from edgeinit.target.changes import SetKernelHostname, WriteFile
from tests.conftest import needs_root
from tests.unit.plugin_harness import StepRun, fake_root_user, run_step

T = "/target"
MACHINE_ID = "0123456789abcdef0123456789abcdef"
HOSTS = "127.0.0.1\tlocalhost\n127.0.1.1\told-name\n::1\tlocalhost ip6-localhost\n# keep me\n"


def _setup(fs: FakeFilesystem, base: str, hostname: str | None = "old-name\n",
           hosts: str | None = HOSTS) -> None:
    fake_root_user()
    fs.create_file(f"{base}/etc/machine-id", contents=MACHINE_ID + "\n")
    if hostname is not None:
        fs.create_file(f"{base}/etc/hostname", contents=hostname)
    if hosts is not None:
        fs.create_file(f"{base}/etc/hosts", contents=hosts)
        os.chmod(f"{base}/etc/hosts", 0o600)


@pytest.fixture
def fake(fs: FakeFilesystem) -> str:
    fake_root_user()
    _setup(fs, T)
    return T


def _writes(run: StepRun) -> dict[str, WriteFile]:
    return {w.path: w for w in run.of(WriteFile)}


def test_hostname_and_hosts_planned(fake: str) -> None:
    """yip: /etc/hostname `NAME\\n`; the 127.0.0.1 line becomes `127.0.0.1 localhost NAME`."""
    run = run_step("hostname: node1", fake)
    assert run.status == "ok", run.error
    w = _writes(run)
    assert list(w) == ["/etc/hostname", "/etc/hosts"]
    assert w["/etc/hostname"].content == b"node1\n"
    assert w["/etc/hosts"].content == (
        b"127.0.0.1 localhost node1\n127.0.1.1\told-name\n::1\tlocalhost ip6-localhost\n"
        b"# keep me\n")


def test_hosts_keeps_its_mode(fake: str) -> None:
    """SPEC 7.5: /etc/hosts keeps its mode (0600 here), and its owner."""
    w = _writes(run_step("hostname: node1", fake))["/etc/hosts"]
    assert (w.mode, w.uid, w.gid) == (0o600, os.getuid(), os.getgid())


def test_not_live_root_warns_instead_of_setting_the_kernel_name(fake: str) -> None:
    """SPEC 1: under a root other than / the kernel hostname is left out, with a warning."""
    run = run_step("hostname: node1", fake)
    assert run.of(SetKernelHostname) == []
    assert run.warnings == ["kernel hostname not set: the root is not /"]
    assert run.status == "ok"


def test_live_root_sets_the_kernel_hostname_last(fs: FakeFilesystem) -> None:
    """On / (here a fake /), after the files: sethostname, planned only (dry run)."""
    _setup(fs, "")
    name = "edgeinit-test-" + ("a" if socket.gethostname() != "edgeinit-test-a" else "b")
    run = run_step(f"hostname: {name}", "/", dry_run=True)
    assert run.changes[-1] == SetKernelHostname(name)
    assert run.warnings == []
    assert run.entry.changes[-1] == f"set the kernel hostname to {name}"


def test_live_root_with_the_kernel_name_already_set(fs: FakeFilesystem) -> None:
    """No sethostname when the kernel already has the name."""
    current = socket.gethostname()
    _setup(fs, "", hostname=current + "\n", hosts=f"127.0.0.1 localhost {current}\n")
    run = run_step({"hostname": current}, "/", dry_run=True)
    assert run.changes == []


def test_hosts_without_a_127_line_gets_one(fs: FakeFilesystem) -> None:
    """SPEC 7.5: yip adds nothing; edgeinit adds `127.0.0.1 localhost NAME`, keeping the rest."""
    _setup(fs, T, hosts="::1 localhost\n10.0.0.1 server\n")
    w = _writes(run_step("hostname: node1", T))
    assert w["/etc/hosts"].content == b"127.0.0.1 localhost node1\n::1 localhost\n10.0.0.1 server\n"


def test_every_127_line_is_replaced(fs: FakeFilesystem) -> None:
    """yip: any line whose first field is exactly 127.0.0.1 (whitespace trimmed) is replaced."""
    _setup(fs, T, hosts="  127.0.0.1 boo\n127.0.0.10 other\n127.0.0.1\tfoo bar\n")
    w = _writes(run_step("hostname: bar", T))
    assert w["/etc/hosts"].content == (
        b"127.0.0.1 localhost bar\n127.0.0.10 other\n127.0.0.1 localhost bar\n")


def test_missing_files_are_created(fs: FakeFilesystem) -> None:
    """No /etc/hostname or /etc/hosts: both created 0644 root:root."""
    _setup(fs, T, hostname=None, hosts=None)
    w = _writes(run_step("hostname: node1", T))
    assert (w["/etc/hostname"].content, w["/etc/hostname"].mode) == (b"node1\n", 0o644)
    assert w["/etc/hosts"].content == b"127.0.0.1 localhost node1\n"
    assert (w["/etc/hosts"].mode, w["/etc/hosts"].uid) == (0o644, 0)


@pytest.mark.parametrize("name", ["bad_name", "-lead", "trail-", "a..b", "a" * 64, "sp ace",
                                  "x" * 30 + "." + "y" * 40])
def test_invalid_hostname_fails_and_changes_nothing(fake: str, name: str) -> None:
    """A name that is not a valid hostname fails the step before touching any file."""
    run = run_step({"hostname": name}, fake)
    assert run.status == "failed"
    assert "is not a valid hostname" in run.error
    assert run.changes == []


def test_same_name_is_no_change(fs: FakeFilesystem) -> None:
    """SPEC 7.13: the second run of the same hostname changes nothing."""
    _setup(fs, T, hostname="node1\n", hosts="127.0.0.1 localhost node1\n::1 localhost\n")
    run = run_step("hostname: node1", T)
    assert run.changes == [] and not run.entry.changed


@pytest.mark.parametrize("template", ["node-{{ trunc 4 .MachineID }}",
                                      "node-{{ .MachineID | trunc 4 }}",
                                      "node-{{trunc 4 .MachineID}}"])
def test_machine_id_template_uses_the_targets_machine_id(fake: str, template: str) -> None:
    """`{{ trunc 4 .MachineID }}` is the first 4 characters of the target's /etc/machine-id."""
    w = _writes(run_step({"hostname": template}, fake))
    assert w["/etc/hostname"].content == b"node-0123\n"


def test_protected_id_template(fake: str) -> None:
    """.ProtectedID: hex HMAC-SHA256 of "yip" keyed by the machine id (yip's machineid lib)."""
    expected = hmac.new(MACHINE_ID.encode(), b"yip", hashlib.sha256).hexdigest()[:8]
    w = _writes(run_step({"hostname": "n-{{ trunc 8 .ProtectedID }}"}, fake))
    assert w["/etc/hostname"].content == f"n-{expected}\n".encode()


def test_random_template_keeps_a_name_that_already_fits(fs: FakeFilesystem) -> None:
    """SPEC 7.13: `node-{{ trunc 4 .Random }}` keeps `node-ab12`; nothing changes."""
    _setup(fs, T, hostname="node-ab12\n", hosts="127.0.0.1 localhost node-ab12\n")
    run = run_step({"hostname": "node-{{ trunc 4 .Random }}"}, T)
    assert run.status == "ok"
    assert run.changes == []


def test_random_template_draws_a_name_when_the_current_one_does_not_fit(fake: str) -> None:
    """`old-name` does not fit `node-XXXX`: a fresh random part of 4 [0-9a-z]."""
    run = run_step({"hostname": "node-{{ trunc 4 .Random }}"}, fake)
    content = _writes(run)["/etc/hostname"].content.decode()
    assert re.fullmatch(r"node-[0-9a-z]{4}\n", content), content
    name = content.strip()
    assert _writes(run)["/etc/hosts"].content.startswith(f"127.0.0.1 localhost {name}\n".encode())


def test_random_fits_only_with_the_right_length(fs: FakeFilesystem) -> None:
    """`node-abc` is too short for trunc 4: it does not fit, a new name is drawn."""
    _setup(fs, T, hostname="node-abc\n")
    content = _writes(run_step({"hostname": "node-{{ trunc 4 .Random }}"}, T))[
        "/etc/hostname"].content.decode()
    assert re.fullmatch(r"node-[0-9a-z]{4}\n", content)


def test_uuid_template_and_its_stability(fs: FakeFilesystem) -> None:
    """{{ .UUID }} gives a v4 UUID; a name that is already a UUID is kept."""
    _setup(fs, T)
    content = _writes(run_step({"hostname": "{{ .UUID }}"}, T))["/etc/hostname"].content
    assert re.fullmatch(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\n",
                        content)
    name = content.decode().strip()
    fs.remove(f"{T}/etc/hostname")
    fs.remove(f"{T}/etc/hosts")
    fs.create_file(f"{T}/etc/hostname", contents=name + "\n")
    fs.create_file(f"{T}/etc/hosts", contents=f"127.0.0.1 localhost {name}\n")
    assert run_step({"hostname": "{{ .UUID }}"}, T).changes == []


def test_values_are_not_available_in_hostnames(fake: str) -> None:
    """yip's hostname data has no .Values: the expression is not understood, the step fails."""
    run = run_step({"hostname": "{{ .Values.node.hostname }}"}, fake)
    assert run.status == "failed"
    assert any("not understood" in w for w in run.warnings)
    assert run.changes == []


# ---------------------------------------------------------------- applied


@needs_root
def test_apply_on_a_tmp_root(target: Path) -> None:
    """Applied under --root: files written, hosts mode kept, a second run changes nothing."""
    hosts = target / "etc" / "hosts"
    hosts.chmod(0o640)
    step = {"hostname": "edge-{{ trunc 6 .MachineID }}"}
    run = run_step(step, target, dry_run=False)
    assert run.status == "ok", run.error
    assert (target / "etc" / "hostname").read_text() == "edge-012345\n"
    assert hosts.read_text() == "127.0.0.1 localhost edge-012345\n::1\tlocalhost ip6-localhost\n"
    assert stat.S_IMODE(os.stat(hosts).st_mode) == 0o640
    again = run_step(step, target, dry_run=False)
    assert again.changes == [] and not again.entry.changed
