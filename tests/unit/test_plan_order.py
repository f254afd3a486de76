"""Run order of a stage (SPEC 1 `run`, SPEC 2 "Order"; yip-behaviour.md 1.2 and 1.3).

Sub-stages STAGE.before, STAGE, STAGE.after; within each, sources in order, a
directory's files in yip's walk order, each file's steps in file order; `after:` moves a
step right after the step it names, within one sub-stage and one SOURCE argument;
command-line dot-notation steps come last in their sub-stage.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeinit.config.sources import Document, Failure, load_sources, walk
from edgeinit.engine.plan import Planned, SourceFailed, plan, sub_stages
from edgeinit.target.root import TargetRoot

Write = Callable[[str, str], Path]


def planned(loaded: list, stage: str) -> list[Planned | SourceFailed]:
    return plan(loaded, stage).items


def op_names(items: list) -> list[str]:
    """yip's op names (CONFIGNAME.STEPNAME) of the planned steps, in run order."""
    return [i.op_name for i in items if isinstance(i, Planned)]


def ok_names(items: list) -> list[str]:
    """op_names, checking that no planned step carries a planning error."""
    assert [i.error for i in items if isinstance(i, Planned)] == [None] * len(op_names(items))
    return op_names(items)


def load(paths: list[Path | str], root: Path | None = None, cmdline: str | None = None) -> list:
    target = TargetRoot(str(root) if root else "/")
    return load_sources([str(p) for p in paths], target, cmdline=cmdline)


def steps_yaml(name: str | None, stages: dict[str, list[str]]) -> str:
    """A yip file whose steps carry only names (enough to see the order)."""
    out = f"name: {name!r}\n" if name else ""
    out += "stages:\n"
    for stage, steps in stages.items():
        out += f"  {stage!r}:\n"
        for step in steps:
            out += f"    - name: {step!r}\n"
    return out


# -- yip's cross-file example ----------------------------------------------------------

FIRST = """
name: "Rootfs Layout Settings"
stages:
    rootfs.before:
    - name: "before roots"
      commands:
      - echo "rootfs.before" >> /bar
    rootfs:
    - name: "rootfs"
      commands:
      - echo "rootfs" >> /bar
    - name: "rootfs 2"
      commands:
      - echo "2" >> /bar
    initramfs:
    - name: "initramfs"
      commands:
      - echo "initramfs" >> /bar
"""

SECOND = """
name: "second Rootfs Layout Settings"
stages:
    rootfs.before:
    - name: "second before roots"
      commands:
      - echo "second.rootfs.before" >> /bar
    rootfs:
    - name: "second rootfs"
      commands:
      - echo "second.rootfs" >> /bar
    - name: "second rootfs 2"
      commands:
      - echo "second.2" >> /bar
    initramfs:
    - name: "second initramfs"
      commands:
      - echo "second.initramfs" >> /bar
"""


@pytest.fixture
def yip_example(write: Write) -> Path:
    """yip's executor test 'has multiple instructions in different files'."""
    write("some/yip/01_first.yaml", FIRST)
    return write("some/yip/02_second.yaml", SECOND).parent


def test_yip_cross_file_example_plan(yip_example: Path) -> None:
    """rootfs (with rootfs.before), then initramfs: file order within each sub-stage."""
    loaded = load([yip_example])
    first, second = "Rootfs Layout Settings", "second Rootfs Layout Settings"
    rootfs = planned(loaded, "rootfs")
    assert [(i.stage, i.op_name) for i in rootfs] == [
        ("rootfs.before", f"{first}.before roots"),
        ("rootfs.before", f"{second}.second before roots"),
        ("rootfs", f"{first}.rootfs"),
        ("rootfs", f"{first}.rootfs 2"),
        ("rootfs", f"{second}.second rootfs"),
        ("rootfs", f"{second}.second rootfs 2"),
    ]
    assert op_names(planned(loaded, "initramfs")) == [
        f"{first}.initramfs", f"{second}.second initramfs"]


