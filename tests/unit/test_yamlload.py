"""YAML loading as yip's yaml.v3 sees it: scalars stay text until a field types them.

Reference: yip-behaviour.md section 0 (integer fields) and SPEC section 2.
"""

from __future__ import annotations

import pytest

from edgeinit.config.yamlload import YamlError, compose, load, locate, locate_in


@pytest.mark.parametrize(
    "scalar",
    ["0644", "yes", "no", "on", "off", "y", "12:30", "1.10", "0x1A4", "0o644", "1e3",
     "2024-01-01", "true", "False", ".inf", "+12", "1_000"],
)
def test_plain_scalars_stay_the_text_the_user_wrote(scalar: str) -> None:
    """PyYAML's YAML 1.1 resolution (0644 -> 420, yes -> True, 12:30 -> 750) must not apply."""
    assert load(f"v: {scalar}\n") == {"v": scalar}


@pytest.mark.parametrize("scalar", ["null", "Null", "NULL", "~", ""])
def test_null_stays_none(scalar: str) -> None:
    """Null is the one scalar resolved at load time, so 'null where a list is expected' works."""
    assert load(f"v: {scalar}\n") == {"v": None}


def test_quoted_null_and_quoted_numbers_are_text() -> None:
    """Quoting makes a string of anything, including the word null."""
    assert load("a: 'null'\nb: \"0644\"\nc: ''\n") == {"a": "null", "b": "0644", "c": ""}


def test_scalars_inside_sequences_and_nested_mappings_stay_text() -> None:
    """The rule holds at every depth, not only for top-level values."""
    data = load("stages:\n  boot:\n    - files:\n        - permissions: 0644\n"
                "      list: [1, true, 0x10, 1.5]\n")
    step = data["stages"]["boot"][0]
    assert step["files"][0]["permissions"] == "0644"
    assert step["list"] == ["1", "true", "0x10", "1.5"]


def test_non_string_keys_become_their_text() -> None:
    """Map keys are strings in every consumer (user names, env var names, sysctl keys)."""
    assert load("1000: a\ntrue: b\n0644: c\n") == {"1000": "a", "true": "b", "0644": "c"}


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_document_is_none(text: str) -> None:
    """An empty file loads as None; the sources layer turns that into 'no stages'."""
    assert load(text) is None


def test_leading_document_marker_is_fine() -> None:
    """Many files start with '---'; that is one document."""
    assert load("---\nname: x\n") == {"name": "x"}


def test_duplicate_key_is_an_error_with_line_and_column() -> None:
    """yaml.v3 rejects a key repeated in one mapping; we point at the repeat."""
    with pytest.raises(YamlError) as err:
        load("a: 1\nb: 2\na: 3\n")
    assert err.value.line == 3
    assert err.value.column == 1
    assert "'a' already defined" in err.value.message
    assert str(err.value).startswith("line 3, column 1: ")


def test_nested_duplicate_key_points_at_the_nested_repeat() -> None:
    """The position is that of the second occurrence, deep inside a step."""
    text = "stages:\n  boot:\n    - name: x\n      commands: [a]\n      name: y\n"
    with pytest.raises(YamlError) as err:
        load(text)
    assert (err.value.line, err.value.column) == (5, 7)
    assert "'name'" in err.value.message


def test_same_key_in_sibling_mappings_is_not_a_duplicate() -> None:
    """Only repeats within one mapping count."""
    assert load("a:\n  x: 1\nb:\n  x: 2\n") == {"a": {"x": "1"}, "b": {"x": "2"}}


def test_key_duplicated_as_quoted_and_plain_is_a_duplicate() -> None:
    """yaml.v3 compares key text, so 1 and '1' are the same key."""
    with pytest.raises(YamlError) as err:
        load("1: a\n'1': b\n")
    assert err.value.line == 2


def test_merge_key_values_are_overridden_by_own_keys() -> None:
    """`<<: *anchor` then an own key of the same name is an override, not a duplicate (yaml.v3)."""
    text = "base: &b {shell: /bin/sh, home: /h}\nuser:\n  <<: *b\n  shell: /bin/bash\n"
    assert load(text)["user"] == {"shell": "/bin/bash", "home": "/h"}


