"""Runs are idempotent (SPEC 7.13): running a stage again on the same root changes
nothing. Every step without commands reports `changed: false` the second time, and no
file's content, mode or owner changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_dry_run import snapshot, snapshot_diff

CONFIG = """\
name: converge
stages:
  boot.before:
    - name: dirs
      directories:
        - {path: /var/lib/app, permissions: 0750, owner: 1001, group: 1001}
        - {path: /srv/deep/nested/dir}
        - {path: /existing, permissions: 0700}
  boot:
    - name: host
      hostname: "node-{{ trunc 4 .Random }}"
    - name: files
      files:
        - path: /etc/app/owned.conf
          content: "owned by name\\n"
          permissions: 0640
          owner_string: "app:staff"
        - path: /etc/app/primary.conf
          content: "owned by user and primary group\\n"
          ownerstring: app
        - path: /etc/app/numeric.conf
          content: "numeric owner\\n"
          owner: 1001
          group: 50
          permissions: 0600
        - path: /etc/app/encoded
          content: aGVsbG8K
          encoding: b64
        - path: /etc/keep-mode
          content: "new content, old mode\\n"
        - path: /etc/app/templated
          content: "host={{ .Values.node.hostname }} os={{ .Values.os.version }}\\n"
    - name: env
      environment_file: /etc/app.env
      environment:
        FOO: bar
        NUM: "42"
        QUOTED: 'a "quoted" $value'
    - name: layout-env
      environment_file: /run/cos/cos-layout.env
      environment:
        OVERLAY: "tmpfs:25%"
        RW_PATHS: "/var /etc /srv"
    - name: system
      dns: {nameservers: [192.0.2.1, 192.0.2.2], search: [example.org]}
      timesyncd: {NTP: "0.pool.example 1.pool.example"}
      sysctl: {vm.swappiness: "10"}
      modules: [loop]
  boot.after:
    - name: commands
      commands: [': "{{ .Values.node.hostname }}"']
"""

CLOUD = """\
#cloud-config
hostname: "cc-{{ .MachineID }}"
write_files:
  - path: /etc/cc/motd
    content: "from cloud-config\\n"
    permissions: "0444"
    owner: app:staff
