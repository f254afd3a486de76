"""`datasource` end to end through the CLI (issue #7), against stand-ins on 127.0.0.1.

Each HTTP provider is served by a stand-in that answers the provider's real paths and
refuses requests without the headers the real service insists on (GCP's
Metadata-Flavor, Azure's Metadata: true, AWS's IMDSv2 token, Scaleway's privileged
source port). Every metadata endpoint is pointed at 127.0.0.1 by the environment
(a port that refuses connections, unless a test serves it), so nothing leaves the
machine. cdrom and config-drive read real iso9660/vfat images on loop devices (root).
Everything is written under a scratch --root.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IS_ROOT, REFERENCE, needs_root
from tests.integration.test_dry_run import snapshot, snapshot_diff

ENDPOINT_VARS = {
    "aws": "EDGEINIT_DATASOURCE_AWS_URL", "openstack": "EDGEINIT_DATASOURCE_OPENSTACK_URL",
    "gcp": "EDGEINIT_DATASOURCE_GCP_URL", "azure": "EDGEINIT_DATASOURCE_AZURE_URL",
    "azure-wireserver": "EDGEINIT_DATASOURCE_AZURE_WIRESERVER_URL",
    "digitalocean": "EDGEINIT_DATASOURCE_DIGITALOCEAN_URL",
    "hetzner": "EDGEINIT_DATASOURCE_HETZNER_URL", "scaleway": "EDGEINIT_DATASOURCE_SCALEWAY_URL",
    "vultr": "EDGEINIT_DATASOURCE_VULTR_URL", "packet": "EDGEINIT_DATASOURCE_PACKET_URL",
    "metaldata": "EDGEINIT_DATASOURCE_METALDATA_URL",
}
ELEMENTAL_ROOTFS = REFERENCE / "elemental-2026" / "system" / "oem" / "00_rootfs.yaml"
AZURE_Q = "?api-version=2021-01-01&format=text"
TOKEN = "AQAEAtoken=="


# -- a metadata service stand-in ----------------------------------------------------------


class StandIn:
    """A metadata service on 127.0.0.1: routes (method, path with query) -> (status,
    body); every request is logged; `need` headers are required on every request
    (403 without), `token` on every GET (401 without: IMDSv2), `low_port` paths only
    answer a client port below 1024 (Scaleway); a `hang` route answers only when the
    test ends (or after 30 s)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, bytes, bool]] = {}
        self.requests: list[tuple[str, str, Any, bytes]] = []  # headers: case-insensitive
        self.need: dict[str, str] = {}
        self.token: str | None = None
        self.low_port: set[str] = set()
        self.release = threading.Event()
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                standin.requests.append((method, self.path, self.headers, data))
                status, body, hang = standin.routes.get((method, self.path),
                                                        (404, b"not found\n", False))
                if any(self.headers.get(k) != v for k, v in standin.need.items()):
                    status, body = 403, b"missing metadata header\n"
                elif (standin.token and method == "GET"
                      and self.headers.get("X-aws-ec2-metadata-token") != standin.token):
                    status, body = 401, b"token required\n"
                elif self.path in standin.low_port and self.client_address[1] >= 1024:
                    status, body = 403, b"privileged source port required\n"
                if hang:
                    standin.release.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that gave up on a hanging route

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, path: str, body: str | bytes, status: int = 200, *, method: str = "GET",
              hang: bool = False) -> None:
        self.routes[(method, path)] = (status, body.encode() if isinstance(body, str) else body,
                                       hang)

    def asked(self) -> list[str]:
        return [f"{method} {path}" for method, path, _, _ in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A 127.0.0.1 port bound but not listening: connections are refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, dead_port: int, tmp_path: Path) -> None:
    """Every provider endpoint refuses (127.0.0.1, dead port) unless a test serves it;
    no vmware-rpctool; no proxy settings from the environment."""
    for variable in ENDPOINT_VARS.values():
        monkeypatch.setenv(variable, f"http://127.0.0.1:{dead_port}")
    monkeypatch.setenv("EDGEINIT_DATASOURCE_VMWARE_RPCTOOL", str(tmp_path / "no-rpctool"))
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "5")
    monkeypatch.delenv("EDGEINIT_DATASOURCE_TIMEOUT", raising=False)
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                     "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], StandIn]]:
    """standin("gcp") -> a StandIn that the gcp provider is pointed at."""
    made: list[StandIn] = []

    def make(provider: str) -> StandIn:
        s = StandIn()
        made.append(s)
        monkeypatch.setenv(ENDPOINT_VARS[provider], s.url)
        return s

    yield make
    for s in made:
        s.close()


