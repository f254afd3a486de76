"""What runs, and in which order (SPEC sections 1-4): sources, directory walks, stdin,
URLs, default directories, sub-stages, `after:`, plugin order within a step, and
cloud-config files converted to stages."""

from __future__ import annotations

from pathlib import Path

import pytest


def named(name: str, *stages: str, steps: tuple[str, ...] = ("s",)) -> str:
    """A config called `name` with steps named `steps` (no plugins) in each stage."""
    lines = [f"name: {name}", "stages:"]
    for stage in stages:
        lines.append(f"  {stage}:")
        lines.extend(f"    - name: {s}" for s in steps)
    return "\n".join(lines) + "\n"


def appender(name: str, stage: str = "boot", *words: str) -> str:
    """A config whose one `stage` step appends each word to /order (chrooted shell)."""
    commands = ", ".join(f"'echo {w} >> /order'" for w in (words or (name,)))
    return f"name: {name}\nstages:\n  {stage}:\n    - name: s\n      commands: [{commands}]\n"


def order(root: Path) -> list[str]:
    path = root / "order"
    return path.read_text().splitlines() if path.exists() else []


def ran(report: dict) -> list[tuple[str, str, str]]:
    """(sub-stage, source, name) of every step entry, in report order."""
    return [(s["stage"], s["source"], s["name"]) for s in report["steps"]]


# -- directories ------------------------------------------------------------------------


def test_directory_walk_is_sorted_depth_first_yaml_and_yml_only(cli, target, write, tmp_path):
    """A directory contributes .yaml/.yml files (hidden too), sorted, depth-first."""
    layout = [".hidden.yaml", "a/sub/z.yaml", "a/x.yaml", "a/y.yml", "a-b.yaml", "b.yml"]
    ignored = ["c.YAML", "d.json", "e.yaml.bak", "f.Yml", "a/notes.txt", "yaml"]
    for rel in reversed(layout + ignored):  # creation order must not matter
        write(f"conf/{rel}", named(rel.replace("/", "_"), "boot"))
    res = cli("run", "--stage", "boot", "--root", target, "--json", tmp_path / "src" / "conf")
    assert res.code == 0, res.err
    sources = [s["source"] for s in res.json()["steps"]]
    assert sources == [str(tmp_path / "src" / "conf" / rel) for rel in layout]


def test_a_subdirectory_sorts_by_its_name_among_files(cli, target, write, tmp_path):
    """`a/x.yaml` runs before `a-b.yaml` because `a` sorts before `a-b.yaml` (yip's walk)."""
    write("conf/a-b.yaml", named("dash", "boot"))
    write("conf/a/x.yaml", named("sub", "boot"))
    write("conf/a.yaml", named("plain", "boot"))
    res = cli("run", "--stage", "boot", "--root", target, "--json", tmp_path / "src" / "conf")
    assert [s["source"].rsplit("conf/", 1)[1] for s in res.json()["steps"]] == [
        "a/x.yaml", "a-b.yaml", "a.yaml"]


def test_symlinked_directory_is_not_followed(cli, target, write, tmp_path):
    """Like yip's walk (Lstat), a symlink to a directory inside a source is not entered."""
    write("elsewhere/x.yaml", named("x", "boot"))
    conf = tmp_path / "src" / "conf"
    conf.mkdir()
    (conf / "link").symlink_to(tmp_path / "src" / "elsewhere")
    write("conf/real.yaml", named("real", "boot"))
    res = cli("run", "--stage", "boot", "--root", target, "--json", conf)
    assert [s["source"] for s in res.json()["steps"]] == [str(conf / "real.yaml")]


def test_a_file_source_of_any_extension_is_read(cli, target, write):
    """A file named on the command line is read whatever its name."""
    src = write("config.txt", named("txt", "boot"))
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert ran(res.json()) == [("boot", str(src), "s")]


# -- kinds of source, in the order given --------------------------------------------------


def test_sources_run_in_command_line_order(cli, target, write, http_server, tmp_path):
    """File, directory, `-` and URL sources run one after the other, as given."""
    url = http_server({"/u.yaml": (200, named("url", "boot"))}) + "/u.yaml"
    f = write("one.yaml", named("file", "boot"))
    write("dir/two.yaml", named("dir", "boot"))
    res = cli("run", "--stage", "boot", "--root", target, "--json",
              url, "-", tmp_path / "src" / "dir", f, stdin=named("stdin", "boot"))
    assert res.code == 0, res.err
    assert [s["source"] for s in res.json()["steps"]] == [
        url, "-", str(tmp_path / "src" / "dir" / "two.yaml"), str(f)]


