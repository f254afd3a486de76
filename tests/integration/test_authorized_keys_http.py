"""`authorized_keys` end to end through the CLI, with keys served over HTTP on 127.0.0.1
(issue #3 "Done when": a local server serving NAME.keys, a server error and a timeout).

yip files put `authorized_keys:` in any stage; a `#cloud-config` puts literal keys in
stage `boot` and github:/gitlab: keys in stage `network` (SPEC 4, yip-behaviour 1.7).
The target's /etc/passwd decides the user, ids and home (yip-behaviour 3.8, SPEC 7.8).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, needs_root
from tests.integration.test_dry_run import snapshot, snapshot_diff

UID, GID = (1000, 1000) if IS_ROOT else (os.getuid(), os.getgid())
REY = "ssh-ed25519 AAAAC3fromgithub rey@laptop\nssh-rsa AAAAB3fromgithub rey@desk\n"
ADA = "ssh-ed25519 AAAAC3ada ada@x\n"
LIT = "ssh-ed25519 AAAAC3literal ops@bastion"
RSA = "ssh-rsa AAAAB3userlit rey@old"


@pytest.fixture
def root(target: Path) -> Path:
    """`target` with users rey (UID:GID) and ada, their homes, and the files the users
    plugin needs, so that the cloud-config boot step can work once `users` exists."""
    etc = target / "etc"
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"rey:x:{UID}:{GID}:Rey:/home/rey:/bin/bash\n"
        f"ada:x:{UID}:{GID}:Ada:/home/ada:/bin/sh\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nrey:!:19000:0:99999:7:::\n"
                                "ada:!:19000:0:99999:7:::\n")
    (etc / "shadow").chmod(0o640)
    (etc / "group").write_text(f"root:x:0:\nrey:x:{GID}:\n")
    (etc / "gshadow").write_text("root:*::\nrey:!::\n")
    for name in ("rey", "ada"):
        (target / "home" / name).mkdir(parents=True)
    (target / "root").mkdir(mode=0o700)
    return target


@pytest.fixture
def forge(http_server: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    base = http_server({"/gh/rey.keys": (200, REY), "/gh/ada.keys": (200, ADA),
                        "/gh/err.keys": (500, "Internal Server Error"),
                        "/gl/rey.keys": (200, "# gitlab\n\nssh-ed25519 AAAAC3gitlab rey@gl\n")})
    monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL", base + "/gh/{user}.keys")
    monkeypatch.setenv("EDGEINIT_GITLAB_KEYS_URL", base + "/gl/{user}.keys")
    return http_server


def keys(root: Path, user: str = "rey") -> Path:
    return root / "home" / user / ".ssh" / "authorized_keys"


def steps(result) -> dict:
    return {s["name"]: s for s in result.json()["steps"]}


YIP = """\
name: keys
stages:
  network:
    - name: keys
      authorized_keys:
        rey:
          - github:rey
          - "ssh-ed25519 AAAAC3literal ops@bastion"
          - gitlab:rey
        ada: [github:ada]