def with_root_user(root: Path) -> Path:
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "root").mkdir(mode=0o700, exist_ok=True)
    return root


@pytest.fixture
def root(target: Path) -> Path:
    return with_root_user(target)


def step_yaml(providers: list[str], path: str | None = "/oem", name: str | None = None,
              stage: str = "boot") -> str:
    lines = [f"stages:\n  {stage}:\n    - name: pull\n      datasource:\n"
             f"        providers: {json.dumps(providers)}\n"]
    if path is not None:
        lines.append(f"        path: {path}\n")
    if name is not None:
        lines.append(f"        userdata_name: {name}\n")
    return "".join(lines)


def run(cli, root: Path, src: Path, stage: str = "boot", *extra: str):
    res = cli("run", "--stage", stage, "--root", root, "--json", *extra, src)
    report = res.json()
    steps = [s for s in report["steps"] if s["name"] == "pull" or stage == "rootfs"]
    return res, steps[0]


# -- the providers' real paths ------------------------------------------------------------


def key_of(provider: str) -> str:
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{provider.replace('-', '')} ops@{provider}"


def user_data_of(provider: str) -> str:
    return f"stages:\n  boot:\n    - name: from {provider}\n      commands: [\"true\"]\n"


def site_aws(s: StandIn, host: str, key: str, ud: str, *, token: bool = True) -> None:
    if token:  # IMDSv2: a session token by PUT, then required on every GET
        s.route("/latest/api/token", TOKEN, method="PUT")
        s.token = TOKEN
    meta = "/latest/meta-data/"
    s.route(meta + "hostname", host)
    s.route(meta + "instance-id", "i-0123456789abcdef0")
    s.route(meta + "local-ipv4", "10.0.0.7")
    s.route(meta + "public-keys/0/openssh-key", key + "\n")
    s.route("/latest/user-data", ud)


def site_openstack(s: StandIn, host: str, key: str, ud: str) -> None:
    site_aws(s, host, key, ud, token=False)


def site_gcp(s: StandIn, host: str, key: str, ud: str) -> None:
    s.need = {"Metadata-Flavor": "Google"}
    s.route("/computeMetadata/v1/instance/hostname", host)
    s.route("/computeMetadata/v1/project/attributes/ssh-keys", f"ops:{key}\nbad line\n")
    s.route("/computeMetadata/v1/instance/attributes/user-data", ud)


def site_azure(s: StandIn, host: str, key: str, ud: str) -> None:
    s.need = {"Metadata": "true"}
    root = "/metadata/instance/compute/"
    s.route(root + "vmId" + AZURE_Q, "02aab8a4-74ef-476e-8182-f6d2ba4166a6")
    s.route(root + "name" + AZURE_Q, host)
    s.route(root + "publicKeys/0/keyData" + AZURE_Q, key)
    s.route(root + "userData" + AZURE_Q, base64.b64encode(ud.encode()).decode())


def site_digitalocean(s: StandIn, host: str, key: str, ud: str) -> None:
    meta = "/metadata/v1/"
    s.route(meta, "id\nhostname\nuser-data\npublic-keys\nregion\n")
    s.route(meta + "hostname", host)
    s.route(meta + "id", "2756294")
    s.route(meta + "public-keys", key + "\n")
    s.route(meta + "user-data", ud)


def site_hetzner(s: StandIn, host: str, key: str, ud: str) -> None:
    meta = "/hetzner/v1/metadata/"
    s.route(meta + "hostname", host)
    s.route(meta + "instance-id", "42424242")
    s.route(meta + "public-keys", json.dumps([key]))
    s.route("/hetzner/v1/userdata", ud)


def site_scaleway(s: StandIn, host: str, key: str, ud: str) -> None:
    s.route("/conf", f"ID=11111111-2222-3333-4444-555555555555\nHOSTNAME={host}\n"
                     "PRIVATE_IP=10.1.2.3\nLOCATION_ZONE_ID=fr-par-1\n"
                     f"SSH_PUBLIC_KEYS=1\nSSH_PUBLIC_KEYS_0_KEY='{key}'\n")
    s.route("/user_data/cloud-init", ud)
    s.low_port.add("/user_data/cloud-init")


def site_vultr(s: StandIn, host: str, key: str, ud: str) -> None:
    s.route("/v1/", "hostname\ninstanceid\npublic-keys\n")
    s.route("/v1/hostname", host)
    s.route("/v1/instanceid", "a747bfz6385e")
    s.route("/v1/public-keys", key + "\n")
    s.route("/latest/user-data", ud)


def site_packet(s: StandIn, host: str, key: str, ud: str) -> None:
    s.route("/metadata", json.dumps({"id": "e4b1c2", "hostname": host, "ssh_keys": [key]}))
    s.route("/userdata", ud)