def test_stdin_source_runs_its_steps(cli, target):
    """`-` reads a config from standard input, and its steps really run."""
    res = cli("run", "--stage", "boot", "--root", target, "--json", "-",
              stdin="stages:\n  boot:\n    - files: [{path: /from-stdin, content: hi}]\n")
    assert res.code == 0, res.err
    assert ran(res.json()) == [("boot", "-", "0")]
    assert (target / "from-stdin").read_text() == "hi"


def test_url_source_runs_its_steps(cli, target, http_server):
    """An http:// URL is fetched and run; `source` is the URL."""
    base = http_server({"/cfg.yaml": (200, "stages:\n  boot:\n    - name: web\n"
                                           "      files: [{path: /from-url, content: hi}]\n")})
    res = cli("run", "--stage", "boot", "--root", target, "--json", base + "/cfg.yaml")
    assert res.code == 0, res.err
    assert ran(res.json()) == [("boot", base + "/cfg.yaml", "web")]
    assert (target / "from-url").read_text() == "hi"


def test_default_sources_are_the_three_oem_directories_under_the_root(cli, target):
    """No SOURCE: /system/oem, /oem, /usr/local/oem under the root, in that order."""
    for d, fname in (("usr/local/oem", "00_first.yaml"), ("oem", "50.yaml"),
                     ("system/oem", "99_last.yaml")):
        (target / d).mkdir(parents=True)
        (target / d / fname).write_text(named(d, "boot"))
    res = cli("run", "--stage", "boot", "--root", target, "--json")
    assert res.code == 0, res.err
    assert [s["source"] for s in res.json()["steps"]] == [
        str(target / "system/oem/99_last.yaml"), str(target / "oem/50.yaml"),
        str(target / "usr/local/oem/00_first.yaml")]


def test_missing_default_directories_are_skipped_silently(cli, target):
    """Default directories that do not exist are neither failures nor warnings."""
    (target / "oem").mkdir()
    (target / "oem" / "a.yaml").write_text(named("only", "boot"))
    res = cli("run", "--stage", "boot", "--root", target, "--json")
    assert res.code == 0
    assert ran(res.json()) == [("boot", str(target / "oem/a.yaml"), "s")]
    assert "system/oem" not in res.err and "usr/local/oem" not in res.err
    assert "warning" not in res.err and "error" not in res.err


def test_no_default_directories_at_all_is_an_empty_successful_run(cli, target):
    """A root with none of the default directories runs nothing and succeeds."""
    res = cli("run", "--stage", "boot", "--root", target, "--json")
    assert res.code == 0
    assert res.json()["steps"] == [] and res.json()["ok"] is True


# -- sub-stages ------------------------------------------------------------------------------


def test_sub_stages_run_before_main_after_across_all_sources(cli, target, write):
    """STAGE.before of every source, then STAGE, then STAGE.after; nothing else."""
    a = write("a.yaml", named("A", "boot.after", "boot", "boot.before", "network",
                              "boot.afterwards", "before"))
    b = write("b.yaml", named("B", "boot.after", "boot.before"))
    res = cli("run", "--stage", "boot", "--root", target, "--json", a, b)
    assert ran(res.json()) == [
        ("boot.before", str(a), "s"), ("boot.before", str(b), "s"),
        ("boot", str(a), "s"),
        ("boot.after", str(a), "s"), ("boot.after", str(b), "s")]


def test_steps_of_a_file_run_in_file_order(cli, target, write):
    """Within a file, steps run in the order written."""
    src = write("a.yaml", named("A", "boot", steps=("zeta", "alpha", "mid")))
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert [s["name"] for s in res.json()["steps"]] == ["zeta", "alpha", "mid"]


