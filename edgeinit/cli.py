"""The command line (SPEC section 1): parse, dispatch, print, exit. Nothing else.

Each command imports what it needs when it runs, so `edgeinit run` never pays for the
schema export, and `edgeinit --version` pays for nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2, as SPEC wants; say why first
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and one parser per command.

    Each command's options may come before or after its sources (SPEC section 1), which
    argparse only allows for a parser without sub-commands, hence the two levels.
    """
    from edgeinit import __version__

    top = _Parser(prog="edgeinit", description="Apply yip / cloud-config stages to this node.",
                  epilog="commands: run, validate, schema, status; "
                         "`edgeinit COMMAND --help` for each")
    top.add_argument("--version", action="version", version=f"edgeinit {__version__}")
    top.add_argument("command", choices=("run", "validate", "schema", "status"),
                     metavar="COMMAND")
    top.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    run = _Parser(prog="edgeinit run", description="Run a stage: STAGE.before, STAGE, STAGE.after.")
    run.add_argument("--stage", "-s", required=True, help="stage to run, e.g. boot")
    run.add_argument("--root", default="/", help="the target system's root (default /)")
    run.add_argument("--cmdline", metavar="FILE",
                     help="kernel command line to read (default /proc/cmdline)")
    run.add_argument("--dry-run", action="store_true",
                     help="change nothing; show what would change")
    run.add_argument("--json", action="store_true", help="print the run report as JSON")
    run.add_argument("sources", nargs="*", metavar="SOURCE",
                     help="file, directory, - or http(s) URL (default: /system/oem /oem "
                          "/usr/local/oem under the root)")

    validate = _Parser(prog="edgeinit validate", description="Check config files; run nothing.")
    validate.add_argument("sources", nargs="*", metavar="SOURCE")

    schema = _Parser(prog="edgeinit schema", description="Print the JSON Schema of a config file.")

    status = _Parser(prog="edgeinit status", description="The last report of each stage.")
    status.add_argument("--json", action="store_true", help="print the reports as JSON")
    status.add_argument("--wait", action="store_true", help="wait until no run is in progress")
    status.add_argument("--timeout", type=float, default=900.0,
                        help="give up waiting after this many seconds (default 900)")
    return top, {"run": run, "validate": validate, "schema": schema, "status": status}


def main(argv: Sequence[str] | None = None) -> int:
    top, commands = build_parsers()
    first = top.parse_args(argv)
    args = commands[first.command].parse_intermixed_args(first.args)
    from edgeinit import log

    log.setup()
    handler = {"run": cmd_run, "validate": cmd_validate, "schema": cmd_schema,
               "status": cmd_status}[first.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_FAILED


def _read_cmdline(path: str | None) -> str:
    try:
        with open(path or "/proc/cmdline", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        if path:  # asked for explicitly: say so
            from edgeinit.log import log

            log.warning("cannot read the command line file %s: %s", path, e.strerror or e)
        return ""


def _valid_stage(stage: str) -> bool:
    return bool(stage) and "/" not in stage and not stage.startswith(".") and "\0" not in stage


def cmd_run(args: argparse.Namespace) -> int:
    if not _valid_stage(args.stage):
        print(f"edgeinit: invalid stage name '{args.stage}'", file=sys.stderr)
        return EXIT_USAGE
    if not os.path.isdir(args.root):
        print(f"edgeinit: --root {args.root} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    from edgeinit.engine.stage import run_stage
    from edgeinit.target.root import TargetRoot

    root = TargetRoot(args.root, dry_run=args.dry_run)
    report = run_stage(args.stage, list(args.sources), root, cmdline=_read_cmdline(args.cmdline))
    if args.json:
        sys.stdout.write(report.to_json())
    else:
        from edgeinit.engine.show import show_report

        sys.stdout.write(show_report(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_validate(args: argparse.Namespace) -> int:
    from edgeinit.config.sources import load_sources
    from edgeinit.schema.validate import findings
    from edgeinit.target.root import TargetRoot

    loaded = load_sources(list(args.sources), TargetRoot("/"))
    from edgeinit.schema.pydantic_models import pydantic_step_problems

    found = findings(loaded, pydantic_step_problems)
    for finding in found:
        print(finding)
    return EXIT_FAILED if found else EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from edgeinit.schema.pydantic_models import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from edgeinit.engine import report as report_mod

    if args.wait and not report_mod.wait_idle(args.timeout):
        print(f"edgeinit: a run is still in progress after {args.timeout:g} s", file=sys.stderr)
        return EXIT_FAILED
    reports = report_mod.read_reports()
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for stage, data in reports.items():
            failed = sum(1 for s in data.get("steps", []) if s.get("status") == "failed")
            state = "ok" if data.get("ok") else "failed"
            print(f"{stage:<20} {state:<7} {data.get('started', '?'):<21} {failed} failed")
        if not reports:
            print("no stage has run yet", file=sys.stderr)
    if not reports:
        return EXIT_FAILED
    return EXIT_OK if all(r.get("ok") for r in reports.values()) else EXIT_FAILED
