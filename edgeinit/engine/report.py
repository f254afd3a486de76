"""The run report (SPEC section 5) and the state directory `edgeinit status` reads."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from edgeinit.model import Record, spec

LOCK_NAME = ".running.lock"


def state_dir() -> str:
    return os.environ.get("EDGEINIT_STATE_DIR") or "/run/edgeinit"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class StepEntry(Record):
    stage: str
    source: str
    name: str | None
    status: str = "ok"  # ok, failed, skipped
    changed: bool = False
    reason: str | None = None
    error: str | None = None
    warnings: list[str] = spec(factory=list)
    duration_s: float = 0.0
    changes: list[str] = spec(factory=list)  # what was (or would be) done
    diff: str = ""  # dry-run only

    def to_dict(self, dry_run: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stage": self.stage, "source": self.source, "name": self.name,
            "status": self.status, "changed": self.changed, "reason": self.reason,
            "error": self.error, "warnings": self.warnings,
            "duration_s": round(self.duration_s, 4), "changes": self.changes,
        }
        if dry_run:
            out["diff"] = self.diff
        return out


class Report(Record):
    stage: str
    root: str
    dry_run: bool
    started: str = spec(factory=utc_now)
    duration_s: float = 0.0
    steps: list[StepEntry] = spec(factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage, "root": self.root, "ok": self.ok, "dry_run": self.dry_run,
            "started": self.started, "duration_s": round(self.duration_s, 4),
            "steps": [s.to_dict(self.dry_run) for s in self.steps],
        }

    def to_json(self) -> str:
        """The report as JSON, one step per line: readable, and written by json's C
        encoder (indent= would switch to the pure-Python one, 10x slower on big stages)."""
        head = self.to_dict()
        steps = head.pop("steps")
        fields = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items())
        lines = ",\n".join("  " + json.dumps(step) for step in steps)
        body = f'{fields},\n "steps": [\n{lines}\n ]' if steps else f'{fields},\n "steps": []'
        return "{\n" + body + "\n}\n"


def report_path(stage: str, directory: str | None = None) -> str:
    return os.path.join(directory or state_dir(), f"{stage}.json")


def write_report(report: Report, directory: str | None = None) -> str:
    """Store the report atomically as STATE_DIR/STAGE.json; returns its path."""
    from edgeinit.target.fs import atomic_write

    directory = directory or state_dir()
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = report_path(report.stage, directory)
    atomic_write(path, report.to_json().encode(), 0o644, os.geteuid(), os.getegid())
    return path


def read_reports(directory: str | None = None) -> dict[str, dict[str, Any]]:
    """The last report of each stage found in the state directory, by stage name."""
    directory = directory or state_dir()
    out: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return out
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("stage"), str):
            out[data["stage"]] = data
    return out


@contextlib.contextmanager
def running(directory: str | None = None) -> Iterator[None]:
    """Mark a run in progress (a shared lock `status --wait` waits on)."""
    directory = directory or state_dir()
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        path = os.path.join(directory, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        yield  # no state directory (read-only /run, non-root dry use): nothing to mark
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def wait_idle(timeout: float, directory: str | None = None) -> bool:
    """Wait until no run holds the lock; False when `timeout` seconds pass first."""
    directory = directory or state_dir()
    path = os.path.join(directory, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True  # never ran
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)
    finally:
        os.close(fd)
