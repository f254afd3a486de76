"""Build a Debian bookworm image with edgeinit in it, assemble a disk, boot it under qemu.

The facts this follows (TCG only, mmdebstrap against the mirror apt already uses, one
ext4 image per partition placed with dd, dracut flags, the qemu command line) are
measured in ../shared/docs/boot-testing-in-a-vm.md. Every step works in a scratch
directory outside the repository; the rootfs tarball is cached between runs, keyed on
what goes into it.

Run by hand (as root), for debugging the image or a boot:

    .venv/bin/python -m tests.e2e.vm build      # rootfs (cached), image, initrd, disk
    .venv/bin/python -m tests.e2e.vm boot       # boots WORK/disk.raw, prints the checks
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUEST = Path(__file__).resolve().parent / "guest"
SUITE = "bookworm"

# The image's Debian packages. The Python dependencies of edgeinit come from Debian where
# bookworm has a version pyproject.toml accepts (PY_DEBIAN), else from PyPI (PY_PIP).
PACKAGES = [
    "systemd", "systemd-sysv", "linux-image-amd64", "dracut", "dracut-core", "python3",
    "udev", "util-linux", "mount", "e2fsprogs", "rsync", "kmod", "dbus", "passwd",
    "openssl",
]
PY_DEBIAN = {
    "pyyaml": "python3-yaml",  # 6.0
    "psutil": "python3-psutil",  # 5.9.4
    "pyudev": "python3-pyudev",  # 0.24.0
    "dbus-next": "python3-dbus-next",  # 0.2.3
}
# bookworm's python3-pydantic is 1.10; edgeinit needs pydantic 2 (validate, schema).
PY_PIP = {"pydantic": "pydantic>=2.5,<3"}
# Installed from PyPI into the image with the host's pip, as wheels for the guest's
# Python (Debian bookworm's python3 is 3.11).
GUEST_PYTHON = "3.11"
GUEST_SITE = "usr/lib/python3/dist-packages"  # not /usr/local: COS_PERSISTENT hides it
CACHE_FORMAT = 1  # bump when the way the tarball is made changes

INITRD_MODULES = ("systemd systemd-initrd dracut-systemd base fs-lib rootfs-block "
                  "udev-rules kernel-modules shutdown edgeinit")
INITRD_DRIVERS = "virtio_blk virtio_pci virtio_scsi ext4 overlay"

# name, size in MiB. COS_STATE holds the root.
PARTITIONS = (("COS_OEM", 64), ("COS_STATE", 2048), ("COS_PERSISTENT", 256))
KERNEL_ARGS = "root=LABEL=COS_STATE ro console=ttyS0 rd.emergency=poweroff panic=5"


class BuildError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    try:
        return subprocess.run(cmd, **kw)
    except subprocess.CalledProcessError as e:
        out = (e.stdout or b"")[-4000:] if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr or b"")[-4000:] if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise BuildError(f"{' '.join(map(str, cmd))} exited {e.returncode}\n{out}\n{err}") from e


# --- where things go --------------------------------------------------------------------

def cache_dir() -> Path:
    return Path(os.environ.get("EDGEINIT_E2E_CACHE", "/var/cache/edgeinit-e2e"))


def work_dir() -> Path:
    return Path(os.environ.get("EDGEINIT_E2E_WORK", "/var/tmp/edgeinit-e2e"))


def missing_tools() -> list[str]:
    """Host programs the harness needs and does not find (each with its package)."""
    need = {
        "qemu-system-x86_64": "qemu-system-x86", "mmdebstrap": "mmdebstrap",
        "sfdisk": "fdisk", "mkfs.ext4": "e2fsprogs", "unshare": "util-linux",
        "chroot": "coreutils", "tar": "tar",
    }
    return [f"{tool} ({pkg})" for tool, pkg in need.items() if shutil.which(tool) is None]


# --- the mirror ---------------------------------------------------------------------------

def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas, cur = [], {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur = {}
            continue
        if line.startswith("#") or line[0].isspace():
            continue
        key, _, value = line.partition(":")
        cur[key.strip().lower()] = value.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def apt_mirrors(sources: Path = Path("/etc/apt/sources.list.d/debian.sources"),
                legacy: Path = Path("/etc/apt/sources.list")) -> tuple[str | None, str | None]:
    """(debian URI, debian-security URI) that the host's apt uses, read at run time."""
    main = security = None
    entries: list[tuple[str, list[str]]] = []
    if sources.exists():
        for st in _deb822_stanzas(sources.read_text()):
            if "deb" not in st.get("types", "").split():
                continue
            for uri in st.get("uris", "").split():
                entries.append((uri, st.get("suites", "").split()))
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                entries.append((line[1], [line[2]]))
    for uri, suites in entries:
        if any(s.endswith("-security") for s in suites):
            security = security or uri
        else:
            main = main or uri
    return main, security


