"""The command line (SPEC section 1): parse, dispatch, print, exit. Nothing else.

Each command imports what it needs when it runs, so `edgeinit run` never pays for the
schema export, and `edgeinit --version` pays for nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import SimpleNamespace

from edgeinit.args import Command, Option, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STATUS_BUS_TIMEOUT = 1.0  # seconds `status` waits for the daemon before reading files


def _seconds(text: str, *, zero_ok: bool = False) -> float:
    value = float(text)
    if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):
        raise ValueError(text)
    return value

COMMANDS = {
    "run": Command(
        "run", "Run a stage: STAGE.before, STAGE, STAGE.after.",
        [
            Option("--stage", "-s", value="STAGE", required=True,
                   help="stage to run, e.g. initramfs, boot, network"),
            Option("--root", value="DIR", default="/", help="the target system's root (default /)"),
            Option("--cmdline", value="FILE",
                   help="kernel command line to read (default /proc/cmdline)"),
            Option("--dry-run", help="change nothing; show what would change"),
            Option("--json", help="print the run report as JSON"),
        ],
        sources="file, directory, - or http(s) URL "
                "(default: /system/oem /oem /usr/local/oem under the root)",
    ),
    "validate": Command("validate", "Check config files without running anything.",
                        sources="file, directory, - or http(s) URL "
                                "(default: /system/oem /oem /usr/local/oem)"),
    "schema": Command("schema", "Print the JSON Schema (draft 2020-12) of a config file."),
    "status": Command(
        "status", "Show the last report of each stage.",
        [
            Option("--json", help="print the reports as JSON"),
            Option("--wait", help="first wait until no run is in progress"),
            Option("--timeout", value="SECONDS", convert=float, default=900.0,
                   help="give up waiting after this long (default 900)"),
        ],
    ),
    "daemon": Command(
        "daemon", "Run as a service: reconcile on an interval and when the config changes, "
                  "apply labelled config devices, serve the D-Bus API io.edgeinit.Manager1.",
        [
            Option("--interval", value="SECONDS", convert=_seconds, default=3600.0,
                   help="run the reconcile stage this often (default 3600)"),
            Option("--debounce", value="SECONDS",
                   convert=lambda text: _seconds(text, zero_ok=True), default=5.0,
                   help="reconcile this long after the last config change (default 5)"),
            Option("--root", value="DIR", default="/", help="the target system's root (default /)"),
            Option("--labels", value="LIST", default="COS_OEM,CIDATA",
                   help="filesystem labels of config devices, comma-separated "
                        "(default COS_OEM,CIDATA; empty: none)"),
            Option("--cmdline", value="FILE",
                   help="kernel command line to read (default /proc/cmdline)"),
        ],
    ),
    "mount-layout": Command(
        "mount-layout", "Mount the immutable layout (/run/cos/cos-layout.env and the kernel "
                        "arguments rd.cos.*) on the new root and write its /etc/fstab.",
        [
            Option("--sysroot", value="DIR", default="/",
                   help="the new root (default /: the initrd unit runs this chrooted into "
                        "it); paths under /run stay the running system's /run"),
            Option("--cmdline", value="FILE",
                   help="kernel command line to read (default /proc/cmdline)"),
            Option("--env-file", value="FILE", default="/run/cos/cos-layout.env",
                   help="the layout env file (default /run/cos/cos-layout.env; "
                        "missing: the defaults)"),
            Option("--dry-run", help="mount nothing; print the plan and the /etc/fstab"),
        ],
    ),
}

TOP_HELP = """usage: edgeinit [--version] COMMAND [OPTIONS] [SOURCE ...]

Apply yip / Elemental / cloud-config stages to this node.

commands:
  run        run a stage (STAGE.before, STAGE, STAGE.after)
  validate   check config files without running anything
  schema     print the JSON Schema of a config file
  status     show the last report of each stage
  daemon     run as a service (reconcile, config devices, D-Bus API)
  mount-layout  mount the immutable layout on the new root (initrd)

`edgeinit COMMAND --help` describes each command.
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.stderr.write(TOP_HELP)
        print("edgeinit: error: a command is required", file=sys.stderr)
        return EXIT_USAGE
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(TOP_HELP)
        return EXIT_OK
    if argv[0] == "--version":
        from edgeinit import __version__

        print(f"edgeinit {__version__}")
        return EXIT_OK
    command = COMMANDS.get(argv[0])
    if command is None:
        sys.stderr.write(TOP_HELP)
        print(f"edgeinit: error: unknown command '{argv[0]}'", file=sys.stderr)
        return EXIT_USAGE
    try:
        values = command.parse(argv[1:])
    except UsageError as e:
        print(command.usage(), file=sys.stderr)
        print(f"edgeinit {command.name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if values.get("help"):
        sys.stdout.write(command.help())
        return EXIT_OK
    from edgeinit import log

    log.setup()
    handler = {"run": cmd_run, "validate": cmd_validate, "schema": cmd_schema,
               "status": cmd_status, "daemon": cmd_daemon,
               "mount-layout": cmd_mount_layout}[command.name]
    try:
        return handler(SimpleNamespace(**values))
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


def cmd_run(args: SimpleNamespace) -> int:
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


def cmd_validate(args: SimpleNamespace) -> int:
    from edgeinit.config.sources import load_sources
    from edgeinit.schema.validate import findings
    from edgeinit.target.root import TargetRoot

    loaded = load_sources(list(args.sources), TargetRoot("/"))
    from edgeinit.schema.pydantic_models import pydantic_step_problems

    found = findings(loaded, pydantic_step_problems)
    for finding in found:
        print(finding)
    return EXIT_FAILED if found else EXIT_OK


def cmd_schema(args: SimpleNamespace) -> int:
    import json

    from edgeinit.schema.pydantic_models import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_status(args: SimpleNamespace) -> int:
    import json

    from edgeinit.engine import report as report_mod

    if args.wait and not report_mod.wait_idle(args.timeout):
        print(f"edgeinit: a run is still in progress after {args.timeout:g} s", file=sys.stderr)
        return EXIT_FAILED
    from edgeinit.daemon.client import daemon_reports

    reports = daemon_reports(STATUS_BUS_TIMEOUT)
    if reports is None:
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


def cmd_daemon(args: SimpleNamespace) -> int:
    if not os.path.isdir(args.root):
        print(f"edgeinit: --root {args.root} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    from edgeinit.daemon import service, udev

    options = service.Options(root=args.root, interval=args.interval, debounce=args.debounce,
                              labels=udev.parse_labels(args.labels), cmdline=args.cmdline)
    return service.run(options)


def cmd_mount_layout(args: SimpleNamespace) -> int:
    if not os.path.isdir(args.sysroot):
        print(f"edgeinit: --sysroot {args.sysroot} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    from edgeinit.layout import mount

    return mount.main(os.path.realpath(args.sysroot), args.env_file,
                      _read_cmdline(args.cmdline), args.dry_run)
