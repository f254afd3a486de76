"""`authorized_keys`: SSH keys per user (schema only until the identity issue, #3)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class Args(Record):
    authorized_keys: dict[str, list[str]] = spec(
        factory=dict, doc="user -> keys; a key may be github:NAME or gitlab:NAME.")


PLUGIN = Plugin("authorized_keys", Args, None, issue="#3")
