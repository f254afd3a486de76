"""Env files and INI drop-ins, as yip writes them and as edgeinit edits them.

A new env file must be byte-for-byte what yip (godotenv.Write) writes, so a node moved
from yip sees no churn (SPEC 2); an existing one is edited in place, keeping comments
and other settings. INI drop-ins use go-ini's `Key = value` (yip-behaviour 3.14).
"""

from __future__ import annotations

import pytest

from edgeinit.formats import dotenv, ini

# ---------------------------------------------------------------- dotenv: parse


def test_parse_forms_godotenv_reads() -> None:
    """export prefixes, both quote styles, escapes, comments and blank lines."""
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "SPACED = padded  \n"
        'DQ="a \\"quoted\\" \\$x\\nnext"\n'
        "SQ='single \\n kept'\n"
        "INLINE=val # trailing comment\n"
        'HASH="in # quotes"\n'
        "EMPTY=\n"
        "  # indented comment=1\n"
        "not an assignment\n"
    )
    assert dotenv.parse(text) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "padded",
        "DQ": 'a "quoted" $x\nnext',
        "SQ": "single \\n kept",
        "INLINE": "val",
        "HASH": "in # quotes",
        "EMPTY": "",
    }


def test_parse_last_assignment_wins() -> None:
    """A key set twice has its last value, as a shell sourcing the file would see."""
    assert dotenv.parse("A=1\nA=2\n") == {"A": "2"}


# ---------------------------------------------------------------- dotenv: format


@pytest.mark.parametrize("value,line", [
    ("0", "K=0"),
    ("42", "K=42"),
    ("-3", "K=-3"),
    ("tmpfs:25%", 'K="tmpfs:25%"'),
    ("", 'K=""'),
    ("1.5", 'K="1.5"'),
    (" 7", 'K=" 7"'),
    ("a b", 'K="a b"'),
    ("back\\slash", 'K="back\\\\slash"'),
    ('say "hi"', 'K="say \\"hi\\""'),
    ("bang!", 'K="bang\\!"'),
    ("$HOME", 'K="\\$HOME"'),
    ("`cmd`", 'K="\\`cmd\\`"'),
    ("l1\nl2", 'K="l1\\nl2"'),
    ("cr\r", 'K="cr\\r"'),
    ("it's", 'K="it\'s"'),
])
def test_format_line_like_godotenv(value: str, line: str) -> None:
    """Integers bare, everything else double-quoted with \\ \\n \\r \" ! $ ` escaped."""
    assert dotenv.format_line("K", value) == line


def test_new_file_is_exactly_what_yip_writes() -> None:
    """Sorted lines, one per key, trailing newline (yip test: `foo: "0"` -> `foo=0\\n`)."""
    assert dotenv.merge(None, {"foo": "0"}) == "foo=0\n"
    assert dotenv.merge(None, {"OVERLAY": "tmpfs:25%"}) == 'OVERLAY="tmpfs:25%"\n'
    text = dotenv.merge("", {"VOLUMES": "LABEL=COS_OEM:/oem", "DEBUG_RW": "true",
                             "B": "2", "A": 'x"y'})
    assert text == ('A="x\\"y"\nB=2\nDEBUG_RW="true"\nVOLUMES="LABEL=COS_OEM:/oem"\n')


def test_new_file_sorts_lines_not_keys() -> None:
    """godotenv sorts the formatted lines: `NODE1=1` sorts before `NODE="a"` ('1' < '=')."""
    assert dotenv.merge(None, {"NODE": "a", "NODE1": "1", "NODE-X": "b"}) == (
        'NODE-X="b"\nNODE1=1\nNODE="a"\n')


def test_whitespace_only_file_is_treated_as_new() -> None:
    """A file of blank lines gets yip's layout, not blank lines plus appended keys."""
    assert dotenv.merge("\n\n", {"A": "1"}) == "A=1\n"


@pytest.mark.parametrize("value", [
    "plain", "", "0", "007", "-1", " padded ", 'q"uote', "back\\slash\\", "\\n literal",
    "multi\nline\r\n", "$VAR ${X} `x` !", "it's # not a comment", "=eq=", "üñíçødé",
])
def test_written_values_read_back_unchanged(value: str) -> None:
    """What format_line writes, parse reads back as the same value."""
    assert dotenv.parse(dotenv.merge(None, {"KEY": value})) == {"KEY": value}


# ---------------------------------------------------------------- dotenv: merge


