"""The plugin registry: step keys in yip's execution order (SPEC section 3).

Adding a plugin means one module with its model and plan, and one line here. Modules
are imported only when a step uses one of their keys, so a boot stage pays only for
the plugins it runs.
"""

from __future__ import annotations

import sys

from edgeinit.plugins.base import Plugin

# (plugin name, module, the step keys it reads), in execution order.
REGISTRY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("dns", "dns", ("dns",)),
    ("downloads", "downloads", ("downloads",)),
    ("git", "git", ("git",)),
    ("ensure_entities", "entities", ("ensure_entities",)),
    ("directories", "directories", ("directories",)),
    ("files", "files", ("files",)),
    ("commands", "commands", ("commands",)),
    ("delete_entities", "entities", ("delete_entities",)),
    ("hostname", "hostname", ("hostname",)),
    ("sysctl", "sysctl", ("sysctl",)),
    ("users", "users", ("users",)),
    ("authorized_keys", "authorized_keys", ("authorized_keys",)),
    ("modules", "modules", ("modules",)),
    ("timesyncd", "timesyncd", ("timesyncd",)),
    ("systemctl", "systemctl", ("systemctl",)),
    ("environment", "environment", ("environment", "environment_file")),
    ("systemd_firstboot", "systemd_firstboot", ("systemd_firstboot",)),
    ("datasource", "datasource", ("datasource",)),
    ("layout", "layout", ("layout",)),
    ("package_pins", "packages", ("package_pins",)),
    ("packages", "packages", ("packages",)),
    ("unpack_images", "unpack_images", ("unpack_images",)),
)

KEY_OWNER: dict[str, str] = {key: name for name, _, keys in REGISTRY for key in keys}
REGISTRY_KEYS: dict[str, tuple[str, ...]] = {name: keys for name, _, keys in REGISTRY}
PLUGIN_KEYS: tuple[str, ...] = tuple(KEY_OWNER)


_LOADED: dict[str, Plugin] = {}


def load(name: str) -> Plugin:
    """The plugin called `name` (imports its module on first use)."""
    plugin = _LOADED.get(name)
    if plugin is not None:
        return plugin
    for plugin_name, module, _ in REGISTRY:
        if plugin_name == name:
            qualified = f"edgeinit.plugins.{module}"
            __import__(qualified)
            mod = sys.modules[qualified]
            plugin = getattr(mod, "PLUGINS", {}).get(name) or mod.PLUGIN
            _LOADED[name] = plugin
            return plugin
    raise KeyError(name)


def all_plugins() -> list[Plugin]:
    return [load(name) for name, _, _ in REGISTRY]