def test_yip_cross_file_example_output(cli, shell_target: Path, yip_example: Path) -> None:
    """The exact output yip's test asserts, from really running the commands."""
    for stage in ("rootfs", "initramfs"):
        result = cli("run", "--stage", stage, "--root", shell_target, yip_example)
        assert result.code == 0, result.err
    assert (shell_target / "bar").read_text() == (
        "rootfs.before\nsecond.rootfs.before\nrootfs\n2\nsecond.rootfs\nsecond.2\n"
        "initramfs\nsecond.initramfs\n")


# -- sub-stages ----------------------------------------------------------------------


def test_sub_stage_names() -> None:
    assert sub_stages("boot") == ("boot.before", "boot", "boot.after")


def test_sub_stages_run_before_main_after_whatever_the_file_order(write: Write) -> None:
    """The order in the file does not matter; other stages and look-alikes are left out."""
    f = write("f.yaml", steps_yaml("c", {
        "boot.after": ["a"], "boot": ["m1", "m2"], "boot.before": ["b"],
        "network": ["n"], "boot.afterwards": ["x"], "boot.before.before": ["y"],
        "reboot": ["r"]}))
    items = planned(load([f]), "boot")
    assert [(i.stage, i.name) for i in items] == [
        ("boot.before", "b"), ("boot", "m1"), ("boot", "m2"), ("boot.after", "a")]


def test_sub_stage_is_the_outer_loop_over_sources(write: Write, tmp_path: Path) -> None:
    """All sources' `.before` steps run before any source's main steps."""
    one = write("one.yaml", steps_yaml("one", {"boot.before": ["b"], "boot": ["m"]}))
    two = write("two.yaml", steps_yaml("two", {"boot.before": ["b"], "boot": ["m"],
                                               "boot.after": ["a"]}))
    assert op_names(planned(load([one, two]), "boot")) == [
        "one.b", "two.b", "one.m", "two.m", "two.a"]


def test_sources_run_in_the_order_given(write: Write) -> None:
    a = write("a.yaml", steps_yaml("a", {"boot": ["1"]}))
    z = write("z.yaml", steps_yaml("z", {"boot": ["1"]}))
    assert op_names(planned(load([z, a]), "boot")) == ["z.1", "a.1"]
    assert op_names(planned(load([a, z]), "boot")) == ["a.1", "z.1"]


def test_same_file_twice_runs_twice(write: Write) -> None:
    f = write("a.yaml", steps_yaml("a", {"boot": ["1"]}))
    assert op_names(planned(load([f, f]), "boot")) == ["a.1", "a.1"]


def test_unnamed_steps_use_their_index(write: Write) -> None:
    """The name is the 0-based index in the stage's list; the config name is the path."""
    f = write("u.yaml", "stages:\n  boot:\n    - commands: [a]\n    - name: n\n    - {}\n")
    items = planned(load([f]), "boot")
    assert [i.name for i in items] == ["0", "n", "2"]
    assert op_names(items) == [f"{f}.0", f"{f}.n", f"{f}.2"]


def test_a_file_without_this_stage_does_not_break_the_order(write: Write) -> None:
    """yip's chain breaks on such a file and runs the next file in parallel; we do not."""
    write("d/01.yaml", steps_yaml("one", {"boot": ["a", "b"]}))
    write("d/02.yaml", steps_yaml("two", {"network": ["x"]}))
    d = write("d/03.yaml", steps_yaml("three", {"boot": ["c"]})).parent
    assert op_names(planned(load([d]), "boot")) == ["one.a", "one.b", "three.c"]


