"""`ensure_entities` / `delete_entities`: passwd-family lines (schema only until #3)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeinit.plugins.base import Plugin
from edgeinit.schema.fields import spec


@dataclass
class Entity:
    path: str = spec("", doc="File to edit; default by kind (/etc/passwd, /etc/group, ...).")
    entity: str = spec("", secret=True,
                       doc="YAML text with `kind:` user, group, shadow or gshadow and its fields.")


@dataclass
class EnsureArgs:
    ensure_entities: list[Entity] = spec(factory=list, doc="Lines to add or replace.")


@dataclass
class DeleteArgs:
    delete_entities: list[Entity] = spec(factory=list, doc="Lines to remove.")


PLUGINS = {
    "ensure_entities": Plugin("ensure_entities", EnsureArgs, None, issue="#3"),
    "delete_entities": Plugin("delete_entities", DeleteArgs, None, issue="#3"),
}
