"""Run one step through the real engine and keep the changes its plugins planned.

A step is given as YAML text (loaded with edgeinit's own loader, so scalars are typed
by the schema exactly as in a config file) or as raw data; it is validated with
build_step and run by the real Runner, whose only extension here is that it keeps each
Change object it applies (or, in a dry run, records) besides the report entry.
"""

from __future__ import annotations

import difflib  # noqa: F401 - imported lazily by the product; import before pyfakefs
import gzip  # noqa: F401
import hashlib  # noqa: F401
import hmac  # noqa: F401
import secrets  # noqa: F401
import shlex  # noqa: F401
import socket  # noqa: F401
import subprocess  # noqa: F401
import uuid  # noqa: F401
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgeinit import plugins
from edgeinit.config import yamlload
from edgeinit.config.sources import Document
from edgeinit.engine.plan import Planned
from edgeinit.engine.report import StepEntry
from edgeinit.engine.runner import Runner, StepContext
from edgeinit.schema.step import build_step
from edgeinit.target.changes import Change
from edgeinit.target.root import TargetRoot

# Every plugin module is imported now: plugins are imported on first use, and an
# import must not happen while pyfakefs stands in for the real filesystem.
plugins.all_plugins()

STAGE = "t"
T = TypeVar("T")


class RecordingRunner(Runner):
    """The engine's Runner, keeping every change it is handed."""

    def __init__(self, root: TargetRoot) -> None:
        super().__init__(root)
        self.seen: list[Change] = []

    def _apply(self, change: Change, entry: StepEntry, ctx: StepContext) -> None:
        self.seen.append(change)
        super()._apply(change, entry, ctx)


@dataclass
class StepRun:
    """A step's report entry, the changes it planned, and the root it ran on."""

    entry: StepEntry
    changes: list[Change]
    root: TargetRoot

    @property
    def status(self) -> str:
        return self.entry.status

    @property
    def error(self) -> str:
        return self.entry.error or ""

    @property
    def warnings(self) -> list[str]:
        return self.entry.warnings

    def of(self, cls: type[T]) -> list[T]:
        """The planned changes of one kind, in order."""
        return [c for c in self.changes if isinstance(c, cls)]


def step_data(step: str | dict[str, Any]) -> dict[str, Any]:
    data = yamlload.load(step) if isinstance(step, str) else step
    assert isinstance(data, dict), f"a step must be a mapping: {data!r}"
    return data


def run_step(step: str | dict[str, Any], root: TargetRoot | str | Path, *,
             dry_run: bool = True) -> StepRun:
    """Run `step` (YAML text or data) against `root`; a TargetRoot is reused as given."""
    if not isinstance(root, TargetRoot):
        root = TargetRoot(str(root), dry_run=dry_run)
    raw = step_data(step)
    doc = Document(0, "test.yaml", {"name": "test", "stages": {STAGE: [raw]}})
    planned = Planned(STAGE, doc, 0, build_step(raw, ("stages", STAGE, 0)))
    runner = RecordingRunner(root)
    entry = runner.run_step(planned)
    return StepRun(entry, runner.seen, root)


def fake_root_user() -> None:
    """Be uid/gid 0 inside pyfakefs (which resets ids after each test).

    Planning reads files of any owner and mode as root does on a device; without this a
    non-root run of the suite would hit pyfakefs permission checks instead.
    """
    from pyfakefs.helpers import set_gid, set_uid

    set_uid(0)
    set_gid(0)