def test_a_file_without_steps_for_the_stage_does_not_break_the_order(cli, shell_target,
                                                                      write, tmp_path):
    """Files with no steps for the stage are transparent; order stays strict (SPEC 7.3)."""
    write("d/00.yaml", appender("first"))
    write("d/05.yaml", named("other", "network"))
    write("d/10.yaml", "")
    write("d/15.yaml", appender("second"))
    write("d/20.yaml", appender("third", "boot", "third", "fourth"))
    res = cli("run", "--stage", "boot", "--root", shell_target, tmp_path / "src" / "d")
    assert res.code == 0, res.err
    assert order(shell_target) == ["first", "second", "third", "fourth"]


def test_commands_really_run_in_report_order(cli, shell_target, write, tmp_path):
    """The order the chrooted commands ran in is the order the report lists."""
    write("d/a.yaml", appender("a-main", "boot") + "  boot.before:\n    - name: s\n"
                      "      commands: ['echo a-before >> /order']\n")
    write("d/b/c.yaml", appender("bc-after", "boot.after"))
    write("d/b.yaml", appender("b-main", "boot"))
    extra = write("z.yaml", appender("z-before", "boot.before"))
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json",
              tmp_path / "src" / "d", extra, "-", stdin=appender("stdin-main"))
    assert res.code == 0, res.err
    assert order(shell_target) == ["a-before", "z-before", "a-main", "b-main", "stdin-main",
                                   "bc-after"]
    assert [s["stage"] for s in res.json()["steps"]] == [
        "boot.before", "boot.before", "boot", "boot", "boot", "boot.after"]


# -- after: ----------------------------------------------------------------------------------


def test_after_moves_a_step_right_after_the_named_step(cli, shell_target, write):
    """`after: [{name: CONFIG.STEP}]` runs the step right after STEP, not in file order."""
    src = write("a.yaml", """\
name: cfg
stages:
  boot:
    - name: one
      commands: ['echo one >> /order']
    - name: late
      after: [{name: cfg.three}]
      commands: ['echo late >> /order']
    - name: two
      commands: ['echo two >> /order']
    - name: three
      commands: ['echo three >> /order']
    - name: four
      commands: ['echo four >> /order']
""")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert res.code == 0, res.err
    assert order(shell_target) == ["one", "two", "three", "late", "four"]
    assert [s["name"] for s in res.json()["steps"]] == ["one", "two", "three", "late", "four"]


def test_after_across_files_of_one_directory_source(cli, target, write, tmp_path):
    """Within one directory source, `after:` can name a step of a later file."""
    write("d/01_first.yaml", "name: first\nstages:\n  boot:\n"
                             "    - name: waits\n      after: [{name: second.go}]\n"
                             "    - name: plain\n")
    write("d/02_second.yaml", named("second", "boot", steps=("go", "more")))
    res = cli("run", "--stage", "boot", "--root", target, "--json", tmp_path / "src" / "d")
    assert res.code == 0, res.err
    assert [s["name"] for s in res.json()["steps"]] == ["plain", "go", "waits", "more"]


def test_after_names_an_unnamed_config_by_path_and_a_step_by_index(cli, target, write):
    """Without `name:`, a config is its path as in `source`; a step without name, its index."""
    src = write("a.yaml", "stages:\n  boot:\n    - name: x\n      after: [{name: PLACEHOLDER}]\n"
                          "    - {}\n    - name: last\n")
    src.write_text(src.read_text().replace("PLACEHOLDER", f"{src}.1"))
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 0, res.err
    assert [s["name"] for s in res.json()["steps"]] == ["1", "x", "last"]