def site_metaldata(s: StandIn, host: str, key: str, ud: str) -> None:
    s.route("/get/meta/hostname", host)
    s.route("/get/meta/machine-id", "m-77")
    s.route("/get/meta/authorized-keys", key + "\n")
    s.route("/get/user", ud)


SITES: dict[str, tuple[Callable[..., None], str | None, str | None]] = {
    # provider: (stand-in, a side file in /run/config it writes, its content)
    "aws": (site_aws, "instance_id", "i-0123456789abcdef0"),
    "openstack": (site_openstack, "local_ipv4", "10.0.0.7"),
    "gcp": (site_gcp, None, None),
    "azure": (site_azure, "compute_vmId", "02aab8a4-74ef-476e-8182-f6d2ba4166a6"),
    "digitalocean": (site_digitalocean, "id", "2756294"),
    "hetzner": (site_hetzner, "instance_id", "42424242"),
    "scaleway": (site_scaleway, "instance_location", "fr-par-1"),
    "vultr": (site_vultr, "instance_id", "a747bfz6385e"),
    "packet": (site_packet, None, None),
    "metaldata": (site_metaldata, "machine_id", "m-77"),
}


def serve(standin: Callable[[str], StandIn], provider: str) -> StandIn:
    s = standin(provider)
    SITES[provider][0](s, f"{provider}-node-1", key_of(provider), user_data_of(provider))
    return s


# -- each HTTP provider --------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(SITES))
def test_each_provider_from_its_real_paths(provider, cli, root, write, standin):
    """The provider's hostname, SSH key and user-data, from the paths the real service
    serves (with the headers it insists on), land where yip puts them: user-data in
    `path`, side files in /run/config, the hostname and root's key applied."""
    if provider == "scaleway" and not IS_ROOT:
        pytest.skip("Scaleway serves user-data only to a source port below 1024: needs root")
    if provider == "azure":
        wire = standin("azure-wireserver")
        wire.route("/machine?comp=goalstate", "<GoalState><Container><ContainerId>c-1"
                   "</ContainerId><RoleInstanceList><RoleInstance><InstanceId>i-9"
                   "</InstanceId></RoleInstance></RoleInstanceList></Container></GoalState>")
        wire.route("/machine?comp=health", "", method="POST")
    serve(standin, provider)
    res, step = run(cli, root, write("ds.yaml", step_yaml([provider])))
    assert res.code == 0, step
    assert step["status"] == "ok" and step["changed"]
    assert (root / "oem" / "userdata").read_text() == user_data_of(provider)
    assert (root / "oem" / "userdata.yaml").read_text() == user_data_of(provider)
    assert (root / "oem" / "userdata").stat().st_mode & 0o777 == 0o644
    config = root / "run" / "config"
    assert config.stat().st_mode & 0o777 == 0o755
    assert (config / "hostname").read_text().strip() == f"{provider}-node-1"
    keys = config / "ssh" / "authorized_keys"
    assert keys.read_text().splitlines() == [key_of(provider)]
    assert keys.stat().st_mode & 0o777 == 0o600
    _, side, content = SITES[provider]
    if side:
        assert (config / side).read_text() == content
    # applied: the hostname as the hostname plugin does, the key to root
    assert (root / "etc" / "hostname").read_text() == f"{provider}-node-1\n"
    assert f"{provider}-node-1" in (root / "etc" / "hosts").read_text()
    assert (root / "root" / ".ssh" / "authorized_keys").read_text() == key_of(provider) + "\n"
    if provider == "azure":
        method, path, headers, body = wire.requests[-1]
        assert (method, path) == ("POST", "/machine?comp=health")
        assert b"<ContainerId>c-1</ContainerId>" in body and b"<InstanceId>i-9</InstanceId>" in body
        assert b"<State>Ready</State>" in body and headers.get("x-ms-version") == "2012-11-30"


def test_aws_without_imdsv2_falls_back_to_v1(cli, root, write, standin):
    """A service without the token route (405) is asked with plain GETs (IMDSv1)."""
    s = standin("aws")
    site_aws(s, "old-node", key_of("aws"), user_data_of("aws"), token=False)
    s.route("/latest/api/token", "", 405, method="PUT")
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["aws"])))
    assert step["status"] == "ok", step
    assert (root / "etc" / "hostname").read_text() == "old-node\n"
    assert all(h.get("X-aws-ec2-metadata-token") is None for m, _, h, _ in s.requests if m == "GET")


# -- order, bounds, failures ---------------------------------------------------------------


