"""Pydantic v2 models of the config format, built from the plugins' model records.

The records next to each plugin (edgeinit.model.Record) are the one definition of the
format. This module
turns them into pydantic models (extra keys forbidden, YAML spellings as aliases,
yip's scalar leniency as before-validators sharing scalars.py with the run path), for
`edgeinit validate` and the JSON Schema of `edgeinit schema`. It is never imported by
`edgeinit run`: pydantic costs more to import than a whole boot stage may take.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from edgeinit import plugins
from edgeinit.model import fields, is_record
from edgeinit.schema import scalars
from edgeinit.schema.coerce import model_fields
from edgeinit.schema.fields import yaml_key
from edgeinit.schema.problems import ERROR, Path, Problem, repeated_alias, unknown_key
from edgeinit.schema.step import Header

_INT_TEXT = r"^[+-]?(0[xXoObB])?[0-9a-fA-F_]+$"
_BOOL_WORDS = ["true", "false", "yes", "no", "on", "off", "y", "n",
               "True", "False", "TRUE", "FALSE", "Yes", "No", "On", "Off"]


def _custom(convert: Any) -> Any:
    def validator(value: Any) -> Any:
        try:
            return convert(value)
        except scalars.ScalarError as e:
            raise PydanticCustomError("edgeinit", str(e)) from None

    return validator


def _none_to(empty: Any) -> Any:
    def validator(value: Any) -> Any:
        return empty() if value is None else value

    return validator


def _annotation(hint: Any, ge: int | None, le: int | None) -> Any:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _annotation(inner[0], ge, le) | None
    if hint is str:
        return Annotated[str, BeforeValidator(_custom(scalars.to_text)),
                         WithJsonSchema({"type": ["string", "number", "boolean", "null"]})]
    if hint is int:
        integer: dict[str, Any] = {"type": "integer"}
        if ge is not None:
            integer["minimum"] = ge
        if le is not None:
            integer["maximum"] = le
        return Annotated[int, BeforeValidator(_custom(lambda v: 0 if v is None else
                                                      scalars.parse_int(v, ge, le))),
                         WithJsonSchema({"anyOf": [integer, {"type": "string",
                                                             "pattern": _INT_TEXT}]})]
    if hint is bool:
        return Annotated[bool, BeforeValidator(_custom(scalars.parse_bool)),
                         WithJsonSchema({"anyOf": [{"type": "boolean"},
                                                   {"enum": _BOOL_WORDS}, {"type": "null"}]})]
    if origin is list:
        (item,) = typing.get_args(hint)
        return Annotated[list[_annotation(item, ge, le)], BeforeValidator(_none_to(list))]  # type: ignore[misc]
    if origin is dict:
        _, item = typing.get_args(hint)
        return Annotated[dict[str, _annotation(item, ge, le)],  # type: ignore[misc]
                         BeforeValidator(_none_to(dict))]
    if is_record(hint):
        return Annotated[model_for(hint), BeforeValidator(_none_to(dict))]
    raise TypeError(f"model type {hint!r} is outside the schema vocabulary")


def _field_definitions(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        keys = (yaml_key(f), *f.metadata.get("aliases", ()))
        extra: dict[str, Any] = {}
        if f.metadata.get("secret"):
            extra["x-secret"] = True
        if len(keys) > 1:
            extra["x-aliases"] = list(keys[1:])
        kwargs: dict[str, Any] = {
            "alias": keys[0],
            "validation_alias": AliasChoices(*keys) if len(keys) > 1 else keys[0],
            "description": f.metadata.get("doc") or None,
            "json_schema_extra": extra or None,
        }
        if f.factory is not None:
            kwargs["default_factory"] = f.factory
        else:
            kwargs["default"] = f.default
        ann = _annotation(hints[f.name], f.metadata.get("ge"), f.metadata.get("le"))
        out[f.name] = (ann, Field(**kwargs))
    return out


_CONFIG = ConfigDict(extra="forbid", populate_by_name=False, hide_input_in_errors=True)


@cache
def model_for(cls: type) -> type[BaseModel]:
    """The pydantic model of one model record."""
    doc = (cls.__doc__ or "").strip()
    return create_model(  # type: ignore[call-overload, no-any-return]
        cls.__name__, __config__=_CONFIG, __doc__=doc or None, **_field_definitions(cls),
    )


@cache
def step_model() -> type[BaseModel]:
    """A step: the engine's keys plus every plugin's keys, in execution order."""
    fields = _field_definitions(Header)
    for plugin in plugins.all_plugins():
        fields.update(_field_definitions(plugin.args))
    return create_model("Step", __config__=_CONFIG,  # type: ignore[call-overload, no-any-return]
                        __doc__="One step of a stage: conditions, then plugins in yip's order.",
                        **fields)


@cache
def config_model() -> type[BaseModel]:
    step = step_model()
    steps = Annotated[list[Annotated[step, BeforeValidator(_none_to(dict))]] | None,  # type: ignore[valid-type]
                      Field(description="Steps, run in order.")]
    return create_model(  # type: ignore[call-overload, no-any-return]
        "Config", __config__=_CONFIG,
        __doc__="An edgeinit / yip config file.",
        name=(Annotated[str, BeforeValidator(_custom(scalars.to_text))],
              Field("", description="Names the config in logs, reports and `after:`.")),
        stages=(dict[str, steps] | None, Field(  # type: ignore[valid-type]
            None, description="Stage name (boot, network, rootfs.after, ...) -> steps.")),
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a yip-format config file."""
    schema = config_model().model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# -- validation -----------------------------------------------------------------------


