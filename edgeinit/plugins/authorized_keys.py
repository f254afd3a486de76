"""`authorized_keys`: SSH keys per user (schema only until the identity issue, #3)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeinit.plugins.base import Plugin
from edgeinit.schema.fields import spec


@dataclass
class Args:
    authorized_keys: dict[str, list[str]] = spec(
        factory=dict, doc="user -> keys; a key may be github:NAME or gitlab:NAME.")


PLUGIN = Plugin("authorized_keys", Args, None, issue="#3")
