"""How a model field is spelled in YAML, documented, and treated."""

from __future__ import annotations

import dataclasses
from typing import Any

_MISSING: Any = dataclasses.MISSING


def spec(
    default: Any = _MISSING,
    *,
    factory: Any = _MISSING,
    key: str | None = None,
    aliases: tuple[str, ...] = (),
    doc: str = "",
    secret: bool = False,
    ge: int | None = None,
    le: int | None = None,
) -> Any:
    """A dataclass field with its YAML key, accepted aliases and documentation.

    `key` is the YAML spelling when it is not the attribute name (`if`);
    `aliases` are other spellings accepted on input (`ownerstring`);
    `secret` marks values that must never be logged (passwords);
    `ge`/`le` bound an integer.
    """
    meta = {"key": key, "aliases": aliases, "doc": doc, "secret": secret, "ge": ge, "le": le}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def yaml_key(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key") or f.name


def accepted_keys(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    return (yaml_key(f), *f.metadata.get("aliases", ()))
