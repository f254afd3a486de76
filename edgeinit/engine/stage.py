"""One stage run, from sources to report: what `edgeinit run` (and the daemon) call."""

from __future__ import annotations

import time

from edgeinit.config.sources import Document, load_sources
from edgeinit.engine.plan import plan
from edgeinit.engine.report import Report, running, write_report
from edgeinit.engine.runner import Runner
from edgeinit.log import log
from edgeinit.schema.problems import ERROR
from edgeinit.target.root import TargetRoot


def run_stage(
    stage: str,
    sources: list[str],
    root: TargetRoot,
    *,
    cmdline: str = "",
    stdin: object = None,
    save: bool = True,
) -> Report:
    """Load, plan and run `stage`; store the report unless dry-run or `save` is False.

    The report's duration covers the whole stage: loading and fetching included.
    """
    start = time.monotonic()
    loaded = load_sources(sources, root, cmdline=cmdline, stdin=stdin)
    for entry in loaded:
        if isinstance(entry, Document):
            _log_file_problems(entry)
    stage_plan = plan(loaded, stage)
    if root.dry_run:
        report = Runner(root).run(stage_plan)
        report.duration_s = time.monotonic() - start
        return report
    with running():
        report = Runner(root).run(stage_plan)
    report.duration_s = time.monotonic() - start
    if save:
        try:
            write_report(report)
        except OSError as e:
            log.warning("cannot store the run report: %s", e)
    return report


def _log_file_problems(doc: Document) -> None:
    """Warnings about a whole file (unknown top-level keys, unsupported cloud-config keys)."""
    for problem in doc.problems:
        if problem.path[:1] == ("stages",) or problem.kind == ERROR:
            continue
        log.warning("%s: %s", doc.where(problem.path, key=problem.at_key), problem.message)