def test_after_naming_no_step_fails_that_step_only(cli, target, write):
    """An `after:` that names no step fails that step; the others run (exit 1)."""
    src = write("a.yaml", "name: cfg\nstages:\n  boot:\n"
                          "    - name: lost\n      after: [{name: cfg.nope}]\n"
                          "      files: [{path: /lost, content: x}]\n"
                          "    - name: fine\n      files: [{path: /fine, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 1
    steps = {s["name"]: s for s in res.json()["steps"]}
    assert steps["lost"]["status"] == "failed" and "cfg.nope" in steps["lost"]["error"]
    assert steps["fine"]["status"] == "ok"
    assert (target / "fine").exists() and not (target / "lost").exists()


def test_after_does_not_reach_another_source_argument(cli, target, write):
    """`after:` only sees steps of the same SOURCE argument: naming another fails."""
    a = write("a.yaml", named("A", "boot", steps=("target",)))
    b = write("b.yaml", "name: B\nstages:\n  boot:\n    - name: w\n"
                        "      after: [{name: A.target}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", a, b)
    assert res.code == 1
    assert {s["name"]: s["status"] for s in res.json()["steps"]} == {"target": "ok", "w": "failed"}


def test_after_does_not_reach_another_sub_stage(cli, target, write):
    """`after:` only sees steps of the same sub-stage."""
    src = write("a.yaml", "name: A\nstages:\n  boot.before:\n    - name: early\n"
                          "  boot:\n    - name: w\n      after: [{name: A.early}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 1
    assert [(s["name"], s["status"]) for s in res.json()["steps"]] == [
        ("early", "ok"), ("w", "failed")]


# -- plugin order within a step (SPEC 3) -------------------------------------------------------


def test_plugins_run_in_yip_order_whatever_the_key_order(cli, shell_target, write):
    """dns, directories, files before commands; commands before hostname, environment,
    timesyncd: the commands see the former and not the latter."""
    (shell_target / "etc" / "hostname").write_text("oldname\n")
    src = write("a.yaml", """\
stages:
  boot:
    - timesyncd: {NTP: pool.example}
      environment: {FOO: bar}
      hostname: newname
      commands:
        - '[ -d /made ] && echo dir-yes >> /order || echo dir-no >> /order'
        - 'read -r l < /made/file; echo "file:$l" >> /order'
        - 'read -r l < /etc/resolv.conf; echo "dns:${l#nameserver }" >> /order'
        - 'read -r l < /etc/hostname; echo "host:$l" >> /order'
        - '[ -e /etc/environment ] && echo env-yes >> /order || echo env-no >> /order'
        - '[ -e /etc/systemd ] && echo ts-yes >> /order || echo ts-no >> /order'
      files:
        - path: /made/file
          content: "written\\n"
      directories:
        - path: /made
          permissions: 0700
      dns:
        nameservers: [192.0.2.53]
""")
    res = cli("run", "--stage", "boot", "--root", shell_target, src)
    assert res.code == 0, res.err
    assert order(shell_target) == ["dir-yes", "file:written", "dns:192.0.2.53",
                                   "host:oldname", "env-no", "ts-no"]
    assert (shell_target / "etc" / "hostname").read_text() == "newname\n"
    assert (shell_target / "etc" / "environment").read_text() == 'FOO="bar"\n'
    assert (shell_target / "made").stat().st_mode & 0o7777 == 0o700


def test_a_failing_plugin_does_not_stop_later_plugins_of_the_step(cli, shell_target, write):
    """A failing `files` entry fails the step, but its `commands` and `hostname` still run."""
    (shell_target / "blocker").write_text("file\n")
    src = write("a.yaml", "stages:\n  boot:\n    - files: [{path: /blocker/x, content: x}]\n"
                          "      commands: ['echo ran >> /order']\n      hostname: still\n")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert res.code == 1
    assert res.json()["steps"][0]["status"] == "failed"
    assert order(shell_target) == ["ran"]
    assert (shell_target / "etc" / "hostname").read_text() == "still\n"


def test_a_failing_command_does_not_stop_the_next_commands(cli, shell_target, write):
    """A command exiting non-zero fails the step; the remaining commands still run."""
    src = write("a.yaml", "stages:\n  boot:\n    - commands: ['echo a >> /order', 'exit 3',\n"
                          "                   'echo b >> /order']\n")
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert res.code == 1
    step = res.json()["steps"][0]
    assert step["status"] == "failed" and "exit 3" in step["error"] and "3" in step["error"]
    assert order(shell_target) == ["a", "b"]


def test_unimplemented_plugin_fails_its_step_and_says_not_supported(cli, target, write,
                                                                   monkeypatch):
    """A plugin edgeinit does not implement fails the step with "not supported";
    the step's other plugins still run. (`layout` is made unimplemented here, whatever
    its state in the code: the mechanism outlives the plugins that used it.)"""
    from edgeinit import plugins
    from edgeinit.model import replace

    monkeypatch.setitem(plugins._LOADED, "layout", replace(plugins.load("layout"), plan=None))
    src = write("a.yaml", "stages:\n  boot:\n    - name: u\n      layout: {device: {path: /x}}\n"
                          "      files: [{path: /done, content: x}]\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert res.code == 1
    step = res.json()["steps"][0]
    assert step["status"] == "failed" and "not supported" in step["error"]
    assert "layout" in step["error"]
    assert (target / "done").exists()


# -- cloud-config (SPEC 4) ---------------------------------------------------------------------

CLOUD = """\
## template: jinja
#cloud-config
hostname: cc-node
write_files:
  - path: /etc/motd
    content: "hello from cloud-config\\n"
    permissions: "0600"
    owner: root:root
runcmd:
  - 'read -r l < /etc/motd; echo "runcmd:$l" >> /order'
packages: [vim]
bootcmd: ['echo never >> /order']
stages:
  boot:
    - name: extra
      commands: ['echo stages-block >> /order']
"""


@pytest.fixture
def cc_target(shell_target: Path) -> Path:
    """A shell target with root in its passwd and group, for `owner: root:root`."""
    (shell_target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (shell_target / "etc" / "group").write_text("root:x:0:\n")
    return shell_target


def test_cloud_config_hostname_goes_to_initramfs(cli, cc_target, write):
    """`hostname:` of a #cloud-config runs in the initramfs stage, not in boot."""
    shell_target = cc_target
    src = write("cc.yaml", CLOUD)
    boot = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert not (shell_target / "etc" / "hostname").exists()
    res = cli("run", "--stage", "initramfs", "--root", shell_target, "--json", src)
    assert res.code == 0, res.err
    assert ran(res.json()) == [("initramfs", str(src), "0")]
    assert (shell_target / "etc" / "hostname").read_text() == "cc-node\n"
    assert boot.code == 0


def test_cloud_config_write_files_and_runcmd_run_in_boot(cli, cc_target, write):
    """write_files and runcmd are one boot step (files first); a stages: block follows."""
    shell_target = cc_target
    src = write("cc.yaml", CLOUD)
    init = cli("run", "--stage", "initramfs", "--root", shell_target, src)
    assert init.code == 0 and order(shell_target) == [] and not (
        shell_target / "etc" / "motd").exists()
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert res.code == 0, res.err
    assert ran(res.json()) == [("boot", str(src), "0"), ("boot", str(src), "extra")]
    motd = shell_target / "etc" / "motd"
    assert motd.read_text() == "hello from cloud-config\n"
    assert motd.stat().st_mode & 0o7777 == 0o600
    assert (motd.stat().st_uid, motd.stat().st_gid) == (0, 0)
    assert order(shell_target) == ["runcmd:hello from cloud-config", "stages-block"]


def test_cloud_config_unsupported_keys_are_logged_warnings(cli, cc_target, write):
    """Unsupported cloud-config keys are logged as warnings and do not fail the run."""
    shell_target = cc_target
    src = write("cc.yaml", CLOUD)
    res = cli("run", "--stage", "boot", "--root", shell_target, "--json", src)
    assert res.code == 0
    warnings = [line for line in res.err.splitlines() if line.startswith("warning")]
    assert any("packages" in w and str(src) in w for w in warnings), res.err
    assert any("bootcmd" in w for w in warnings), res.err
    assert "never" not in order(shell_target)


def test_cloud_config_header_must_precede_content(cli, target, write):
    """`#cloud-config` after the first content line does not make a cloud-config file."""
    src = write("late.yaml", "stages:\n  boot:\n    - name: yip\n#cloud-config\n")
    res = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert ran(res.json()) == [("boot", str(src), "yip")]


def test_cloud_config_header_with_trailing_whitespace(cli, target, write):
    """`#cloud-config   ` (trailing blanks) still marks a cloud-config file."""
    src = write("cc.yaml", "\n# a comment\n#cloud-config   \nhostname: spaced\n")
    res = cli("run", "--stage", "initramfs", "--root", target, "--json", src)
    assert res.code == 0, res.err
    assert (target / "etc" / "hostname").read_text() == "spaced\n"


@pytest.mark.parametrize("stage", ["boot", "initramfs", "network"])
def test_minimal_cloud_config_runs_cleanly_in_every_stage(cli, target, write, stage):
    """A cloud-config with nothing for a stage is a no-op there."""
    src = write("cc.yaml", "#cloud-config\n")
    res = cli("run", "--stage", stage, "--root", target, "--json", src)
    assert res.code == 0 and res.json()["ok"]
