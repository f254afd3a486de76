"""The repository's front door: the samples, samples/try, README.md and .ci/run.

- The samples validate (cleanly, or with exactly the findings they are meant to show).
- The Elemental-style /system/oem set runs its stages on a scratch root, idempotently.
- README.md's test command is exactly what .ci/run runs.
- samples/try (the README's first command) works and leaves the host alone.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, REPO, SAMPLES

ELEMENTAL = SAMPLES / "elemental" / "system" / "oem"
CLOUD_CONFIG = SAMPLES / "cloud-config" / "user-data.yaml"
DERIVATIVE = SAMPLES / "derivative" / "system" / "oem"
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"
USAGE = REPO / "docs" / "usage.md"


def readme_commands() -> list[str]:
    """The shell commands of README.md's fenced ```sh blocks, in order."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", README.read_text(), flags=re.M | re.S)
    return [block.strip() for block in blocks]


# -- validate ------------------------------------------------------------------------


@pytest.mark.parametrize("sample", [ELEMENTAL, CLOUD_CONFIG], ids=["elemental", "cloud-config"])
def test_sample_validates_cleanly(cli, sample):
    result = cli("validate", sample)
    assert (result.code, result.out) == (0, ""), result.out + result.err


def test_derivative_sample_shows_exactly_the_unsupported_keys(cli):
    """validate reports the sample's keys whose plugin is not implemented yet, in file
    order, and nothing else (the list shrinks as the plugins land)."""
    import yaml

    from edgeinit import plugins

    doc = yaml.safe_load((DERIVATIVE / "cloud-init.yaml").read_text())
    step_keys = [key for stage in ("initramfs", "rootfs.after", "network")
                 for step in doc["stages"][stage] for key in step]
    expected = [k for k in step_keys if k in plugins.KEY_OWNER
                and plugins.load(plugins.KEY_OWNER[k]).plan is None]
    result = cli("validate", DERIVATIVE)
    assert result.code == (1 if expected else 0)
    where = re.escape(str(DERIVATIVE / "cloud-init.yaml"))
    keys = []
    for line in result.out.splitlines():
        found = re.fullmatch(where + r":\d+:\d+: key '(\w+)' is not supported by edgeinit "
                             r"yet \(tracked in #\d+\)", line)
        assert found, line
        keys.append(found[1])
    assert keys == expected


def test_elemental_sample_uses_only_implemented_keys():
    """Only keys with an implementation (validate would also say so; this names them)."""
    import yaml

    from edgeinit import plugins

    used = set()
    for path in sorted(ELEMENTAL.glob("*.yaml")):
        for steps in yaml.safe_load(path.read_text())["stages"].values():
            for step in steps:
                used |= {plugins.KEY_OWNER[k] for k in step if k in plugins.KEY_OWNER}
    assert used and all(plugins.load(name).plan is not None for name in used), used


# -- the Elemental set on a scratch root ---------------------------------------------


def run_elemental(cli, root: Path, stage: str) -> dict:
    result = cli("run", "--stage", stage, "--root", root, "--json", ELEMENTAL)
    assert result.code == 0, result.out + result.err
    report = result.json()
    assert report["ok"] is True
    return report


def test_elemental_stages_run_on_a_scratch_root_and_again_change_nothing(cli, shell_target):
    root = shell_target
    first = {s: run_elemental(cli, root, s) for s in ("rootfs", "initramfs", "boot")}

    assert (root / "etc/hostname").read_text() == "node-0123\n"  # machine-id 0123456789...
    assert "127.0.0.1 localhost node-0123" in (root / "etc/hosts").read_text()
    layout = (root / "run/cos/cos-layout.env").read_text()
    assert 'VOLUMES="LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local"' in layout
    assert 'PERSISTENT_STATE_BIND="true"' in layout
    assert "RECOVERY" not in (root / "etc/issue").read_text()
    assert stat.S_IMODE((root / "etc/issue").stat().st_mode) == 0o644
    assert "nameserver 9.9.9.9" in (root / "etc/resolv.conf").read_text()
    assert "NTP = 0.pool.ntp.org" in (
        root / "etc/systemd/timesyncd.conf.d/10-yip.conf").read_text()
    by_name = {s["name"]: s for r in first.values() for s in r["steps"]}
    assert by_name["Layout in recovery"]["status"] == "skipped"
    assert by_name["Locale, keymap and time zone"]["status"] == "skipped"  # no firstboot
    assert by_name["Layout"]["changed"] and by_name["Hostname"]["changed"]

    for stage in ("rootfs", "initramfs", "boot"):
        again = run_elemental(cli, root, stage)
        changed = [s["name"] for s in again["steps"] if s["changed"]]
        assert changed == [], f"{stage}: second run changed {changed}"