OLD = (
    "# Managed by hand, keep this comment\n"
    "export PATH_EXTRA=/opt/bin\n"
    "\n"
    "OVERLAY=tmpfs:10%\n"
    "# trailing comment\n"
    "DEBUG_RW='true'\n"
)


def test_merge_changes_lines_in_place_and_appends_new_keys() -> None:
    """Other lines and comments stay; changed keys rewritten where they are; new appended."""
    out = dotenv.merge(OLD, {"OVERLAY": "tmpfs:25%", "ZNEW": "1", "ANEW": "a b"})
    assert out == (
        "# Managed by hand, keep this comment\n"
        "export PATH_EXTRA=/opt/bin\n"
        "\n"
        'OVERLAY="tmpfs:25%"\n'
        "# trailing comment\n"
        "DEBUG_RW='true'\n"
        'ANEW="a b"\n'
        "ZNEW=1\n"
    )


def test_merge_keeps_an_unchanged_line_as_written() -> None:
    """A key whose value is already right keeps its own quoting (no churn)."""
    assert dotenv.merge(OLD, {"DEBUG_RW": "true", "PATH_EXTRA": "/opt/bin"}) == OLD


def test_merge_is_idempotent() -> None:
    """SPEC 7.13: merging the same values again changes nothing."""
    values = {"OVERLAY": "tmpfs:25%", "NEW": 'x"$y', "N": "3"}
    once = dotenv.merge(OLD, values)
    assert dotenv.merge(once, values) == once
    fresh = dotenv.merge(None, values)
    assert dotenv.merge(fresh, values) == fresh


def test_merge_into_a_file_without_final_newline() -> None:
    """The last line is not glued to an appended key."""
    assert dotenv.merge("A=1", {"B": "2"}) == "A=1\nB=2\n"


def test_merge_rewrites_the_last_of_duplicate_keys() -> None:
    """The effective (last) assignment is the one changed, so the new value wins."""
    out = dotenv.merge("A=1\nA=2\n", {"A": "3"})
    assert dotenv.parse(out) == {"A": "3"}


def test_merge_commented_out_key_is_not_edited() -> None:
    """`#KEY=...` is a comment: the key is appended, the comment kept."""
    assert dotenv.merge("#A=old\n", {"A": "new"}) == '#A=old\nA="new"\n'


# ---------------------------------------------------------------- ini


def test_ini_new_file_is_yips_drop_in() -> None:
    """yip test: timesyncd `NTP: 0.pool` -> `[Time]\\nNTP = 0.pool\\n`."""
    assert ini.set_keys(None, "Time", {"NTP": "0.pool"}) == "[Time]\nNTP = 0.pool\n"
    assert ini.set_keys("", "Time", {"NTP": "a", "FallbackNTP": "b"}) == (
        "[Time]\nFallbackNTP = b\nNTP = a\n")


def test_ini_existing_key_replaced_in_place() -> None:
    """A key of the section is rewritten where it is; comments and other keys stay."""
    old = "# drop-in\n[Time]\nNTP=old\n# keep\nRootDistanceMaxSec=5\n"
    assert ini.set_keys(old, "Time", {"NTP": "new"}) == (
        "# drop-in\n[Time]\nNTP = new\n# keep\nRootDistanceMaxSec=5\n")


def test_ini_new_key_goes_at_the_end_of_its_section() -> None:
    """New keys follow the section's last line (before blank lines and the next section)."""
    old = "[Time]\nNTP=a\n\n[Other]\nNTP=untouched\n"
    assert ini.set_keys(old, "Time", {"FallbackNTP": "b"}) == (
        "[Time]\nNTP=a\nFallbackNTP = b\n\n[Other]\nNTP=untouched\n")


def test_ini_same_key_in_another_section_is_untouched() -> None:
    """Only the named section is edited; a missing section is appended after a blank line."""
    old = "[Other]\nNTP=x\n"
    assert ini.set_keys(old, "Time", {"NTP": "y"}) == "[Other]\nNTP=x\n\n[Time]\nNTP = y\n"


def test_ini_is_idempotent() -> None:
    """Setting the same values twice gives the same text."""
    once = ini.set_keys("[Time]\nNTP=a\n", "Time", {"NTP": "b", "PollIntervalMinSec": "32"})
    assert ini.set_keys(once, "Time", {"NTP": "b", "PollIntervalMinSec": "32"}) == once