def test_first_answering_provider_wins_and_later_ones_are_never_asked(cli, root, write,
                                                                      standin):
    """aws refuses (dead port), gcp answers 404 (not there), hetzner answers: hetzner
    wins; vultr and digitalocean, after it, are never asked."""
    gcp = standin("gcp")  # serves nothing: every path 404
    hetzner = serve(standin, "hetzner")
    later = [serve(standin, "vultr"), serve(standin, "digitalocean")]
    _res, step = run(cli, root, write("ds.yaml", step_yaml(
        ["aws", "gcp", "hetzner", "vultr", "digitalocean"])))
    assert step["status"] == "ok", step
    assert (root / "oem" / "userdata").read_text() == user_data_of("hetzner")
    assert gcp.asked() == ["GET /computeMetadata/v1/instance/hostname"]
    assert "GET /hetzner/v1/userdata" in hetzner.asked()
    assert [s.asked() for s in later] == [[], []]


def test_a_provider_named_twice_is_asked_once(cli, root, write, standin):
    gcp = standin("gcp")
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["gcp", "gcp", "gcp"])))
    assert step["status"] == "failed"
    assert gcp.asked() == ["GET /computeMetadata/v1/instance/hostname"]


def test_a_hanging_provider_is_bounded_and_the_next_one_answers(cli, root, write, standin,
                                                                monkeypatch):
    """The aws stand-in never answers until the test ends (it would then serve valid
    data, so a client that waited would make aws win); with EDGEINIT_FETCH_TIMEOUT=1
    aws gives up and gcp wins."""
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "1")
    aws = standin("aws")
    site_aws(aws, "aws-node", key_of("aws"), user_data_of("aws"))
    aws.route("/latest/api/token", TOKEN, method="PUT", hang=True)
    serve(standin, "gcp")
    res, step = run(cli, root, write("ds.yaml", step_yaml(["aws", "gcp"])))
    assert step["status"] == "ok", step
    assert (root / "oem" / "userdata").read_text() == user_data_of("gcp")
    assert f"aws did not answer: {aws.url}/latest/api/token: no answer within 1 s" in res.err


def test_only_a_hanging_provider_fails_the_step_naming_the_wait(cli, root, write, standin,
                                                                monkeypatch):
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "1")
    gcp = standin("gcp")
    gcp.need = {"Metadata-Flavor": "Google"}
    gcp.route("/computeMetadata/v1/instance/hostname", "gcp-node", hang=True)
    res, step = run(cli, root, write("ds.yaml", step_yaml(["gcp"])))
    assert res.code == 1 and step["status"] == "failed"
    assert (f"gcp ({gcp.url}/computeMetadata/v1/instance/hostname: no answer within 1 s)"
            in step["error"])


def test_no_provider_answering_fails_listing_what_was_tried(cli, root, write, standin,
                                                            dead_port):
    """yip's "no metadata/userdata found", with each provider tried and why; /run/config
    is made all the same, and nothing else is written."""
    gcp = standin("gcp")  # answers, but 404: not a GCP instance
    res, step = run(cli, root, write("ds.yaml", step_yaml(["aws", "gcp", "openstack", "cdrom"])))
    assert res.code == 1 and step["status"] == "failed"
    error = step["error"]
    assert "no metadata/userdata found" in error
    dead = f"http://127.0.0.1:{dead_port}"
    assert f"aws ({dead}/latest/api/token: Connection refused)" in error
    assert f"gcp ({gcp.url}/computeMetadata/v1/instance/hostname: HTTP 404)" in error
    assert f"openstack ({dead}/latest/meta-data/hostname: Connection refused)" in error
    assert "cdrom (" in error
    assert sorted(p.name for p in (root / "run" / "config").iterdir()) == []
    assert not (root / "oem").exists()


MALFORMED = {
    # provider: (route to spoil, what it serves, words of the error)
    "hetzner": ("/hetzner/v1/metadata/public-keys", "ssh-ed25519 AAAA not-json",
                "not a JSON list of keys"),
    "packet": ("/metadata", "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
               "not JSON (an HTML page"),
    "aws": ("/latest/meta-data/hostname",
            "<html><head><title>Login</title></head><body>captive portal</body></html>",
            "an HTML page is not a valid hostname"),
    "gcp": ("/computeMetadata/v1/instance/attributes/user-data", "oops",
            "HTTP 500"),
}


