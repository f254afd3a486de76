"""How a model field is spelled in YAML (its key, and other accepted spellings)."""

from __future__ import annotations

from edgeinit.model import Field, spec

__all__ = ["accepted_keys", "spec", "yaml_key"]


def yaml_key(f: Field) -> str:
    return f.metadata.get("key") or f.name


def accepted_keys(f: Field) -> tuple[str, ...]:
    return (yaml_key(f), *f.metadata.get("aliases", ()))
