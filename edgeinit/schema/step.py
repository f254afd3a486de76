"""A step: its name, conditions and `after:` (read by the engine), and its plugin keys."""

from __future__ import annotations

from typing import Any

from edgeinit import plugins
from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin
from edgeinit.schema.coerce import build, model_fields
from edgeinit.schema.problems import ERROR, Path, Problem, unknown_key
from edgeinit.schema.scalars import kind_of


class Dependency(Record):
    name: str = spec("", doc="CONFIGNAME.STEPNAME of a step of the same sub-stage and source.")


class IfFiles(Record):
    any: list[str] = spec(factory=list, doc="Run when at least one of these paths exists.")
    all: list[str] = spec(factory=list, doc="Run when every one of these paths exists.")
    none: list[str] = spec(factory=list, doc="Run when none of these paths exists.")


class Header(Record):
    """The keys of a step that the engine itself reads."""

    name: str = spec("", doc="Names the step in logs, reports and `after:`.")
    if_: str = spec("", key="if", doc="Shell command; the step runs when it exits 0.")
    node: str = spec("", doc="Regex searched in the hostname.")
    only_os: str = spec("", doc="Regex on os-release ID or NAME.")
    only_os_version: str = spec("", doc="Regex on os-release VERSION_ID.")
    only_arch: str = spec("", doc="Regex on the Go architecture name (amd64, arm64).")
    only_service_manager: str = spec("", doc="systemd or openrc.")
    if_files: IfFiles | None = spec(None, doc="Paths that must (not) exist.")
    after: list[Dependency] = spec(factory=list, doc="Steps this one runs right after.")


HEADER_KEYS: tuple[str, ...] = model_fields(Header)[1]
STEP_KEYS: tuple[str, ...] = HEADER_KEYS + plugins.PLUGIN_KEYS


class Step(Record):
    """A validated step: header, plugins to run (in execution order), and problems."""

    header: Header
    plugins: list[tuple[Plugin, Any]] = spec(factory=list)
    problems: list[Problem] = spec(factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == ERROR]


def build_step(raw: Any, path: Path) -> Step:
    """A Step from raw data at `path` in its document; problems carry document paths."""
    problems: list[Problem] = []
    if raw is None:
        return Step(Header())
    if not isinstance(raw, dict):
        problems.append(Problem(path, f"a step must be a mapping, got {kind_of(raw)}"))
        return Step(Header(), problems=problems)
    header_raw: dict[str, Any] = {}
    by_plugin: dict[str, dict[str, Any]] = {}
    header_fields = model_fields(Header)[0]
    for key, value in raw.items():
        if key in header_fields:
            header_raw[key] = value
        elif key in plugins.KEY_OWNER:
            by_plugin.setdefault(plugins.KEY_OWNER[key], {})[key] = value
        else:
            problems.append(unknown_key(path, key, STEP_KEYS))
    header = build(Header, header_raw, path, problems)
    step = Step(header, problems=problems)
    for name, _, _ in plugins.REGISTRY:
        if name in by_plugin:
            plugin = plugins.load(name)
            step.plugins.append((plugin, build(plugin.args, by_plugin[name], path, problems)))
    return step
