"""The run path's lean validator and pydantic must judge every step the same way.

`edgeinit run` validates with schema/coerce.py (no pydantic on the boot path);
`edgeinit validate` uses pydantic models generated from the same dataclasses. If the
two ever disagree, a file could pass `validate` and fail at boot (or the reverse), so
they are compared on every step of the reference corpus and on a set of bad inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgeinit.config import sources
from edgeinit.schema.pydantic_models import pydantic_step_problems
from edgeinit.schema.validate import lean_step_problems
from edgeinit.target.root import TargetRoot
from tests.conftest import REFERENCE, SAMPLES


def _steps_of(paths: list[Path]) -> list[tuple[str, tuple[str | int, ...], Any]]:
    out = []
    for path in paths:
        for entry in sources.load_sources([str(path)], TargetRoot("/")):
            if not isinstance(entry, sources.Document):
                continue
            for stage, steps in entry.data["stages"].items():
                if isinstance(steps, list):
                    for i, raw in enumerate(steps):
                        out.append((entry.origin, ("stages", stage, i), raw))
    return out


def _as_set(problems: list) -> set[tuple]:
    return {(p.path, p.message, p.kind) for p in problems}


CORPUS = [p for p in (REFERENCE, SAMPLES) if p.exists()]


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference corpus not present")
def test_agree_on_every_reference_step() -> None:
    steps = _steps_of(CORPUS)
    assert len(steps) > 500  # the corpus really was read
    disagreements = []
    for origin, path, raw in steps:
        lean, strict = _as_set(lean_step_problems(raw, path)), _as_set(
            pydantic_step_problems(raw, path))
        if lean != strict:
            disagreements.append((origin, path, lean ^ strict))
    assert disagreements == []


BAD_STEPS: list[Any] = [
    {"files": "not a list"},
    {"files": [{"path": "/a", "permissions": "rw-r--r--"}]},
    {"files": [{"path": "/a", "permissions": "0o7777777"}]},
    {"files": [{"path": "/a", "permissions": "-1"}]},
    {"files": [{"path": "/a", "permissons": "0600"}]},
    {"files": [{"path": ["x"], "content": {"a": "b"}}]},
    {"files": [["nested list"]]},
    {"files": [None, {"path": "/x", "owner": "root"}]},
    {"files": [{"path": "/a", "owner_string": "u", "ownerstring": "v"}]},
    {"directories": [{"path": "/d", "permissions": "0755", "owner": "12x"}]},
    {"commands": "echo not a list"},
    {"commands": [["echo", "x"]]},
    {"commands": [{"a": "b"}]},
    {"hostname": ["a"]},
    {"sysctl": ["vm.swappiness=10"]},
    {"sysctl": {"vm.swappiness": {"deep": "x"}}},
    {"environment": {"A": ["x"]}, "environment_file": {"x": "y"}},
    {"dns": {"nameservers": "8.8.8.8"}},
    {"dns": "8.8.8.8"},
    {"if_files": {"any": "/x", "some": ["/y"]}},
    {"after": [{"nme": "x"}]},
    {"after": "x"},
    {"users": {"rey": {"groups": "admin", "lock_passwd": "maybe", "uid": ["1"]}}},
    {"users": ["rey"]},
    {"layout": {"add_partitions": [{"fsLabel": "X", "size": "big", "bootable": "yes"}]}},
    {"layout": {"expand_partition": {"size": "-5"}}},
    {"systemctl": {"enable": "a", "overrides": [{"service": "a", "nam": "b"}]}},
    {"authorized_keys": {"rey": "github:rey"}},
    {"git": {"auth": {"insecure": "sometimes"}}},
    {"packages": {"install": [["x"]], "refresh": "1"}},
    {"nme": "typo", "stagez": 1, "IF": "true"},
    {"only_arch": {"x": 1}, "node": ["a"]},
    {"name": {"a": 1}},
    "a string step",
    ["a", "list", "step"],
]


@pytest.mark.parametrize("raw", BAD_STEPS, ids=[str(i) for i in range(len(BAD_STEPS))])
def test_agree_on_bad_steps(raw: Any) -> None:
    path = ("stages", "boot", 0)
    lean = _as_set(lean_step_problems(raw, path))
    strict = _as_set(pydantic_step_problems(raw, path))
    assert lean, "every one of these steps has a problem"
    assert lean == strict
