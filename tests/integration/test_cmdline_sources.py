"""The kernel command line as a source (SPEC section 1, `run`): `edgeinit.setup=` and its
aliases add sources after the others, resolved under the root; dot-notation words
become steps that run after all file steps of their sub-stage; other words are ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

NOISE = ("BOOT_IMAGE=/boot/vmlinuz-6.1 root=LABEL=COS_ACTIVE ro quiet splash "
         "console=ttyS0,115200 ip=dhcp rd.cos.oemlabel=COS_OEM BOOT=death-star "
         "single 'sing1!~@$%6^&**le' stages= stages.=x")


@pytest.fixture
def cmdline(tmp_path: Path):
    """cmdline("words") -> a file holding that kernel command line."""

    def make(text: str) -> Path:
        p = tmp_path / "proc-cmdline"
        p.write_text(text + "\n")
        return p

    return make


def appender(word: str, stage: str = "boot") -> str:
    return f"stages:\n  {stage}:\n    - name: {word}\n      commands: ['echo {word} >> /order']\n"


def order(root: Path) -> list[str]:
    p = root / "order"
    return p.read_text().splitlines() if p.exists() else []


def in_root(root: Path, rel: str, text: str) -> Path:
    p = root / rel.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


# -- edgeinit.setup= -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["edgeinit.setup", "cos.setup", "elemental.setup"])
def test_setup_source_is_appended_after_the_other_sources(cli, shell_target, write, cmdline,
                                                          key):
    """`edgeinit.setup=` (and its aliases) adds a source that runs after the given ones."""
    in_root(shell_target, "/extra/setup.yaml", appender("from-cmdline"))
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json",
              "--cmdline", cmdline(f"quiet {key}=/extra/setup.yaml console=tty0"),
              write("a.yaml", appender("from-file")))
    assert res.code == 0, res.err
    assert order(shell_target) == ["from-file", "from-cmdline"]
    assert res.json()["steps"][1]["source"] == str(shell_target / "extra" / "setup.yaml")


def test_setup_source_comes_after_the_default_directories(cli, shell_target, cmdline):
    """With no SOURCE, the setup source follows /system/oem, /oem, /usr/local/oem."""
    in_root(shell_target, "/usr/local/oem/z.yaml", appender("default"))
    in_root(shell_target, "/cfg/a.yaml", appender("setup"))
    res = cli("run", "--stage", "boot", "--root", shell_target,
              "--cmdline", cmdline("edgeinit.setup=/cfg/a.yaml"))
    assert res.code == 0, res.err
    assert order(shell_target) == ["default", "setup"]


def test_setup_path_is_resolved_under_the_root(cli, target, cmdline, tmp_path):
    """A setup path names a file of the target, never the host file of the same name."""
    host_file = tmp_path / "host.yaml"
    host_file.write_text("stages:\n  boot:\n    - files: [{path: /from-host, content: x}]\n")
    in_root(target, str(host_file),
            "stages:\n  boot:\n    - files: [{path: /from-root, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline(f"edgeinit.setup={host_file}"))
    assert res.code == 0, res.err
    assert (target / "from-root").exists() and not (target / "from-host").exists()
    assert res.json()["steps"][0]["source"].startswith(str(target))


def test_setup_absolute_symlink_stays_in_the_root(cli, target, cmdline):
    """An absolute symlink on the way to a setup file resolves as if the root were /."""
    in_root(target, "/real/c.yaml", "stages:\n  boot:\n    - name: via-link\n")
    (target / "cfg").symlink_to("/real")
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline("cos.setup=/cfg/c.yaml"))
    assert res.code == 0, res.err
    assert [s["name"] for s in res.json()["steps"]] == ["via-link"]


def test_setup_directory_is_walked(cli, target, cmdline):
    """A setup source that is a directory contributes its .yaml files in walk order."""
    in_root(target, "/cfgdir/b.yaml", "stages:\n  boot:\n    - name: b\n")
    in_root(target, "/cfgdir/a.yml", "stages:\n  boot:\n    - name: a\n")
    in_root(target, "/cfgdir/c.txt", "stages:\n  boot:\n    - name: c\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline("elemental.setup=/cfgdir"))
    assert [s["name"] for s in res.json()["steps"]] == ["a", "b"]


def test_setup_url(cli, target, cmdline, http_server):
    """A setup source may be an http URL."""
    url = http_server({"/c.yaml": (200, "stages:\n  boot:\n    - name: web\n")}) + "/c.yaml"
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline(f"edgeinit.setup={url}"))
    assert res.code == 0, res.err
    assert [(s["source"], s["name"]) for s in res.json()["steps"]] == [(url, "web")]


def test_several_setup_sources_keep_command_line_order(cli, target, cmdline):
    """Several setup words add their sources in command-line order."""
    in_root(target, "/one.yaml", "stages:\n  boot:\n    - name: one\n")
    in_root(target, "/two.yaml", "stages:\n  boot:\n    - name: two\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", "--cmdline",
              cmdline("elemental.setup=/two.yaml quiet edgeinit.setup=/one.yaml"))
    assert [s["name"] for s in res.json()["steps"]] == ["two", "one"]


def test_setup_path_that_climbs_out_of_the_root_fails_that_source(cli, target, cmdline,
                                                                  tmp_path):
    """`edgeinit.setup=/../../x` is refused, names the path, and the run goes on."""
    outside = tmp_path / "outside.yaml"
    outside.write_text("stages:\n  boot:\n    - files: [{path: /escaped, content: x}]\n")
    rel_up = "/.." * len(target.parts) + str(outside)
    in_root(target, "/ok.yaml", "stages:\n  boot:\n    - name: fine\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline(f"edgeinit.setup={rel_up} cos.setup=/ok.yaml"))
    assert res.code == 1
    steps = res.json()["steps"]
    failed = [s for s in steps if s["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["name"] is None
    assert "outside.yaml" in failed[0]["source"] + failed[0]["error"]
    assert [s["name"] for s in steps if s["status"] == "ok"] == ["fine"]
    assert not (target / "escaped").exists()


# -- dot notation ---------------------------------------------------------------------------


def test_dot_notation_steps_run_after_file_steps_of_the_same_sub_stage(cli, shell_target,
                                                                       write, cmdline):
    """Dot-notation steps of `boot` run after every file step of `boot` (including the
    setup source), and before `boot.after`."""
    in_root(shell_target, "/setup.yaml", appender("setup-file"))
    src = write("a.yaml", appender("file") + "  boot.after:\n    - name: after\n"
                          "      commands: ['echo file-after >> /order']\n")
    line = ("stages.boot[0].commands[0]='echo cmdline >> /order' "
            "stages.boot[0].name=dots edgeinit.setup=/setup.yaml")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json",
              "--cmdline", cmdline(line), src)
    assert res.code == 0, res.err
    assert order(shell_target) == ["file", "setup-file", "cmdline", "file-after"]
    entry = res.json()["steps"][2]
    assert (entry["stage"], entry["source"], entry["name"]) == ("boot", "cmdline", "dots")


def test_dot_notation_sub_stage_and_several_steps(cli, shell_target, cmdline):
    """`stages.boot.after[N]` addresses the sub-stage; indexes give several steps."""
    line = ('stages.boot.before[0].commands[0]="echo before >> /order" '
            "stages.boot[1].commands[0]='echo second >> /order' "
            "stages.boot[0].commands[0]='echo first >> /order' "
            "stages.boot[0].commands[1]='echo first-b >> /order' "
            "stages.boot.after[0].commands[0]='echo after >> /order'")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json",
              "--cmdline", cmdline(line))
    assert res.code == 0, res.err
    assert order(shell_target) == ["before", "first", "first-b", "second", "after"]
    assert [(s["stage"], s["name"]) for s in res.json()["steps"]] == [
        ("boot.before", "0"), ("boot", "0"), ("boot", "1"), ("boot.after", "0")]


def test_dot_notation_hostname(cli, target, cmdline):
    """`stages.initramfs[0].hostname=node1` sets the hostname in the initramfs stage."""
    res = cli("run", "--stage", "initramfs", "--root", target, "--json",
              "--cmdline", cmdline(f"{NOISE} stages.initramfs[0].hostname=node1"))
    assert res.code == 0, res.err
    assert (target / "etc" / "hostname").read_text() == "node1\n"
    assert [s["source"] for s in res.json()["steps"]] == ["cmdline"]


def test_other_words_are_ignored(cli, target, cmdline):
    """Words that are not edgeinit config (root=, quiet, invalid paths) change nothing
    and fail nothing."""
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline(NOISE))
    assert res.code == 0, res.err
    assert res.json()["steps"] == []
    assert "error" not in res.err.lower()


def test_valid_words_are_kept_next_to_invalid_ones(cli, target, cmdline):
    """A mix of noise and one valid dot-notation word keeps the valid one."""
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline(f"{NOISE} stages.boot[0].name=kept"))
    assert res.code == 0, res.err
    assert [s["name"] for s in res.json()["steps"]] == ["kept"]


def test_dot_notation_for_another_stage_does_not_run(cli, target, cmdline):
    """Dot-notation steps of another stage are not run."""
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline("stages.network[0].hostname=nope"))
    assert res.code == 0
    assert res.json()["steps"] == []
    assert not (target / "etc" / "hostname").exists()


def test_empty_command_line_adds_nothing(cli, target, write, cmdline):
    """An empty command line adds no source and no step."""
    src = write("a.yaml", "stages:\n  boot:\n    - name: only\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              "--cmdline", cmdline(""), src)
    assert [s["name"] for s in res.json()["steps"]] == ["only"]