# -- directory walk ------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    d = tmp_path / "conf"
    files = ["a/x.yaml", "a-b.yaml", ".hidden.yaml", "B.yaml", "c.yml", "d.YAML", "e.yaml.bak",
             "f.txt", "g.Yml", "sub/deeper/z.yaml", "sub/y.yml", "zz.yaml"]
    for rel in files:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(steps_yaml(rel, {"boot": ["s"]}))
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "o.yaml").write_text(steps_yaml("linked-dir", {"boot": ["s"]}))
    os.symlink(other, d / "link")
    (tmp_path / "real.yaml").write_text(steps_yaml("linked-file", {"boot": ["s"]}))
    os.symlink(tmp_path / "real.yaml", d / "m-link.yaml")
    return d


WALK_ORDER = [".hidden.yaml", "B.yaml", "a/x.yaml", "a-b.yaml", "c.yml", "m-link.yaml",
              "sub/deeper/z.yaml", "sub/y.yml", "zz.yaml"]


def test_walk_order(tree: Path) -> None:
    """Depth-first, entries sorted by name (byte order: B before a), so `a/x.yaml` comes
    before `a-b.yaml`; hidden files in; `.YAML`, `.Yml`, `.bak`, `.txt` out; a linked
    directory not followed, a linked file read."""
    assert [os.path.relpath(p, tree) for p in walk(str(tree))] == WALK_ORDER


def test_walk_order_is_the_run_order(tree: Path) -> None:
    items = planned(load([tree]), "boot")
    assert [os.path.relpath(i.doc.origin, tree) for i in items] == WALK_ORDER
    assert [i.doc.name for i in items][WALK_ORDER.index("m-link.yaml")] == "linked-file"


def test_walk_is_not_a_full_path_sort(tree: Path) -> None:
    """A sort of whole paths would put `a-b.yaml` first ('-' < '/'); yip's walk does not."""
    order = WALK_ORDER
    assert sorted(order) != order
    assert order.index("a/x.yaml") < order.index("a-b.yaml")


# -- after: --------------------------------------------------------------------------


def test_after_moves_a_step_right_after_its_target(write: Write) -> None:
    """Right after the named step, not at the end: two.b2 still runs after one.a."""
    write("d/01.yaml", "name: one\nstages:\n  boot:\n    - name: a\n      after:\n"
                       "        - name: two.b\n    - name: a2\n")
    d = write("d/02.yaml", steps_yaml("two", {"boot": ["b", "b2"]})).parent
    assert ok_names(planned(load([d]), "boot")) == ["one.a2", "two.b", "one.a", "two.b2"]


def test_after_an_earlier_step_moves_back(write: Write) -> None:
    f = write("f.yaml", "name: c\nstages:\n  boot:\n    - name: t\n    - name: u\n"
                        "    - name: x\n      after: [{name: c.t}]\n")
    assert ok_names(planned(load([f]), "boot")) == ["c.t", "c.x", "c.u"]


def test_after_by_path_when_the_file_has_no_name(write: Write) -> None:
    """CONFIGNAME is the file's path as reported in `source` when it has no `name:`."""
    write("d/01.yaml", "stages:\n  boot:\n    - name: first\n      after: [{name: PLACEHOLDER}]\n")
    second = write("d/02.yaml", "stages:\n  boot:\n    - name: target\n    - name: tail\n")
    first = second.parent / "01.yaml"
    first.write_text(first.read_text().replace("PLACEHOLDER", f"'{second}.target'"))
    items = planned(load([second.parent]), "boot")
    assert op_names(items) == [f"{second}.target", f"{first}.first", f"{second}.tail"]
    assert all(i.error is None for i in items)


def test_after_by_step_index(write: Write) -> None:
    """STEPNAME is the 0-based index for an unnamed step."""
    f = write("f.yaml", "name: c\nstages:\n  boot:\n    - name: a\n      after: [{name: c.2}]\n"
                        "    - name: b\n    - commands: [x]\n    - name: d\n")
    assert ok_names(planned(load([f]), "boot")) == ["c.b", "c.2", "c.a", "c.d"]


