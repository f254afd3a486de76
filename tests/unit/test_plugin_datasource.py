"""`datasource` (yip-behaviour 3.16, issue #7): the step's logic with stand-in providers,
and the pieces it is built from (multipart, what loads as config, the HTTP client's
bounds, device reading). The providers against real HTTP servers and real images are
in tests/integration/test_datasource.py."""

from __future__ import annotations

import base64
import gzip
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeinit.plugins import datasource as ds
from edgeinit.plugins.datasource import cloud, media
from edgeinit.target import devices
from edgeinit.target.changes import RunCommand
from tests.unit.plugin_harness import StepRun, run_step

UD_YIP = "stages:\n  boot:\n    - commands: [\"true\"]\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (r / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (r / "root").mkdir(mode=0o700)
    return r


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """providers(aws=Found or exception, ...): stand-ins for the named providers;
    returns the list of providers asked, in order."""
    asked: list[str] = []

    def install(**behaviour: ds.Found | Exception) -> list[str]:
        for name, what in behaviour.items():
            name = name.replace("_", "-")

            def provider(source: ds.DataSource, ctx: object, name: str = name,
                         what: ds.Found | Exception = what) -> ds.Found:
                asked.append(name)
                if isinstance(what, Exception):
                    raise what
                return what

            monkeypatch.setitem(ds.PROVIDERS, name, provider)
        return asked

    return install


def step(providers: list[str], path: str | None = "/oem", name: str | None = None) -> dict:
    source: dict = {"providers": providers}
    if path is not None:
        source["path"] = path
    if name is not None:
        source["userdata_name"] = name
    return {"datasource": source}


def run(root: Path, data: dict, *, dry_run: bool = False) -> StepRun:
    return run_step(data, root, dry_run=dry_run)


def found(provider: str = "aws", user_data: str | None = UD_YIP,
          side: list[tuple[str, bytes, int]] | None = None) -> ds.Found:
    return ds.Found(provider, "stand-in", None if user_data is None else user_data.encode(),
                    side or [])


# -- order and outcome -----------------------------------------------------------------------


def test_providers_are_asked_in_order_each_once_until_one_answers(root, providers):
    asked = providers(aws=ds.NoAnswer("refused"), gcp=ds.NoAnswer("404"),
                      hetzner=found("hetzner"), vultr=found("vultr"))
    result = run(root, step(["aws", "gcp", "aws", "hetzner", "vultr", "gcp"]))
    assert result.status == "ok", result.error
    assert asked == ["aws", "gcp", "hetzner"]
    assert (root / "oem" / "userdata").read_text() == UD_YIP


def test_none_answering_fails_with_each_reason_and_still_makes_run_config(root, providers):
    providers(aws=ds.NoAnswer("http://x/latest/api/token: Connection refused"),
              cdrom=ds.NoAnswer("no device labelled cidata"))
    result = run(root, step(["aws", "cdrom"]))
    assert result.status == "failed"
    assert result.error == ("datasource: no metadata/userdata found: no provider answered; "
                            "tried aws (http://x/latest/api/token: Connection refused); "
                            "cdrom (no device labelled cidata)")
    assert (root / "run" / "config").is_dir()
    assert (root / "run" / "config").stat().st_mode & 0o777 == 0o755
    assert list((root / "run" / "config").iterdir()) == []


def test_broken_metadata_fails_and_stops_the_search(root, providers):
    asked = providers(aws=ds.BadMetadata("aws: http://x/latest/meta-data/hostname: an HTML page"),
                      gcp=found("gcp"))
    result = run(root, step(["aws", "gcp"]))
    assert result.status == "failed"
    assert result.error == "datasource: aws: http://x/latest/meta-data/hostname: an HTML page"
    assert asked == ["aws"]
    assert not (root / "oem").exists()


def test_no_providers_is_a_no_op(root, providers):
    assert run(root, step([])).changes == []
    assert run(root, {"datasource": None}).changes == []
    assert not (root / "run").exists()


