"""The target's package manager: which one it has, what is installed, the commands.

The manager is found by its binary in the target (apt-get, dnf, zypper, apk, pacman;
when a target has more than one, the one its os-release `ID`/`ID_LIKE` names wins, else
the first in that order). Every command runs in the target (chrooted under --root) and
never asks a question: `DEBIAN_FRONTEND=noninteractive` and `-y` for apt,
`--non-interactive` for zypper, `-y` for dnf, `--noconfirm` for pacman.

What is installed is asked of the target's own package database (dpkg-query, rpm, apk
info, pacman -Q), in one shell run in the target, so that a package that is already
there is not installed again and a step that has nothing to do changes nothing.
"""

from __future__ import annotations

import os
import re
import shlex

from edgeinit.model import Record
from edgeinit.target import exec as exec_
from edgeinit.target.root import PathError, TargetRoot

QUERY_TIMEOUT = 120.0  # seconds for one read-only query in the target
BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
APT_ENV = "DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none "
APT_DPKG = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
# dpkg states in which a package counts as installed (db:Status-Status).
DPKG_INSTALLED = frozenset({"installed", "triggers-pending", "triggers-awaited"})
DPKG_ABSENT = frozenset({"not-installed", "config-files", ""})
_MARK = "@@edgeinit-pkg "
_RC = "@@edgeinit-rc "
_DATA = "@@v "


class PackageError(Exception):
    """The target's package manager cannot be found or asked."""


class Manager(Record):
    """One package manager: its binary and its non-interactive commands (shell text,
    package names appended)."""

    name: str
    binary: str
    refresh: str
    upgrade: str
    install: str
    remove: str
    query: str  # shell text with "$p": exit 0 when installed; data lines start "@@v "
    ids: tuple[str, ...] = ()  # os-release IDs whose native manager this is


MANAGERS: tuple[Manager, ...] = (
    Manager("apt", "apt-get",
            refresh=APT_ENV + "apt-get -y -q update",
            upgrade=APT_ENV + f"apt-get -y -q {APT_DPKG} upgrade",
            install=APT_ENV + f"apt-get -y -q {APT_DPKG} --no-install-recommends install",
            remove=APT_ENV + "apt-get -y -q remove",
            query="dpkg-query -W -f='@@v ${db:Status-Status} ${Version}\\n' -- \"$p\"",
            ids=("debian", "ubuntu")),
    Manager("dnf", "dnf",
            refresh="dnf -y makecache",
            upgrade="dnf -y upgrade",
            install="dnf -y install --setopt=install_weak_deps=False",
            remove="dnf -y remove",
            query="rpm -q --qf '@@v installed %{VERSION}-%{RELEASE}\\n' -- \"$p\"",
            ids=("fedora", "rhel", "centos", "rocky", "almalinux")),
    Manager("zypper", "zypper",
            refresh="zypper --non-interactive refresh",
            upgrade="zypper --non-interactive update",
            install="zypper --non-interactive install --no-recommends",
            remove="zypper --non-interactive remove",
            query="rpm -q --qf '@@v installed %{VERSION}-%{RELEASE}\\n' -- \"$p\"",
            ids=("opensuse", "opensuse-leap", "opensuse-tumbleweed", "sles", "suse")),
    Manager("apk", "apk",
            refresh="apk update",
            upgrade="apk upgrade --no-cache",
            install="apk add --no-cache",
            remove="apk del",
            query="apk info -e -- \"$p\"",
            ids=("alpine",)),
    Manager("pacman", "pacman",
            refresh="pacman -Sy --noconfirm",
            upgrade="pacman -Syu --noconfirm",
            install="pacman -S --noconfirm --needed",
            remove="pacman -R --noconfirm",
            query="pacman -Q -- \"$p\"",
            ids=("arch",)),
)
BY_NAME = {m.name: m for m in MANAGERS}


def find_binary(root: TargetRoot, binary: str) -> str | None:
    """The path inside the target of an executable `binary`, or None."""
    for d in BIN_DIRS:
        path = f"{d}/{binary}"
        try:
            host = root.resolve(path)
        except (PathError, OSError):  # a broken or looping link: not there
            continue
        if os.path.isfile(host) and os.access(host, os.X_OK):
            return path
    return None


def _os_ids(root: TargetRoot) -> list[str]:
    text = root.read_text("/etc/os-release") or root.read_text("/usr/lib/os-release") or ""
    ids: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("ID", "ID_LIKE"):
            ids.extend(value.strip().strip("\"'").lower().split())
    return ids