def test_after_several_targets_waits_for_the_last(write: Write) -> None:
    f = write("f.yaml", "name: c\nstages:\n  boot:\n    - name: x\n"
                        "      after: [{name: c.q}, {name: c.p}]\n"
                        "    - name: p\n    - name: mid\n    - name: q\n    - name: end\n")
    assert ok_names(planned(load([f]), "boot")) == ["c.p", "c.mid", "c.q", "c.x", "c.end"]


def test_two_steps_after_the_same_target_keep_their_order(write: Write) -> None:
    f = write("f.yaml", "name: c\nstages:\n  boot:\n    - name: t\n"
                        "    - name: x\n      after: [{name: c.z}]\n"
                        "    - name: y\n      after: [{name: c.z}]\n    - name: z\n")
    assert ok_names(planned(load([f]), "boot")) == ["c.t", "c.z", "c.x", "c.y"]


def test_after_chains(write: Write) -> None:
    """x after y after z: z, y, x, wherever they are written."""
    f = write("f.yaml", "name: c\nstages:\n  boot:\n"
                        "    - name: x\n      after: [{name: c.y}]\n"
                        "    - name: y\n      after: [{name: c.z}]\n"
                        "    - name: z\n")
    assert ok_names(planned(load([f]), "boot")) == ["c.z", "c.y", "c.x"]


def test_after_naming_a_missing_step_fails_that_step_only(write: Write) -> None:
    f = write("f.yaml", "name: c\nstages:\n  boot:\n    - name: a\n"
                        "      after: [{name: c.missing}]\n    - name: b\n")
    items = planned(load([f]), "boot")
    assert op_names(items) == ["c.a", "c.b"]  # kept in place
    assert items[0].error is not None and "'c.missing'" in items[0].error
    assert items[1].error is None


def test_after_cannot_reach_another_source_argument(write: Write) -> None:
    one = write("g1/01.yaml", "name: one\nstages:\n  boot:\n    - name: a\n"
                              "      after: [{name: two.b}]\n")
    two = write("g2/02.yaml", steps_yaml("two", {"boot": ["b"]}))
    items = planned(load([one.parent, two.parent]), "boot")
    assert op_names(items) == ["one.a", "two.b"]
    assert items[0].error is not None and "'two.b'" in items[0].error


def test_after_cannot_reach_another_sub_stage(write: Write) -> None:
    f = write("f.yaml", "name: c\nstages:\n  boot.before:\n    - name: b\n  boot:\n"
                        "    - name: a\n      after: [{name: c.b}]\n")
    items = planned(load([f]), "boot")
    assert items[1].op_name == "c.a" and items[1].error is not None


def test_after_cycle_fails_every_step_in_it(write: Write) -> None:
    f = write("f.yaml", "name: c\nstages:\n  boot:\n"
                        "    - name: a\n      after: [{name: c.b}]\n"
                        "    - name: b\n      after: [{name: c.a}]\n"
                        "    - name: free\n")
    items = planned(load([f]), "boot")
    errors = {i.op_name: i.error for i in items}
    assert errors["c.free"] is None
    assert "cycle" in errors["c.a"] and "cycle" in errors["c.b"]


def test_after_itself_is_a_cycle(write: Write) -> None:
    f = write("f.yaml", "name: c\nstages:\n  boot:\n    - name: a\n      after: [{name: c.a}]\n")
    (item,) = planned(load([f]), "boot")
    assert item.error is not None and "cycle" in item.error


def test_after_failures_show_in_the_report(cli, target: Path, write: Write) -> None:
    """End to end: the step with a bad `after:` fails, the others run, exit status 1."""
    f = write("f.yaml", "name: c\nstages:\n  boot:\n    - name: a\n"
                        "      after: [{name: c.nope}]\n    - name: b\n")
    result = cli("run", "--stage", "boot", "--root", target, "--json", f)
    assert result.code == 1
    steps = {s["name"]: s for s in result.json()["steps"]}
    assert steps["a"]["status"] == "failed" and "c.nope" in steps["a"]["error"]
    assert steps["b"]["status"] == "ok"


