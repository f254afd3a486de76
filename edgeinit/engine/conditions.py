"""Step conditions (SPEC section 2): all must hold, else the step is skipped.

The conditions that only read facts are checked first and `if:` last, so a step that
is skipped for its architecture or OS never runs its shell test. The first condition
that does not hold gives the skip reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from edgeinit.engine.facts import Facts
from edgeinit.schema.step import Header
from edgeinit.target.exec import run_shell
from edgeinit.target.root import PathError, TargetRoot


class ConditionError(Exception):
    """A condition that could not be evaluated at all (no shell for `if:`): the step fails."""


def _search(pattern: str, text: str) -> bool | None:
    """re.search, or None when the pattern is not a valid regex."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return None


def _regex(key: str, pattern: str, value: str, shown: str) -> str | None:
    """The skip reason of a regex condition on `value` (None when it matches)."""
    found = _search(pattern, value)
    if found is None:
        return f"{key}: '{pattern}' is not a valid regex"
    if not found:
        return f"{key}: {shown} does not match '{pattern}'"
    return None


def check(
    header: Header,
    facts: Facts,
    root: TargetRoot,
    render: Callable[[str], str],
) -> str | None:
    """None when the step should run, else the reason it is skipped.

    Raises ConditionError when `if:` cannot be run at all: a step whose condition
    cannot be judged fails rather than being skipped in silence.
    """
    if header.node:
        hostname = facts.hostname()
        reason = _regex("node", header.node, hostname, f"hostname '{hostname}'")
        if reason:
            return reason
    if header.only_os:
        rel = facts.os_release()
        names = [rel[k] for k in ("ID", "NAME") if rel.get(k)]
        if not names:
            return f"only_os: the target has no os-release, need '{header.only_os}'"
        results = [_search(header.only_os, n) for n in names]
        if None in results:
            return f"only_os: '{header.only_os}' is not a valid regex"
        if not any(results):
            return f"only_os: '{' / '.join(names)}' does not match '{header.only_os}'"
    if header.only_os_version:
        version = facts.os_release().get("VERSION_ID", "")
        if not version:
            return "only_os_version: the target's os-release has no VERSION_ID"
        reason = _regex("only_os_version", header.only_os_version, version, f"'{version}'")
        if reason:
            return reason
    if header.only_arch:
        arch = facts.arch()
        reason = _regex("only_arch", header.only_arch, arch, f"'{arch}'")
        if reason:
            return reason
    if header.only_service_manager:
        wanted = header.only_service_manager.strip().lower()
        if wanted not in ("systemd", "openrc"):
            return f"only_service_manager: '{header.only_service_manager}' is not systemd or openrc"
        present = facts.service_managers()
        if present == {"systemd", "openrc"}:
            return "only_service_manager: both systemd and openrc are present, cannot tell"
        if wanted not in present:
            found_text = ", ".join(sorted(present)) or "none"
            return f"only_service_manager: the target runs {found_text}, not {wanted}"
    if header.if_files is not None:
        reason = _if_files(header, root)
        if reason:
            return reason
    if header.if_:
        command = render(header.if_)
        result = run_shell(root.path, command)
        if not result.started:
            raise ConditionError(f"if: cannot run '{command}': {result.output}")
        if result.timed_out:
            return f"if: '{command}' timed out"
        if result.returncode != 0:
            return f"if: '{command}' exited with {result.returncode}"
    return None


def _exists(root: TargetRoot, path: str) -> bool:
    try:
        return root.state(root.resolve(path)) is not None
    except PathError:
        return False


def _if_files(header: Header, root: TargetRoot) -> str | None:
    files = header.if_files
    assert files is not None
    for path in files.all:
        if not _exists(root, path):
            return f"if_files: {path} is missing"
    if files.any and not any(_exists(root, p) for p in files.any):
        return "if_files: none of " + ", ".join(files.any) + " exists"
    for path in files.none:
        if _exists(root, path):
            return f"if_files: {path} exists"
    return None