def test_merge_key_after_own_key_still_loses() -> None:
    """The mapping's own key wins wherever the merge is written."""
    text = "base: &b {shell: /bin/sh, home: /h}\nuser:\n  shell: /bin/bash\n  <<: *b\n"
    assert load(text)["user"] == {"shell": "/bin/bash", "home": "/h"}


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: b\nc: d: e\n", 2, 5),  # mapping values not allowed here
        ("stages:\n\tboot: x\n", 2, 1),  # a tab cannot start a token
        ("a:\n  - b\n  c: d\n", 3, 3),  # sequence then mapping at one level
    ],
)
def test_syntax_error_carries_its_line(text: str, line: int, column: int) -> None:
    """A broken file is reported with the line (and column) the parser stopped at."""
    with pytest.raises(YamlError) as err:
        load(text)
    assert (err.value.line, err.value.column) == (line, column)
    assert err.value.message
    assert str(err.value).startswith(f"line {line}, column {column}: ")


def test_trailing_document_marker_does_not_fail_the_file() -> None:
    """yip accepts `name: x` followed by a lone `---`; so should we."""
    assert load("name: x\n---\n") == {"name": "x"}


def test_documents_after_the_first_are_ignored_with_a_warning() -> None:
    """A second document with content (even broken YAML) is not read, but the user is told."""
    from edgeinit.config.sources import Document, parse

    for text in ("name: x\n---\nstages: {boot: [{commands: [x]}]}\n", "name: x\n---\n: [\n"):
        doc = parse(0, "two.yaml", text)
        assert isinstance(doc, Document)
        assert doc.data["stages"] == {}
        assert [p.message for p in doc.problems] == [
            "only the first YAML document of the file is read; the documents after '---' are "
            "ignored"]
    assert parse(0, "one.yaml", "name: x\n---\n").problems == []


# -- locate --------------------------------------------------------------------------

STEP_TEXT = (
    "stages:\n"                      # 1
    "  boot:\n"                      # 2
    "    - name: x\n"                # 3
    "      files:\n"                 # 4
    "        - path: /a\n"           # 5
    "          permissions: 0644\n"  # 6
)


def test_locate_a_value() -> None:
    """Line/column of a value, 1-based, for FILE:LINE:COLUMN messages."""
    assert locate(STEP_TEXT, ("stages", "boot", 0, "files", 0, "permissions")) == (6, 24)


def test_locate_a_key() -> None:
    """With key=True the position of the key itself (unknown-key messages point there)."""
    path = ("stages", "boot", 0, "files", 0, "permissions")
    assert locate(STEP_TEXT, path, key=True) == (6, 11)


def test_locate_a_sequence_item() -> None:
    """An index selects the item: step 0 starts at its first key."""
    assert locate(STEP_TEXT, ("stages", "boot", 0)) == (3, 7)
    assert locate(STEP_TEXT, ("stages", "boot", 0, "files", 0, "path")) == (5, 17)


def test_locate_falls_back_to_the_nearest_ancestor_for_a_missing_key() -> None:
    """A path that does not exist (a defaulted field) points at its closest existing parent."""
    assert locate(STEP_TEXT, ("stages", "boot", 0, "files", 0, "nope")) == (5, 11)
    assert locate(STEP_TEXT, ("stages", "boot", 0, "files", 0, "nope"), key=True) == (5, 11)


def test_locate_falls_back_for_an_index_out_of_range() -> None:
    """boot[3] does not exist; the boot list does."""
    assert locate(STEP_TEXT, ("stages", "boot", 3, "name")) == (3, 5)


def test_locate_through_a_scalar_stops_at_the_scalar() -> None:
    """Descending into a scalar cannot go further; the scalar is the answer."""
    assert locate(STEP_TEXT, ("stages", "boot", 0, "name", "deeper")) == (3, 13)


def test_locate_with_an_index_into_a_mapping_stops_there() -> None:
    """A path whose shape does not match the document stops at the mismatch."""
    assert locate(STEP_TEXT, ("stages", 0)) == (2, 3)


def test_locate_without_a_tree_is_line_one() -> None:
    """Empty or unparsable text has no nodes; the answer is still a valid position."""
    assert locate("", ("a",)) == (1, 1)
    assert locate("a: [\n", ("a",)) == (1, 1)
    assert locate_in(None, ("a",)) == (1, 1)


def test_compose_keeps_text_scalars() -> None:
    """compose() is the same loader's node tree (used for line numbers only)."""
    node = compose("a: 0644\n")
    assert node is not None
    (key, value), = node.value
    assert (key.value, value.value) == ("a", "0644")