def test_unknown_names_and_a_file_provider_without_path_are_skipped_with_warnings(root,
                                                                                  providers):
    asked = providers(gcp=found("gcp"))
    result = run(root, step(["AWS", "maas", "file", "gcp"], path=None))
    assert result.status == "ok", result.error
    assert asked == ["gcp"]
    assert any("unknown datasource provider 'AWS'" in w for w in result.warnings)
    assert any("unknown datasource provider 'maas'" in w for w in result.warnings)
    assert any("'file' provider needs `path`" in w for w in result.warnings)
    assert (root / "run" / "config" / "userdata.yaml").read_text() == UD_YIP


@pytest.mark.parametrize("bad", ["../x.yaml", "a/b.yaml", ".."])
def test_a_userdata_name_that_is_not_a_file_name_fails_before_asking(root, providers, bad):
    asked = providers(aws=found())
    result = run(root, step(["aws"], name=bad))
    assert result.status == "failed" and "must be a file name" in result.error
    assert asked == [] and not (root / "run").exists()


def test_a_relative_path_fails_before_asking(root, providers):
    asked = providers(aws=found())
    result = run(root, step(["aws"], path="oem"))
    assert result.status == "failed" and "not absolute" in result.error
    assert asked == []


# -- where the user-data goes, and what becomes of it -------------------------------------------


def test_the_file_provider_writes_to_run_config_its_path_being_its_input(root):
    (root / "seed.yaml").write_text(UD_YIP)
    result = run(root, step(["file"], path="/seed.yaml", name="01_userdata.yaml"))
    assert result.status == "ok", result.error
    assert (root / "run" / "config" / "01_userdata.yaml").read_text() == UD_YIP
    assert (root / "run" / "config" / "userdata").read_text() == UD_YIP


def test_a_missing_file_is_not_an_answer(root):
    result = run(root, step(["file"], path="/nowhere.yaml"))
    assert result.status == "failed" and "file (/nowhere.yaml does not exist)" in result.error


def test_user_data_that_is_neither_config_nor_script_is_only_written(root, providers):
    providers(aws=found(user_data="just some text\nthat is not yaml: [\n"))
    result = run(root, step(["aws"]))
    assert result.status == "ok", result.error
    assert (root / "oem" / "userdata").read_text() == "just some text\nthat is not yaml: [\n"
    assert not (root / "oem" / "userdata.yaml").exists()
    assert result.of(RunCommand) == []
    assert any("neither a yip/#cloud-config document nor a #! script" in w
               for w in result.warnings)


def test_a_script_is_written_0744_and_run(root, providers):
    providers(aws=found(user_data="#!/bin/sh\necho hi\n"))
    result = run(root, step(["aws"]), dry_run=True)
    (command,) = result.of(RunCommand)
    assert command.command == "/oem/userdata"
    assert command.label == "user-data script /oem/userdata"
    assert "create /oem/userdata (mode 0744, owner 0:0)" in result.entry.changes
    assert not (root / "oem").exists()  # a dry run


def test_user_data_is_written_as_served_not_templated(root, providers):
    text = "#cloud-config\nwrite_files:\n- path: /x\n  content: '{{ .Values.node.hostname }}'\n"
    providers(aws=found(user_data=text))
    assert run(root, step(["aws"])).status == "ok"
    assert (root / "oem" / "userdata.yaml").read_text() == text


def test_an_answer_without_user_data_still_applies_the_metadata(root, providers):
    providers(vultr=found("vultr", user_data=None,
                          side=[("hostname", b"v-node\n", 0o644),
                                ("ssh/authorized_keys", b"ssh-ed25519 AAAAkey ops\n", 0o600)]))
    result = run(root, step(["vultr"]))
    assert result.status == "ok", result.error
    assert "vultr answered but serves no user-data" in result.warnings
    assert not (root / "oem").exists()
    assert (root / "etc" / "hostname").read_text() == "v-node\n"
    assert (root / "root" / ".ssh" / "authorized_keys").read_text() == "ssh-ed25519 AAAAkey ops\n"
    assert (root / "run" / "config" / "ssh").stat().st_mode & 0o777 == 0o755


def test_side_files_left_by_an_earlier_run_are_applied_as_yip_does(root, providers):
    """yip applies /run/config/hostname whenever it exists, whoever wrote it."""
    (root / "run" / "config").mkdir(parents=True)
    (root / "run" / "config" / "hostname").write_text("earlier-name\n")
    providers(cdrom=found("cdrom"))
    assert run(root, step(["cdrom"])).status == "ok"
    assert (root / "etc" / "hostname").read_text() == "earlier-name\n"