def mirror_lines() -> list[str]:
    main, security = apt_mirrors()
    if main is None:  # mmdebstrap's own default
        return []
    lines = [f"deb {main} {SUITE} main", f"deb {main} {SUITE}-updates main"]
    if security:
        lines.append(f"deb {security} {SUITE}-security main")
    return lines


# --- the rootfs tarball (cached) ---------------------------------------------------------

def python_dependencies() -> tuple[list[str], list[str]]:
    """edgeinit's dependencies as (Debian packages, pip requirements); every one mapped."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    debian, pip = [], []
    for dep in deps:
        name = re.split(r"[<>=!~ ;\[]", dep, maxsplit=1)[0].strip().lower()
        if name in PY_DEBIAN:
            debian.append(PY_DEBIAN[name])
        elif name in PY_PIP:
            pip.append(PY_PIP[name])
        else:
            raise BuildError(f"pyproject dependency {dep!r} has no source for the e2e image: "
                             "add it to PY_DEBIAN or PY_PIP in tests/e2e/vm.py")
    return debian, pip


def rootfs_key() -> tuple[str, dict]:
    debian, pip = python_dependencies()
    spec = {"format": CACHE_FORMAT, "suite": SUITE, "variant": "minbase",
            "packages": sorted(PACKAGES + debian), "pip": sorted(pip),
            "python": GUEST_PYTHON}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return digest, spec


def _tar_flags() -> list[str]:
    return ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"]


def build_rootfs_tarball(dest: Path, spec: dict, scratch: Path) -> None:
    """mmdebstrap the package list, add the PyPI wheels, pack it as dest (.tar.zst)."""
    root = scratch / "mmdebstrap-root"
    if root.exists():
        shutil.rmtree(root)
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
           "--include=" + ",".join(spec["packages"]),
           "--aptopt=Acquire::Check-Valid-Until \"false\"",
           "--aptopt=Acquire::Languages \"none\"",
           # Size: no docs, man pages or translations in the image.
           "--dpkgopt=path-exclude=/usr/share/man/*",
           "--dpkgopt=path-exclude=/usr/share/doc/*",
           "--dpkgopt=path-include=/usr/share/doc/*/copyright",
           "--dpkgopt=path-exclude=/usr/share/locale/*",
           "--dpkgopt=path-include=/usr/share/locale/locale.alias",
           SUITE, str(root), *mirror_lines()]
    log(f"mmdebstrap {SUITE} ({len(spec['packages'])} packages)")
    t = time.monotonic()
    # INITRD=No: the kernel's postinst hook skips the initrd that would be thrown away.
    run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "INITRD": "No"})
    log(f"mmdebstrap done in {time.monotonic() - t:.0f} s")
    if spec["pip"]:
        log(f"pip (PyPI) into the image: {' '.join(spec['pip'])}")
        run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--no-compile", "--only-binary=:all:", "--platform=manylinux2014_x86_64",
             f"--python-version={spec['python']}", "--implementation=cp",
             "--target", str(root / GUEST_SITE), *spec["pip"]],
            capture_output=True, text=True)
    # The initrd that dracut's postinst made is rebuilt per run with our module.
    for p in (root / "boot").glob("initrd.img-*"):
        p.unlink()
    tmp = dest.with_suffix(".part")
    run(["tar", *_tar_flags(), "--zstd", "-C", str(root), "-cf", str(tmp), "."])
    tmp.rename(dest)
    dest.with_suffix(".json").write_text(json.dumps(spec, indent=1) + "\n")
    shutil.rmtree(root)


def rootfs_tarball(scratch: Path) -> tuple[Path, bool]:
    """The cached tarball for the current package list: (path, True if it was built now)."""
    key, spec = rootfs_key()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / f"rootfs-{SUITE}-{key}.tar.zst"
    if dest.exists():
        return dest, False
    build_rootfs_tarball(dest, spec, scratch)
    return dest, True


# --- the image --------------------------------------------------------------------------

def build_wheel(out: Path) -> Path:
    """A wheel from the working tree, built from a copy (setuptools writes build/)."""
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "edgeinit", src / "edgeinit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = out / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
         "--no-deps", "-w", str(dist), str(src)], capture_output=True, text=True)
    wheels = list(dist.glob("edgeinit-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one wheel in {dist}, found {wheels}")
    return wheels[0]


def _console_scripts(wheel: Path) -> dict[str, str]:
    import zipfile
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = z.read(name).decode()
    scripts, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "console_scripts":
            k, v = (s.strip() for s in line.split("=", 1))
            scripts[k] = v
    return scripts


def install_edgeinit(root: Path, wheel: Path) -> None:
    """The wheel into the image's dist-packages, /usr/bin/edgeinit as pip would write it."""
    site = root / GUEST_SITE
    run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
        capture_output=True, text=True)
    shutil.rmtree(site / "bin", ignore_errors=True)  # scripts with the host's shebang
    for name, target in _console_scripts(wheel).items():
        module, func = target.split(":")
        script = root / "usr/bin" / name
        script.write_text(
            "#!/usr/bin/python3\nimport sys\n"
            f"from {module} import {func}\n"
            f"if __name__ == '__main__':\n    sys.exit({func}())\n")
        script.chmod(0o755)


