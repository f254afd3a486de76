"""The dracut module dracut/90edgeinit, without a VM: module-setup.sh's functions run
under bash with dracut's helpers stubbed (the files land in a scratch initdir, the
units are enabled by the real `systemctl --root`), and the OEM generator run against
faked kernel command lines. The real thing, `dracut --add edgeinit` and a boot, is in
test_boot.py (marker e2e); these are quick and run everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e import vm

MODULE = vm.REPO / "dracut/90edgeinit"
GENERATOR = MODULE / "edgeinit-generator.sh"
INITRD_UNITS = ["edgeinit-rootfs.service", "edgeinit-mount-layout.service",
                "edgeinit-initramfs.service"]

GENERATOR_NEEDS = ["sh", "mkdir", "ln", "systemd-escape"]

needs_systemd_tools = pytest.mark.skipif(
    not (shutil.which("systemd-escape") and shutil.which("systemctl")),
    reason="needs systemd-escape and systemctl (package systemd)")


def module_dir(tmp_path: Path) -> Path:
    """The module as installed: dracut/90edgeinit plus the initrd files of systemd/."""
    root = tmp_path / "sysroot"
    vm.install_dracut_module(root)
    return root / "usr/lib/dracut/modules.d/90edgeinit"


STUBS = r"""
set -u
derror() { echo "derror: $*" >&2; }
inst_multiple() { echo "inst_multiple $*" >> "$initdir/.calls"; }
inst_simple() { mkdir -p "$initdir$(dirname "$2")"; cp "$1" "$initdir$2"; }
inst_script() { inst_simple "$1" "$2"; chmod 755 "$initdir$2"; }
systemdsystemunitdir=/usr/lib/systemd/system
systemdutildir=/usr/lib/systemd
SYSTEMCTL=systemctl
"""


def run_module(moddir: Path, initdir: Path, call: str) -> subprocess.CompletedProcess:
    script = STUBS + f'. "$moddir/module-setup.sh"\n{call}\n'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "moddir": str(moddir), "initdir": str(initdir)})


def test_module_is_included_only_when_named(tmp_path: Path) -> None:
    moddir = module_dir(tmp_path)
    r = run_module(moddir, tmp_path, "check; echo check=$?; depends")
    assert r.stdout.split() == ["check=255", "systemd"], r


@needs_systemd_tools
def test_module_installs_units_helper_generator_and_wants(tmp_path: Path) -> None:
    moddir, initdir = module_dir(tmp_path), tmp_path / "initrd"
    initdir.mkdir()
    r = run_module(moddir, initdir, "install")
    assert r.returncode == 0, r.stderr
    units = initdir / "usr/lib/systemd/system"
    for unit in INITRD_UNITS:
        assert (units / unit).read_bytes() == (moddir / unit).read_bytes()
    helper = initdir / "usr/lib/edgeinit/edgeinit-initrd-run"
    assert helper.read_bytes() == (vm.REPO / "systemd/edgeinit-initrd-run").read_bytes()
    assert os.access(helper, os.X_OK)
    assert os.access(initdir / "usr/lib/systemd/system-generators/edgeinit-generator", os.X_OK)
    wants = {p.parent.name + "/" + p.name: os.readlink(p)
             for p in (initdir / "etc/systemd/system").glob("*.wants/*")}
    assert wants == {
        "initrd-fs.target.wants/edgeinit-rootfs.service":
            "/usr/lib/systemd/system/edgeinit-rootfs.service",
        "initrd-fs.target.wants/edgeinit-mount-layout.service":
            "/usr/lib/systemd/system/edgeinit-mount-layout.service",
        "initrd.target.wants/edgeinit-initramfs.service":
            "/usr/lib/systemd/system/edgeinit-initramfs.service",
    }
    binaries = (initdir / ".calls").read_text().split()
    assert {"mount", "umount", "chroot", "blkid", *GENERATOR_NEEDS} <= set(binaries)


def test_module_refuses_to_install_without_its_files(tmp_path: Path) -> None:
    moddir, initdir = module_dir(tmp_path), tmp_path / "initrd"
    initdir.mkdir()
    (moddir / "edgeinit-rootfs.service").unlink()
    r = run_module(moddir, initdir, "install; echo rc=$?")
    assert "rc=1" in r.stdout and "edgeinit-rootfs.service is missing" in r.stderr, r


def generate(tmp_path: Path, cmdline: str, conf: str | None = None) -> Path:
    out = tmp_path / "gen"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    files = str(tmp_path / "cmdline")
    if conf is not None:
        (tmp_path / "conf.d").mkdir(exist_ok=True)
        (tmp_path / "conf.d/10-test.conf").write_text(conf)
        files = f"{tmp_path}/conf.d/*.conf {files}"
    # Only the programs the module puts into the initramfs for it (there is no grep).
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for prog in GENERATOR_NEEDS:
            (bin_dir / prog).symlink_to(shutil.which(prog))
    r = subprocess.run([str(bin_dir / "sh"), str(GENERATOR), str(out), str(out), str(out)],
                       capture_output=True, text=True,
                       env={"PATH": str(bin_dir), "EDGEINIT_GENERATOR_CMDLINE": files})
    assert r.returncode == 0, r.stderr
    return out


def generated(out: Path) -> dict[str, str]:
    """What the generator wrote: the mount's What=, the wants link, the timeout."""
    mount = out / "sysroot-oem.mount"
    if not mount.exists():
        assert list(out.iterdir()) == [], list(out.iterdir())
        return {}
    keys = dict(line.split("=", 1) for line in mount.read_text().splitlines()
                if line.startswith(("What=", "Where=")))
    link = out / "edgeinit-rootfs.service.wants/sysroot-oem.mount"
    assert os.readlink(link) == "../sysroot-oem.mount"
    (dropin,) = out.glob("*.device.d/50-edgeinit-oemtimeout.conf")
    timeout = next(line.split("=", 1)[1] for line in dropin.read_text().splitlines()
                   if line.startswith("JobRunningTimeoutSec="))
    return {"what": keys["What"], "where": keys["Where"], "timeout": timeout,
            "device_unit": dropin.parent.name}