def test_a_long_fqdn_is_applied_by_its_first_label(root, providers):
    fqdn = "instance-1.us-central1-a.c.a-rather-long-project-name-123456.internal"
    assert len(fqdn) > 64
    providers(gcp=found("gcp", side=[("hostname", fqdn.encode(), 0o644)]))
    result = run(root, step(["gcp"]))
    assert result.status == "ok", result.error
    assert (root / "run" / "config" / "hostname").read_text() == fqdn
    assert (root / "etc" / "hostname").read_text() == "instance-1\n"
    assert any("using its first label, instance-1" in w for w in result.warnings)


def test_run_config_is_made_0755_as_yip_ensures_it(root, providers):
    (root / "run" / "config").mkdir(parents=True, mode=0o700)
    (root / "run" / "config").chmod(0o700)
    providers(aws=ds.NoAnswer("refused"))
    assert run(root, step(["aws"])).status == "failed"
    assert (root / "run" / "config").stat().st_mode & 0o777 == 0o755


def test_a_second_run_changes_nothing(root, providers):
    providers(aws=found(side=[("hostname", b"n1\n", 0o644), ("instance_id", b"i-1", 0o644),
                              ("ssh/authorized_keys", b"ssh-ed25519 AAAAk a\n", 0o600)]))
    first = run(root, step(["aws"]))
    assert first.status == "ok" and first.entry.changed
    second = run(root, step(["aws"]))
    assert second.status == "ok" and second.changes == [], second.entry.changes


def test_a_dry_run_writes_nothing(root, providers):
    providers(aws=found(side=[("hostname", b"n1\n", 0o644)]))
    result = run(root, step(["aws"]), dry_run=True)
    assert result.status == "ok"
    assert "create /oem/userdata.yaml (mode 0644, owner 0:0)" in result.entry.changes
    assert any(c.startswith("create /etc/hostname") for c in result.entry.changes)
    assert not (root / "run").exists() and not (root / "oem").exists()


# -- multipart and what loads ----------------------------------------------------------------


VMWARE = b"""Content-Type: multipart/mixed; boundary="MIMEBOUNDARY"
MIME-Version: 1.0

--MIMEBOUNDARY
Content-Transfer-Encoding: 7bit
Content-Type: text/cloud-config
Mime-Version: 1.0

#cloud-config
hostname: test

--MIMEBOUNDARY
Content-Transfer-Encoding: 7bit
Content-Type: text/x-shellscript
Mime-Version: 1.0

#!/usr/bin/env bash

echo "hi"

--MIMEBOUNDARY--
"""


def test_multipart_gives_the_first_cloud_config_part_as_yip_does():
    """yip's own test vector: the multipart and the plain cloud-config give the same."""
    plain = b"#cloud-config\nhostname: test\n"
    assert ds.first_cloud_config_part(VMWARE) == plain
    assert ds.first_cloud_config_part(plain) == plain
    without_headers = VMWARE.split(b"\n\n", 1)[1]
    assert ds.first_cloud_config_part(without_headers) == plain


def test_multipart_part_encodings_are_decoded_and_no_cloud_config_part_keeps_the_data():
    encoded = base64.b64encode(b"#cloud-config\nhostname: b64\n").decode()
    mixed = ("Content-Type: multipart/mixed; boundary=XYZ\n\n--XYZ\n"
             "Content-Type: text/x-shellscript\n\n#!/bin/sh\n--XYZ\n"
             "Content-Type: text/cloud-config; charset=utf-8\n"
             "Content-Transfer-Encoding: base64\n\n" + encoded + "\n--XYZ--\n").encode()
    assert ds.first_cloud_config_part(mixed) == b"#cloud-config\nhostname: b64\n"
    scripts = (b"Content-Type: multipart/mixed; boundary=B\n\n--B\n"
               b"Content-Type: text/x-shellscript\n\n#!/bin/sh\n--B--\n")
    assert ds.first_cloud_config_part(scripts) == scripts


