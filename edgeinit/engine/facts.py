"""Facts about the node, gathered lazily: a stage pays only for what it asks.

What lives in the target's files (hostname, os-release, machine-id, the service
manager, timezone) is read from the target root; hardware (architecture, CPU, memory,
DMI) comes from the running machine. The `.Values` tree mirrors the keys of yip's
sysinfo data, so templates written for yip find the same names.
"""

from __future__ import annotations

import os
from typing import Any

from edgeinit.target.root import TargetRoot

GO_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "386", "i486": "386", "i586": "386",
    "i686": "386", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm",
    "armv8l": "arm", "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x",
    "riscv64": "riscv64", "mips64": "mips64", "loongarch64": "loong64",
}


def go_arch(machine: str | None = None) -> str:
    """Go's name for this machine's architecture (amd64, arm64, ...)."""
    machine = machine or os.uname().machine
    return GO_ARCH.get(machine, machine)


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[key.strip()] = value
    return out


class Facts:
    """Node facts for one run, each read on first use and kept."""

    def __init__(self, root: TargetRoot) -> None:
        self.root = root
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, compute: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- from the target's files ----------------------------------------------------

    def hostname(self) -> str:
        """The node's hostname now: /etc/hostname of the target (live: the kernel's)."""
        text = self.root.read_text("/etc/hostname")
        name = text.strip().splitlines()[0].strip() if text and text.strip() else ""
        if not name and self.root.is_live:
            import socket

            name = socket.gethostname()
        return name

    def os_release(self) -> dict[str, str]:
        def read() -> dict[str, str]:
            for path in ("/etc/os-release", "/usr/lib/os-release"):
                text = self.root.read_text(path)
                if text is not None:
                    return parse_os_release(text)
            return {}

        return self._once("os_release", read)

    def machine_id(self) -> str:
        def read() -> str:
            text = self.root.read_text("/etc/machine-id") or ""
            return text.strip()

        return self._once("machine_id", read)

    def service_managers(self) -> set[str]:
        def probe() -> set[str]:
            found = set()
            for name in ("systemctl", "openrc"):
                for d in ("/sbin", "/bin", "/usr/sbin", "/usr/bin"):
                    try:
                        host = self.root.resolve(f"{d}/{name}")
                    except Exception:
                        continue
                    if os.path.exists(host):
                        found.add("systemd" if name == "systemctl" else "openrc")
                        break
            return found

        return self._once("service_managers", probe)

    def timezone(self) -> str:
        text = self.root.read_text("/etc/timezone")
        if text and text.strip():
            return text.strip()
        try:
            link = os.readlink(self.root.resolve("/etc/localtime", follow=False))
        except OSError:
            return ""
        marker = "zoneinfo/"
        return link.split(marker, 1)[1] if marker in link else ""

    # -- from the running machine ---------------------------------------------------

    def arch(self) -> str:
        return go_arch()

    # -- the .Values tree -----------------------------------------------------------

    def value(self, path: list[str]) -> Any:
        """`.Values.<path>` as yip's sysinfo data has it; KeyError when there is none."""
        if not path:
            raise KeyError("")
        section = path[0]
        builders = {
            "node": self._node, "os": self._os, "kernel": self._kernel, "cpu": self._cpu,
            "memory": self._memory, "product": lambda: self._dmi("product"),
            "board": lambda: self._dmi("board"), "chassis": lambda: self._dmi("chassis"),
            "bios": lambda: self._dmi("bios"),
        }
        if section not in builders:
            raise KeyError(section)
        node: Any = self._once("values." + section, builders[section])
        for part in path[1:]:
            if not isinstance(node, dict) or part not in node:
                raise KeyError(part)
            node = node[part]
        return node

    def _node(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname(),
            "machineid": self.machine_id(),
            "hypervisor": _read_sys("/sys/hypervisor/type"),
            "timezone": self.timezone(),
        }

    def _os(self) -> dict[str, Any]:
        rel = self.os_release()
        release = rel.get("VERSION", "")
        if rel.get("ID") == "debian":
            release = (self.root.read_text("/etc/debian_version") or release).strip()
        return {
            "name": rel.get("PRETTY_NAME", rel.get("NAME", "")),
            "vendor": rel.get("ID", ""),
            "version": rel.get("VERSION_ID", ""),
            "release": release,
            "architecture": self.arch(),
        }

    def _kernel(self) -> dict[str, Any]:
        u = os.uname()
        return {"release": u.release, "version": u.version, "architecture": u.machine}

    def _cpu(self) -> dict[str, Any]:
        info: dict[str, str] = {}
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.strip():
                        break
                    k, _, v = line.partition(":")
                    info.setdefault(k.strip(), v.strip())
        except OSError:
            pass
        cpus = os.cpu_count() or 0
        return {
            "vendor": info.get("vendor_id", ""),
            "model": info.get("model name", ""),
            "speed": int(float(info.get("cpu MHz", "0") or 0)),
            "cache": int((info.get("cache size", "0").split() or ["0"])[0] or 0),
            "cpus": 1,
            "cores": cpus,
            "threads": cpus,
        }

    def _memory(self) -> dict[str, Any]:
        import psutil  # only when a template asks for memory

        return {"type": "", "speed": 0, "size": psutil.virtual_memory().total // (1024 * 1024)}

    def _dmi(self, section: str) -> dict[str, Any]:
        base = "/sys/class/dmi/id/"
        keys = {
            "product": ("name", "vendor", "version", "serial", "uuid"),
            "board": ("name", "vendor", "version", "serial", "asset_tag"),
            "chassis": ("type", "vendor", "version", "serial", "asset_tag"),
            "bios": ("vendor", "version", "date"),
        }[section]
        out: dict[str, Any] = {}
        for key in keys:
            out[key] = _read_sys(f"{base}{section}_{key}")
        return out


def _read_sys(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""
