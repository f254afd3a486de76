"""INI files as systemd reads them: set keys in a section, keep everything else."""

from __future__ import annotations

import re

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^\s*([^=#;\s][^=]*?)\s*=\s*(.*?)\s*$")


def set_keys(old: str | None, section: str, values: dict[str, str]) -> str:
    """`old` with `values` set in `[section]` as `Key = value` (yip's go-ini spelling).

    Existing keys of that section are replaced in place; new ones follow the section's
    last line, in sorted order; a missing section is appended.
    """
    lines = (old or "").splitlines()
    start = end = None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            if start is not None and end is None:
                end = i
            if m.group(1).strip() == section and start is None:
                start = i
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append(f"[{section}]")
        start, end = len(lines) - 1, len(lines)
    elif end is None:
        end = len(lines)
    pending = dict(values)
    for i in range(start + 1, end):
        m = _KEY.match(lines[i])
        if m and m.group(1) in pending:
            lines[i] = f"{m.group(1)} = {pending.pop(m.group(1))}"
    insert_at = end
    while insert_at > start + 1 and not lines[insert_at - 1].strip():
        insert_at -= 1
    for key in sorted(pending):
        lines.insert(insert_at, f"{key} = {pending[key]}")
        insert_at += 1
    return "\n".join(lines) + "\n"
