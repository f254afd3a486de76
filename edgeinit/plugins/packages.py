"""`packages` / `package_pins`: the target's package manager (schema only until #7)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class Packages(Record):
    install: list[str] = spec(factory=list, doc="Packages to install.")
    remove: list[str] = spec(factory=list, doc="Packages to remove.")
    refresh: bool = spec(False, doc="Refresh the package index first.")
    upgrade: bool = spec(False, doc="Upgrade installed packages.")


class PinArgs(Record):
    package_pins: dict[str, str] = spec(factory=dict, doc="package -> version to pin.")


class Args(Record):
    packages: Packages | None = spec(None, doc="Package operations.")


PLUGINS = {
    "package_pins": Plugin("package_pins", PinArgs, None, issue="#7"),
    "packages": Plugin("packages", Args, None, issue="#7"),
}