"""


@pytest.fixture
def node(shell_target: Path) -> Path:
    """A shell target with users and groups, and files the config edits."""
    target = shell_target
    etc = target / "etc"
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "app:x:1001:1001:App:/home/app:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\nstaff:x:50:app\napp:x:1001:\n")
    (etc / "app.env").write_text("# managed elsewhere too\nOTHER=1\nFOO=old\n")
    (etc / "keep-mode").write_text("old content\n")
    (etc / "keep-mode").chmod(0o600)
    (target / "existing").mkdir(mode=0o755)
    return target


def _run(cli, root: Path, stage: str, *sources) -> dict:
    res = cli("run", "--stage", stage, "--root", root, "--json", *sources)
    assert res.code == 0, res.err
    return res.json()


def _has_commands(name: str) -> bool:
    return name == "commands"


def test_second_run_changes_nothing(cli, node, write):
    """Run the stage twice: the first converges, the second reports no change and leaves
    the tree (content, mode, owner) exactly as the first left it."""
    src = write("converge.yaml", CONFIG)
    first = _run(cli, node, "boot", src)
    assert all(s["status"] == "ok" for s in first["steps"]), first
    changed_first = {s["name"] for s in first["steps"] if s["changed"]}
    assert changed_first == {"dirs", "host", "files", "env", "layout-env", "system", "commands"}
    after_first = snapshot(node)

    second = _run(cli, node, "boot", src)
    assert [s["name"] for s in second["steps"]] == [s["name"] for s in first["steps"]]
    for step in second["steps"]:
        assert step["status"] == "ok", step
        assert step["changed"] is _has_commands(step["name"]), step
    assert snapshot_diff(after_first, snapshot(node)) == []


def test_first_run_wrote_what_was_asked(cli, node, write):
    """The converged state is the one the config describes (so idempotency is not vacuous)."""
    _run(cli, node, "boot", write("converge.yaml", CONFIG))
    owned = (node / "etc" / "app" / "owned.conf").stat()
    assert (owned.st_uid, owned.st_gid, owned.st_mode & 0o7777) == (1001, 50, 0o640)
    primary = (node / "etc" / "app" / "primary.conf").stat()
    assert (primary.st_uid, primary.st_gid, primary.st_mode & 0o7777) == (1001, 1001, 0o644)
    assert (node / "etc" / "app").stat().st_mode & 0o7777 == 0o755  # a parent made for a file
    assert (node / "etc" / "app" / "encoded").read_text() == "hello\n"
    keep = node / "etc" / "keep-mode"
    assert keep.read_text() == "new content, old mode\n" and keep.stat().st_mode & 0o777 == 0o600
    env = (node / "etc" / "app.env").read_text()
    assert env.startswith("# managed elsewhere too\nOTHER=1\nFOO=")
    assert "NUM=42" in env and "FOO=\"bar\"" in env
    hostname = (node / "etc" / "hostname").read_text()
    assert len(hostname) == len("node-xxxx\n") and hostname.startswith("node-")
    app = (node / "var" / "lib" / "app").stat()
    assert (app.st_uid, app.st_gid, app.st_mode & 0o7777) == (1001, 1001, 0o750)
    assert (node / "existing").stat().st_mode & 0o7777 == 0o700
    assert (node / "srv" / "deep" / "nested" / "dir").stat().st_mode & 0o7777 == 0o755


@pytest.mark.parametrize("template", [
    "node-{{ trunc 4 .Random }}", "{{ .Random }}", "u-{{ .UUID }}",
    "m-{{ trunc 6 .MachineID }}-{{ trunc 3 .Random }}",
])
def test_random_hostname_is_kept_on_the_next_run(cli, node, write, template):
    """A hostname with a random part is drawn once; later runs keep it."""
    src = write("h.yaml", f"stages:\n  initramfs:\n    - hostname: '{template}'\n")
    _run(cli, node, "initramfs", src)
    before = snapshot(node)
    for _ in range(3):
        report = _run(cli, node, "initramfs", src)
        assert [s["changed"] for s in report["steps"]] == [False]
        assert snapshot_diff(before, snapshot(node)) == []


def test_hostname_that_no_longer_fits_its_template_is_redrawn(cli, node, write):
    """A current name that does not fit the template is replaced (and then kept)."""
    (node / "etc" / "hostname").write_text("hand-made\n")
    src = write("h.yaml", "stages:\n  initramfs:\n    - hostname: 'node-{{ trunc 4 .Random }}'\n")
    assert _run(cli, node, "initramfs", src)["steps"][0]["changed"] is True
    name = (node / "etc" / "hostname").read_text()
    assert name != "hand-made\n" and name.startswith("node-")
    assert _run(cli, node, "initramfs", src)["steps"][0]["changed"] is False


def test_environment_file_merge_is_stable(cli, node, write):
    """Setting keys in an env file keeps its other lines and is stable on re-run."""
    src = write("e.yaml", "stages:\n  boot:\n    - environment_file: /etc/app.env\n"
                          "      environment: {FOO: bar, NEW: 'with space'}\n")
    _run(cli, node, "boot", src)
    text = (node / "etc" / "app.env").read_text()
    assert text.startswith("# managed elsewhere too\nOTHER=1\n")
    again = _run(cli, node, "boot", src)
    assert again["steps"][0]["changed"] is False
    assert (node / "etc" / "app.env").read_text() == text


def test_cloud_config_is_idempotent(cli, node, write):
    """A cloud-config's hostname and write_files converge too."""
    src = write("cc.yaml", CLOUD)
    for stage in ("initramfs", "boot"):
        assert all(s["changed"] for s in _run(cli, node, stage, src)["steps"])
    before = snapshot(node)
    for stage in ("initramfs", "boot"):
        assert not any(s["changed"] for s in _run(cli, node, stage, src)["steps"])
    assert snapshot_diff(before, snapshot(node)) == []
    assert (node / "etc" / "hostname").read_text() == "cc-0123456789abcdef0123456789abcdef\n"
    motd = (node / "etc" / "cc" / "motd").stat()
    assert (motd.st_uid, motd.st_gid, motd.st_mode & 0o7777) == (1001, 50, 0o444)


def test_dry_run_after_convergence_would_change_nothing(cli, node, write):
    """Once converged, a dry run reports no change and no diff for steps without commands."""
    src = write("converge.yaml", CONFIG)
    _run(cli, node, "boot", src)
    res = cli("run", "--stage", "boot", "--root", node, "--json", "--dry-run", src)
    assert res.code == 0, res.err
    for step in res.json()["steps"]:
        if not _has_commands(step["name"]):
            assert (step["changed"], step["diff"]) == (False, ""), step


def test_commands_step_counts_as_changed_every_time(cli, shell_target, write):
    """A step that runs commands reports changed on every run, and the commands run again."""
    src = write("c.yaml", "stages:\n  boot:\n    - commands: ['echo x >> /count']\n")
    for n in (1, 2):
        report = _run(cli, shell_target, "boot", src)
        assert report["steps"][0]["changed"] is True
        assert (shell_target / "count").read_text() == "x\n" * n
