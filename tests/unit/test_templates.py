"""The Go-template subset (SPEC 2 "Templates"; yip-behaviour.md 1.5 and 3.5).

Node data comes from the TARGET's files (hostname, os-release, machine-id); anything
outside the subset is left verbatim with a warning, so Helm/Jinja text written into a
file survives (yip would mangle it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeinit.config.sources import Document, parse
from edgeinit.engine import templates
from edgeinit.engine.facts import Facts
from edgeinit.engine.plan import Planned, plan
from edgeinit.engine.report import StepEntry
from edgeinit.engine.runner import RANDOM_PATTERNS, Runner, StepContext, protected_id
from edgeinit.target.root import TargetRoot

MACHINE_ID = "0123456789abcdef0123456789abcdef"  # the `target` fixture's /etc/machine-id


@pytest.fixture
def node(target: Path) -> Path:
    """The target with a hostname of its own (different from the machine running tests)."""
    (target / "etc" / "hostname").write_text("edge-node-7\n")
    return target


@pytest.fixture
def ctx(node: Path) -> StepContext:
    """The real step context a plugin gets, for one step of a loaded document."""
    doc = parse(0, "/oem/t.yaml", "stages:\n  boot:\n    - name: t\n")
    assert isinstance(doc, Document)
    (planned,) = plan([doc], "boot").items
    assert isinstance(planned, Planned)
    entry = StepEntry(planned.stage, doc.origin, planned.name)
    return StepContext(Runner(TargetRoot(str(node))), planned, entry)


def warnings(ctx: StepContext) -> list[str]:
    return ctx._entry.warnings


# -- .Values node data ---------------------------------------------------------------


def test_values_node_hostname_comes_from_the_target(ctx: StepContext) -> None:
    """`.Values.node.hostname` is the target's /etc/hostname, not the host's name."""
    assert ctx.render("echo {{ .Values.node.hostname }}") == "echo edge-node-7"
    assert ctx.render("{{.Values.node.hostname}}") == "edge-node-7"
    assert warnings(ctx) == []


def test_values_os_and_machine_id_come_from_the_target(ctx: StepContext) -> None:
    """os-release of the target (Debian 12 in the fixture) and its machine-id."""
    text = "{{ .Values.os.vendor }} {{ .Values.os.version }} {{ .Values.node.machineid }}"
    assert ctx.render(text) == f"debian 12 {MACHINE_ID}"
    assert ctx.render("{{ .Values.os.name }}") == "Debian GNU/Linux 12 (bookworm)"


def test_several_expressions_and_surrounding_text(ctx: StepContext) -> None:
    text = "host={{ .Values.node.hostname }};id={{ trunc 8 .Values.node.machineid }}."
    assert ctx.render(text) == f"host=edge-node-7;id={MACHINE_ID[:8]}."


def test_text_without_templates_is_untouched(ctx: StepContext) -> None:
    for text in ("plain", "a { b } c", "{ {x} }", "{{", "}}"):
        assert ctx.render(text) == text
    assert warnings(ctx) == []


# -- trunc ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "result"),
    [
        ("{{ trunc 4 .Values.node.hostname }}", "edge"),
        ("{{ .Values.node.hostname | trunc 4 }}", "edge"),
        ("{{ trunc -6 .Values.node.hostname }}", "node-7"),
        ("{{ .Values.node.hostname | trunc -6 }}", "node-7"),
        ("{{ trunc 0 .Values.node.hostname }}", ""),
        ("{{ trunc 100 .Values.node.hostname }}", "edge-node-7"),
        ("{{ trunc -100 .Values.node.hostname }}", "edge-node-7"),
        ("{{trunc 2 .Values.node.hostname}}", "ed"),
    ],
)
def test_trunc_prefix_and_pipe_forms(ctx: StepContext, expr: str, result: str) -> None:
    """Sprig trunc: first N characters, last -N when negative, whole text when N is too big."""
    assert ctx.render(expr) == result
    assert warnings(ctx) == []


@pytest.mark.parametrize(("text", "n", "result"),
                         [("abcdef", 2, "ab"), ("abcdef", -2, "ef"), ("ab", 5, "ab"),
                          ("ab", -5, "ab"), ("ab", None, "ab"), ("", -1, "")])
def test_truncate(text: str, n: int | None, result: str) -> None:
    assert templates.truncate(text, n) == result


# -- whitespace trimming -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("a  {{- .Values.os.version -}}  b", "a12b"),
        ("a  {{ .Values.os.version -}}\n  b", "a  12b"),
        ("a\n\t {{- .Values.os.version }}\nb", "a12\nb"),
        ("x {{- .Values.os.version }} {{- .Values.os.version }} y", "x1212 y"),
    ],
)
def test_trim_markers(ctx: StepContext, text: str, result: str) -> None:
    """`{{-` eats the whitespace before, `-}}` the whitespace after (newlines included)."""
    assert ctx.render(text) == result


# -- expressions outside the subset ----------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        '{{ .Values.foo | default "x" }}',  # Helm
        '{{ include "a" . }}',  # Helm
        '{{ printf "%s" .Values.node.hostname }}',
        "{{ .Values.nokey }}",  # unknown field: kept, not "<no value>"
        "{{ .Values.node.nokey }}",
        "{{ .MachineID }}",  # hostname-only data is not available in other fields
        "{{ }}",
        "{{/* a comment */}}",
        "{{- bad -}}",
    ],
)
def test_unknown_expression_is_kept_verbatim_with_a_warning(ctx: StepContext, expr: str) -> None:
    text = f"before {expr} after"
    assert ctx.render(text) == text
    assert len(warnings(ctx)) == 1
    assert expr in warnings(ctx)[0]
    assert "not understood" in warnings(ctx)[0]


def test_known_and_unknown_in_one_text(ctx: StepContext) -> None:
    """Known expressions are rendered, unknown ones kept, in the same string."""
    text = "{{ .Values.node.hostname }}: {{ .Release.Name }} {{ .Values.os.version }}"
    assert ctx.render(text) == "edge-node-7: {{ .Release.Name }} 12"
    assert len(warnings(ctx)) == 1


def test_jinja_text_survives(ctx: StepContext) -> None:
    """A Jinja template written to disk keeps its `{{ var }}` and `{% %}` text."""
    text = "{% for x in xs %}{{ x }}{% endfor %}"
    assert ctx.render(text) == text


def test_render_with_a_plain_lookup() -> None:
    """render() itself: a lookup raising KeyError means 'not understood'."""
    seen: list[str] = []
    values = {"A": "1"}
    assert templates.render("{{ .A }}{{ .B }}", values.__getitem__, seen.append) == "1{{ .B }}"
    assert seen == ["template expression '{{ .B }}' not understood; left as written"]


# -- hostnames -----------------------------------------------------------------------


def test_hostname_machine_id_and_trunc(ctx: StepContext) -> None:
    """The SPEC example `node-{{ trunc 4 .MachineID }}` uses the target's machine-id."""
    assert ctx.render_hostname("node-{{ trunc 4 .MachineID }}", None) == "node-0123"