def _copy(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def install_dracut_module(root: Path) -> None:
    """dracut/90edgeinit plus the initrd units and helper from systemd/, as a package would."""
    mod = root / "usr/lib/dracut/modules.d/90edgeinit"
    if mod.exists():
        shutil.rmtree(mod)
    for f in sorted((REPO / "dracut/90edgeinit").iterdir()):
        _copy(f, mod / f.name, 0o755 if f.suffix == ".sh" else 0o644)
    for name in ("edgeinit-rootfs.service", "edgeinit-initramfs.service"):
        _copy(REPO / "systemd" / name, mod / name, 0o644)
    _copy(REPO / "systemd/edgeinit-initrd-run", mod / "edgeinit-initrd-run", 0o755)


REAL_ROOT_UNITS = ("edgeinit-fs.service", "edgeinit-boot.service", "edgeinit-network.service",
                   "edgeinit-reconcile.service", "edgeinit-reconcile.timer",
                   "edgeinit.service")
ENABLED = ("edgeinit-fs.service", "edgeinit-boot.service", "edgeinit-network.service",
           "edgeinit-reconcile.timer", "edgeinit.service", "e2e-report.service", "tmp.mount")


SAMPLE = REPO / "samples/derivative/system/oem/cloud-init.yaml"
# Mount points the report describes (besides the sample's state paths).
LAYOUT_PATHS = ["/", "/etc", "/var", "/srv", "/usr/local", "/oem", "/run/overlay", "/tmp"]
# Files whose content the report prints (the failure scenario writes the first).
REPORTED_FILES = ["/etc/e2e-after-failure"]


def sample_layout() -> dict[str, str]:
    """The environment the derivative sample writes to /run/cos/cos-layout.env."""
    import yaml

    doc = yaml.safe_load(SAMPLE.read_text())
    for step in doc["stages"]["rootfs.after"]:
        if step.get("environment_file") == "/run/cos/cos-layout.env":
            return {k: str(v) for k, v in step["environment"].items()}
    raise BuildError(f"{SAMPLE} has no rootfs.after step writing /run/cos/cos-layout.env")


def state_paths() -> list[str]:
    return sample_layout()["PERSISTENT_STATE_PATHS"].split()


@dataclass
class ImageSpec:
    """What differs between the images of one run: extra files for the OEM partition."""
    name: str
    oem_files: dict[str, str] = field(default_factory=dict)


def chroot(root: Path, *cmd: str, binds: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run cmd chrooted into root; with binds, /proc /sys /dev are bound in a private
    mount namespace that ends with the command (nothing to clean up on the host)."""
    if not binds:
        return run(["chroot", str(root), *cmd], **kw)
    script = (
        'set -e; r="$1"; shift; '
        'mount -t proc proc "$r/proc"; mount --rbind /sys "$r/sys"; '
        'mount --rbind /dev "$r/dev"; mount -t tmpfs tmpfs "$r/tmp"; '
        'exec chroot "$r" "$@"')
    return run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                str(root), *cmd], **kw)


def customise(root: Path, wheel: Path) -> None:
    """Everything the tests put into the image on top of the cached rootfs."""
    install_edgeinit(root, wheel)
    chroot(root, "python3", "-m", "compileall", "-q", "-j0", f"/{GUEST_SITE}",
           capture_output=True, text=True)
    units = root / "usr/lib/systemd/system"
    for name in REAL_ROOT_UNITS:
        _copy(REPO / "systemd" / name, units / name, 0o644)
    _copy(REPO / "systemd/io.edgeinit.Manager1.conf",
          root / "usr/share/dbus-1/system.d/io.edgeinit.Manager1.conf", 0o644)
    install_dracut_module(root)
    # The derivative's own config.
    _copy(REPO / "samples/derivative/system/oem/cloud-init.yaml",
          root / "system/oem/cloud-init.yaml", 0o644)
    # Mount points the boot needs on a read-only root.
    for d in ("oem", "usr/local", "run", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    # The guest side of the harness: report, k3s stand-in, keys server.
    g = GUEST
    _copy(g / "e2e-report", root / "usr/lib/edgeinit-e2e/e2e-report", 0o755)
    _copy(g / "keys-server", root / "usr/lib/edgeinit-e2e/keys-server", 0o755)
    _copy(g / "reylejano.keys", root / "usr/share/edgeinit-e2e/keys/reylejano.keys", 0o644)
    for name in ("e2e-report.service", "e2e-keys.service", "k3s.service"):
        _copy(g / name, units / name, 0o644)
    _copy(g / "edgeinit-network-e2e.conf",
          units / "edgeinit-network.service.d/e2e-keys.conf", 0o644)
    # A tmpfs on /tmp, as images with a read-only root have (Debian ships the unit
    # but does not install it; the sample's RW_PATHS do not cover /tmp).
    _copy(root / "usr/share/systemd/tmp.mount", units / "tmp.mount", 0o644)
    # Quiet console: no login prompt between the report lines.
    chroot(root, "systemctl", "mask", "-q", "serial-getty@ttyS0.service",
           "getty@tty1.service", capture_output=True, text=True)
    chroot(root, "systemctl", "enable", "-q", *ENABLED, capture_output=True, text=True)
    (root / "etc/hostname").write_text("e2e-unconfigured\n")
    (root / "etc/hostname").chmod(0o644)  # mmdebstrap leaves it 0755
    # What the report looks at: mount points and files.
    conf = root / "usr/lib/edgeinit-e2e"
    (conf / "paths").write_text("\n".join(LAYOUT_PATHS + state_paths()) + "\n")
    (conf / "files").write_text("\n".join(REPORTED_FILES) + "\n")


def kernel_version(root: Path) -> str:
    kernels = sorted((root / "usr/lib/modules").iterdir())
    if len(kernels) != 1:
        raise BuildError(f"expected one kernel in the image, found {kernels}")
    return kernels[0].name


def build_initrd(root: Path, kver: str, dest: Path) -> None:
    out = f"/boot/initrd.img-{kver}"
    chroot(root, "dracut", "--force", "--no-hostonly", "--kver", kver,
           "--modules", INITRD_MODULES, "--drivers", INITRD_DRIVERS, "--add", "edgeinit",
           out, binds=True, capture_output=True, text=True)
    shutil.copyfile(root / out.lstrip("/"), dest)
    (root / out.lstrip("/")).unlink()  # not needed on the disk: direct kernel boot


def mkfs(label: str, size_mb: int, src: Path | None, dest: Path) -> None:
    if dest.exists():
        dest.unlink()
    cmd = ["mkfs.ext4", "-q", "-F", "-L", label]
    if src is not None:
        cmd += ["-d", str(src)]
    run([*cmd, str(dest), f"{size_mb}M"], capture_output=True, text=True)


def assemble_disk(dest: Path, parts: dict[str, Path]) -> None:
    """A GPT disk with the PARTITIONS, each filesystem image placed with dd."""
    total = 1 + sum(size for _, size in PARTITIONS) + 1
    if dest.exists():
        dest.unlink()
    run(["truncate", "-s", f"{total}M", str(dest)])
    script = "label: gpt\n" + "".join(
        f"size={size}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name={label}\n"
        for label, size in PARTITIONS)
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(dest)], input=script,
        capture_output=True, text=True)
    offset = 1
    for label, size in PARTITIONS:
        run(["dd", f"if={parts[label]}", f"of={dest}", "bs=1M", f"seek={offset}",
             "conv=notrunc,sparse", "status=none"])
        offset += size


@dataclass
class Built:
    kernel: Path
    initrd: Path
    state_img: Path
    persistent_img: Path
    timings: dict[str, float]
    cache_hit: bool


def build_image(work: Path) -> Built:
    """Rootfs (cache), wheel, customisation, initrd, the COS_STATE filesystem image."""
    timings: dict[str, float] = {}
    work.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    tarball, built = rootfs_tarball(work)
    timings["rootfs_build" if built else "rootfs_cached"] = time.monotonic() - t
    root = work / "root"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    t = time.monotonic()
    run(["tar", *_tar_flags(), "--zstd", "-C", str(root), "-xf", str(tarball)])
    timings["rootfs_restore"] = time.monotonic() - t
    t = time.monotonic()
    wheel = build_wheel(work / "wheel")
    customise(root, wheel)
    timings["customise"] = time.monotonic() - t
    kver = kernel_version(root)
    t = time.monotonic()
    initrd = work / "initrd.img"
    build_initrd(root, kver, initrd)
    timings["initrd"] = time.monotonic() - t
    kernel = work / "vmlinuz"
    shutil.copyfile(root / f"boot/vmlinuz-{kver}", kernel)
    t = time.monotonic()
    state = work / "state.img"
    mkfs("COS_STATE", dict(PARTITIONS)["COS_STATE"], root, state)
    persistent = work / "persistent.img"
    mkfs("COS_PERSISTENT", dict(PARTITIONS)["COS_PERSISTENT"], None, persistent)
    timings["mkfs"] = time.monotonic() - t
    shutil.rmtree(root)
    return Built(kernel, initrd, state, persistent, timings, not built)


def make_disk(built: Built, work: Path, spec: ImageSpec) -> Path:
    """disk-NAME.raw: COS_OEM holding spec.oem_files, the shared COS_STATE, an empty
    COS_PERSISTENT."""
    oem_src = work / f"oem-{spec.name}"
    if oem_src.exists():
        shutil.rmtree(oem_src)
    oem_src.mkdir()
    for rel, text in spec.oem_files.items():
        p = oem_src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    oem_img = work / f"oem-{spec.name}.img"
    mkfs("COS_OEM", dict(PARTITIONS)["COS_OEM"], oem_src, oem_img)
    disk = work / f"disk-{spec.name}.raw"
    assemble_disk(disk, {"COS_OEM": oem_img, "COS_STATE": built.state_img,
                         "COS_PERSISTENT": built.persistent_img})
    oem_img.unlink()
    return disk


# --- booting ------------------------------------------------------------------------------

def boot_timeout() -> float:
    return float(os.environ.get("EDGEINIT_E2E_BOOT_TIMEOUT", "420"))


def qemu_command(built: Built, disk: Path, append: str = "") -> list[str]:
    accel = os.environ.get("EDGEINIT_E2E_ACCEL", "tcg")  # KVM here is nested and broken
    accel_args = (["-accel", "kvm", "-cpu", "host"] if accel == "kvm"
                  else ["-accel", "tcg,thread=multi", "-cpu", "max"])
    return ["qemu-system-x86_64", *accel_args, "-m", "2048", "-smp", "2",
            "-machine", "q35", "-kernel", str(built.kernel), "-initrd", str(built.initrd),
            "-append", f"{KERNEL_ARGS} {append}".strip(),
            "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe",
            "-nic", "none", "-display", "none", "-serial", "stdio", "-monitor", "none",
            "-no-reboot"]


@dataclass
class Boot:
    name: str
    returncode: int | None  # None: killed at the timeout
    seconds: float
    console: str
    log_path: Path
    checks: dict[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.checks.get(name, default)

    def json(self, name: str):
        return json.loads(self.checks[name])


CHECK_RE = re.compile(r"CHECK ([A-Za-z0-9_.:/@\-]+)=(.*?)\r?$", re.M)


def parse_checks(console: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in CHECK_RE.finditer(console)}


def boot(built: Built, disk: Path, name: str, work: Path, append: str = "") -> Boot:
    log_path = work / f"console-{name}.log"
    cmd = qemu_command(built, disk, append)
    log(f"boot {name}: {disk.name}, kernel arguments: {cmd[cmd.index('-append') + 1]}")
    t = time.monotonic()
    rc: int | None
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=boot_timeout())
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
    seconds = time.monotonic() - t
    console = log_path.read_bytes().decode("utf-8", "replace")
    log(f"boot {name}: qemu exit {rc} after {seconds:.0f} s, console in {log_path}")
    return Boot(name, rc, seconds, console, log_path, parse_checks(console))


def main(argv: list[str]) -> int:
    work = work_dir()
    if not argv or argv[0] not in ("build", "boot"):
        print(__doc__)
        return 2
    if argv[0] == "build":
        built = build_image(work)
        make_disk(built, work, ImageSpec("main"))
        print(json.dumps(built.timings, indent=1))
        return 0
    built = Built(work / "vmlinuz", work / "initrd.img", work / "state.img",
                  work / "persistent.img", {}, True)
    b = boot(built, work / "disk-main.raw", argv[1] if len(argv) > 1 else "manual", work,
             " ".join(argv[2:]))
    for k, v in b.checks.items():
        print(f"{k}={v}")
    return 0 if b.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