@pytest.mark.parametrize("provider", sorted(MALFORMED))
def test_malformed_metadata_fails_naming_provider_and_url(provider, cli, root, write,
                                                          standin):
    """Bad JSON, an HTML page where a hostname goes, a user-data request that fails: a
    clear error with the provider and the URL; nothing of it is written, and the
    provider after it is not asked (it answered: its data is broken, not absent)."""
    s = serve(standin, provider)
    path, body, words = MALFORMED[provider]
    if words == "HTTP 500":
        s.route(path, body, 500)
    else:
        s.route(path, body)
    fallback = serve(standin, "vultr")
    res, step = run(cli, root, write("ds.yaml", step_yaml([provider, "vultr"])))
    assert res.code == 1 and step["status"] == "failed"
    assert step["error"].startswith(f"datasource: {provider}: {s.url}{path}"), step["error"]
    assert words in step["error"]
    assert fallback.asked() == []
    assert list((root / "run" / "config").iterdir()) == []
    assert not (root / "oem").exists()
    assert (root / "etc" / "hostname").exists() is False


def test_the_file_provider_and_userdata_name(cli, root, write):
    """yip's own test: the file provider's output stays in /run/config (its `path` is
    its input), named by userdata_name, with the input's exact content."""
    (root / "seed").mkdir()
    (root / "seed" / "datasource").write_text("#cloud-config\nhostname: test")
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["file"], "/seed/datasource",
                                                          "01_userdata.yaml")))
    assert step["status"] == "ok", step
    config = root / "run" / "config"
    assert (config / "01_userdata.yaml").read_text() == "#cloud-config\nhostname: test"
    assert (config / "userdata").read_text() == "#cloud-config\nhostname: test"
    assert not (config / "userdata.yaml").exists()


VMWARE_MULTIPART = """\
Content-Type: multipart/mixed; boundary="MIMEBOUNDARY"
MIME-Version: 1.0

--MIMEBOUNDARY
Content-Transfer-Encoding: 7bit
Content-Type: text/x-shellscript
Mime-Version: 1.0

#!/bin/sh
echo "not this part"

--MIMEBOUNDARY
Content-Transfer-Encoding: 7bit
Content-Type: text/cloud-config
Mime-Version: 1.0

#cloud-config
hostname: from-multipart

--MIMEBOUNDARY--
"""


def test_multipart_user_data_keeps_the_first_cloud_config_part(cli, root, write, standin):
    s = standin("openstack")
    site_openstack(s, "os-node", key_of("openstack"), VMWARE_MULTIPART)
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["openstack"])))
    assert step["status"] == "ok", step
    assert (root / "oem" / "userdata").read_text() == "#cloud-config\nhostname: from-multipart\n"
    assert (root / "oem" / "userdata.yaml").read_text() == (root / "oem" / "userdata").read_text()


def test_script_user_data_is_written_0744_and_run_chrooted(cli, shell_target, write, standin):
    """A `#!` user-data that is not a config is made executable and run inside the root
    (chrooted, like commands); no userdata.yaml."""
    root = with_root_user(shell_target)
    s = standin("digitalocean")
    site_digitalocean(s, "do-node", key_of("digitalocean"),
                      "#!/bin/sh\necho \"ran as $0\" > /ran-by-user-data\n")
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["digitalocean"])))
    assert step["status"] == "ok", step
    script = root / "oem" / "userdata"
    assert script.stat().st_mode & 0o777 == 0o744
    assert not (root / "oem" / "userdata.yaml").exists()
    assert (root / "ran-by-user-data").read_text() == "ran as /oem/userdata\n"
    assert "run: user-data script /oem/userdata" in step["changes"]


def test_a_failing_script_fails_the_step(cli, shell_target, write, standin):
    root = with_root_user(shell_target)
    s = standin("metaldata")
    site_metaldata(s, "m-node", key_of("metaldata"), "#!/bin/sh\necho broken\nexit 3\n")
    res, step = run(cli, root, write("ds.yaml", step_yaml(["metaldata"])))
    assert res.code == 1 and "exited with 3" in step["error"] and "broken" in step["error"]


def test_dry_run_asks_but_writes_and_runs_nothing(cli, root, write, standin):
    s = standin("vultr")
    site_vultr(s, "v-node", key_of("vultr"), "#!/bin/sh\ntouch /should-not-exist\n")
    before = snapshot(root)
    res, step = run(cli, root, write("ds.yaml", step_yaml(["vultr"])), "boot", "--dry-run")
    assert res.code == 0 and step["changed"], step
    assert snapshot_diff(before, snapshot(root)) == []
    assert "create /oem/userdata (mode 0744, owner 0:0)" in step["changes"]
    assert "run: user-data script /oem/userdata" in step["changes"]
    assert any(c.startswith("create /etc/hostname") for c in step["changes"])


