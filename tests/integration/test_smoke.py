"""The seed's derivative config end to end on a scratch root (the issue's first check)."""

from __future__ import annotations

from tests.conftest import SAMPLES


def test_initramfs_writes_files_and_second_run_changes_nothing(cli, shell_target):
    sample = SAMPLES / "derivative" / "system" / "oem"
    first = cli("run", "--stage", "initramfs", "--root", shell_target, "--json", sample)
    report = first.json()
    by_name = {s["name"]: s for s in report["steps"]}
    assert by_name["Branding"]["status"] == "ok" and by_name["Branding"]["changed"]
    assert (shell_target / "etc" / "hostname").read_text() == "derivative\n"
    assert (shell_target / "etc" / "sudoers").stat().st_mode & 0o7777 == 0o600
    second = cli("run", "--stage", "initramfs", "--root", shell_target, "--json", sample).json()
    for step in second["steps"]:
        if step["name"] in ("Branding", "Network setup"):
            assert step["changed"] is False, step