@needs_systemd_tools
@pytest.mark.parametrize(("cmdline", "want"), [
    ("root=LABEL=COS_STATE ro", ("/dev/disk/by-label/COS_OEM", "120")),
    ("rd.cos.oemlabel=MYOEM", ("/dev/disk/by-label/MYOEM", "120")),
    ("edgeinit.oemlabel=A rd.cos.oemlabel=B", ("/dev/disk/by-label/A", "120")),
    ("rd.cos.oemlabel=B edgeinit.oemlabel=A", ("/dev/disk/by-label/A", "120")),
    ("rd.cos.oemlabel=B rd.cos.oemlabel=C", ("/dev/disk/by-label/C", "120")),
    ("rd.cos.oemtimeout=30", ("/dev/disk/by-label/COS_OEM", "30")),
    ("rd.cos.oemtimeout=30 edgeinit.oemtimeout=45", ("/dev/disk/by-label/COS_OEM", "45")),
    ("edgeinit.oemtimeout=0", ("/dev/disk/by-label/COS_OEM", "1")),
    ("edgeinit.oemtimeout=5000", ("/dev/disk/by-label/COS_OEM", "1800")),
    ("edgeinit.oemtimeout=99999999999999999999", ("/dev/disk/by-label/COS_OEM", "1800")),
    ("edgeinit.oemtimeout=010", ("/dev/disk/by-label/COS_OEM", "10")),
    ("edgeinit.oemtimeout=ten", ("/dev/disk/by-label/COS_OEM", "120")),
    ("edgeinit.oemtimeout=-5", ("/dev/disk/by-label/COS_OEM", "120")),
    ("edgeinit.oemlabel=a/b", ("/dev/disk/by-label/a\\x2fb", "120")),
])
def test_generator_mounts_the_oem_partition(tmp_path: Path, cmdline: str,
                                            want: tuple[str, str]) -> None:
    g = generated(generate(tmp_path, cmdline))
    assert (g["what"], g["timeout"]) == want
    assert g["where"] == "/sysroot/oem"
    escaped = subprocess.run(["systemd-escape", "--path", "--suffix=device", g["what"]],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert g["device_unit"] == escaped + ".d"


@needs_systemd_tools
@pytest.mark.parametrize("cmdline", [
    "edgeinit.disable", "edgeinit.disable=0", "rd.cos.disable", "rd.cos.disable=1",
    "rd.cos.oemlabel=X edgeinit.disable", "edgeinit.oemlabel=", "rd.cos.oemlabel=",
])
def test_generator_writes_nothing(tmp_path: Path, cmdline: str) -> None:
    assert generated(generate(tmp_path, cmdline)) == {}


@needs_systemd_tools
def test_generator_reads_dracut_cmdline_conf_files(tmp_path: Path) -> None:
    conf = ("# a comment rd.cos.oemlabel=IGNORED\n  # indented rd.cos.oemlabel=IGNORED2\n"
            "rd.cos.oemlabel=FROMCONF")  # no newline at the end
    assert generated(generate(tmp_path, "ro", conf))["what"] == "/dev/disk/by-label/FROMCONF"
    # /proc/cmdline is read last: its value wins, as with dracut's getarg.
    g = generated(generate(tmp_path, "rd.cos.oemlabel=CMDLINE", conf))
    assert g["what"] == "/dev/disk/by-label/CMDLINE"
    assert generated(generate(tmp_path, "ro", "rd.cos.disable\n")) == {}


@needs_systemd_tools
def test_disable_matches_the_units_conditions(tmp_path: Path) -> None:
    """A word that merely starts like the disable arguments does not disable anything."""
    for cmdline in ("edgeinit.disabled", "xedgeinit.disable", "rd.cos.disablex=1"):
        assert generated(generate(tmp_path, cmdline)) != {}, cmdline
