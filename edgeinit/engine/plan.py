"""Loaded documents -> the ordered list of what a stage runs (SPEC sections 1, 2).

Sub-stages `STAGE.before`, `STAGE`, `STAGE.after`, in that order; within each, the
sources in order, their files in walk order, each file's steps in file order. A step
with `after:` moves to run right after the step(s) it names, within the same sub-stage
and the same SOURCE argument. Everything is one total order: nothing runs in parallel.
"""

from __future__ import annotations

from typing import Any

from edgeinit.config.sources import Document, Failure, Loaded
from edgeinit.model import Record, spec
from edgeinit.schema.problems import Problem
from edgeinit.schema.step import Step, build_step


def sub_stages(stage: str) -> tuple[str, str, str]:
    return (f"{stage}.before", stage, f"{stage}.after")


class Planned(Record):
    """One step of one document, placed in the run order."""

    stage: str  # the sub-stage
    doc: Document
    index: int  # position in the stage's list
    step: Step
    error: str | None = None  # a planning error that fails the step (a bad `after:`)

    @property
    def name(self) -> str:
        return self.step.header.name or str(self.index)

    @property
    def op_name(self) -> str:
        """yip's name for the step: CONFIGNAME.STEPNAME."""
        return f"{self.doc.name}.{self.name}"

    @property
    def path(self) -> tuple[str | int, ...]:
        return ("stages", self.stage, self.index)


class SourceFailed(Record):
    """A source (or a stage of it) that could not be loaded; reported once."""

    stage: str
    failure: Failure


Item = Planned | SourceFailed


class StagePlan(Record):
    stage: str
    items: list[Item] = spec(factory=list)


def plan(loaded: list[Loaded], stage: str) -> StagePlan:
    """The run order of `stage` over `loaded` (documents and load failures)."""
    out = StagePlan(stage)
    reported: set[int] = set()
    for sub in sub_stages(stage):
        group_items: list[Item] = []
        current_group: int | None = None
        for entry in loaded:
            if current_group is not None and entry.group != current_group:
                out.items.extend(_order_after(group_items))
                group_items = []
            current_group = entry.group
            if isinstance(entry, Failure):
                if id(entry) not in reported:
                    reported.add(id(entry))
                    group_items.append(SourceFailed(stage, entry))
                continue
            group_items.extend(_steps_of(entry, sub, stage))
        out.items.extend(_order_after(group_items))
    return out


def _steps_of(doc: Document, sub: str, stage: str) -> list[Item]:
    steps: Any = doc.data["stages"].get(sub)
    stage_problems = [p for p in doc.problems if p.path == ("stages", sub)]
    if stage_problems or (steps is not None and not isinstance(steps, list)):
        message = stage_problems[0].message if stage_problems else "expected a list of steps"
        line, col = doc.locate(("stages", sub))
        return [SourceFailed(stage, Failure(doc.group, doc.origin,
                                            f"stage '{sub}': {message}", line, col))]
    items: list[Item] = []
    for index, raw in enumerate(steps or ()):
        path = ("stages", sub, index)
        step = build_step(raw, path)
        step.problems.extend(_doc_problems_under(doc, path))
        items.append(Planned(sub, doc, index, step))
    return items


def _doc_problems_under(doc: Document, path: tuple[str | int, ...]) -> list[Problem]:
    """Problems found while loading (cloud-config conversion) that belong to this step."""
    n = len(path)
    return [p for p in doc.problems if p.path[:n] == path]


def _order_after(items: list[Item]) -> list[Item]:
    """Move steps with `after:` right after the last of the steps they name.

    Steps naming a step that does not exist in this sub-stage and source, or that wait
    on each other in a cycle, are kept in place and fail.
    """
    steps = [i for i in items if isinstance(i, Planned)]
    if not any(s.step.header.after for s in steps):
        return items
    by_name: dict[str, Planned] = {}
    for s in steps:
        by_name.setdefault(s.op_name, s)
    waiting: dict[int, set[str]] = {}
    for s in steps:
        names = [d.name for d in s.step.header.after if d.name]
        if not names:
            continue
        missing = [n for n in names if n not in by_name]
        if missing:
            s.error = "after: no step named " + ", ".join(f"'{n}'" for n in missing) + \
                      " in this sub-stage and source"
            continue
        waiting[id(s)] = set(names)
    out: list[Item] = []
    emitted: set[str] = set()
    held: list[Planned] = [s for s in steps if id(s) in waiting]

    def emit(item: Item) -> None:
        out.append(item)
        if isinstance(item, Planned):
            emitted.add(item.op_name)
            for dep in list(held):
                if dep in held and waiting[id(dep)] <= emitted:
                    held.remove(dep)
                    emit(dep)

    for item in items:
        if isinstance(item, Planned) and id(item) in waiting:
            continue
        emit(item)
    for s in held:  # a cycle: run them last, failed
        s.error = "after: waits in a cycle on " + ", ".join(
            f"'{n}'" for n in sorted(waiting[id(s)] - emitted))
        out.append(s)
    return out
