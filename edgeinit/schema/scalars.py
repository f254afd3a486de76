"""Scalar conversion by field type, shared by the run-path coercer and pydantic.

Input scalars are the text the user wrote (see config/yamlload.py). Integers follow
yaml.v3 for plain scalars (Go's ParseInt base 0, so `0644` and `0o644` are octal and
`644` is decimal), booleans accept YAML 1.1 words where a boolean is expected, and
any scalar is a string where a string is expected (null is the empty string).
"""

from __future__ import annotations

from typing import Any

_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}


class ScalarError(ValueError):
    """A value that does not convert to the field's type; the message is user-facing."""


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string"


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    raise ScalarError(f"expected a string, got {kind_of(value)}")


def parse_int(value: Any, ge: int | None = None, le: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ScalarError(f"expected an integer, got {kind_of(value)}")
    number = value if isinstance(value, int) else _go_int(value)
    if (ge is not None and number < ge) or (le is not None and number > le):
        if le is None:
            raise ScalarError(f"expected an integer of at least {ge}, got '{value}'")
        if ge is None:
            raise ScalarError(f"expected an integer of at most {_fmt_bound(le, le)}, got '{value}'")
        lo, hi = _fmt_bound(ge, le), _fmt_bound(le, le)
        raise ScalarError(f"expected an integer from {lo} to {hi}, got '{value}'")
    return number


def _fmt_bound(n: int, le: int | None) -> str:
    return f"0{n:o}" if le == 0o7777 and n else str(n)


def _go_int(text: str) -> int:
    s = text.strip().replace("_", "")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    low = s.lower()
    if low.startswith("0x"):
        base, digits = 16, s[2:]
    elif low.startswith("0o"):
        base, digits = 8, s[2:]
    elif low.startswith("0b"):
        base, digits = 2, s[2:]
    elif len(s) > 1 and s.startswith("0"):
        base, digits = 8, s[1:]
    else:
        base, digits = 10, s
    if not digits or not digits.isalnum():
        raise ScalarError(f"expected an integer, got '{text}'")
    try:
        return sign * int(digits, base)
    except ValueError:
        raise ScalarError(f"expected an integer, got '{text}'") from None


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ScalarError(f"expected true or false, got '{value}'")
    raise ScalarError(f"expected true or false, got {kind_of(value)}")