def test_vmware_guestinfo_through_rpctool(cli, root, write, tmp_path, monkeypatch):
    """guestinfo keys read with `vmware-rpctool "info-get KEY"` (a stand-in script):
    base64 user-data decoded, metadata and vendordata as side files."""
    info = tmp_path / "guestinfo"
    info.mkdir()
    ud = user_data_of("vmware")
    (info / "guestinfo.userdata").write_text(base64.b64encode(ud.encode()).decode() + "\n")
    (info / "guestinfo.userdata.encoding").write_text("base64\n")
    (info / "guestinfo.metadata").write_text("instance-id: vm-1\nlocal-hostname: vm-1\n")
    tool = tmp_path / "vmware-rpctool"
    tool.write_text(f"#!/bin/sh\nkey=\"${{1#info-get }}\"\n"
                    f"[ -f \"{info}/$key\" ] || {{ echo 'No value found'; exit 1; }}\n"
                    f"cat \"{info}/$key\"\n")
    tool.chmod(0o755)
    monkeypatch.setenv("EDGEINIT_DATASOURCE_VMWARE_RPCTOOL", str(tool))
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["vmware"])))
    assert step["status"] == "ok", step
    assert (root / "oem" / "userdata.yaml").read_text() == ud
    assert (root / "run" / "config" / "metadata").read_text() == (
        "instance-id: vm-1\nlocal-hostname: vm-1")
    assert not (root / "run" / "config" / "vendordata").exists()


def test_vmware_without_rpctool_is_not_there(cli, root, write):
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["vmware"])))
    assert step["status"] == "failed"
    assert "vmware (" in step["error"] and "is not installed (open-vm-tools)" in step["error"]


# -- Elemental's rootfs.before step ---------------------------------------------------------


@pytest.mark.skipif(not ELEMENTAL_ROOTFS.exists(), reason="reference corpus not present")
@pytest.mark.parametrize("winner", ["aws", "openstack"])
def test_elemental_rootfs_datasource_step_end_to_end(winner, cli, root, standin):
    """Elemental's own 00_rootfs.yaml, `edgeinit run --stage rootfs`: its rootfs.before
    step (providers aws, gcp, openstack, cdrom; path /oem) gets the user-data from the
    first provider that answers into ROOT/oem/userdata and userdata.yaml; running it
    again changes nothing."""
    served = serve(standin, winner)
    gcp = standin("gcp")
    res = cli("run", "--stage", "rootfs", "--root", root, "--json", ELEMENTAL_ROOTFS)
    report = res.json()
    (step,) = [s for s in report["steps"] if s["stage"] == "rootfs.before"]
    assert res.code == 0 and step["status"] == "ok", step
    assert step["name"] == "Pull data from provider"
    assert (root / "oem" / "userdata").read_text() == user_data_of(winner)
    assert (root / "oem" / "userdata.yaml").read_text() == user_data_of(winner)
    assert (root / "etc" / "hostname").read_text() == f"{winner}-node-1\n"
    assert gcp.asked() == ([] if winner == "aws" else
                           ["GET /computeMetadata/v1/instance/hostname"])
    before = snapshot(root)
    asked = len(served.requests)
    res = cli("run", "--stage", "rootfs", "--root", root, "--json", ELEMENTAL_ROOTFS)
    (again,) = [s for s in res.json()["steps"] if s["stage"] == "rootfs.before"]
    assert res.code == 0 and again["status"] == "ok" and again["changed"] is False, again
    assert snapshot_diff(before, snapshot(root)) == []
    assert len(served.requests) > asked  # it really asked again


@pytest.mark.skipif(not ELEMENTAL_ROOTFS.exists(), reason="reference corpus not present")
def test_elemental_rootfs_with_broken_user_data_writes_nothing_half(cli, root, standin):
    """openstack answers, but its user-data request fails midway (HTTP 503): the step
    fails naming it, /oem is not created, no side file and no temp file is left."""
    s = serve(standin, "openstack")
    s.route("/latest/user-data", "Service Unavailable", 503)
    res = cli("run", "--stage", "rootfs", "--root", root, "--json", ELEMENTAL_ROOTFS)
    (step,) = [x for x in res.json()["steps"] if x["stage"] == "rootfs.before"]
    assert res.code == 1 and step["status"] == "failed"
    assert f"openstack: {s.url}/latest/user-data: HTTP 503" in step["error"]
    assert not (root / "oem").exists()
    assert list((root / "run" / "config").iterdir()) == []
    assert not [p for p in root.rglob("*") if p.name.endswith(".edgeinit-new")]


# -- cdrom and config-drive on real images ----------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install genisoimage dosfstools)")
    return path


def _check_no_foreign(labels: tuple[str, ...]) -> None:
    from edgeinit.target import devices

    foreign = devices.by_labels(labels)
    if foreign:
        pytest.skip(f"devices already labelled {'/'.join(labels)} are attached here: "
                    f"{', '.join(foreign)}; they would be read first")


