"""Scalar conversion by field type and the run-path validator (schema/scalars, coerce, step).

Types are as lenient as yip's (SPEC section 2 and `validate`): ints as yaml.v3 reads a
plain scalar (Go ParseInt base 0), YAML 1.1 bool words, any scalar where a string is
expected, null where a list or map is expected. Wrong shapes and unknown keys are
problems with fixed messages.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgeinit.config.sources import Document, parse
from edgeinit.config.yamlload import load
from edgeinit.schema import scalars
from edgeinit.schema.problems import ERROR, UNKNOWN, Problem
from edgeinit.schema.step import Step, build_step
from edgeinit.schema.validate import findings

PATH = ("stages", "boot", 0)


def step_of(text: str) -> Step:
    """A step built from YAML text, exactly as the run path builds it."""
    return build_step(load(text), PATH)


def args(step: Step, plugin: str) -> Any:
    """The coerced arguments of one plugin of a step."""
    for p, a in step.plugins:
        if p.name == plugin:
            return a
    raise AssertionError(f"step has no {plugin} plugin: {step.plugins}")


def only_problem(step: Step) -> Problem:
    assert len(step.problems) == 1, step.problems
    return step.problems[0]


# -- integers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0644", 0o644),  # leading zero: octal, as yaml.v3 / Go ParseInt base 0
        ("0o644", 0o644),
        ("0O644", 0o644),
        ("0x1A4", 0o644),
        ("0X1a4", 0o644),
        ("0b110100100", 0o644),
        ("644", 644),  # no leading zero: decimal 644 (= 0o1204), not 0o644
        ("+644", 644),
        ("-12", -12),
        ("-0644", -0o644),
        ("1_000", 1000),  # yaml.v3 drops underscores before ParseInt
        ("0_644", 0o644),
        ("0", 0),
        ("00", 0),
    ],
)
def test_parse_int_reads_go_base_zero(text: str, value: int) -> None:
    """`permissions: 0644` must be 0o644 and `644` decimal, or modes come out wrong."""
    assert scalars.parse_int(text) == value


@pytest.mark.parametrize("text", ["08", "09", "0o8", "0b2", "0x", "0xg", "1.5", "12a", "abc",
                                  "", "--1", "1 2"])
def test_parse_int_rejects_what_is_not_an_integer(text: str) -> None:
    """`08` is not octal and not decimal under base 0; it is an error, never 8."""
    with pytest.raises(scalars.ScalarError) as err:
        scalars.parse_int(text)
    assert str(err.value) == f"expected an integer, got '{text}'"


@pytest.mark.parametrize(("value", "kind"), [(["1"], "a list"), ({"a": "1"}, "a mapping"),
                                             (True, "a boolean"), (1.5, "a number")])
def test_parse_int_rejects_other_shapes(value: Any, kind: str) -> None:
    """Non-scalars name their shape in the message."""
    with pytest.raises(scalars.ScalarError) as err:
        scalars.parse_int(value)
    assert str(err.value) == f"expected an integer, got {kind}"


@pytest.mark.parametrize(("text", "mode"), [("0", 0), ("0644", 0o644), ("07777", 0o7777),
                                            ("0o4755", 0o4755)])
def test_permissions_within_bounds(text: str, mode: int) -> None:
    """Every mode from 0 to 07777 (setuid, setgid, sticky included) is accepted."""
    step = step_of(f"files:\n  - path: /a\n    permissions: {text}\n")
    assert step.problems == []
    assert args(step, "files").files[0].permissions == mode


@pytest.mark.parametrize("text", ["0o10000", "010000", "-1", "4096"])
def test_permissions_out_of_bounds_is_an_error(text: str) -> None:
    """Modes above 07777 (or negative) are refused with the bound written in octal."""
    step = step_of(f"files:\n  - path: /a\n    permissions: {text}\n")
    problem = only_problem(step)
    assert problem.kind == ERROR
    assert problem.path == (*PATH, "files", 0, "permissions")
    assert problem.message == f"expected an integer from 0 to 07777, got '{text}'"


def test_owner_below_zero_names_its_lower_bound() -> None:
    """A one-sided bound (owner >= 0) says so; it used to print 'from 0 to , got'."""
    problem = only_problem(step_of("files:\n  - path: /a\n    owner: -1\n"))
    assert problem.message == "expected an integer of at least 0, got '-1'"


def test_upper_bound_only_message() -> None:
    """The other one-sided bound reads as naturally."""
    with pytest.raises(scalars.ScalarError) as err:
        scalars.parse_int("9", le=5)
    assert str(err.value) == "expected an integer of at most 5, got '9'"


def test_quoted_permissions_are_read_like_plain_ones() -> None:
    """The loader keeps text, so quoted "0644" is octal too (yip would reject it outright)."""
    step = step_of('files:\n  - path: /a\n    permissions: "0644"\n')
    assert args(step, "files").files[0].permissions == 0o644


def test_null_integer_field_is_unset() -> None:
    """`permissions:` with no value means 'not given', so the 0644 default applies."""
    step = step_of("files:\n  - path: /a\n    permissions:\n")
    assert step.problems == []
    assert args(step, "files").files[0].permissions is None


# -- booleans ------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "y",
                                  "Y"])
def test_true_words(word: str) -> None:
    """yaml.v3 accepts YAML 1.1 words where the Go field is a bool."""
    assert scalars.parse_bool(word) is True


@pytest.mark.parametrize("word", ["false", "False", "FALSE", "no", "No", "NO", "off", "Off", "n",
                                  "N"])
def test_false_words(word: str) -> None:
    assert scalars.parse_bool(word) is False


@pytest.mark.parametrize("word", ["maybe", "1", "0", "tru", ""])
def test_bool_rejects_other_words(word: str) -> None:
    """Numbers are not booleans for yaml.v3 either."""
    with pytest.raises(scalars.ScalarError) as err:
        scalars.parse_bool(word)
    assert str(err.value) == f"expected true or false, got '{word}'"


def test_bool_field_from_yaml() -> None:
    """End to end: `lock_passwd: yes` is True, `no_create_home: off` False, null False."""
    step = step_of("users:\n  bob:\n    lock_passwd: yes\n    no_create_home: off\n"
                   "    system:\n")
    assert step.problems == []
    bob = args(step, "users").users["bob"]
    assert (bob.lock_passwd, bob.no_create_home, bob.system) == (True, False, False)


def test_bool_field_with_a_mapping_is_an_error() -> None:
    problem = only_problem(step_of("users:\n  bob:\n    lock_passwd: {a: b}\n"))
    assert problem.message == "expected true or false, got a mapping"
    assert problem.path == (*PATH, "users", "bob", "lock_passwd")


# -- strings -------------------------------------------------------------------------


def test_any_scalar_is_accepted_where_a_string_is_expected() -> None:
    """sysctl values may be numbers, env values look like octal, hostnames like numbers."""
    step = step_of(
        "hostname: 12\n"
        "sysctl:\n  vm.swappiness: 10\n  net.ipv4.ip_forward: 1\n"
        "environment:\n  MODE: 0644\n  FLAG: yes\n  TIME: 12:30\n  VER: 1.10\n"
        "commands:\n  - true\n  - 42\n"
    )
    assert step.problems == []
    assert args(step, "hostname").hostname == "12"
    assert args(step, "sysctl").sysctl == {"vm.swappiness": "10", "net.ipv4.ip_forward": "1"}
    assert args(step, "environment").environment == {
        "MODE": "0644", "FLAG": "yes", "TIME": "12:30", "VER": "1.10"}
    assert args(step, "commands").commands == ["true", "42"]


def test_null_where_a_string_is_expected_is_empty() -> None:
    step = step_of("hostname:\n")
    assert step.problems == []
    assert args(step, "hostname").hostname == ""


@pytest.mark.parametrize(("value", "kind"), [("[a]", "a list"), ("{a: b}", "a mapping")])
def test_non_scalar_where_a_string_is_expected(value: str, kind: str) -> None:
    problem = only_problem(step_of(f"hostname: {value}\n"))
    assert problem.kind == ERROR
    assert problem.message == f"expected a string, got {kind}"
    assert problem.path == (*PATH, "hostname")


def test_to_text_of_python_scalars() -> None:
    """Values built in code (not from YAML) convert the same way yip prints them."""
    assert scalars.to_text(None) == ""
    assert scalars.to_text(True) == "true"
    assert scalars.to_text(10) == "10"


# -- lists and maps ------------------------------------------------------------------


def test_null_where_a_list_or_map_is_expected_is_empty() -> None:
    """`files:`, `commands: ~`, `environment: null` are valid and mean nothing to do."""
    step = step_of("files:\ncommands: ~\nenvironment: null\nusers:\nif_files:\nafter:\n")
    assert step.problems == []
    assert args(step, "files").files == []
    assert args(step, "commands").commands == []
    assert args(step, "environment").environment == {}
    assert args(step, "users").users == {}
    assert step.header.if_files is None
    assert step.header.after == []


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("commands: echo hi\n", ("commands",), "expected a list, got a string"),
        ("commands: {a: b}\n", ("commands",), "expected a list, got a mapping"),
        ("files: /etc/x\n", ("files",), "expected a list, got a string"),
        ("files: [/etc/x]\n", ("files", 0), "expected a mapping, got a string"),
        ("files: [[a]]\n", ("files", 0), "expected a mapping, got a list"),
        ("environment: [A=1]\n", ("environment",), "expected a mapping, got a list"),
        ("environment: A=1\n", ("environment",), "expected a mapping, got a string"),
        ("users: [bob]\n", ("users",), "expected a mapping, got a list"),
        ("if_files: /x\n", ("if_files",), "expected a mapping, got a string"),
        ("if_files: {any: /x}\n", ("if_files", "any"), "expected a list, got a string"),
        ("after: x.y\n", ("after",), "expected a list, got a string"),
        ("files:\n  - permissions: [1]\n", ("files", 0, "permissions"),
         "expected an integer, got a list"),
        ("authorized_keys: {root: ssh-rsa AAA}\n", ("authorized_keys", "root"),
         "expected a list, got a string"),
    ],
)
def test_wrong_shapes_have_exact_messages(text: str, path: tuple, message: str) -> None:
    """`validate` prints these messages verbatim; scripts and users read them."""
    problem = only_problem(step_of(text))
    assert problem.kind == ERROR
    assert problem.path == (*PATH, *path)
    assert problem.message == message


def test_a_step_that_is_not_a_mapping() -> None:
    problem = only_problem(build_step("echo hi", PATH))
    assert problem.path == PATH
    assert problem.message == "a step must be a mapping, got a string"


def test_a_null_step_is_an_empty_step() -> None:
    """`- ` (an empty list item) is a step with nothing to do, not an error."""
    step = build_step(None, PATH)
    assert step.problems == [] and step.plugins == []


def test_a_wrong_field_keeps_its_default_and_the_others() -> None:
    """One bad field fails the step but does not hide the other fields' values."""
    step = step_of("name: s\nhostname: [a]\ncommands: [x]\n")
    assert step.header.name == "s"
    assert args(step, "commands").commands == ["x"]
    assert args(step, "hostname").hostname == ""
    assert [p.kind for p in step.errors] == [ERROR]