@pytest.mark.parametrize("text,loads", [
    (UD_YIP, True),
    ("#cloud-config\nhostname: x\n", True),
    ("## template: jinja\n#cloud-config\nruncmd: [ls]\n", True),
    ("#!/bin/sh\necho hi\n", False),
    ("#!/bin/bash\n# nothing but comments\n", True),  # an empty document, as yip loads it
    ("plain text", False),
    ("stages: [a, b]\n", False),
    ("- a list\n", False),
])
def test_what_loads_as_a_config(text, loads):
    assert ds.loads_as_config(text) is loads


# -- the HTTP client's bounds --------------------------------------------------------------------


def test_metadata_timeout_defaults_to_2_s_and_never_exceeds_the_fetch_timeout(monkeypatch):
    monkeypatch.delenv("EDGEINIT_DATASOURCE_TIMEOUT", raising=False)
    monkeypatch.delenv("EDGEINIT_FETCH_TIMEOUT", raising=False)
    assert cloud.metadata_timeout() == 2.0
    monkeypatch.setenv("EDGEINIT_DATASOURCE_TIMEOUT", "12")
    assert cloud.metadata_timeout() == 12.0
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "1")
    assert cloud.metadata_timeout() == 1.0
    monkeypatch.setenv("EDGEINIT_DATASOURCE_TIMEOUT", "100")
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "100")
    assert cloud.metadata_timeout() == 30.0  # SPEC 8
    monkeypatch.setenv("EDGEINIT_DATASOURCE_TIMEOUT", "junk")
    assert cloud.metadata_timeout() == 2.0


def test_metadata_requests_never_go_through_a_proxy(http_server, monkeypatch):
    """The services are link-local: a proxy from the environment (here one that does
    not exist) is not used."""
    base = http_server({"/latest/meta-data/hostname": (200, "n1")})
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{dead.getsockname()[1]}")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    try:
        md = cloud.Metadata("aws", base)
        assert md.probe("/latest/meta-data/hostname") == b"n1"
    finally:
        dead.close()


def test_http_errors_are_statuses_and_unreachable_is_no_answer(http_server):
    base = http_server({"/gone": (410, "gone"), "/ok": (200, "yes")})
    md = cloud.Metadata("gcp", base)
    assert md.request(base + "/gone") == (410, b"gone")
    with pytest.raises(ds.NoAnswer, match=r"/missing: HTTP 404$"):
        md.probe("/missing")
    assert md.optional("/missing") is None and md.warnings == []
    assert md.user_data("/missing") is None
    with pytest.raises(ds.BadMetadata, match=r"^gcp: http://127\.0\.0\.1:\d+/gone: HTTP 410$"):
        md.user_data("/gone")


def test_an_optional_item_that_times_out_stops_the_other_optional_items(http_server,
                                                                        monkeypatch):
    monkeypatch.setenv("EDGEINIT_DATASOURCE_TIMEOUT", "0.3")
    base = http_server({"/slow": (200, "late", 3.0), "/fast": (200, "quick")})
    md = cloud.Metadata("aws", base)
    assert md.optional("/slow") is None
    assert md.optional("/fast") is None  # not asked: the service stalls
    assert md.warnings == [f"aws: {base}/slow: no answer within 0.3 s; skipped"]
    assert md.need("/fast") == b"quick"  # what must be asked still is


def test_name_resolution_is_bounded_too(monkeypatch):
    monkeypatch.setenv("EDGEINIT_DATASOURCE_TIMEOUT", "0.2")
    real = socket.getaddrinfo

    def stuck(host, *args, **kwargs):
        if host == "metadata.invalid":
            time.sleep(2)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    md = cloud.Metadata("gcp", "http://metadata.invalid")
    with pytest.raises(ds.NoAnswer, match=r"metadata\.invalid not resolved within 0\.2 s"):
        md.probe("/computeMetadata/v1/instance/hostname")


@pytest.mark.parametrize("body,message", [
    (b"<!DOCTYPE html><html><body>oops</body></html>", "an HTML page is not a valid hostname"),
    (b"under_score!", "'under_score!' is not a valid hostname"),
])
def test_a_hostname_must_be_one(body, message):
    md = cloud.Metadata("aws", "http://127.0.0.1:1")
    with pytest.raises(ds.BadMetadata, match=message):
        md.check_hostname("http://127.0.0.1:1/h", body)
    assert md.check_hostname("u", b"ip-10-0-0-1.ec2.internal\n") == b"ip-10-0-0-1.ec2.internal\n"