@pytest.fixture
def loop_image(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """loop_image(kind, label, files) -> a loop device holding a real iso9660 (kind
    "iso", genisoimage -J -r) or vfat (kind "fat", mkfs.vfat + mcopy) image; detached
    when the test ends."""
    if not IS_ROOT:
        pytest.skip("needs root: losetup and mount")
    attached: list[str] = []

    def make(kind: str, label: str, files: dict[str, str]) -> str:
        seed = tmp_path / f"seed-{len(attached)}"
        for rel, text in files.items():
            (seed / rel).parent.mkdir(parents=True, exist_ok=True)
            (seed / rel).write_text(text)
        image = tmp_path / f"image-{len(attached)}.img"
        if kind == "iso":
            subprocess.run([_tool("genisoimage"), "-quiet", "-o", str(image), "-V", label,
                            "-J", "-r", str(seed)], check=True)
        else:
            subprocess.run(["truncate", "-s", "4M", str(image)], check=True)
            subprocess.run([_tool("mkfs.vfat"), "-n", label, str(image)], check=True,
                           capture_output=True)
            env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
            for rel in sorted(files):
                parts = Path(rel).parts
                for depth in range(1, len(parts)):
                    subprocess.run([_tool("mmd"), "-i", str(image),
                                    "::" + "/".join(parts[:depth])], env=env,
                                   capture_output=True)
                subprocess.run([_tool("mcopy"), "-i", str(image), str(seed / rel),
                                "::" + rel], env=env, check=True, capture_output=True)
        device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                                capture_output=True, text=True).stdout.strip()
        attached.append(device)
        return device

    try:
        yield make
    finally:
        for device in attached:
            subprocess.run(["losetup", "-d", device], check=False)


def _no_mounts_left() -> list[str]:
    mounts = Path("/proc/self/mountinfo").read_text()
    left = [line for line in mounts.splitlines() if "edgeinit-device-" in line]
    left += [str(p) for p in Path("/run").glob("edgeinit-device-*")]
    return left


def _kernel_can_mount(fstype: str) -> bool:
    return any(line.split()[-1] == fstype
               for line in Path("/proc/filesystems").read_text().splitlines())


MEDIA = {
    # case: (provider, image kind, label, files on it, the user-data expected)
    "cidata-iso": ("cdrom", "iso", "cidata",
                   {"user-data": "#cloud-config\nhostname: from-iso\n",
                    "meta-data": "instance-id: iid-1\n"}, "#cloud-config\nhostname: from-iso\n"),
    "CIDATA-vfat": ("cdrom", "fat", "CIDATA",
                    {"user-data": "#cloud-config\nhostname: from-fat\n",
                     "meta-data": "instance-id: iid-2\n"}, "#cloud-config\nhostname: from-fat\n"),
    "cidata-config-file": ("cdrom", "iso", "cidata", {"config": "name: from config\n"},
                           "name: from config\n"),
    "config-2-iso": ("config-drive", "iso", "config-2",
                     {"openstack/latest/user_data": "#cloud-config\nhostname: from-cd\n",
                      "openstack/latest/meta_data.json": "{}"},
                     "#cloud-config\nhostname: from-cd\n"),
    "config-2-vfat": ("config-drive", "fat", "config-2",
                      {"openstack/latest/user_data": "#cloud-config\nhostname: cd-fat\n"},
                      "#cloud-config\nhostname: cd-fat\n"),
}


@needs_root
@pytest.mark.parametrize("case", sorted(MEDIA))
def test_local_media_from_real_images(case, cli, root, write, loop_image):
    """A real iso9660 or vfat image on a loop device, found by its label through blkid
    (no udev here), read read-only, unmounted again; the user-data goes to `path`.
    Where this kernel has no driver for the filesystem, the userspace reader is used."""
    provider, kind, label, files, expected = MEDIA[case]
    _check_no_foreign((label.lower(), label.upper()))
    loop_image(kind, label, files)
    res, step = run(cli, root, write("ds.yaml", step_yaml(["gcp", provider])))
    assert step["status"] == "ok", (step, res.err)
    assert (root / "oem" / "userdata").read_text() == expected
    assert (root / "oem" / "userdata.yaml").read_text() == expected
    assert _no_mounts_left() == []


