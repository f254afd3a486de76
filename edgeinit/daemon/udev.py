"""Block devices that carry config: a configured filesystem label (default COS_OEM and
CIDATA) on a device that appears is mounted read-only in a private temporary
directory, the config files on it are applied in the stage `device`, and it is
unmounted again. A device that cannot be mounted is logged; nothing else stops.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from edgeinit.log import log

DEFAULT_LABELS = ("COS_OEM", "CIDATA")
DEVICE_STAGE = "device"
MOUNT_OPTIONS = "ro,nosuid,nodev,noexec"
MOUNT_TIMEOUT = 60.0  # seconds; a mount or unmount that takes longer is given up
UDEV_CONTROL = "/run/udev/control"  # exists while udevd runs

T = TypeVar("T")


def parse_labels(text: str) -> list[str]:
    """`--labels` value: comma-separated labels; empty entries dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def matching_label(properties: Mapping[str, Any], labels: Iterable[str]) -> str | None:
    """The configured label this device's filesystem carries, or None.

    Labels compare case-insensitively: a NoCloud seed is `CIDATA` on vfat and
    usually `cidata` on ISO 9660, and both are meant.
    """
    if not properties.get("DEVNAME") or not properties.get("ID_FS_TYPE"):
        return None
    label = str(properties.get("ID_FS_LABEL") or "")
    if not label:
        return None
    for wanted in labels:
        if label.casefold() == wanted.casefold():
            return wanted
    return None


def _run(argv: list[str]) -> tuple[bool, str]:
    from edgeinit.target.exec import ToolError, run_tool

    try:
        done = run_tool(argv, timeout=MOUNT_TIMEOUT)
    except ToolError as e:
        return False, str(e)
    return done.returncode == 0, done.message or f"{argv[0]} exited with {done.returncode}"


def apply_device(devnode: str, apply: Callable[[str], T]) -> T | None:
    """Mount `devnode` read-only in a private temporary directory, call
    `apply(directory)`, unmount; the result of `apply`, or None when the device could
    not be mounted (logged). Blocking: the daemon calls it in a worker thread."""
    try:
        mountpoint = tempfile.mkdtemp(prefix="edgeinit-device-")  # mode 0700
    except OSError as e:
        log.error("device %s: cannot make a temporary mount point: %s", devnode,
                  e.strerror or e)
        return None
    try:
        log.info("device %s: mounting it read-only on %s (waiting up to %g s)",
                 devnode, mountpoint, MOUNT_TIMEOUT)
        ok, message = _run(["mount", "-o", MOUNT_OPTIONS, devnode, mountpoint])
        if not ok:
            log.error("device %s: cannot mount it: %s; its config is not applied",
                      devnode, message)
            return None
        try:
            return apply(mountpoint)
        finally:
            _unmount(devnode, mountpoint)
    finally:
        try:
            os.rmdir(mountpoint)
        except OSError as e:
            log.warning("device %s: cannot remove the mount point %s: %s", devnode,
                        mountpoint, e.strerror or e)


def _unmount(devnode: str, mountpoint: str) -> None:
    ok, message = _run(["umount", mountpoint])
    if ok:
        log.info("device %s: unmounted", devnode)
        return
    log.warning("device %s: cannot unmount %s (%s); detaching it lazily", devnode,
                mountpoint, message)
    ok, message = _run(["umount", "-l", mountpoint])
    if not ok:
        log.error("device %s: cannot detach %s: %s", devnode, mountpoint, message)


def udev_running() -> bool:
    return os.path.exists(UDEV_CONTROL)


class DeviceMonitor:
    """Listens to udev for block devices; calls `on_device(devnode, label)` once for
    each device that appears (add or change) with a configured label."""

    def __init__(self, labels: Iterable[str], on_device: Callable[[str, str], None]) -> None:
        self.labels = list(labels)
        self.on_device = on_device
        self.monitor: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._seen: set[tuple[str, str]] = set()  # (devnode, filesystem UUID) applied

    def start(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Start listening; False (logged) when there is nothing to listen to."""
        if not self.labels:
            log.info("no device labels configured; not watching for config devices")
            return False
        if not udev_running():
            log.warning("udev is not running (no %s); devices labelled %s are not applied "
                        "when they appear", UDEV_CONTROL, ", ".join(self.labels))
            return False
        try:
            import pyudev

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("block")
            monitor.start()
        except Exception as e:
            log.error("cannot listen to udev: %s; devices labelled %s are not applied",
                      e, ", ".join(self.labels))
            return False
        self.monitor = monitor
        self.loop = loop
        loop.add_reader(monitor.fileno(), self._readable)
        log.info("watching for block devices labelled %s", ", ".join(self.labels))
        return True

    def close(self) -> None:
        if self.monitor is not None and self.loop is not None:
            self.loop.remove_reader(self.monitor.fileno())
        self.monitor = None

    def _readable(self) -> None:
        while self.monitor is not None:
            try:
                device = self.monitor.poll(timeout=0)
            except Exception as e:
                log.error("reading a udev event failed: %s", e)
                return
            if device is None:
                return
            try:
                self.handle(device.action or "", dict(device.properties))
            except Exception as e:  # a bad event must not stop the daemon's loop
                log.exception("udev event: %s: %s", type(e).__name__, e)

    def handle(self, action: str, properties: Mapping[str, Any]) -> bool:
        """One udev event; True when it was handed to `on_device`."""
        devnode = str(properties.get("DEVNAME") or "")
        if action == "remove":
            self._seen = {key for key in self._seen if key[0] != devnode}
            return False
        if action not in ("add", "change"):
            return False
        label = matching_label(properties, self.labels)
        if label is None:
            return False
        key = (devnode, str(properties.get("ID_FS_UUID") or ""))
        if key in self._seen:
            return False  # the same filesystem again (a change event after add)
        self._seen.add(key)
        log.info("device %s with label %s appeared; applying its config in stage '%s'",
                 devnode, properties.get("ID_FS_LABEL"), DEVICE_STAGE)
        self.on_device(devnode, label)
        return True
