"""The human-readable report `edgeinit run` prints when not asked for JSON."""

from __future__ import annotations

from edgeinit.engine.report import Report


def show_report(report: Report) -> str:
    lines: list[str] = []
    verb = "would change" if report.dry_run else "changed"
    for step in report.steps:
        name = step.name if step.name is not None else "(source)"
        mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[step.status]
        extra = f" ({verb})" if step.changed else ""
        lines.append(f"{mark:<7} {step.stage:<22} {step.source}: {name}{extra}")
        if step.status == "skipped" and step.reason:
            lines.append(f"        reason: {step.reason}")
        if step.error:
            for i, line in enumerate(step.error.splitlines()):
                lines.append(("        error: " if i == 0 else "               ") + line)
        for warning in step.warnings:
            lines.append(f"        warning: {warning}")
        if report.dry_run:
            for change in step.changes:
                lines.append(f"        {change}")
            for line in step.diff.splitlines():
                lines.append(f"          {line}")
    counts = {s: sum(1 for x in report.steps if x.status == s) for s in ("ok", "skipped", "failed")}
    lines.append(
        f"stage {report.stage}{' (dry run)' if report.dry_run else ''}: "
        f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed "
        f"in {report.duration_s:.3f} s"
    )
    return "\n".join(lines) + "\n"
