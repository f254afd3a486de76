"""Run a planned stage: one step at a time, conditions, plugins in order, a report.

A step's problems are decided before anything runs: a wrong type fails it, an unknown
key is a warning. Then its conditions; then each plugin in SPEC order. A plugin yields
changes one at a time and each is applied (or, in a dry run, recorded) before the
plugin plans the next. A failing plugin or change fails the step but never stops the
other plugins, steps or files.
"""

from __future__ import annotations

import time
from typing import Any

from edgeinit.config.sources import Document
from edgeinit.engine import conditions, templates
from edgeinit.engine.facts import Facts
from edgeinit.engine.plan import Planned, SourceFailed, StagePlan
from edgeinit.engine.report import Report, StepEntry
from edgeinit.log import log
from edgeinit.plugins.base import PluginError
from edgeinit.schema.problems import ERROR, Problem
from edgeinit.target.changes import ApplyError, Change, MakeDir, RunCommand
from edgeinit.target.ids import LookupError_
from edgeinit.target.root import PathError, TargetRoot

OUTPUT_TAIL_LINES = 20
NOT_RUN_STOPPING = "not run: stopping"
RANDOM_PATTERNS = {"UUID": "[0-9a-f-]/36", "Random": "[0-9a-z]/32"}


def protected_id(machine_id: str, app: str = "yip") -> str:
    """yip's ProtectedID: hex HMAC-SHA256 of the app id, keyed by the machine id."""
    import hashlib
    import hmac

    return hmac.new(machine_id.encode(), app.encode(), hashlib.sha256).hexdigest()


def random_id(length: int = 32) -> str:
    import secrets

    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(length))


class StepContext:
    """What a plugin may use while its step runs (plugins.base.Context)."""

    def __init__(self, runner: Runner, planned: Planned, entry: StepEntry) -> None:
        self.root = runner.root
        self.dry_run = runner.dry_run
        self.facts = runner.facts
        self._planned = planned
        self._entry = entry
        self.errors: list[str] = []

    @property
    def who(self) -> str:
        return f"{self._planned.stage}: {self._planned.doc.origin}: step '{self._planned.name}'"

    def warn(self, message: str) -> None:
        if message not in self._entry.warnings:
            self._entry.warnings.append(message)
            log.warning("%s: %s", self.who, message)

    def fail(self, message: str) -> None:
        self.errors.append(message)
        log.error("%s: %s", self.who, message)

    def _values(self, name: str) -> Any:
        if name.startswith("Values."):
            return self.facts.value(name.split(".")[1:])
        raise KeyError(name)

    def render(self, text: str) -> str:
        return templates.render(text, self._values, self.warn)

    def render_hostname(self, template: str, current: str | None) -> str:
        machine_id = self.facts.machine_id()

        def static(name: str) -> Any:
            if name == "MachineID":
                if not machine_id:
                    self.warn("the target has no /etc/machine-id; .MachineID is empty")
                return machine_id
            if name == "ProtectedID":
                return protected_id(machine_id)
            raise KeyError(name)

        pattern = templates.pattern(template, RANDOM_PATTERNS, static)
        if pattern is not None and current and pattern.fullmatch(current):
            return current  # keep the random part the node already has
        fresh = {"UUID": None, "Random": None}

        def lookup(name: str) -> Any:
            if name == "UUID":
                if fresh["UUID"] is None:
                    import uuid

                    fresh["UUID"] = str(uuid.uuid4())
                return fresh["UUID"]
            if name == "Random":
                if fresh["Random"] is None:
                    fresh["Random"] = random_id()
                return fresh["Random"]
            return static(name)

        return templates.render(template, lookup, self.warn)


