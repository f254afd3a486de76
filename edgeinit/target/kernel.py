"""The running kernel's state (sysctl values, loaded modules, hostname): read-only views.

These belong to the machine edgeinit runs on, not to the target's files, so plugins
only use them when the root is `/`; the changes that alter them are in changes.py.
"""

from __future__ import annotations

import os

PROC_SYS = "/proc/sys"
PROC_MODULES = "/proc/modules"


def sysctl_path(key: str, base: str = PROC_SYS) -> str:
    """/proc/sys path of a key: dots are separators unless the key uses slashes."""
    rel = key if "/" in key else key.replace(".", "/")
    return os.path.join(base, rel)


def read_sysctl(path: str) -> str:
    """The current value at a /proc/sys path, whitespace-trimmed (raises OSError)."""
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def loaded_modules(path: str = PROC_MODULES) -> set[str]:
    """Names of the loaded kernel modules (empty when /proc/modules cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            return {line.split()[0] for line in f if line.strip()}
    except OSError:
        return set()


def hostname() -> str:
    import socket

    return socket.gethostname()
