"""Unified diffs for `--dry-run`, with secrets masked.

A diff never shows a secret: a file marked secret, or one its new mode keeps from other
users (0600, 0640, ...), is summarised instead of shown; in any other file, lines that
look like a password hash, a private key or a `password=` setting are masked.
"""

from __future__ import annotations

import re

MASK = "********"
_HASH = re.compile(r"\$(?:1|2[abxy]?|5|6|7|y|gy|sha1|md5)\$[^\s:'\"]+")
_ASSIGN = re.compile(r"(?i)((?:pass(?:word|wd)?|secret|token|api[_-]?key)\s*[:=]\s*)(\S.*)")
_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")


def mask_text(text: str) -> str:
    """`text` with password hashes, `password=...` values and private key bodies masked."""
    out: list[str] = []
    in_key = False
    for line in text.splitlines(keepends=True):
        if in_key:
            if _KEY_END.search(line):
                in_key = False
                out.append(line)
            else:
                out.append(MASK + "\n")
            continue
        if _KEY_BEGIN.search(line):
            in_key = True
            out.append(line)
            continue
        line = _HASH.sub(MASK, line)
        line = _ASSIGN.sub(lambda m: m.group(1) + MASK, line)
        out.append(line)
    return "".join(out)


def file_diff(
    path: str, old: bytes | None, new: bytes, *, secret: bool = False, mode: int = 0o644
) -> str:
    """Unified diff of a file's old and new content (empty when equal)."""
    if old == new:
        return ""
    if secret or not mode & 0o004:
        before = "absent" if old is None else f"{_count_lines(old)} lines"
        return (
            f"--- {path}\n+++ {path}\n"
            f"@@ content masked (not readable by others): {before} -> "
            f"{_count_lines(new)} lines @@\n"
        )
    old_text = _as_text(old)
    new_text = _as_text(new)
    if old_text is None or new_text is None:
        size = f"{len(old or b'')} -> {len(new)} bytes"
        return f"--- {path}\n+++ {path}\n@@ binary content: {size} @@\n"
    import difflib

    lines = difflib.unified_diff(
        mask_text(old_text).splitlines(keepends=True),
        mask_text(new_text).splitlines(keepends=True),
        fromfile=path if old is not None else "/dev/null",
        tofile=path,
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def _as_text(data: bytes | None) -> str | None:
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
