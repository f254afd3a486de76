"""The kernel command line as a source: setup= sources and yip's dot notation.

Reference: yip-behaviour.md 1.6 (DotNotationModifier, with yip's and elemental's test
cases) and section 4 (cos.setup= / elemental.setup=); SPEC section 1 (`run`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeinit.config.cmdline import dot_config, parse_path, setup_sources, words
from edgeinit.config.sources import Document, Failure, load_sources
from edgeinit.schema.step import build_step
from edgeinit.target.root import TargetRoot

# -- yip's own examples (yip-behaviour.md 1.6) -----------------------------------------


def test_yip_example_valid_and_invalid_words() -> None:
    """`stages.foo[0].name=bar boo.baz` -> stages.foo[0].name == "bar"; boo.baz dropped."""
    assert dot_config("stages.foo[0].name=bar boo.baz") == {
        "stages": {"foo": [{"name": "bar"}]}}


def test_yip_example_two_words_build_one_step() -> None:
    """Several words address the same step; extra spaces between words do not matter."""
    assert dot_config("stages.foo[0].name=bar   stages.foo[0].commands[0]=baz") == {
        "stages": {"foo": [{"name": "bar", "commands": ["baz"]}]}}


def test_yip_example_no_stages_gives_an_empty_config() -> None:
    """`ip=dhcp test="echo ping_test_host=127.0.0.1  > /tmp/jojo"` -> empty config, no error."""
    assert dot_config('ip=dhcp test="echo ping_test_host=127.0.0.1  > /tmp/jojo"') == {}


def test_elemental_example_runs_the_command_without_errors() -> None:
    """elemental's runstage test: junk words around one valid path; only the path counts."""
    text = "BOOT=death-star single stages.leia[0].commands[0]='echo beepboop'"
    assert dot_config(text) == {"stages": {"leia": [{"commands": ["echo beepboop"]}]}}


def test_elemental_example_loads_as_a_cmdline_document_without_failures(target: Path) -> None:
    """Through load_sources: one 'cmdline' document, no Failure (no YAML error logged)."""
    text = "BOOT=death-star single stages.leia[0].commands[0]='echo beepboop'\n"
    loaded = load_sources([], TargetRoot(str(target)), cmdline=text)
    assert [type(e) for e in loaded] == [Document]
    doc = loaded[0]
    assert isinstance(doc, Document)
    assert doc.origin == "cmdline"
    step = build_step(doc.data["stages"]["leia"][0], ("stages", "leia", 0))
    assert step.problems == []
    assert [a.commands for p, a in step.plugins if p.name == "commands"] == [["echo beepboop"]]


def test_mixed_valid_and_invalid_keeps_the_valid_parts() -> None:
    """Words that are not valid paths are silently dropped, the rest is kept."""
    text = "sing1!~@$%6^&**le stages.a[0].name=x quiet stages.a[0].name.[=y stages.a[1].name=z"
    assert dot_config(text) == {"stages": {"a": [{"name": "x"}, {"name": "z"}]}}


def test_word_without_equals_is_true() -> None:
    """yip: a token without `=` gets the value "true"."""
    assert dot_config("stages.boot[0].users.bob.lock_passwd") == {
        "stages": {"boot": [{"users": {"bob": {"lock_passwd": "true"}}}]}}


def test_values_are_strings_typed_later_by_field() -> None:
    """`permissions=0644` is the string "0644"; the schema reads it as octal, like YAML."""
    data = dot_config("stages.boot[0].files[0].path=/x stages.boot[0].files[0].permissions=0644")
    raw = data["stages"]["boot"][0]
    assert raw["files"][0]["permissions"] == "0644"
    step = build_step(raw, ("stages", "boot", 0))
    assert step.problems == []
    files = next(a for p, a in step.plugins if p.name == "files").files
    assert files[0].permissions == 0o644


def test_value_split_at_the_first_equals() -> None:
    """`KEY=a=b` keeps everything after the first `=` as the value."""
    assert dot_config("stages.boot[0].environment.OPTS=a=b,c=d") == {
        "stages": {"boot": [{"environment": {"OPTS": "a=b,c=d"}}]}}


def test_surrounding_double_quotes_trimmed_from_key_and_value() -> None:
    """A word quoted as a whole, or key and value quoted separately, read the same."""
    assert dot_config('"stages.boot[0].name"="two words"') == {
        "stages": {"boot": [{"name": "two words"}]}}
    assert dot_config("'stages.boot[0].name=two words'") == {
        "stages": {"boot": [{"name": "two words"}]}}


def test_index_gap_leaves_empty_steps() -> None:
    """`boot[1]` alone gives a null step 0 (a step with nothing to do), as jq would."""
    assert dot_config("stages.boot[1].name=b") == {"stages": {"boot": [None, {"name": "b"}]}}


