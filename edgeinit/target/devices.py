"""Block devices of the running machine: found by filesystem label, read without changing them.

Devices are those of the machine edgeinit runs on, whatever `--root` is. They are found
by asking libblkid (`blkid -c /dev/null -t LABEL=...`, no stale cache) rather than
through /dev/disk/by-label, so this works where udev does not run (an early initramfs, a
container). A device is mounted read-only (`ro,nosuid,nodev,noexec`) in a private
temporary directory (mkdtemp: mode 0700) and unmounted again at once, lazily if a plain
unmount fails; the directory is removed. Only files on the mounted filesystem are read:
a symbolic link that leads out of it is not followed.

Where the kernel cannot mount the filesystem (an initramfs or kernel without the
iso9660 or vfat driver), the files are read from the device by a userspace reader when
one is installed: `isoinfo` (genisoimage) for iso9660, `mcopy` (mtools) for vfat.

Every command is bounded (COMMAND_TIMEOUT); nothing here waits for a device to appear.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from edgeinit.log import log

MOUNT_OPTIONS = "ro,nosuid,nodev,noexec"
COMMAND_TIMEOUT = 60.0  # seconds for one mount, unmount, blkid or reader run
CDROM_GLOB = "/dev/sr[0-9]*"
MAX_FILE_BYTES = 16 * 1024 * 1024


class DeviceError(Exception):
    """A device that could not be probed, mounted or read; the message names it."""


class MountError(DeviceError):
    """A device that could not be mounted as any of the types asked for."""


def _run(argv: list[str], timeout: float = COMMAND_TIMEOUT,
         env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """(exit status, stdout, stderr) of argv; DeviceError when it cannot be run or hangs."""
    from edgeinit.target.exec import ToolError, run_tool

    try:
        done = run_tool(argv, timeout=timeout, env={**os.environ, **env} if env else None)
    except ToolError as e:
        raise DeviceError(str(e)) from None
    return done.returncode, done.stdout, done.err.strip()


def by_label(label: str) -> list[str]:
    """Device nodes whose filesystem label is exactly `label` (libblkid probes them)."""
    from edgeinit.target.disks import DiskError, devices_with_label

    try:
        return devices_with_label(label)
    except DiskError as e:
        raise DeviceError(f"cannot look for label {label}: {e}") from None


def by_labels(labels: Sequence[str]) -> list[str]:
    """Devices carrying any of `labels`, in label order, each once."""
    found: list[str] = []
    for label in labels:
        for device in by_label(label):
            if device not in found:
                found.append(device)
    return found


def cdrom_drives() -> list[str]:
    """The optical drives of the machine (/dev/sr0, /dev/sr1, ...), sorted."""
    return sorted(glob.glob(CDROM_GLOB))


def fs_type(device: str) -> str | None:
    """The filesystem type libblkid sees on `device`, or None (no filesystem, no medium)."""
    try:
        rc, out, _ = _run(["blkid", "-c", "/dev/null", "-o", "value", "-s", "TYPE", device])
    except DeviceError:
        return None
    text = out.decode("utf-8", "replace").strip()
    return text if rc == 0 and text else None


@contextlib.contextmanager
def mounted(device: str, fstypes: Sequence[str]) -> Iterator[str]:
    """`device` mounted read-only in a private temporary directory, trying each of
    `fstypes` in turn; unmounted and the directory removed on leaving.

    MountError (with the reason of every attempt) when no type mounts.
    """
    try:
        base = "/run" if os.access("/run", os.W_OK) else None
        mountpoint = tempfile.mkdtemp(prefix="edgeinit-device-", dir=base)  # mode 0700
    except OSError as e:
        raise DeviceError(f"cannot make a temporary mount point: {e.strerror or e}") from None
    try:
        errors: list[str] = []
        for fstype in fstypes:
            log.info("device %s: mounting it read-only as %s on %s (gives up after %g s)",
                     device, fstype, mountpoint, COMMAND_TIMEOUT)
            rc, _, err = _run(["mount", "-t", fstype, "-o", MOUNT_OPTIONS, device, mountpoint])
            if rc == 0:
                break
            errors.append(f"as {fstype}: {err or f'mount exited with {rc}'}")
        else:
            raise MountError(f"cannot mount {device} " + "; ".join(errors))
        try:
            yield mountpoint
        finally:
            _unmount(device, mountpoint)
    finally:
        try:
            os.rmdir(mountpoint)
        except OSError as e:
            log.warning("device %s: cannot remove the mount point %s: %s", device,
                        mountpoint, e.strerror or e)


def _unmount(device: str, mountpoint: str) -> None:
    try:
        rc, _, err = _run(["umount", mountpoint])
        if rc == 0:
            return
        log.warning("device %s: cannot unmount %s (%s); detaching it lazily", device,
                    mountpoint, err)
        rc, _, err = _run(["umount", "-l", mountpoint])
        if rc != 0:
            log.error("device %s: cannot detach %s: %s", device, mountpoint, err)
    except DeviceError as e:
        log.error("device %s: cannot unmount %s: %s", device, mountpoint, e)


def read_file(top: str, name: str) -> bytes | None:
    """The content of `name` under the directory `top`, or None when it is not a regular
    file there; a path that leaves `top` (through `..` or a symbolic link) is None too."""
    path = os.path.realpath(os.path.join(top, name.lstrip("/")))
    real_top = os.path.realpath(top)
    if not path.startswith(real_top + os.sep) or not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise DeviceError(f"cannot read {name}: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise DeviceError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
    return data


def read_first(device: str, names: Sequence[str],
               fstypes: Sequence[str] = ("iso9660", "vfat")) -> tuple[str, bytes] | None:
    """(name, content) of the first of `names` (paths from the filesystem's top) found
    on `device`, read-only; None when none of them is there.

    The device is mounted as each of `fstypes` in turn; when none mounts and the
    filesystem is one a userspace reader knows, the reader is used instead.
    DeviceError when the device can be neither mounted nor read.
    """
    try:
        with mounted(device, fstypes) as top:
            for name in names:
                data = read_file(top, name)
                if data is not None:
                    return name, data
            return None
    except MountError as e:
        mount_error = e
    fstype = fs_type(device)
    reader = _READERS.get(fstype or "")
    if reader is None or fstype not in fstypes or shutil.which(reader[0]) is None:
        raise mount_error
    log.info("device %s: %s; reading its %s filesystem with %s instead", device,
             mount_error, fstype, reader[0])
    return reader[1](device, names)


def _read_iso(device: str, names: Sequence[str]) -> tuple[str, bytes] | None:
    """With isoinfo: Rock Ridge names first, then Joliet (cloud-init seeds carry both)."""
    for namespace in ("-R", "-J"):
        rc, out, err = _run(["isoinfo", "-i", device, namespace, "-f"])
        if rc != 0:
            raise DeviceError(f"isoinfo cannot read {device}: {err or f'exit {rc}'}")
        listing = {line.strip() for line in out.decode("utf-8", "replace").splitlines()}
        for name in names:
            wanted = "/" + name.strip("/")
            if wanted in listing:
                rc, data, err = _run(["isoinfo", "-i", device, namespace, "-x", wanted])
                if rc != 0:
                    raise DeviceError(f"isoinfo cannot read {wanted} on {device}: {err}")
                if len(data) > MAX_FILE_BYTES:
                    raise DeviceError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
                return name, data
    return None


def _read_fat(device: str, names: Sequence[str]) -> tuple[str, bytes] | None:
    """With mcopy: `::PATH` copied to standard output, binary (-n: no overwrite prompts)."""
    for name in names:
        rc, data, err = _run(["mcopy", "-n", "-i", device, "::/" + name.strip("/"), "-"],
                             env={"MTOOLS_SKIP_CHECK": "1"})
        if rc == 0:
            if len(data) > MAX_FILE_BYTES:
                raise DeviceError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
            return name, data
        if "not found" not in err:
            raise DeviceError(f"mcopy cannot read {name} on {device}: {err or f'exit {rc}'}")
    return None


_READERS = {"iso9660": ("isoinfo", _read_iso), "vfat": ("mcopy", _read_fat)}
