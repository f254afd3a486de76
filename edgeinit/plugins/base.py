"""What a plugin is, and what it may ask of the engine while it plans."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from edgeinit.model import Record

if TYPE_CHECKING:
    from edgeinit.target.changes import Change
    from edgeinit.target.root import TargetRoot


class Context(Protocol):
    """The engine's side of a step, as a plugin sees it."""

    root: TargetRoot
    dry_run: bool

    def render(self, text: str) -> str:
        """Text with `{{ .Values... }}` node data filled in (unknown expressions kept)."""

    def render_hostname(self, template: str, current: str | None) -> str:
        """A hostname template rendered; a random part stays as `current` has it."""

    def warn(self, message: str) -> None:
        """Something the user should see that does not fail the step."""

    def fail(self, message: str) -> None:
        """An error of this step; the plugin goes on with its other entries."""


Plan = Callable[[Any, Context], Iterable["Change"]]


class Plugin(Record):
    """One step key's behaviour.

    `args` is the record whose fields are the step keys the plugin reads (most read
    one: `files`; environment reads `environment` and `environment_file`). `plan` yields
    changes one at a time; the engine applies each before asking for the next, so a
    plan always sees the effect of what it yielded before. `plan` None means the key is
    accepted by the schema but not implemented: its step fails with "not supported".
    """

    name: str
    args: type
    plan: Plan | None
    issue: str = ""  # where the missing implementation is tracked


class PluginError(Exception):
    """Raised by a plan to fail its step with a message (other plugins still run)."""


def each_entry(
    entries: Iterable[Any],
    ctx: Context,
    plan_one: Callable[[Any, Context], list[Change]],
    expected: tuple[type[Exception], ...],
) -> Iterator[Change]:
    """Plan a list plugin's entries one by one: an entry that fails (with one of the
    `expected` errors) fails the step with its path, and the others still run."""
    for entry in entries:
        try:
            changes = plan_one(entry, ctx)
        except expected as e:
            ctx.fail(f"{getattr(entry, 'path', '') or '(no path)'}: {e}")
            continue
        yield from changes
