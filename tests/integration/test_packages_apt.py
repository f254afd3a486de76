"""`packages` / `package_pins` with the real apt, in a Debian bookworm chroot (as root).

The chroot is built once by mmdebstrap (variant apt) into a tarball in a cache outside
the repository (EDGEINIT_TEST_CACHE, default /var/tmp/edgeinit-test-cache), keyed on
its suite, variant, package list and mirror; each test unpacks a fresh copy into its
temp dir. The mirror is the one this machine's apt already uses, read at run time from
/etc/apt/sources.list.d/debian.sources (or /etc/apt/sources.list). apt-get runs
chrooted by `edgeinit run --root` without /proc or /dev mounted (hello and sl install
fine without them); the host's /etc/resolv.conf is copied into the copy for DNS.
Skipped, with the reason, when not root, without mmdebstrap, or when the mirror does
not answer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT

SUITE = "bookworm"
VARIANT = "apt"
INCLUDE: tuple[str, ...] = ()
CACHE = Path(os.environ.get("EDGEINIT_TEST_CACHE", "/var/tmp/edgeinit-test-cache"))

pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="needs root (mmdebstrap, chroot)"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None,
                       reason="mmdebstrap is not installed (Debian package mmdebstrap)"),
]


def debian_mirror() -> str | None:
    """The URI this machine's apt uses for Debian `SUITE`."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            fields = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith("#"):
                    fields[key.strip().lower()] = value.split()
            if "deb" in fields.get("types", []) and SUITE in fields.get("suites", []):
                return fields["uris"][0].rstrip("/") if fields.get("uris") else None
    plain = Path("/etc/apt/sources.list")
    if plain.exists():
        for line in plain.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                return parts[1].rstrip("/")
    return None


def reachable(mirror: str) -> str | None:
    """None when the mirror serves SUITE's Release file, else why not."""
    try:
        with urllib.request.urlopen(f"{mirror}/dists/{SUITE}/Release", timeout=15) as r:
            r.read(1)
    except (OSError, ValueError) as e:
        return str(e)
    return None


@pytest.fixture(scope="session")
def chroot_tarball() -> Path:
    mirror = debian_mirror()
    if mirror is None:
        pytest.skip(f"no Debian {SUITE} mirror in this machine's apt sources")
    why = reachable(mirror)
    if why:
        pytest.skip(f"the Debian mirror does not answer: {why}")
    key = hashlib.sha256(repr((SUITE, VARIANT, INCLUDE, mirror)).encode()).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"{SUITE}-{VARIANT}-{key}.tar"
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, across test runs
        if not tarball.exists():
            # mmdebstrap picks the format by the suffix: it must end in .tar
            partial = tarball.with_name(f"{tarball.stem}.partial.tar")
            cmd = ["mmdebstrap", "--quiet", f"--variant={VARIANT}", "--mode=root"]
            if INCLUDE:
                cmd.append("--include=" + ",".join(INCLUDE))
            proc = subprocess.run([*cmd, SUITE, str(partial), f"deb {mirror} {SUITE} main"],
                                  capture_output=True, text=True, timeout=900, check=False)
            if proc.returncode != 0:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
                pytest.fail(f"mmdebstrap failed: {proc.stderr[-2000:]}")
            os.replace(partial, tarball)
    return tarball


@pytest.fixture
def chroot(chroot_tarball: Path, tmp_path: Path) -> Path:
    root = tmp_path / "debian"
    root.mkdir()
    subprocess.run(["tar", "-C", str(root), "-xf", str(chroot_tarball)], check=True,
                   timeout=300)
    with contextlib.suppress(OSError):
        (root / "etc" / "resolv.conf").unlink()
        shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
    return root


def in_chroot(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True,
                          check=False, timeout=120)


def dpkg_status(root: Path, name: str) -> str:
    proc = in_chroot(root, "dpkg-query", "-W", "-f=${db:Status-Status}", name)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def run(cli, write, root: Path, name: str, body: str) -> tuple[int, list[dict], str]:
    src = write(f"{name}.yaml", f"stages:\n  boot:\n{body}")
    res = cli("run", "--stage", "boot", "--root", root, "--json", src)
    return res.code, res.json()["steps"], res.err


