"""A small command-line parser: options anywhere, `--opt value` or `--opt=value`, `--`.

Not argparse: importing argparse (with shutil, gettext and locale behind it) costs a
sixth of an empty boot stage's budget, and edgeinit's command line is four commands
with a handful of options each. Usage errors raise UsageError; the CLI exits 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class UsageError(Exception):
    """The command line itself is wrong (SPEC: exit status 2)."""


class Option:
    def __init__(self, *names: str, help: str, value: str | None = None,
                 convert: Callable[[str], Any] = str, default: Any = None,
                 required: bool = False) -> None:
        self.names = names
        self.dest = names[0].lstrip("-").replace("-", "_")
        self.help = help
        self.value = value  # metavar; None for a flag
        self.convert = convert
        self.default = False if value is None and default is None else default
        self.required = required


class Command:
    def __init__(self, name: str, summary: str, options: Sequence[Option] = (),
                 sources: str | None = None) -> None:
        self.name = name
        self.summary = summary
        self.options = list(options)
        self.sources = sources  # help for the positional SOURCE list; None: none taken

    def usage(self) -> str:
        parts = [f"usage: edgeinit {self.name}"]
        for o in self.options:
            text = o.names[0] + (f" {o.value}" if o.value else "")
            parts.append(text if o.required else f"[{text}]")
        if self.sources is not None:
            parts.append("[SOURCE ...]")
        return " ".join(parts)

    def help(self) -> str:
        lines = [self.usage(), "", self.summary, ""]
        for o in self.options:
            names = ", ".join(o.names) + (f" {o.value}" if o.value else "")
            lines.append(f"  {names:<24} {o.help}")
        if self.sources is not None:
            lines.append(f"  {'SOURCE':<24} {self.sources}")
        lines.append(f"  {'-h, --help':<24} show this help")
        return "\n".join(lines) + "\n"

    def parse(self, argv: Sequence[str]) -> dict[str, Any]:
        """Options and sources from argv; raises UsageError."""
        by_name = {n: o for o in self.options for n in o.names}
        values: dict[str, Any] = {o.dest: o.default for o in self.options}
        sources: list[str] = []
        seen: set[str] = set()
        args = list(argv)
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                sources.extend(args[i:])
                break
            if arg in ("-h", "--help"):
                values["help"] = True
                continue
            if not arg.startswith("-") or arg == "-":
                sources.append(arg)
                continue
            name, eq, attached = arg.partition("=") if arg.startswith("--") else (arg[:2], "",
                                                                                  arg[2:])
            option = by_name.get(name)
            if option is None:
                raise UsageError(f"unrecognized option '{name}'")
            if option.value is None:
                if eq or attached:
                    raise UsageError(f"option '{name}' takes no value")
                values[option.dest] = True
            else:
                if eq or attached:
                    raw = attached
                elif i < len(args) and not (args[i].startswith("-") and len(args[i]) > 1):
                    raw = args[i]
                    i += 1
                else:
                    raise UsageError(f"option '{name}' needs a value ({option.value})")
                try:
                    values[option.dest] = option.convert(raw)
                except ValueError:
                    raise UsageError(f"option '{name}': invalid value '{raw}'") from None
            seen.add(option.dest)
        if values.get("help"):
            return values
        for option in self.options:
            if option.required and option.dest not in seen:
                raise UsageError(f"the option {option.names[0]} is required")
        if self.sources is None and sources:
            raise UsageError(f"unexpected argument '{sources[0]}'")
        values["sources"] = sources
        return values
