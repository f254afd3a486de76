"""The run path's validator: raw YAML data -> model records, plus problems.

It understands exactly the type vocabulary the models use (str, int, bool, T | None,
list[T], dict[str, T] and records) with yip's leniency (scalars.py). Unknown keys
are reported with a suggestion and otherwise ignored; a value of the wrong type is
reported and replaced by the field's default, so the caller decides whether the
problems fail the step.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from edgeinit.model import Record, fields, is_record
from edgeinit.schema import scalars
from edgeinit.schema.fields import accepted_keys, yaml_key
from edgeinit.schema.problems import ERROR, Path, Problem, repeated_alias, unknown_key


class _Field(Record):
    name: str
    keys: tuple[str, ...]
    hint: Any
    ge: int | None
    le: int | None


_FIELDS: dict[type, tuple[dict[str, _Field], tuple[str, ...]]] = {}


def model_fields(cls: type) -> tuple[dict[str, _Field], tuple[str, ...]]:
    """{accepted key: field} of a model record, and its canonical keys in order."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    by_key: dict[str, _Field] = {}
    canonical: list[str] = []
    for f in fields(cls):
        entry = _Field(
            f.name, accepted_keys(f), hints[f.name], f.metadata.get("ge"), f.metadata.get("le"))
        canonical.append(yaml_key(f))
        for k in entry.keys:
            by_key[k] = entry
    _FIELDS[cls] = (by_key, tuple(canonical))
    return _FIELDS[cls]


def coerce(hint: Any, value: Any, path: Path, problems: list[Problem]) -> Any:
    """`value` converted to `hint`; problems appended with paths relative to the document."""
    return _coerce(hint, value, path, problems, None, None)


def build(cls: type, data: Any, path: Path, problems: list[Problem]) -> Any:
    """An instance of model record `cls` from a mapping (None = all defaults)."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        problems.append(Problem(path, f"expected a mapping, got {scalars.kind_of(data)}"))
        return cls()
    by_key, canonical = model_fields(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        f = by_key.get(key)
        if f is None:
            problems.append(unknown_key(path, key, canonical))
            continue
        if key != f.keys[0] and f.keys[0] in data:  # two spellings of one field
            problems.append(repeated_alias(path, key, f.keys[0]))
            continue
        before = len(problems)
        converted = _coerce(f.hint, value, (*path, key), problems, f.ge, f.le)
        if _has_error(problems, before):
            continue  # keep the default for a field that failed
        kwargs[f.name] = converted
    return cls(**kwargs)


def _has_error(problems: list[Problem], since: int) -> bool:
    return any(p.kind == ERROR for p in problems[since:])


def _coerce(hint: Any, value: Any, path: Path, problems: list[Problem],
            ge: int | None, le: int | None) -> Any:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(inner[0], value, path, problems, ge, le)
    if hint is str:
        return _scalar(scalars.to_text, value, path, problems, "")
    if hint is int:
        if value is None:
            return 0
        return _scalar(lambda v: scalars.parse_int(v, ge, le), value, path, problems, 0)
    if hint is bool:
        return _scalar(scalars.parse_bool, value, path, problems, False)
    if origin is list:
        (item,) = typing.get_args(hint)
        if value is None:
            return []
        if not isinstance(value, list):
            problems.append(Problem(path, f"expected a list, got {scalars.kind_of(value)}"))
            return []
        return [_coerce(item, v, (*path, i), problems, ge, le) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if value is None:
            return {}
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected a mapping, got {scalars.kind_of(value)}"))
            return {}
        return {str(k): _coerce(item, v, (*path, str(k)), problems, ge, le)
                for k, v in value.items()}
    if is_record(hint):
        return build(hint, value, path, problems)
    raise TypeError(f"model type {hint!r} is outside the schema vocabulary")


def _scalar(convert: Any, value: Any, path: Path, problems: list[Problem], default: Any) -> Any:
    try:
        return convert(value)
    except scalars.ScalarError as e:
        problems.append(Problem(path, str(e)))
        return default