class Runner:
    """Runs stage plans against one target root."""

    # Set by the daemon on SIGTERM: the step that runs finishes, the steps after it are
    # reported failed with NOT_RUN_STOPPING instead of running.
    stop_requested = False

    def __init__(self, root: TargetRoot) -> None:
        self.root = root
        self.dry_run = root.dry_run
        self.facts = Facts(root)
        self._failed_dirs: list[str] = []  # directories of this step that could not be made

    def run(self, stage_plan: StagePlan) -> Report:
        report = Report(stage_plan.stage, self.root.path, self.dry_run)
        start = time.monotonic()
        for item in stage_plan.items:
            if isinstance(item, SourceFailed):
                report.steps.append(self._source_failed(item))
            elif Runner.stop_requested:
                report.steps.append(StepEntry(item.stage, item.doc.origin, item.name, "failed",
                                              error=NOT_RUN_STOPPING))
            else:
                report.steps.append(self.run_step(item))
        if report.steps:
            self._sync(report.steps[-1])
        report.duration_s = time.monotonic() - start
        return report

    def _sync(self, entry: StepEntry) -> None:
        """Make the names of files written so far durable (their content already is):
        before anything outside edgeinit runs (a command could reboot) and at the end."""
        try:
            self.root.sync()
        except OSError as e:
            entry.status = "failed"
            message = f"cannot sync written files to disk: {e.strerror or e}"
            entry.error = f"{entry.error}; {message}" if entry.error else message
            log.error("%s", message)

    def _source_failed(self, item: SourceFailed) -> StepEntry:
        log.error("%s: %s", item.stage, item.failure)
        return StepEntry(item.stage, item.failure.origin, None, "failed", error=str(item.failure))

    def run_step(self, planned: Planned) -> StepEntry:
        start = time.monotonic()
        entry = StepEntry(planned.stage, planned.doc.origin, planned.name)
        ctx = StepContext(self, planned, entry)
        try:
            self._run(planned, entry, ctx)
        except Exception as e:  # a bug must not stop the other steps
            log.exception("%s: internal error: %s: %s", ctx.who, type(e).__name__, e)
            ctx.errors.append(f"internal error: {type(e).__name__}: {e}")
        if ctx.errors and entry.status != "skipped":
            entry.status = "failed"
            entry.error = "; ".join(ctx.errors)
        entry.duration_s = time.monotonic() - start
        if entry.status == "ok":
            log.info("%s: ok%s", ctx.who, " (changed)" if entry.changed else "")
        return entry

    def _run(self, planned: Planned, entry: StepEntry, ctx: StepContext) -> None:
        step = planned.step
        doc = planned.doc
        for problem in step.problems:
            if problem.kind != ERROR:
                ctx.warn(_located(doc, problem))
        errors = step.errors
        if planned.error or errors:
            for message in ([planned.error] if planned.error else []):
                ctx.fail(message)
            for problem in errors:
                ctx.fail(_located(doc, problem))
            return
        if step.header.if_:
            if not self.dry_run:
                self._sync(entry)
            self.root.forget_links()
        try:
            reason = conditions.check(step.header, self.facts, self.root, ctx.render)
        except conditions.ConditionError as e:
            ctx.fail(str(e))
            return
        if reason is not None:
            entry.status = "skipped"
            entry.reason = reason
            log.info("%s: skipped (%s)", ctx.who, reason)
            return
        self._failed_dirs: list[str] = []
        for plugin, args in step.plugins:
            if plugin.plan is None:
                where = f" (tracked in {plugin.issue})" if plugin.issue else ""
                ctx.fail(f"'{plugin.name}' is not supported by edgeinit yet{where}")
                continue
            try:
                for change in plugin.plan(args, ctx):
                    self._apply(change, entry, ctx)
            except (PluginError, PathError, LookupError_, ApplyError) as e:
                ctx.fail(f"{plugin.name}: {e}")

    def _apply(self, change: Change, entry: StepEntry, ctx: StepContext) -> None:
        host_path = getattr(change, "host_path", None)
        if host_path and any(host_path.startswith(d + "/") for d in self._failed_dirs):
            return  # its directory could not be made; that error already says why
        description = change.describe()
        if self.dry_run:
            change.record(self.root)
            entry.changes.append(description)
            entry.diff += change.diff()
            entry.changed = True
            return
        if isinstance(change, RunCommand):
            self._sync(entry)
            self.root.forget_links()
            shown = change.shown
            log.info("%s: running %s", ctx.who, shown)
            result = change.run(self.root)
            if result.started:
                entry.changes.append(description)
                entry.changed = True
            for line in result.output.splitlines():
                log.info("%s:   | %s", ctx.who, line)
            if not result.ok:
                status = "timed out" if result.timed_out else f"exited with {result.returncode}"
                tail = "\n".join(result.output.splitlines()[-OUTPUT_TAIL_LINES:])
                ctx.fail(f"command '{shown}' {status}" + (f"\n{tail}" if tail else ""))
            return
        try:
            change.apply(self.root)
        except ApplyError as e:
            ctx.fail(str(e))
            if isinstance(change, MakeDir):
                self._failed_dirs.append(change.host_path)
            return
        log.info("%s: %s", ctx.who, description)
        entry.changes.append(description)
        entry.changed = True


def _located(doc: Document, problem: Problem) -> str:
    return f"{doc.where(problem.path, key=problem.at_key)}: {problem.message}"
