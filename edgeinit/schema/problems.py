"""What is wrong with a config, said the same way by `run` and `validate`."""

from __future__ import annotations

from collections.abc import Iterable

from edgeinit.model import Record

Path = tuple[str | int, ...]

ERROR = "error"  # wrong type or shape: the step (or source) fails
UNKNOWN = "unknown"  # a key nobody knows: a warning in run, a problem in validate
UNSUPPORTED = "unsupported"  # a key yip knows and edgeinit does not implement


class Problem(Record):
    path: Path  # where in the document; the last element is the key for key problems
    message: str
    kind: str = ERROR
    at_key: bool = False  # point at the key itself rather than its value


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The known key closest to `word`, if it is close enough to be a likely typo."""
    import difflib

    pool = sorted(set(candidates))
    match = difflib.get_close_matches(word, pool, n=1, cutoff=0.7)
    if match:
        return match[0]
    lowered = {c.lower(): c for c in pool}
    return lowered.get(word.lower())


def unknown_key(path: Path, key: str, candidates: Iterable[str]) -> Problem:
    hint = suggest(key, candidates)
    message = f"unknown key '{key}'"
    if hint:
        message += f"; did you mean '{hint}'?"
    return Problem((*path, key), message, UNKNOWN, at_key=True)


def repeated_alias(path: Path, key: str, canonical: str) -> Problem:
    return Problem((*path, key), f"'{key}' and '{canonical}' are the same key; keep one",
                   ERROR, at_key=True)


def unsupported_key(path: Path, key: str, what: str = "key") -> Problem:
    return Problem((*path, key), f"{what} '{key}' is not supported by edgeinit", UNSUPPORTED,
                   at_key=True)


def dotted(path: Path) -> str:
    """`stages.boot[0].files[1].path` for messages."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
