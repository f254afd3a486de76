"""`edgeinit validate`: every problem of every source, as FILE:LINE:COLUMN: message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edgeinit import plugins
from edgeinit.config.sources import Document, Failure, Loaded
from edgeinit.schema.problems import UNSUPPORTED, Path, Problem
from edgeinit.schema.step import build_step


@dataclass(frozen=True, order=True)
class Finding:
    origin: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.origin}:{self.line}:{self.column}: {self.message}"
        return f"{self.origin}: {self.message}"


StepChecker = Callable[[object, Path], list[Problem]]


def unsupported_problems(raw: object, path: Path) -> list[Problem]:
    """Keys yip knows whose plugin edgeinit does not implement yet."""
    if not isinstance(raw, dict):
        return []
    out = []
    for key in raw:
        owner = plugins.KEY_OWNER.get(key)
        if owner is not None and plugins.load(owner).plan is None:
            issue = plugins.load(owner).issue
            note = f" (tracked in {issue})" if issue else ""
            out.append(Problem((*path, key), f"key '{key}' is not supported by edgeinit yet"
                               + note, UNSUPPORTED, at_key=True))
    return out


def lean_step_problems(raw: object, path: Path) -> list[Problem]:
    """A step's problems as the run path sees them (plus unimplemented keys)."""
    return build_step(raw, path).problems + unsupported_problems(raw, path)


def document_problems(doc: Document, check_step: StepChecker = lean_step_problems
                      ) -> Iterator[Problem]:
    """Every problem of a loaded document: file-level ones, then each step's."""
    seen: set[tuple[Path, str]] = set()
    for problem in doc.problems:
        seen.add((problem.path, problem.message))
        yield problem
    for stage, steps in doc.data["stages"].items():
        if not isinstance(steps, list):
            if steps is not None and not any(p.path == ("stages", stage) for p in doc.problems):
                yield Problem(("stages", stage), "expected a list of steps")
            continue
        for index, raw in enumerate(steps):
            for problem in check_step(raw, ("stages", stage, index)):
                if (problem.path, problem.message) not in seen:
                    yield problem


def findings(loaded: list[Loaded], check_step: StepChecker = lean_step_problems) -> list[Finding]:
    out: list[Finding] = []
    for entry in loaded:
        if isinstance(entry, Failure):
            out.append(Finding(entry.origin, entry.line, entry.column, entry.message))
            continue
        for problem in document_problems(entry, check_step):
            line, col = entry.locate(problem.path, key=problem.at_key)
            out.append(Finding(entry.origin, line, col, problem.message))
    order = {e.origin: i for i, e in enumerate(loaded)}
    return sorted(set(out), key=lambda f: (order.get(f.origin, 0), f.line, f.column, f.message))
