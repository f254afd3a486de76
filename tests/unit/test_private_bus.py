"""The private_bus fixture really starts a bus that a D-Bus client can talk to."""

from __future__ import annotations

import subprocess


def test_busctl_lists_the_bus_itself(private_bus) -> None:
    address = private_bus()
    out = subprocess.run(["busctl", f"--address={address}", "list", "--no-pager"],
                         capture_output=True, text=True, timeout=10, check=False)
    assert out.returncode == 0, out.stderr
    assert "org.freedesktop.DBus" in out.stdout