"""


def test_yip_file_in_the_network_stage(cli, root, write, forge):
    src = write("keys.yaml", YIP)
    res = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert res.code == 0, res.err
    step = steps(res)["keys"]
    assert step["status"] == "ok" and step["changed"] is True
    assert keys(root).read_text() == REY + LIT + "\nssh-ed25519 AAAAC3gitlab rey@gl\n"
    assert keys(root, "ada").read_text() == ADA
    for user in ("rey", "ada"):
        for path, mode in ((keys(root, user).parent, 0o700), (keys(root, user), 0o600)):
            st = os.stat(path)
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, UID, GID), path
    assert "network" in res.json()["steps"][0]["stage"]


def test_second_run_changes_nothing(cli, root, write, forge):
    """SPEC 7.13: a second run reports changed false and no file changes at all."""
    src = write("keys.yaml", YIP)
    assert cli("run", "--stage", "network", "--root", root, src).code == 0
    before = snapshot(root)
    res = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert res.code == 0, res.err
    assert steps(res)["keys"]["changed"] is False
    assert snapshot_diff(before, snapshot(root)) == []


def test_new_keys_on_the_server_are_added_at_the_next_run(cli, root, write, forge):
    """A key the user added upstream is appended; the others stay, none twice."""
    src = write("keys.yaml", YIP)
    assert cli("run", "--stage", "network", "--root", root, src).code == 0
    forge({"/gh/ada.keys": (200, ADA + "ssh-ed25519 AAAAC3adanew ada@new\n")})
    res = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert res.code == 0, res.err
    assert keys(root, "ada").read_text() == ADA + "ssh-ed25519 AAAAC3adanew ada@new\n"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (kernel backlog) and never answers a request."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("failure", ["404", "500", "timeout", "refused"])
def test_fetch_failure_through_the_cli(failure, cli, root, write, forge, silent_port,
                                       refused_port, monkeypatch):
    """Exit 1; the error names the user and the source; rey's existing file is left
    byte for byte; ada, in the same step, gets her keys."""
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "1")
    name = {"404": "gone", "500": "err"}.get(failure, "rey")
    if failure in ("timeout", "refused"):
        port = silent_port if failure == "timeout" else refused_port
        monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL", f"http://127.0.0.1:{port}/{{user}}.keys")
    keys(root).parent.mkdir(mode=0o700)
    keys(root).write_text("# mine\nssh-rsa AAAAB3keep keep@x")  # no final newline either
    keys(root).chmod(0o640)
    before = snapshot(keys(root).parent)
    src = write("k.yaml", "stages:\n  network:\n    - name: keys\n      authorized_keys:\n"
                          f"        rey: ['{LIT}', 'github:{name}']\n"
                          f"        ada: ['gitlab:rey']\n")
    res = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert res.code == 1
    step = steps(res)["keys"]
    assert step["status"] == "failed"
    assert "'rey'" in step["error"] and f"github:{name}" in step["error"], step["error"]
    assert {"404": "404", "500": "500", "timeout": "1 s", "refused": "refused"}[failure] \
        in step["error"]
    assert snapshot_diff(before, snapshot(keys(root).parent)) == []
    assert keys(root, "ada").read_text() == "ssh-ed25519 AAAAC3gitlab rey@gl\n"
    assert "rey" in res.err and f"github:{name}" in res.err  # logged too


def test_a_real_process_reads_the_base_url_from_its_environment(cli_process, root, write,
                                                                forge):
    base = forge()
    src = write("keys.yaml", YIP)
    res = cli_process("run", "--stage", "network", "--root", root, src,
                      env={"EDGEINIT_GITHUB_KEYS_URL": base + "/gh/{user}.keys",
                           "EDGEINIT_GITLAB_KEYS_URL": base + "/gl/{user}.keys"})
    assert res.code == 0, res.err
    assert keys(root, "ada").read_text() == ADA


# -- cloud-config ---------------------------------------------------------------------

CLOUD = f"""\
#cloud-config
users:
  - name: rey
    ssh_authorized_keys:
      - github:rey
      - {RSA}
ssh_authorized_keys:
  - {LIT}
  - gitlab:rey