# -- the kernel command line ---------------------------------------------------------


def test_cmdline_steps_run_last_in_their_sub_stage(target: Path, write: Write) -> None:
    """Dot-notation steps come after every file-based step of the same sub-stage, including
    the setup= sources; sub-stage order still holds."""
    d = write("d/01.yaml", steps_yaml("one", {"boot.before": ["b"], "boot": ["m"],
                                              "boot.after": ["a"]})).parent
    (target / "oem2").mkdir()
    (target / "oem2" / "s.yaml").write_text(steps_yaml("setup", {"boot": ["s"]}))
    cmdline = ("console=ttyS0 stages.boot[0].name=cmd stages.boot.before[0].name=cb "
               "cos.setup=/oem2/s.yaml")
    items = planned(load([d], root=target, cmdline=cmdline), "boot")
    assert [(i.stage, i.op_name) for i in items] == [
        ("boot.before", "one.b"), ("boot.before", "cmdline.cb"),
        ("boot", "one.m"), ("boot", "setup.s"), ("boot", "cmdline.cmd"),
        ("boot.after", "one.a")]


# -- failed sources ------------------------------------------------------------------


def test_a_failed_source_is_reported_once_and_the_others_run(write: Write) -> None:
    write("d/01.yaml", steps_yaml("one", {"boot.before": ["b"], "boot": ["m"]}))
    write("d/02.yaml", "stages:\n  boot:\n    - name: [\n")
    d = write("d/03.yaml", steps_yaml("three", {"boot": ["m"], "boot.after": ["a"]})).parent
    items = planned(load([d]), "boot")
    failed = [i for i in items if isinstance(i, SourceFailed)]
    assert len(failed) == 1
    assert failed[0].stage == "boot"  # the requested stage, not a sub-stage
    assert failed[0].failure.origin == str(d / "02.yaml")
    assert failed[0].failure.line > 0
    assert op_names(items) == ["one.b", "one.m", "three.m", "three.a"]


def test_a_failed_source_in_the_report(cli, target: Path, write: Write) -> None:
    """SPEC 5: one entry, stage = STAGE, name null, error naming the line; ok false."""
    write("d/01.yaml", steps_yaml("one", {"boot": ["m"]}))
    bad = write("d/02.yaml", "stages:\n  boot:\n    - name: x\n      name: y\n")
    result = cli("run", "--stage", "boot", "--root", target, "--json", bad.parent)
    assert result.code == 1
    report = result.json()
    assert report["ok"] is False
    failed = [s for s in report["steps"] if s["status"] == "failed"]
    assert len(failed) == 1
    entry = failed[0]
    assert (entry["stage"], entry["source"], entry["name"]) == ("boot", str(bad), None)
    assert ":4:" in entry["error"]
    assert [s["name"] for s in report["steps"] if s["status"] == "ok"] == ["m"]


def test_a_stage_that_is_not_a_list_fails_only_that_file(write: Write) -> None:
    """`boot: {name: x}` cannot be run; the file fails for this stage, the others run."""
    write("d/01.yaml", "name: bad\nstages:\n  boot:\n    name: x\n")
    d = write("d/02.yaml", steps_yaml("good", {"boot": ["g"]})).parent
    items = planned(load([d]), "boot")
    assert [type(i) for i in items] == [SourceFailed, Planned]
    assert items[0].failure.line == 4


def test_load_order_and_groups(write: Write) -> None:
    """Each SOURCE argument is one group; a directory's files share it."""
    write("d/a.yaml", "name: a\n")
    d = write("d/b.yaml", "name: b\n").parent
    f = write("f.yaml", "name: f\n")
    loaded = load([d, f])
    assert all(isinstance(e, Document) for e in loaded)
    assert [(e.group, e.name) for e in loaded] == [(0, "a"), (0, "b"), (1, "f")]
    assert not any(isinstance(e, Failure) for e in loaded)
