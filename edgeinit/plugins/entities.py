"""`ensure_entities` / `delete_entities`: passwd-family lines (schema only until #3)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class Entity(Record):
    path: str = spec("", doc="File to edit; default by kind (/etc/passwd, /etc/group, ...).")
    entity: str = spec("", secret=True,
                       doc="YAML text with `kind:` user, group, shadow or gshadow and its fields.")


class EnsureArgs(Record):
    ensure_entities: list[Entity] = spec(factory=list, doc="Lines to add or replace.")


class DeleteArgs(Record):
    delete_entities: list[Entity] = spec(factory=list, doc="Lines to remove.")


PLUGINS = {
    "ensure_entities": Plugin("ensure_entities", EnsureArgs, None, issue="#3"),
    "delete_entities": Plugin("delete_entities", DeleteArgs, None, issue="#3"),
}
