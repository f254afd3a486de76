"""Env files (`KEY=value` lines) as godotenv, which yip uses, reads and writes them.

Reading understands `export KEY=...`, double quotes with backslash escapes, single
quotes, and comments. Writing a new file gives exactly what yip writes: keys sorted,
`KEY=123` for integers, else `KEY="..."` with `\\ \\n \\r " ! $ \\`` escaped. Editing an
existing file changes only the lines of the keys it sets and appends new keys, so
comments and other settings survive (yip rewrites the whole file).
"""

from __future__ import annotations

import re

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$")
_SPECIAL = "\\\n\r\"!$`"


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith('"'):
        out = []
        i = 1
        while i < len(raw):
            c = raw[i]
            if c == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
                i += 2
                continue
            if c == '"':
                break
            out.append(c)
            i += 1
        return "".join(out)
    if raw.startswith("'"):
        end = raw.find("'", 1)
        return raw[1:end] if end > 0 else raw[1:]
    hash_at = raw.find(" #")
    if hash_at >= 0:
        raw = raw[:hash_at]
    return raw.strip()


def parse(text: str) -> dict[str, str]:
    """KEY -> value of every assignment in `text` (the last one wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and not line.lstrip().startswith("#"):
            out[m.group(1)] = _unquote(m.group(2))
    return out


def format_line(key: str, value: str) -> str:
    try:
        if str(int(value)) == value:
            return f"{key}={value}"
    except ValueError:
        pass
    escaped = value
    for c in _SPECIAL:
        escaped = escaped.replace(c, {"\n": "\\n", "\r": "\\r"}.get(c, "\\" + c))
    return f'{key}="{escaped}"'


def merge(old: str | None, values: dict[str, str]) -> str:
    """`old` with `values` set: changed lines replaced in place, new keys appended sorted."""
    if not old or not old.strip():
        # godotenv.Marshal sorts the formatted lines (so `A1=1` comes before `A="x"`)
        return "".join(line + "\n" for line in sorted(format_line(k, v) for k, v in values.items()))
    lines = old.splitlines()
    current = {}
    for i, line in enumerate(lines):
        m = _LINE.match(line)
        if m and not line.lstrip().startswith("#"):
            current[m.group(1)] = i
    for key in sorted(values):
        if key in current:
            i = current[key]
            if _unquote(_LINE.match(lines[i]).group(2)) != values[key]:  # type: ignore[union-attr]
                lines[i] = format_line(key, values[key])
        else:
            lines.append(format_line(key, values[key]))
    return "\n".join(lines) + "\n"
