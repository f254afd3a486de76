"""The subset of yip's Go templates that real configs use, without a Go runtime.

Understood: `{{ .Values.a.b }}` (node facts), in hostnames also `{{ .MachineID }}`,
`{{ .UUID }}`, `{{ .Random }}` and `{{ .ProtectedID }}`, the `trunc N` function
(`{{ trunc 4 .MachineID }}` or `{{ .MachineID | trunc 4 }}`) and `{{-`/`-}}` trimming.
Anything else is left exactly as written, with a warning: text meant for another
template engine (Helm, Jinja) written into a file survives, where yip would mangle it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_EXPR = re.compile(r"\{\{(-)?(.*?)(-)?\}\}", re.S)
_FIELD = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)$")
_TRUNC_PREFIX = re.compile(r"^trunc\s+(-?\d+)\s+(\S+)$")
_TRUNC_PIPE = re.compile(r"^(\S+)\s*\|\s*trunc\s+(-?\d+)$")

HOSTNAME_RANDOM_FIELDS = {"UUID", "Random"}


class NotUnderstood(Exception):
    pass


def _parse_expr(body: str) -> tuple[str, int | None]:
    body = body.strip()
    trunc: int | None = None
    m = _TRUNC_PREFIX.match(body) or None
    if m:
        trunc, body = int(m.group(1)), m.group(2)
    else:
        m = _TRUNC_PIPE.match(body)
        if m:
            body, trunc = m.group(1), int(m.group(2))
    f = _FIELD.match(body)
    if not f:
        raise NotUnderstood(body)
    return f.group(1), trunc


def truncate(text: str, n: int | None) -> str:
    """Sprig's trunc: the first n characters, or the last -n when n is negative."""
    if n is None:
        return text
    if n >= 0:
        return text[:n]
    return text[n:] if len(text) + n > 0 else text


def render(
    text: str,
    lookup: Callable[[str], Any],
    warn: Callable[[str], None],
) -> str:
    """`text` with every understood expression replaced by `lookup(field)`.

    `lookup` raises KeyError for a field it does not know; such an expression, and any
    expression outside the subset, stays verbatim and `warn` is told.
    """
    if "{{" not in text:
        return text
    out: list[str] = []
    pos = 0
    pending_trim = False
    for m in _EXPR.finditer(text):
        literal = text[pos:m.start()]
        if pending_trim:
            literal = literal.lstrip()
        try:
            name, trunc = _parse_expr(m.group(2))
            value = lookup(name)
        except (NotUnderstood, KeyError):
            warn(f"template expression '{m.group(0)}' not understood; left as written")
            out.append(literal)
            out.append(m.group(0))
            pos = m.end()
            pending_trim = False
            continue
        if m.group(1):
            literal = literal.rstrip()
        out.append(literal)
        out.append(truncate(_as_text(value), trunc))
        pos = m.end()
        pending_trim = bool(m.group(3))
    rest = text[pos:]
    out.append(rest.lstrip() if pending_trim else rest)
    return "".join(out)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def pattern(
    text: str,
    random_patterns: dict[str, str],
    lookup: Callable[[str], Any],
) -> re.Pattern[str] | None:
    """A regex matching every rendering of `text` (None when it has nothing random).

    Fields in `random_patterns` (UUID, Random) become their character class; the rest
    render as usual. Used to keep a hostname stable when it already fits its template.
    """
    parts: list[str] = []
    pos = 0
    random_seen = False
    for m in _EXPR.finditer(text):
        parts.append(re.escape(text[pos:m.start()]))
        try:
            name, trunc = _parse_expr(m.group(2))
        except NotUnderstood:
            parts.append(re.escape(m.group(0)))
            pos = m.end()
            continue
        if name in random_patterns:
            random_seen = True
            charset, length = random_patterns[name].split("/")
            n = int(length) if trunc is None else min(abs(trunc), int(length))
            parts.append(f"{charset}{{{n}}}")
        else:
            try:
                parts.append(re.escape(truncate(_as_text(lookup(name)), trunc)))
            except KeyError:
                parts.append(re.escape(m.group(0)))
        pos = m.end()
    parts.append(re.escape(text[pos:]))
    if not random_seen:
        return None
    return re.compile("".join(parts))