# -- vmware guestinfo encodings --------------------------------------------------------------


def test_vmware_encodings():
    text = b"#cloud-config\nhostname: vm\n"
    encodings = {"a": "", "b": "base64", "c": "gzip+base64"}
    values = {"a": text.decode(), "b": base64.b64encode(text).decode(),
              "c": base64.b64encode(gzip.compress(text)).decode()}

    def get(key: str) -> str | None:
        return encodings.get(key.removesuffix(".encoding"))

    for key in values:
        assert cloud._vmware_decode(get, key, values[key]) == text
    with pytest.raises(ds.BadMetadata, match="unknown encoding 'rot13'"):
        cloud._vmware_decode(lambda k: "rot13", "guestinfo.userdata", "x")
    with pytest.raises(ds.BadMetadata, match="not valid base64"):
        cloud._vmware_decode(lambda k: "base64", "guestinfo.userdata", "!!!")


# -- devices -----------------------------------------------------------------------------------


def test_read_file_stays_inside_the_filesystem(tmp_path):
    top = tmp_path / "mnt"
    top.mkdir()
    (tmp_path / "secret").write_text("host file")
    (top / "user-data").write_text("ok")
    os.symlink("/etc/passwd", top / "abs-link")
    os.symlink("../secret", top / "rel-link")
    assert devices.read_file(str(top), "user-data") == b"ok"
    assert devices.read_file(str(top), "abs-link") is None
    assert devices.read_file(str(top), "rel-link") is None
    assert devices.read_file(str(top), "../secret") is None
    assert devices.read_file(str(top), "missing") is None


def test_media_candidates_labelled_first_then_optical_drives_each_once(monkeypatch):
    monkeypatch.setattr(devices, "by_labels", lambda labels: ["/dev/loop3"])
    monkeypatch.setattr(devices, "cdrom_drives", lambda: ["/dev/sr0", "/dev/loop3", "/dev/sr1"])
    read: list[str] = []

    def read_first(device, names, fstypes=("iso9660", "vfat")):
        read.append(device)
        if device == "/dev/loop3":
            raise devices.MountError("cannot mount /dev/loop3 as iso9660: wrong fs type")
        if device == "/dev/sr0":
            return None
        return ("config", b"name: sr1\n")

    monkeypatch.setattr(devices, "read_first", read_first)
    got = media._cdrom(ds.DataSource(), None)  # type: ignore[arg-type]
    assert read == ["/dev/loop3", "/dev/sr0", "/dev/sr1"]
    assert (got.provider, got.where, got.user_data) == ("cdrom", "/dev/sr1: config",
                                                        b"name: sr1\n")
    monkeypatch.setattr(devices, "cdrom_drives", lambda: ["/dev/sr0"])
    with pytest.raises(ds.NoAnswer) as e:
        media._cdrom(ds.DataSource(), None)  # type: ignore[arg-type]
    assert str(e.value) == ("/dev/loop3: cannot mount /dev/loop3 as iso9660: wrong fs type; "
                            "/dev/sr0: no user-data or config")


def test_read_first_falls_back_to_a_reader_only_for_a_filesystem_it_knows(monkeypatch):
    def no_mount(device, fstypes):
        raise devices.MountError(f"cannot mount {device} as iso9660: unknown filesystem type")

    monkeypatch.setattr(devices, "mounted", no_mount)
    monkeypatch.setattr(devices.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setitem(devices._READERS, "iso9660",
                        ("isoinfo", lambda device, names: (names[0], b"from reader")))
    monkeypatch.setattr(devices, "fs_type", lambda device: "iso9660")
    assert devices.read_first("/dev/x", ["user-data"]) == ("user-data", b"from reader")
    monkeypatch.setattr(devices, "fs_type", lambda device: "ext4")
    with pytest.raises(devices.MountError, match="unknown filesystem type"):
        devices.read_first("/dev/x", ["user-data"])
    monkeypatch.setattr(devices, "fs_type", lambda device: "iso9660")
    with pytest.raises(devices.MountError):  # iso9660 not among the types asked for
        devices.read_first("/dev/x", ["user-data"], fstypes=("vfat",))