# -- unknown keys --------------------------------------------------------------------


def test_unknown_nested_key_suggests_the_close_one() -> None:
    """`permissons` is the typo that gave kairos-io/kairos#4698 mode-0000 files."""
    step = step_of("files:\n  - path: /a\n    permissons: 0644\n")
    problem = only_problem(step)
    assert problem.kind == UNKNOWN
    assert problem.at_key
    assert problem.path == (*PATH, "files", 0, "permissons")
    assert problem.message == "unknown key 'permissons'; did you mean 'permissions'?"
    assert step.errors == []  # a warning: the step still runs
    assert args(step, "files").files[0].path == "/a"


@pytest.mark.parametrize(("key", "hint"), [("comands", "commands"), ("hostnmae", "hostname"),
                                           ("only_oss", "only_os"), ("iff", "if")])
def test_unknown_step_key_suggests_the_close_one(key: str, hint: str) -> None:
    problem = only_problem(step_of(f"{key}: x\n"))
    assert problem.kind == UNKNOWN
    assert problem.message == f"unknown key '{key}'; did you mean '{hint}'?"


def test_unknown_key_far_from_anything_has_no_suggestion() -> None:
    problem = only_problem(step_of("zzzzqqqq: 1\n"))
    assert problem.message == "unknown key 'zzzzqqqq'"