@needs_root
@pytest.mark.parametrize("kind,fstype", [("iso", "iso9660"), ("fat", "vfat")])
def test_local_media_through_the_kernel_mount(kind, fstype, cli, root, write, loop_image,
                                              monkeypatch):
    """The mount path alone (no userspace reader): mounted read-only in a private temp
    dir, unmounted after."""
    if not _kernel_can_mount(fstype):
        pytest.skip(f"this kernel has no {fstype} driver (/proc/filesystems), so the "
                    "mount path cannot run here; the userspace reader test covers reading")
    from edgeinit.target import devices

    monkeypatch.setattr(devices, "_READERS", {})
    _check_no_foreign(("cidata", "CIDATA"))
    loop_image(kind, "cidata", {"user-data": "name: mounted\n"})
    res, step = run(cli, root, write("ds.yaml", step_yaml(["cdrom"])))
    assert step["status"] == "ok", (step, res.err)
    assert (root / "oem" / "userdata.yaml").read_text() == "name: mounted\n"
    assert f"mounting it read-only as {fstype}" in res.err
    assert _no_mounts_left() == []


@needs_root
def test_mount_mechanics_on_a_filesystem_this_kernel_mounts(tmp_path):
    """mounted()/read_first() for real, with ext4 (which every kernel here mounts):
    read-only (nosuid, nodev, noexec) in a private temp dir, unmounted and the dir
    removed afterwards, even when the reading fails."""
    import errno

    from edgeinit.target import devices

    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "user-data").write_text("name: ext4\n")
    image = tmp_path / "ext4.img"
    subprocess.run([_tool("mkfs.ext4"), "-q", "-F", "-L", "edgeinit-t", "-d", str(seed),
                    str(image), "4M"], check=True, capture_output=True)
    device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        with devices.mounted(device, ("iso9660", "ext4")) as top:
            (line,) = [m for m in Path("/proc/self/mountinfo").read_text().splitlines()
                       if m.split()[4] == top]
            assert line.split()[5].split(",")[0] == "ro"
            assert {"nosuid", "nodev", "noexec"} <= set(line.split()[5].split(","))
            with pytest.raises(OSError) as e:
                (Path(top) / "new").write_text("x")
            assert e.value.errno == errno.EROFS
        assert _no_mounts_left() == []
        assert devices.read_first(device, ["config", "user-data"], ("ext4",)) == (
            "user-data", b"name: ext4\n")
        with pytest.raises(RuntimeError), devices.mounted(device, ("ext4",)):
            raise RuntimeError("reading failed")
        assert _no_mounts_left() == []
        with pytest.raises(devices.MountError, match="as vfat: "):
            devices.read_first(device, ["user-data"], ("vfat",))
        assert _no_mounts_left() == []
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


@needs_root
@pytest.mark.parametrize("kind,reader", [("iso", "isoinfo"), ("fat", "mcopy")])
def test_local_media_through_the_userspace_reader(kind, reader, cli, root, write, loop_image,
                                                  monkeypatch):
    """The reader alone (as when the kernel cannot mount the filesystem): the real image
    is read with isoinfo or mcopy."""
    from edgeinit.target import devices

    _tool(reader)

    def no_mount(device, fstypes):
        raise devices.MountError(f"cannot mount {device} (this test forbids mounting)")

    monkeypatch.setattr(devices, "mounted", no_mount)
    _check_no_foreign(("cidata", "CIDATA"))
    loop_image(kind, "CIDATA" if kind == "fat" else "cidata",
               {"user-data": "name: read by tool\n"})
    res, step = run(cli, root, write("ds.yaml", step_yaml(["cdrom"])))
    assert step["status"] == "ok", (step, res.err)
    assert (root / "oem" / "userdata.yaml").read_text() == "name: read by tool\n"
    assert f"with {reader} instead" in res.err


@needs_root
def test_a_labelled_medium_without_user_data_is_not_an_answer(cli, root, write, loop_image):
    _check_no_foreign(("cidata", "CIDATA"))
    device = loop_image("iso", "cidata", {"meta-data": "instance-id: x\n"})
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["cdrom"])))
    assert step["status"] == "failed"
    assert f"cdrom ({device}: no user-data or config)" in step["error"]
    assert _no_mounts_left() == []


def test_cdrom_with_no_device_is_not_an_answer(cli, root, write):
    from edgeinit.target import devices

    try:
        if devices.by_labels(("cidata", "CIDATA")) or devices.cdrom_drives():
            pytest.skip("this machine has a cidata device or an optical drive")
    except devices.DeviceError as e:
        pytest.skip(f"blkid cannot probe here: {e}")
    _res, step = run(cli, root, write("ds.yaml", step_yaml(["cdrom", "config-drive"])))
    assert step["status"] == "failed"
    assert "cdrom (no device labelled cidata or CIDATA and no optical drive" in step["error"]
    assert "config-drive (no device labelled config-2 or CONFIG-2" in step["error"]
