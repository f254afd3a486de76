"""YAML as yip reads it: every scalar is text until a field's type says otherwise.

yip decodes into typed Go structs with yaml.v3, so a plain `0644` is an octal integer
in `permissions` but the string "0644" in `environment`, and `yes` is a boolean only
where a boolean is expected. PyYAML resolves scalars by YAML 1.1 rules before knowing
the field (`0644` -> 420, `12:30` -> 750, `1.10` -> 1.1, `yes` -> True). So this loader
resolves nothing but null and merge keys: scalars stay the text the user wrote, and the
schema converts them by field type, as yip does.

Loading uses libyaml (CSafeLoader-based) when present. Line numbers are computed only
when a problem needs one, by composing the node tree again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

try:
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    _BaseLoader = yaml.SafeLoader


class TextLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that keeps every plain scalar as text (null and << excepted)."""


TextLoader.yaml_implicit_resolvers = {}
TextLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
TextLoader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> dict[str, Any]:
    """Mappings keep insertion order; a key repeated in one mapping is an error (as yaml.v3).

    Keys brought in by a `<<` merge are not repeats: the mapping's own keys override
    them, as in yaml.v3.
    """
    merges = any(k.tag == _MERGE for k, _ in node.value)
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            continue
        key = _key(loader, key_node)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key '{key}' already defined", key_node.start_mark
            )
        out[key] = None if merges else loader.construct_object(value_node, deep=True)
    if not merges:
        return out
    loader.flatten_mapping(node)  # merged keys first, then the mapping's own (which win)
    out = {}
    for key_node, value_node in node.value:
        out[_key(loader, key_node)] = loader.construct_object(value_node, deep=True)
    return out


_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"


def _key(loader: Any, key_node: yaml.Node) -> str:
    if key_node.tag == _STR and isinstance(key_node, yaml.ScalarNode):
        return str(key_node.value)
    key = loader.construct_object(key_node, deep=True)
    if not isinstance(key, str):
        key = "" if key is None else str(key)
    return key


TextLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
for _tag in ("int", "float", "bool", "timestamp", "binary"):
    TextLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", TextLoader.construct_yaml_str)


class YamlError(Exception):
    """A document that is not valid YAML; line and column are 1-based (0 if unknown)."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        return where + self.message


def load(text: str) -> Any:
    """The first document's data (scalars as text); raises YamlError."""
    return load_first(text)[0]


def load_first(text: str) -> tuple[Any, bool]:
    """The first document's data, and whether more documents with content follow.

    Like yip (yaml.v3's Unmarshal) only the first document counts; what follows a
    `---` is not read, so it cannot fail the file, but the caller may warn about it.
    """
    loader = TextLoader(text)
    try:
        try:
            data = loader.get_data() if loader.check_data() else None
        except yaml.MarkedYAMLError as e:
            raise _error(e) from None
        except yaml.YAMLError as e:
            raise YamlError(str(e)) from None
        try:
            more = loader.check_data() and loader.get_data() is not None
        except yaml.YAMLError:
            more = True
        return data, bool(more)
    finally:
        loader.dispose()


def _error(e: yaml.MarkedYAMLError) -> YamlError:
    mark = e.problem_mark or e.context_mark
    problem = " ".join(p for p in (e.context, e.problem) if p) or str(e)
    if mark is None:
        return YamlError(problem)
    return YamlError(problem, mark.line + 1, mark.column + 1)


def compose(text: str) -> yaml.Node | None:
    """The node tree of `text` (None for an empty or unparsable document)."""
    try:
        return yaml.compose(text, Loader=TextLoader)
    except yaml.YAMLError:
        return None


def locate(text: str, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
    """1-based (line, column) of the node at `path` in `text` (see locate_in)."""
    return locate_in(compose(text), path, key=key)


def locate_in(node: yaml.Node | None, path: Sequence[str | int], *, key: bool = False
              ) -> tuple[int, int]:
    """1-based (line, column) of the node at `path` under `node`.

    With key=True and a path ending in a mapping key, the position of the key itself.
    Falls back to the nearest ancestor that exists; (1, 1) without a tree.
    """
    if node is None:
        return (1, 1)
    best = node.start_mark
    for i, step in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, yaml.MappingNode):
            found = None
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(step):
                    found = (k, v)
            if found is None:
                break
            knode, vnode = found
            if last and key:
                best = knode.start_mark
                break
            node = vnode
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if not 0 <= step < len(node.value):
                break
            node = node.value[step]
        else:
            break
        best = node.start_mark
    return (best.line + 1, best.column + 1)