def test_unknown_top_level_key_suggests_stages() -> None:
    """`stage:` instead of `stages:` (the cos README typo) is no longer a silent no-op."""
    doc = parse(0, "f.yaml", "stage:\n  boot:\n    - commands: [x]\n")
    assert isinstance(doc, Document)
    assert [(p.kind, p.message) for p in doc.problems] == [
        (UNKNOWN, "unknown key 'stage'; did you mean 'stages'?")]


def test_unknown_key_finding_points_at_the_key(tmp_path) -> None:
    """`validate` output: FILE:LINE:COLUMN of the misspelled key, message with suggestion."""
    text = "stages:\n  boot:\n    - files:\n        - path: /a\n          permissons: 0644\n"
    doc = parse(0, "/oem/f.yaml", text)
    assert [str(f) for f in findings([doc])] == [
        "/oem/f.yaml:5:11: unknown key 'permissons'; did you mean 'permissions'?"]


def test_wrong_type_finding_points_at_the_value() -> None:
    text = "stages:\n  boot:\n    - commands: echo hi\n"
    doc = parse(0, "f.yaml", text)
    assert [str(f) for f in findings([doc])] == ["f.yaml:3:17: expected a list, got a string"]


# -- owner_string / ownerstring --------------------------------------------------------


@pytest.mark.parametrize("spelling", ["owner_string", "ownerstring"])
@pytest.mark.parametrize("plugin", ["files", "downloads"])
def test_owner_by_name_accepts_both_spellings(spelling: str, plugin: str) -> None:
    """yip's README writes owner_string, its parser reads ownerstring; both work here."""
    step = step_of(f"{plugin}:\n  - path: /a\n    {spelling}: bob:wheel\n")
    assert step.problems == []
    entry = getattr(args(step, plugin), plugin)[0]
    assert entry.owner_string == "bob:wheel"


def test_both_spellings_at_once_is_an_error() -> None:
    """Two values for one field: refuse rather than pick one silently."""
    step = step_of("files:\n  - path: /a\n    owner_string: a\n    ownerstring: b\n")
    problem = only_problem(step)
    assert problem.kind == ERROR
    assert problem.at_key
    assert problem.path == (*PATH, "files", 0, "ownerstring")
    assert "ownerstring" in problem.message and "owner_string" in problem.message
