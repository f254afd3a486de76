"""`packages` / `package_pins`: the target's package manager (schema only until #7)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeinit.plugins.base import Plugin
from edgeinit.schema.fields import spec


@dataclass
class Packages:
    install: list[str] = spec(factory=list, doc="Packages to install.")
    remove: list[str] = spec(factory=list, doc="Packages to remove.")
    refresh: bool = spec(False, doc="Refresh the package index first.")
    upgrade: bool = spec(False, doc="Upgrade installed packages.")


@dataclass
class PinArgs:
    package_pins: dict[str, str] = spec(factory=dict, doc="package -> version to pin.")


@dataclass
class Args:
    packages: Packages | None = spec(None, doc="Package operations.")


PLUGINS = {
    "package_pins": Plugin("package_pins", PinArgs, None, issue="#7"),
    "packages": Plugin("packages", Args, None, issue="#7"),
}