"""


def _users_unsupported(result) -> bool:
    return any("'users' is not supported" in (s["error"] or "") for s in result.json()["steps"])


def test_cloud_config_literal_keys_in_boot_forge_keys_in_network(cli, root, write, forge):
    """users[].ssh_authorized_keys plus the top-level list (which goes to every listed
    user, not root): literal keys are written in `boot`, github:/gitlab: in `network`.
    The boot step also carries `users:`; its status depends on the users plugin (built
    elsewhere), so only the authorized_keys outcome is asserted."""
    src = write("cc.yaml", CLOUD)
    boot = cli("run", "--stage", "boot", "--root", root, "--json", src)
    assert keys(root).read_text() == f"{RSA}\n{LIT}\n", boot.out + boot.err
    errors = " ".join(s["error"] or "" for s in boot.json()["steps"])
    assert "authorized_keys" not in errors, errors
    net = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert net.code == 0, net.out + net.err
    assert keys(root).read_text() == (
        f"{RSA}\n{LIT}\n" + REY + "ssh-ed25519 AAAAC3gitlab rey@gl\n")
    assert not (root / "root" / ".ssh").exists()  # global keys went to rey only
    again = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert [s["changed"] for s in again.json()["steps"]] == [False]


def test_cloud_config_boot_does_not_fetch(cli, root, write, forge, monkeypatch):
    """Stage boot has no network yet: a github: key there would fail; it is not there."""
    monkeypatch.setenv("EDGEINIT_GITHUB_KEYS_URL", "http://127.0.0.1:1/{user}.keys")
    monkeypatch.setenv("EDGEINIT_GITLAB_KEYS_URL", "http://127.0.0.1:1/{user}.keys")
    boot = cli("run", "--stage", "boot", "--root", root, "--json", src := write("cc.yaml", CLOUD))
    errors = " ".join(s["error"] or "" for s in boot.json()["steps"])
    assert "github:" not in errors and "gitlab:" not in errors and "fetch" not in errors, errors
    if not _users_unsupported(boot):
        assert boot.code == 0, boot.out
    net = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert net.code == 1 and "github:rey" in net.json()["steps"][0]["error"]


@needs_root
def test_cloud_config_global_keys_without_users_go_to_root(cli, root, write, forge):
    src = write("cc.yaml", f"#cloud-config\nssh_authorized_keys:\n  - {LIT}\n  - github:ada\n")
    boot = cli("run", "--stage", "boot", "--root", root, "--json", src)
    assert boot.code == 0, boot.out + boot.err
    assert (root / "root" / ".ssh" / "authorized_keys").read_text() == LIT + "\n"
    net = cli("run", "--stage", "network", "--root", root, "--json", src)
    assert net.code == 0, net.out + net.err
    path = root / "root" / ".ssh" / "authorized_keys"
    assert path.read_text() == LIT + "\n" + ADA
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, 0, 0)


# -- dry run --------------------------------------------------------------------------


@pytest.mark.parametrize("json_mode", [True, False])
def test_dry_run_shows_the_keys_and_changes_nothing(json_mode, cli, root, write, forge,
                                                    state_dir):
    """Keys are fetched (read only) and shown in the diff; nothing on disk changes."""
    keys(root).parent.mkdir(mode=0o700)
    keys(root).write_text(f"{RSA}\n")
    before = snapshot(root)
    src = write("keys.yaml", YIP)
    res = cli("run", "--stage", "network", "--root", root, "--dry-run", src,
              *(["--json"] if json_mode else []))
    assert res.code == 0, res.err
    shown = steps(res)["keys"]["diff"] if json_mode else res.out
    assert f" {RSA}\n" in shown  # context: the key already there
    for line in (*REY.splitlines(), LIT, "ssh-ed25519 AAAAC3gitlab rey@gl", ADA.strip()):
        assert f"+{line}\n" in shown, shown
    assert "masked" not in shown
    assert snapshot_diff(before, snapshot(root)) == []
    assert not (state_dir / "network.json").exists()


def test_dry_run_with_a_failing_fetch_exits_1(cli, root, write, forge):
    src = write("k.yaml", "stages:\n  network:\n    - name: keys\n"
                          "      authorized_keys: {rey: ['github:err']}\n")
    before = snapshot(root)
    res = cli("run", "--stage", "network", "--root", root, "--dry-run", "--json", src)
    assert res.code == 1
    assert "github:err" in steps(res)["keys"]["error"]
    assert snapshot_diff(before, snapshot(root)) == []