def _candidates(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The keys the mapping at `loc` (a pydantic location inside a step) accepts."""
    from edgeinit.schema.step import STEP_KEYS

    if not loc:
        return STEP_KEYS
    model = _model_at(loc)
    return model_fields(model)[1] if model is not None else ()


def _model_at(loc: tuple[Any, ...]) -> type | None:
    """The model record of the mapping at `loc` inside a step (None for the step)."""
    if not loc:
        return None
    hint: Any = None
    first = loc[0]
    for cls in (Header, *(p.args for p in plugins.all_plugins())):
        by_key, _ = model_fields(cls)
        if first in by_key:
            hint = by_key[first].hint
            break
    for part in loc[1:]:
        hint = _strip_optional(hint)
        origin = typing.get_origin(hint)
        if origin in (list, dict):
            hint = typing.get_args(hint)[-1]
        elif is_record(hint):
            by_key, _ = model_fields(hint)
            hint = by_key[part].hint if part in by_key else None
    hint = _strip_optional(hint)
    if typing.get_origin(hint) in (list, dict):
        hint = _strip_optional(typing.get_args(hint)[-1])
    return hint if is_record(hint) else None


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _problem(error: Any, base: Path) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at(loc[:-1])
        if model is not None:
            field = model_fields(model)[0].get(key)
            if field is not None:  # an alias given beside its canonical spelling
                return repeated_alias((*base, *loc[:-1]), key, field.keys[0])
        return unknown_key((*base, *loc[:-1]), key, _candidates(loc[:-1]))
    if kind == "list_type":
        return Problem((*base, *loc), f"expected a list, got {scalars.kind_of(value)}")
    if kind in ("dict_type", "model_type", "model_attributes_type", "dataclass_type"):
        return Problem((*base, *loc), f"expected a mapping, got {scalars.kind_of(value)}")
    return Problem((*base, *loc), error["msg"], ERROR)


def pydantic_step_problems(raw: object, path: Path) -> list[Problem]:
    """A step's problems as pydantic sees them (plus keys not implemented yet)."""
    from edgeinit.schema.validate import unsupported_problems

    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [Problem(path, f"a step must be a mapping, got {scalars.kind_of(raw)}")]
    problems: list[Problem] = []
    try:
        step_model().model_validate(raw)
    except ValidationError as e:
        problems.extend(_problem(err, path) for err in e.errors(include_url=False))
    problems.extend(unsupported_problems(raw, path))
    return problems
