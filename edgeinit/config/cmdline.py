"""The kernel command line as a config source.

`edgeinit.setup=SRC` (and `cos.setup=`, `elemental.setup=`) names extra sources. The
other words are read as yip's dot notation: `stages.boot[0].hostname=node1` sets that
path to the string "node1"; a word without `=` sets "true". Words that are not valid
paths, or do not start with `stages`, are ignored: the command line is mostly about
other things (root=, console=, quiet), and those are not edgeinit's business.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

SETUP_KEYS = ("edgeinit.setup", "cos.setup", "elemental.setup")

_SEGMENT = re.compile(r'\.(?:([A-Za-z_][A-Za-z0-9_-]*)|"((?:[^"\\]|\\.)*)")((?:\[\d+\])*)')


def words(text: str) -> list[str]:
    """Shell-like split (quotes group words); falls back to whitespace on bad quoting."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def setup_sources(text: str) -> list[str]:
    """The sources named by `edgeinit.setup=` and its aliases, in command-line order."""
    out = []
    for word in words(text):
        key, sep, value = word.partition("=")
        if sep and key in SETUP_KEYS and value:
            out.append(value)
    return out


def parse_path(key: str) -> list[str | int] | None:
    """`stages.boot[0].name` -> ['stages', 'boot', 0, 'name']; None when not a valid path.

    A segment may be quoted to hold dots: `stages."rootfs.after"[0].name`;
    dot_config also reads `stages.rootfs.after[0].name` as that sub-stage.
    """
    text = "." + key
    pos = 0
    out: list[str | int] = []
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if not m:
            return None
        out.append(m.group(1) if m.group(1) is not None else m.group(2).replace('\\"', '"'))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(3)))
        pos = m.end()
    return out or None


def _assign(doc: dict[str, Any], path: list[str | int], value: str) -> bool:
    node: Any = doc
    for i, part in enumerate(path):
        last = i == len(path) - 1
        nxt = None if last else path[i + 1]
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(part, int):
            if not isinstance(node, list):
                return False
            while len(node) <= part:
                node.append(None)
            if last:
                node[part] = value
            else:
                if node[part] is None:
                    node[part] = empty
                node = node[part]
        else:
            if not isinstance(node, dict):
                return False
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = empty
                node = node[part]
        if not last and not isinstance(node, (dict, list)):
            return False
    return True


def dot_config(text: str) -> dict[str, Any]:
    """The config the command line's dot-notation words describe (possibly empty)."""
    doc: dict[str, Any] = {}
    for word in words(text):
        key, sep, value = word.partition("=")
        key = _unquote(key)
        value = _unquote(value) if sep else "true"
        if not key.startswith("stages.") or key in SETUP_KEYS:
            continue
        path = parse_path(key)
        if path is None or len(path) < 2:
            continue
        if (len(path) >= 4 and isinstance(path[1], str) and path[2] in ("before", "after")
                and isinstance(path[3], int)):
            path = ["stages", f"{path[1]}.{path[2]}", *path[3:]]  # stages.boot.after[0]
        trial: dict[str, Any] = _copy(doc)
        if _assign(trial, path, value):
            doc = trial
    return _well_formed(doc)


def _unquote(text: str) -> str:
    """Drop one pair of surrounding double quotes (yip trims them)."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _well_formed(doc: dict[str, Any]) -> dict[str, Any]:
    """Only stages that are lists of mappings: the command line is not the place to
    report shape errors (Elemental drops them too), it has too many other words."""
    stages = doc.get("stages")
    if not isinstance(stages, dict):
        return {}
    kept = {}
    for name, steps in stages.items():
        if isinstance(steps, list):
            steps = [s for s in steps if s is None or isinstance(s, dict)]
            if any(steps):
                kept[name] = steps
    return {"stages": kept} if kept else {}


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node