def test_elemental_recovery_boot_gets_the_recovery_layout(cli, shell_target):
    root = shell_target
    (root / "run/cos").mkdir(parents=True)
    (root / "run/cos/recovery_mode").write_text("")
    run_elemental(cli, root, "rootfs")
    run_elemental(cli, root, "initramfs")
    layout = (root / "run/cos/cos-layout.env").read_text()
    assert 'VOLUMES="LABEL=COS_OEM:/oem"' in layout
    assert "PERSISTENT_STATE_PATHS" not in layout
    assert "RECOVERY" in (root / "etc/issue").read_text()


def test_elemental_run_warns_only_about_the_scratch_root(cli, shell_target):
    """No false alarm: `permissions: 0644` is the octal mode YAML reads as 420."""
    warnings = [w for s in ("rootfs", "initramfs", "boot")
                for step in run_elemental(cli, shell_target, s)["steps"]
                for w in step["warnings"]]
    assert all("the root is not /" in w for w in warnings), warnings


# -- the cloud-config sample ---------------------------------------------------------


def test_cloud_config_sample_converts_as_documented(cli, target):
    """hostname -> initramfs; write_files + runcmd -> one boot step; stages: kept."""
    (target / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (target / "etc/group").write_text("root:x:0:\n")
    initramfs = cli("run", "--stage", "initramfs", "--root", target, "--dry-run", "--json",
                    CLOUD_CONFIG).json()
    assert [s["name"] for s in initramfs["steps"]] == ["0", "Time servers"]
    assert any("edge-0123" in line for line in initramfs["steps"][0]["diff"].splitlines())
    boot = cli("run", "--stage", "boot", "--root", target, "--dry-run", "--json",
               CLOUD_CONFIG).json()
    assert len(boot["steps"]) == 1 and boot["ok"], boot
    changes = boot["steps"][0]["changes"]
    assert [c.split()[0] for c in changes] == ["create", "mkdir", "create", "run:", "run:"]
    assert not (target / "etc/motd").exists()  # a dry run


# -- README.md and .ci/run -----------------------------------------------------------


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    commands = readme_commands()
    assert len(commands) >= 2
    try_cmd, test_cmd = commands[:2]
    assert text.index(try_cmd) < text.index(test_cmd) < text.index("\n## ")
    assert try_cmd.endswith("samples/try") and "\n" not in try_cmd
    assert "ruff check" in test_cmd and "pytest" in test_cmd and "\n" not in test_cmd


def test_ci_run_runs_exactly_the_readme_test_command():
    test_cmd = readme_commands()[1]
    lines = CI_RUN.read_text().splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "set -eu" in lines
    assert os.stat(CI_RUN).st_mode & stat.S_IXUSR
    assert test_cmd in lines, f".ci/run does not contain README's test command:\n{test_cmd}"
    assert lines[-1] == test_cmd  # last, so its exit status is the script's


def test_usage_doc_names_every_option_and_environment_variable():
    from edgeinit.cli import COMMANDS

    doc = USAGE.read_text()
    for name, command in COMMANDS.items():
        assert f"## `edgeinit {name}`" in doc
        for option in command.options:
            for spelling in option.names:
                assert f"`{spelling}" in doc, f"docs/usage.md does not mention {name} {spelling}"
    variables = set()
    for path in (REPO / "edgeinit").rglob("*.py"):
        variables |= set(re.findall(r"\bEDGEINIT_[A-Z_]+\b", path.read_text()))
    missing = sorted(v for v in variables if v not in doc)
    assert not missing, f"docs/usage.md does not mention {missing}"


# -- samples/try ---------------------------------------------------------------------


def _namespaces_allowed() -> bool:
    unshare = shutil.which("unshare")
    return unshare is not None and subprocess.run(
        [unshare, "--mount", "--propagation", "private", "true"],
        capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not IS_ROOT, reason="samples/try runs the sample's commands only as root")
@pytest.mark.skipif(IS_ROOT and not _namespaces_allowed(),
                    reason="no private mount namespace here (unshare --mount not permitted)")
def test_samples_try_runs_from_anywhere_and_leaves_the_host_alone(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("EDGEINIT_STATE_DIR", None)
    proc = subprocess.run([str(SAMPLES / "try")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for expected in (
        "stage rootfs: 1 ok, 0 skipped, 0 failed",
        "derivative\n",
        "127.0.0.1 localhost derivative",
        'OVERLAY="tmpfs:25%"',
        "mode 600, owner root:root",
        "locked (passwd -l root ran)",
        "Host untouched",
        "Every step of rootfs and initramfs succeeded or was skipped by its condition.",
        "stage initramfs: 5 ok, 0 skipped, 0 failed",
    ):
        assert expected in out, f"{expected!r} not in the output:\n{out}"
    assert re.search(r"^  \+ -rw------- root:root +etc/sudoers$", out, flags=re.M), out
    assert "UNEXPECTED" not in out
    assert list(tmp_path.iterdir()) == [], "samples/try left its scratch directory behind"