def test_conflicting_assignment_is_dropped() -> None:
    """Indexing into a string (jq error in yip) drops that word, not the earlier ones."""
    assert dot_config("stages.boot[0].name=a stages.boot[0].name.x=b stages.boot[0][1]=c") == {
        "stages": {"boot": [{"name": "a"}]}}


def test_non_stages_words_are_ignored() -> None:
    """console=, root=LABEL=..., rd.* and bare flags are not edgeinit's business."""
    text = "BOOT_IMAGE=/vmlinuz console=ttyS0,115200 root=LABEL=COS_ACTIVE rd.cos.oemlabel=X " \
           "quiet splash name=x stages=y"
    assert dot_config(text) == {}


def test_unbalanced_quotes_do_not_break_parsing() -> None:
    """A stray quote on a real command line must not make edgeinit crash."""
    assert words('a "b c') == ["a", '"b', "c"]
    assert dot_config('quiet x="oops stages.boot[0].name=n') == {
        "stages": {"boot": [{"name": "n"}]}}


# -- sub-stages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("stages.rootfs.after[0].x=y", "rootfs.after"),
        ("stages.boot.before[0].x=y", "boot.before"),
        ('stages."boot.before"[0].x=y', "boot.before"),  # shell quotes removed by shlex
        ("""'stages."boot.before"[0].x=y'""", "boot.before"),  # quotes reach parse_path
        ("""'stages."rootfs.after"[0].x=y'""", "rootfs.after"),
    ],
)
def test_sub_stage_spellings(text: str, stage: str) -> None:
    """Sub-stage names contain a dot; both the plain and the quoted spelling address them."""
    assert dot_config(text) == {"stages": {stage: [{"x": "y"}]}}


def test_plain_stage_named_like_a_word_is_not_a_sub_stage() -> None:
    """Only `before`/`after` followed by an index are sub-stages; `boot[0].after` is a key."""
    assert dot_config("stages.boot[0].after[0].name=a.b") == {
        "stages": {"boot": [{"after": [{"name": "a.b"}]}]}}


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("stages.boot[0].name", ["stages", "boot", 0, "name"]),
        ('stages."rootfs.after"[0].name', ["stages", "rootfs.after", 0, "name"]),
        ("stages.boot[0].files[2].path", ["stages", "boot", 0, "files", 2, "path"]),
        ("stages.boot[0][1]", ["stages", "boot", 0, 1]),
    ],
)
def test_parse_path(key: str, path: list) -> None:
    assert parse_path(key) == path


@pytest.mark.parametrize("key", ["stages..boot", "stages.boot[x]", "stages.[0]", "1abc",
                                 "stages.boot[0", "stages.bo!ot", 'stages."open'])
def test_parse_path_rejects_invalid_paths(key: str) -> None:
    assert parse_path(key) is None


# -- setup= sources ------------------------------------------------------------------


def test_setup_sources_all_aliases_in_order() -> None:
    """edgeinit.setup=, cos.setup= and elemental.setup= all name sources, in order."""
    text = "cos.setup=/oem/a.yaml quiet elemental.setup=http://h/b.yaml edgeinit.setup=/c"
    assert setup_sources(text) == ["/oem/a.yaml", "http://h/b.yaml", "/c"]


def test_setup_url_keeps_its_equals_signs() -> None:
    """elemental truncates a URI at its second `=`; a query string must survive here."""
    assert setup_sources("edgeinit.setup=http://h/c.yaml?token=a=b") == [
        "http://h/c.yaml?token=a=b"]


def test_setup_look_alikes_and_empty_values_are_ignored() -> None:
    assert setup_sources("foo.setup=/a setup=/b edgeinit.setup= cos.setupx=/c") == []


def test_setup_words_are_not_dot_notation() -> None:
    """`cos.setup=/x` is a source, never a config key."""
    assert dot_config("cos.setup=/x edgeinit.setup=/y") == {}


def test_setup_path_is_resolved_under_the_root(target: Path) -> None:
    """A setup= path is a path of the target: /oem/x.yaml means ROOT/oem/x.yaml."""
    (target / "oem").mkdir()
    (target / "oem" / "x.yaml").write_text("name: from-root\n")
    loaded = load_sources([], TargetRoot(str(target)), cmdline="cos.setup=/oem/x.yaml")
    docs = [e for e in loaded if isinstance(e, Document)]
    # /oem is also a default dir, so the file is loaded twice: once as a default source
    # and once (last) as the setup= source
    assert [d.origin for d in docs] == [str(target / "oem" / "x.yaml")] * 2
    assert docs[-1].data["name"] == "from-root"
    assert docs[-1].group > docs[0].group


def test_missing_setup_path_is_a_failure_naming_it(target: Path) -> None:
    loaded = load_sources([], TargetRoot(str(target)), cmdline="elemental.setup=/nope.yaml")
    assert len(loaded) == 1
    failure = loaded[0]
    assert isinstance(failure, Failure)
    assert failure.origin == str(target / "nope.yaml")
    assert "no such file" in failure.message