def test_hostname_protected_id_is_yips_hmac(ctx: StepContext) -> None:
    """yip's ProtectedID: HMAC-SHA256 of app id 'yip' keyed by the machine id, in hex."""
    import hashlib
    import hmac

    expected = hmac.new(MACHINE_ID.encode(), b"yip", hashlib.sha256).hexdigest()
    assert protected_id(MACHINE_ID) == expected
    assert ctx.render_hostname("{{ .ProtectedID }}", None) == expected


def test_hostname_random_and_uuid_shapes(ctx: StepContext) -> None:
    name = ctx.render_hostname("n-{{ .Random }}", None)
    assert re.fullmatch(r"n-[0-9a-z]{32}", name)
    uuid = ctx.render_hostname("{{ .UUID }}", None)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        uuid)


def test_hostname_keeps_the_current_random_part(ctx: StepContext) -> None:
    """A node whose name already fits the template keeps it (no new name every boot)."""
    current = "node-" + "k" * 32
    assert ctx.render_hostname("node-{{ .Random }}", current) == current
    current_uuid = "edge-1a2b3c"
    assert ctx.render_hostname("edge-{{ trunc 6 .UUID }}", current_uuid) == current_uuid


def test_hostname_gets_a_new_random_part_when_the_current_does_not_fit(ctx: StepContext) -> None:
    name = ctx.render_hostname("node-{{ .Random }}", "some-other-name")
    assert name != "some-other-name"
    assert re.fullmatch(r"node-[0-9a-z]{32}", name)


def test_hostname_has_no_values_data(ctx: StepContext) -> None:
    """yip's hostname template data has no .Values: kept verbatim, with a warning."""
    text = "{{ .Values.node.hostname }}"
    assert ctx.render_hostname(text, None) == text
    assert len(warnings(ctx)) == 1


# -- pattern() -----------------------------------------------------------------------


def _static(name: str) -> str:
    if name == "MachineID":
        return MACHINE_ID
    raise KeyError(name)


def test_pattern_is_none_without_a_random_part() -> None:
    """A fully determined template has nothing to keep; the caller just renders it."""
    assert templates.pattern("node-{{ trunc 4 .MachineID }}", RANDOM_PATTERNS, _static) is None
    assert templates.pattern("plain", RANDOM_PATTERNS, _static) is None


@pytest.mark.parametrize(
    ("template", "matches", "rejects"),
    [
        ("node-{{ .Random }}", ["node-" + "a1" * 16], ["node-" + "A1" * 16, "node-abc",
                                                        "xnode-" + "a1" * 16]),
        ("n-{{ trunc 6 .UUID }}", ["n-1a2b-3"], ["n-1a2b-3c", "n-1a2b"]),
        ("n-{{ .UUID | trunc 8 }}-{{ trunc 4 .MachineID }}", ["n-deadbeef-0123"],
         ["n-deadbeef-4567"]),
        ("n.{{ trunc -5 .Random }}", ["n.abcde"], ["nxabcde", "n.abcdef"]),
        ("{{ .Random }}-{{ .Weird }}", ["a" * 32 + "-{{ .Weird }}"], ["a" * 32 + "-x"]),
    ],
)
def test_pattern_matches_exactly_the_renderings(template: str, matches: list[str],
                                                rejects: list[str]) -> None:
    """Random fields become their character class; the rest is literal (dots included)."""
    pattern = templates.pattern(template, RANDOM_PATTERNS, _static)
    assert pattern is not None
    for name in matches:
        assert pattern.fullmatch(name), name
    for name in rejects:
        assert not pattern.fullmatch(name), name


def test_facts_values_raise_key_error_for_unknown_sections(node: Path) -> None:
    """The lookup behind .Values: unknown sections and keys are KeyError (kept verbatim)."""
    facts = Facts(TargetRoot(str(node)))
    assert facts.value(["node", "hostname"]) == "edge-node-7"
    for path in (["nosuch"], ["node", "nosuch"], ["node", "hostname", "deeper"], []):
        with pytest.raises(KeyError):
            facts.value(path)