def detect(root: TargetRoot) -> Manager:
    """The target's package manager; PackageError when it has none."""
    present = [m for m in MANAGERS if find_binary(root, m.binary)]
    if not present:
        looked = ", ".join(m.binary for m in MANAGERS)
        raise PackageError(f"no package manager found in the target {root.path} "
                           f"(looked for {looked} in {', '.join(BIN_DIRS)})")
    if len(present) > 1:
        ids = _os_ids(root)
        for os_id in ids:
            for m in present:
                if os_id in m.ids:
                    return m
    return present[0]


_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


def check_spec(spec: str) -> str | None:
    """Why `spec` cannot be a package argument, or None when it can."""
    if not spec:
        return "an empty package name"
    if spec.startswith("-"):
        return f"'{spec}' is an option, not a package name"
    if _BAD.search(spec):
        return f"'{spec}' is not a package name (whitespace or control characters)"
    return None


def split_spec(manager: Manager, spec: str) -> tuple[str, str | None] | None:
    """(name, version or None) of a package argument whose installed state the manager's
    query can judge; None when it cannot (globs, a release, version ranges)."""
    if any(c in spec for c in "*?[]/<>~"):
        return None
    if manager.name == "apt":
        name, eq, version = spec.partition("=")
        return (name, version if eq else None)
    if "=" in spec:
        return None
    return (spec, None)


def _script(manager: Manager, names: list[str]) -> str:
    quoted = " ".join(shlex.quote(n) for n in names)
    return (f"for p in {quoted}; do printf '\\n{_MARK}%s\\n' \"$p\"; "
            f"{manager.query}; printf '\\n{_RC}%s\\n' \"$?\"; done")


class Installed(Record):
    """One installed (or half-installed) instance of a package, as its manager says."""

    status: str  # dpkg's db:Status-Status for apt; "installed" for the others
    version: str

    @property
    def complete(self) -> bool:
        """Installed and configured: installing it again would change nothing."""
        return self.status in DPKG_INSTALLED

    @property
    def present(self) -> bool:
        """Anything of it is on the system (removing it would change something)."""
        return self.status not in DPKG_ABSENT


def installed(root: TargetRoot, manager: Manager, names: list[str]
              ) -> dict[str, list[Installed]]:
    """For each name, what the target's package database has of it ([] = nothing)."""
    out: dict[str, list[Installed]] = {n: [] for n in names}
    if not names:
        return out
    result = exec_.run_shell(root.path, _script(manager, names), QUERY_TIMEOUT)
    if not result.started or result.timed_out:
        raise PackageError(f"cannot ask {manager.name} what is installed: "
                           f"{result.output.strip()}")
    current: str | None = None
    lines: list[str] = []
    for line in result.output.splitlines():
        if line.startswith(_MARK):
            current, lines = line[len(_MARK):], []
        elif line.startswith(_RC) and current is not None:
            if line[len(_RC):].strip() == "0" and current in out:
                out[current] = _parse(manager, lines)
            current = None
        elif current is not None and line.strip():
            lines.append(line.strip())
    return out


def _parse(manager: Manager, lines: list[str]) -> list[Installed]:
    """The query's data lines (`@@v STATUS VERSION`); anything else it printed (warnings
    on stderr, apk's and pacman's own output) is not data."""
    entries = []
    for line in lines:
        if line.startswith(_DATA):
            status, _, version = line[len(_DATA):].partition(" ")
            entries.append(Installed(status, version))
    if entries or manager.name == "apt":
        return entries
    return [Installed("installed", "")]


def unknown_apt_packages(root: TargetRoot, names: list[str]) -> list[str]:
    """The names apt knows nothing about (after the index the target has)."""
    if not names:
        return []
    quoted = " ".join(shlex.quote(n) for n in names)
    script = (f"for p in {quoted}; do out=$(apt-cache show --no-all-versions -- \"$p\" "
              f"2>&1) || printf '{_MARK}%s\\n' \"$p\"; done")
    result = exec_.run_shell(root.path, script, QUERY_TIMEOUT)
    if not result.started or result.timed_out:
        raise PackageError(f"cannot ask apt-cache about packages: {result.output.strip()}")
    return [line[len(_MARK):] for line in result.output.splitlines() if line.startswith(_MARK)]


def apt_upgradable(root: TargetRoot) -> list[str]:
    """The packages `apt-get upgrade` would change, from a simulation in the target."""
    result = exec_.run_shell(root.path, "apt-get -s -q upgrade", QUERY_TIMEOUT)
    if not result.ok:
        raise PackageError("cannot simulate apt-get upgrade: "
                           + "\n".join(result.output.strip().splitlines()[-5:]))
    return [line.split()[1] for line in result.output.splitlines()
            if line.startswith("Inst ") and len(line.split()) > 1]


def command(base: str, names: list[str]) -> str:
    return base + "".join(" " + shlex.quote(n) for n in names)
