"""The VM harness (issue 6): one image per session, its disks and boots as fixtures.

Everything heavy happens in a scratch directory outside the repository
($EDGEINIT_E2E_WORK, default /var/tmp/edgeinit-e2e) and the rootfs tarball is cached in
$EDGEINIT_E2E_CACHE (default /var/cache/edgeinit-e2e), keyed on its package list.
The layer skips itself, saying why, when it cannot run: not root, or qemu/mmdebstrap/
sfdisk missing (`apt-get install qemu-system-x86 mmdebstrap fdisk`), or
EDGEINIT_E2E=0. Run it alone with `.venv/bin/pytest -m e2e tests/e2e`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import vm

TIMINGS: dict[str, float] = {}
BOOTS: dict[str, vm.Boot] = {}

# The failure scenario's extra OEM files: one that is not YAML at all, one whose first
# step fails (a command exits 1) while its second step still applies.
MALFORMED = "stages:\n  boot:\n    - name: [unclosed\n"
FAILING = """\
name: "e2e failure scenario"
stages:
  boot:
    - name: "failing step"
      commands:
        - "false"
    - name: "after the failing step"
      files:
        - path: /etc/e2e-after-failure
          content: "applied after a failure\\n"
          permissions: 0644
"""
FAILURE_OEM = {"90_malformed.yaml": MALFORMED, "91_failing.yaml": FAILING}


def _skip_reason() -> str | None:
    if os.environ.get("EDGEINIT_E2E", "1") == "0":
        return "e2e boots disabled by EDGEINIT_E2E=0"
    if os.geteuid() != 0:
        return "e2e needs root (mmdebstrap --mode=root, chroot, dracut, mkfs.ext4 -d owners)"
    missing = vm.missing_tools()
    if missing:
        return ("e2e needs " + ", ".join(missing)
                + ": apt-get install qemu-system-x86 mmdebstrap fdisk")
    return None


@pytest.fixture(scope="session")
def e2e_work() -> Iterator[Path]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    work = vm.work_dir()
    work.mkdir(parents=True, exist_ok=True)
    # One e2e session at a time per work directory (a second one waits).
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield work


@pytest.fixture(scope="session")
def built(e2e_work: Path):
    t = time.monotonic()
    b = vm.build_image(e2e_work)
    TIMINGS.update({f"build.{k}": v for k, v in b.timings.items()})
    TIMINGS["build.total"] = time.monotonic() - t
    yield b
    if os.environ.get("EDGEINIT_E2E_KEEP") != "1":
        for p in (b.state_img, b.persistent_img):
            p.unlink(missing_ok=True)


def _disk(built, work: Path, spec: vm.ImageSpec):
    t = time.monotonic()
    disk = vm.make_disk(built, work, spec)
    TIMINGS[f"disk.{spec.name}"] = time.monotonic() - t
    return disk


def _boot(built, disk: Path, name: str, work: Path, append: str = "") -> vm.Boot:
    b = vm.boot(built, disk, name, work, append)
    TIMINGS[f"boot.{name}"] = b.seconds
    BOOTS[name] = b
    return b


@pytest.fixture(scope="session")
def main_disk(built, e2e_work: Path):
    disk = _disk(built, e2e_work, vm.ImageSpec("main"))
    yield disk
    if os.environ.get("EDGEINIT_E2E_KEEP") != "1":
        disk.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def boot1(built, main_disk: Path, e2e_work: Path) -> vm.Boot:
    return _boot(built, main_disk, "first", e2e_work)


@pytest.fixture(scope="session")
def boot2(built, main_disk: Path, e2e_work: Path, boot1: vm.Boot) -> vm.Boot:
    """The same disk again, after the first boot wrote its markers."""
    return _boot(built, main_disk, "second", e2e_work)


@pytest.fixture(scope="session")
def failure_boot(built, e2e_work: Path) -> vm.Boot:
    disk = _disk(built, e2e_work, vm.ImageSpec("failure", oem_files=FAILURE_OEM))
    try:
        return _boot(built, disk, "failure", e2e_work)
    finally:
        if os.environ.get("EDGEINIT_E2E_KEEP") != "1":
            disk.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def disabled_boot(built, e2e_work: Path) -> vm.Boot:
    """A fresh disk booted with edgeinit.disable on the kernel command line."""
    disk = _disk(built, e2e_work, vm.ImageSpec("disabled"))
    try:
        return _boot(built, disk, "disabled", e2e_work, append="edgeinit.disable")
    finally:
        if os.environ.get("EDGEINIT_E2E_KEEP") != "1":
            disk.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter) -> None:
    if not TIMINGS:
        return
    tr = terminalreporter
    tr.section("e2e timings and boots")
    for k, v in TIMINGS.items():
        tr.write_line(f"{k:<28} {v:7.1f} s")
    for name, b in BOOTS.items():
        tr.write_line(f"boot {name}: qemu exit {b.returncode}, {len(b.checks)} checks, "
                      f"console {b.log_path}")
        for line in _blame(b):
            tr.write_line(f"  {line}")
    with contextlib.suppress(OSError):
        (vm.work_dir() / "timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")


def _blame(b: vm.Boot) -> list[str]:
    """systemd-analyze blame's lines for edgeinit's units, and the initrd units' times
    from the journal (blame knows only the real root's units)."""
    lines = []
    with contextlib.suppress(KeyError, ValueError):
        lines += b.json("blame")
    for unit in ("sysroot-oem.mount", "edgeinit-rootfs.service",
                 "edgeinit-mount-layout.service", "edgeinit-initramfs.service"):
        with contextlib.suppress(KeyError, ValueError, StopIteration):
            ev = b.json(f"unit.{unit}")
            start = next(e["us"] for e in ev if e["event"] == "starting")
            end = next(e["us"] for e in ev if e["event"] in ("started", "failed"))
            lines.append(f"{(end - start) / 1e6:.3f}s {unit} (initrd, from the journal)")
    with contextlib.suppress(KeyError):
        lines.append(b.checks["analyze_time"])
    return lines