REFRESH = "    - name: index\n      packages: {refresh: true}\n"


def test_install_and_remove_with_apt_and_a_second_run_changes_nothing(cli, write,
                                                                      chroot) -> None:
    assert dpkg_status(chroot, "hello") == "unknown"
    code, steps, err = run(cli, write, chroot, "refresh", REFRESH)
    assert code == 0, err
    assert steps[0]["changed"] and "apt-get -y -q update" in steps[0]["changes"][0]

    install = "    - name: install\n      packages: {install: [hello, sl]}\n"
    code, steps, err = run(cli, write, chroot, "install", install)
    assert code == 0, err
    assert steps[0]["status"] == "ok" and steps[0]["changed"]
    assert steps[0]["changes"][0].endswith("--no-install-recommends install hello sl")
    assert dpkg_status(chroot, "hello") == "installed"
    assert (chroot / "usr" / "bin" / "hello").exists()
    assert in_chroot(chroot, "hello").stdout.strip() == "Hello, world!"

    code, steps, err = run(cli, write, chroot, "install", install)
    assert code == 0 and not steps[0]["changed"] and steps[0]["changes"] == [], err

    remove = "    - name: remove\n      packages: {remove: [hello]}\n"
    code, steps, err = run(cli, write, chroot, "remove", remove)
    assert code == 0 and steps[0]["changed"], err
    assert dpkg_status(chroot, "hello") in ("not-installed", "config-files", "unknown")
    assert not (chroot / "usr" / "bin" / "hello").exists()
    assert dpkg_status(chroot, "sl") == "installed"
    code, steps, err = run(cli, write, chroot, "remove", remove)
    assert code == 0 and not steps[0]["changed"] and steps[0]["changes"] == [], err


def test_unknown_package_fails_by_name_and_installs_nothing(cli, write, chroot) -> None:
    assert run(cli, write, chroot, "refresh", REFRESH)[0] == 0
    body = ("    - name: bad\n"
            "      packages: {install: [hello, edgeinit-no-such-package]}\n")
    code, steps, _ = run(cli, write, chroot, "bad", body)
    assert code == 1 and steps[0]["status"] == "failed" and steps[0]["name"] == "bad"
    assert steps[0]["error"] == (
        "packages: apt knows no package 'edgeinit-no-such-package' (not in the target's "
        "package index; refresh: true updates it); nothing installed")
    assert dpkg_status(chroot, "hello") == "unknown"


def test_apt_pin_is_honoured_by_apt(cli, write, chroot) -> None:
    """The pin file makes apt give the pinned version priority 1001."""
    assert run(cli, write, chroot, "refresh", REFRESH)[0] == 0
    policy = in_chroot(chroot, "apt-cache", "policy", "hello").stdout
    version = re.search(r"Candidate:\s*(\S+)", policy)
    assert version, policy
    body = f"    - name: pin\n      package_pins: {{hello: '{version.group(1)}'}}\n"
    code, steps, err = run(cli, write, chroot, "pin", body)
    assert code == 0 and steps[0]["changed"], err
    assert (chroot / "etc/apt/preferences.d/edgeinit-hello.pref").exists()
    pinned = in_chroot(chroot, "apt-cache", "policy", "hello").stdout
    assert re.search(rf"{re.escape(version.group(1))} 1001\n", pinned), pinned
    code, steps, _ = run(cli, write, chroot, "pin", body)
    assert code == 0 and not steps[0]["changed"]


def test_no_package_manager_in_the_target(cli, write, shell_target) -> None:
    code, steps, _ = run(cli, write, shell_target, "none",
                         "    - name: pk\n      packages: {install: [hello]}\n")
    assert code == 1 and steps[0]["status"] == "failed"
    assert steps[0]["error"].startswith("packages: no package manager found in the target ")
