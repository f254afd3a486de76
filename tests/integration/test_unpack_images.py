"""`unpack_images` (issue #7): OCI images unpacked into a scratch target root by the real
skopeo and umoci. Every image is built here with tarfile, json and hashlib: layers with
a whiteout and an opaque directory, an index with two platforms (nested, as skopeo
writes it, and flat, as other tools do), OCI and docker-archive tarballs. The registry
path runs Debian's docker-registry on 127.0.0.1 over TLS with a test CA; no internet.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeinit.target import oci
from edgeinit.target.changes import MakeDir, UnpackImage
from tests.conftest import IS_ROOT, needs_root
from tests.unit.plugin_harness import run_step

pytestmark = pytest.mark.skipif(
    shutil.which("skopeo") is None or shutil.which("umoci") is None,
    reason="skopeo and umoci are not installed (Debian packages skopeo, umoci)")

HOST_ARCH = oci.host_platform()[1]
OTHER_ARCH = "arm64" if HOST_ARCH != "arm64" else "amd64"
OWNER = 4242 if IS_ROOT else os.getuid()

# (name, kind, data or link target, mode, uid)
BASE = [("etc", "dir", None, 0o755, 0), ("etc/app.conf", "file", b"v=1\n", 0o644, 0),
        ("etc/old.conf", "file", b"gone\n", 0o644, 0), ("cache", "dir", None, 0o755, 0),
        ("cache/stale", "file", b"stale\n", 0o644, 0),
        ("home", "dir", None, 0o755, 0), ("home/edge", "dir", None, 0o700, OWNER),
        ("home/edge/key", "file", b"k\n", 0o600, OWNER)]
TOP = [("etc/.wh.old.conf", "file", b"", 0o644, 0), ("cache", "dir", None, 0o755, 0),
       ("cache/.wh..wh..opq", "file", b"", 0o644, 0), ("cache/fresh", "file", b"new\n", 0o644, 0),
       ("bin", "dir", None, 0o755, 0), ("bin/tool", "file", b"#!/bin/sh\n", 0o755, 0),
       ("tool", "link", "bin/tool", 0o777, 0)]


def layer(entries: list[tuple]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, mode, uid in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = mode, uid, uid, 1_700_000_000
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def image(self, arch: str, layers: list[list[tuple]], *, gzip_last: bool = True) -> dict:
        """A manifest (with `platform`) for an image of these layers."""
        descriptors, diff_ids = [], []
        for i, entries in enumerate(layers):
            raw = layer(entries)
            diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
            if gzip_last and i == len(layers) - 1:
                descriptors.append(self.blob(gzip.compress(raw, mtime=0),
                                             "application/vnd.oci.image.layer.v1.tar+gzip"))
            else:
                descriptors.append(self.blob(raw, "application/vnd.oci.image.layer.v1.tar"))
        config = {"architecture": arch, "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": self.blob(json.dumps(config).encode(),
                                        "application/vnd.oci.image.config.v1+json"),
                    "layers": descriptors}
        return {**self.blob(json.dumps(manifest).encode(), manifest["mediaType"]),
                "platform": {"architecture": arch, "os": "linux"}}

    def index(self, manifests: list[dict], tag: str | None = "latest") -> None:
        for m in manifests if tag else []:
            m.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = tag
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                          "manifests": manifests}))

    def nested(self, manifests: list[dict], tag: str = "latest") -> None:
        """index.json -> one image index blob listing `manifests` (skopeo's form)."""
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": manifests}
        self.index([self.blob(json.dumps(idx).encode(), idx["mediaType"])], tag)


def single(path: Path, layers: list[list[tuple]] | None = None, arch: str = HOST_ARCH) -> Layout:
    lay = Layout(path)
    lay.index([lay.image(arch, layers or [BASE, TOP])])
    return lay


def multi(path: Path, *, flat: bool = False) -> Layout:
    """Two platforms: this machine's image has /which = HOST_ARCH, the other OTHER_ARCH."""
    lay = Layout(path)
    images = [lay.image(arch, [BASE, [("which", "file", arch.encode(), 0o644, 0)]])
              for arch in (OTHER_ARCH, HOST_ARCH)]
    if flat:
        lay.index(images, tag=None)
    else:
        lay.nested(images)
    return lay


def tar_dir(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        for p in sorted(src.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(src)), recursive=False)
    return dest


def docker_archive(dest: Path) -> Path:
    """A `docker save` tarball: manifest.json, the config, one layer."""
    raw = layer([("hello", "file", b"from docker\n", 0o644, 0)])
    config = json.dumps({"architecture": HOST_ARCH, "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}})
    cid = hashlib.sha256(config.encode()).hexdigest()
    files = {f"{cid}.json": config.encode(), "abc/layer.tar": raw,
             "manifest.json": json.dumps([{"Config": f"{cid}.json", "RepoTags": ["app:1"],
                                           "Layers": ["abc/layer.tar"]}]).encode()}
    with tarfile.open(dest, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


def unpack(root: Path, source: str, target: str = "/srv/app", platform: str = "", *,
           dry_run: bool = False):
    entry = {"source": source, "target": target, **({"platform": platform} if platform else {})}
    return run_step({"unpack_images": [entry]}, root, dry_run=dry_run)


def tree(d: Path) -> dict[str, str]:
    """Every entry under `d`: files by content, links by target, directories as '/'."""
    out = {}
    for p in sorted(d.rglob("*")):
        rel = str(p.relative_to(d))
        out[rel] = ("-> " + os.readlink(p) if p.is_symlink() else
                    "/" if p.is_dir() else p.read_text())
    return out


def debris(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*edgeinit*")]


IMAGE_TREE = {"bin": "/", "bin/tool": "#!/bin/sh\n", "cache": "/", "cache/fresh": "new\n",
              "etc": "/", "etc/app.conf": "v=1\n", "home": "/", "home/edge": "/",
              "home/edge/key": "k\n", "tool": "-> bin/tool"}


# -- local layouts ---------------------------------------------------------------------------


def test_a_layout_is_unpacked_with_whiteouts_opaque_dirs_modes_and_owners(target: Path) -> None:
    single(target / "images" / "app")
    run = unpack(target, "/images/app")
    assert run.status == "ok", run.error
    app = target / "srv" / "app"
    assert tree(app) == IMAGE_TREE  # old.conf whited out, cache/stale hidden by the opaque dir
    key = os.lstat(app / "home" / "edge" / "key")
    assert stat.S_IMODE(key.st_mode) == 0o600 and stat.S_IMODE(os.lstat(app / "bin" / "tool")
                                                               .st_mode) == 0o755
    if IS_ROOT:
        assert (key.st_uid, key.st_gid) == (OWNER, OWNER)
    assert [type(c) for c in run.changes] == [MakeDir, UnpackImage]
    (change,) = run.of(UnpackImage)
    assert run.entry.changes[-1] == (f"unpack /images/app (this machine's platform, config "
                                     f"{change.digest[:19]}) into /srv/app (a new directory)")
    assert oci.stamp_of(str(app)) == change.digest
    assert debris(target) == []


def test_a_second_run_with_the_same_image_changes_nothing(target: Path, cli, write) -> None:
    single(target / "images" / "app")
    src = write("u.yaml", "stages:\n  boot:\n    - name: img\n      unpack_images:\n"
                          "        - {source: /images/app, target: /srv/app}\n")
    first = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert first.code == 0 and first.json()["steps"][0]["changed"] is True, first.out
    mtime = os.lstat(target / "srv" / "app" / "etc" / "app.conf").st_mtime_ns
    again = cli("run", "--stage", "boot", "--root", target, "--json", src)
    assert again.code == 0 and again.json()["steps"][0]["changed"] is False, again.out
    assert os.lstat(target / "srv" / "app" / "etc" / "app.conf").st_mtime_ns == mtime


def test_an_existing_directory_is_merged_into_as_yip_does(target: Path) -> None:
    """The image's files replace files of the same name, its directories merge, the
    directory's other files stay."""
    app = target / "srv" / "app"
    (app / "etc").mkdir(parents=True)
    (app / "etc" / "app.conf").write_text("local\n")
    (app / "etc" / "local.conf").write_text("mine\n")
    (app / "data").mkdir()
    (app / "data" / "db").write_text("keep\n")
    (app / "bin").symlink_to("/nowhere")  # replaced by the image's directory, not followed
    single(target / "images" / "app")
    run = unpack(target, "/images/app")
    assert run.status == "ok", run.error
    assert run.entry.changes[-1].endswith("into /srv/app (merged into the existing directory)")
    got = tree(app)
    assert got["etc/app.conf"] == "v=1\n" and got["etc/local.conf"] == "mine\n"
    assert got["data/db"] == "keep\n" and got["bin/tool"] == "#!/bin/sh\n"
    assert not unpack(target, "/images/app").entry.changed
    assert debris(target) == []


def test_a_new_image_is_unpacked_over_the_old_one(target: Path) -> None:
    single(target / "images" / "v1")
    single(target / "images" / "v2", [BASE, [("etc/app.conf", "file", b"v=2\n", 0o644, 0)]])
    assert unpack(target, "/images/v1").status == "ok"
    run = unpack(target, "/images/v2")
    assert run.status == "ok" and run.entry.changed, run.error
    assert (target / "srv" / "app" / "etc" / "app.conf").read_text() == "v=2\n"


@pytest.mark.parametrize("flat", [False, True], ids=["nested-index", "flat-index"])
def test_platform_picks_from_a_multi_platform_index(target: Path, flat: bool) -> None:
    multi(target / "images" / "multi", flat=flat)
    run = unpack(target, "/images/multi", "/srv/default")
    assert run.status == "ok", run.error
    assert (target / "srv" / "default" / "which").read_text() == HOST_ARCH
    run = unpack(target, "/images/multi", "/srv/other", f"linux/{OTHER_ARCH}")
    assert run.status == "ok", run.error
    assert (target / "srv" / "other" / "which").read_text() == OTHER_ARCH
    assert f"(linux/{OTHER_ARCH}, config sha256:" in run.entry.changes[-1]


@pytest.mark.parametrize("flat", [False, True], ids=["nested-index", "flat-index"])
def test_a_platform_the_index_lacks_fails(target: Path, flat: bool) -> None:
    multi(target / "images" / "multi", flat=flat)
    run = unpack(target, "/images/multi", platform="linux/s390x")
    assert run.status == "failed" and run.error.startswith("/srv/app: image /images/multi: ")
    assert "s390x" in run.error
    assert not (target / "srv").exists()


def test_an_explicit_platform_must_match_a_single_image(target: Path) -> None:
    single(target / "images" / "app")
    run = unpack(target, "/images/app", platform=f"linux/{OTHER_ARCH}")
    assert run.status == "failed"
    assert f"the image is linux/{HOST_ARCH}, not linux/{OTHER_ARCH}" in run.error


@pytest.mark.parametrize("platform", ["arm64", "linux/", "a/b/c/d"])
def test_a_malformed_platform_fails(target: Path, platform: str) -> None:
    single(target / "images" / "app")
    run = unpack(target, "/images/app", platform=platform)
    assert run.status == "failed" and "is not OS/ARCH[/VARIANT]" in run.error


# -- tarballs --------------------------------------------------------------------------------


def test_an_oci_archive_tarball(target: Path, tmp_path: Path) -> None:
    single(tmp_path / "layout")
    (target / "images").mkdir()
    tar_dir(tmp_path / "layout", target / "images" / "app.tar")
    run = unpack(target, "/images/app.tar")
    assert run.status == "ok", run.error
    assert tree(target / "srv" / "app") == IMAGE_TREE
    run = unpack(target, "oci-archive:/images/app.tar:latest", "/srv/tagged")
    assert run.status == "ok", run.error
    assert tree(target / "srv" / "tagged") == IMAGE_TREE
    assert debris(target) == []


def test_a_docker_archive_tarball(target: Path) -> None:
    (target / "images").mkdir()
    docker_archive(target / "images" / "saved.tar")
    run = unpack(target, "/images/saved.tar")
    assert run.status == "ok", run.error
    assert tree(target / "srv" / "app") == {"hello": "from docker\n"}
    assert not unpack(target, "/images/saved.tar").entry.changed


# -- not an image, broken images -------------------------------------------------------------


@pytest.mark.parametrize(("make", "why"), [
    (lambda p: (p.mkdir(), (p / "index.json").write_text("{}")),
     "not an OCI image: a directory without an oci-layout file"),
    (lambda p: p.write_text("just text\n"),
     "not an OCI image: neither an image layout directory nor a tar archive"),
    (lambda p: _plain_tar(p),
     "not an OCI image: a tar archive with neither an oci-layout nor a manifest.json"),
])
def test_what_is_not_an_oci_image_fails_clearly(target: Path, make, why: str) -> None:
    (target / "images").mkdir()
    make(target / "images" / "thing")
    run = unpack(target, "/images/thing")
    assert run.status == "failed"
    assert run.error.startswith(f"/srv/app: image /images/thing: {why}")
    assert not (target / "srv").exists()


def _plain_tar(p: Path) -> None:
    with tarfile.open(p, "w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))


def test_a_config_without_rootfs_is_not_a_container_image(target: Path) -> None:
    """An OCI artifact (a Helm chart, say) has a manifest but is no file system."""
    lay = Layout(target / "images" / "chart")
    config = lay.blob(b'{"name": "chart", "version": "1.0"}',
                      "application/vnd.cncf.helm.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": []}
    lay.index([lay.blob(json.dumps(manifest).encode(), manifest["mediaType"])])
    run = unpack(target, "/images/chart")
    assert run.status == "failed" and "not a container image" in run.error


def test_a_missing_source_fails(target: Path) -> None:
    run = unpack(target, "/images/none")
    assert run.error == "/srv/app: image /images/none: no such file or directory"


def test_a_corrupt_layer_fails_and_leaves_the_target_as_it_was(target: Path) -> None:
    lay = single(target / "images" / "app")
    manifest_digest = json.loads((lay.path / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((lay.path / "blobs" / "sha256" / manifest_digest[7:]).read_bytes())
    blob = lay.path / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    data = blob.read_bytes()
    assert b"v=1\n" in data
    blob.write_bytes(data.replace(b"v=1\n", b"v=9\n"))  # same size, another digest
    run = unpack(target, "/images/app")
    assert run.status == "failed" and "/srv/app: cannot unpack image /images/app: " in run.error
    assert not (target / "srv" / "app").exists() and debris(target) == []
    (target / "srv" / "app").mkdir(parents=True, exist_ok=True)
    (target / "srv" / "app" / "keep").write_text("as it was\n")
    run = unpack(target, "/images/app")
    assert run.status == "failed"
    assert tree(target / "srv" / "app") == {"keep": "as it was\n"} and debris(target) == []


def test_a_target_that_is_a_file_fails(target: Path) -> None:
    single(target / "images" / "app")
    (target / "srv").mkdir()
    (target / "srv" / "app").write_text("x")
    run = unpack(target, "/images/app")
    assert run.status == "failed" and "exists and is not a directory" in run.error


def test_without_skopeo_the_entry_fails_clearly(target: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    single(target / "images" / "app")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    run = unpack(target, "/images/app")
    assert run.status == "failed" and "skopeo is not installed on this system" in run.error


def test_tools_are_bounded_by_the_command_timeout(target: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A skopeo that hangs (a stand-in on PATH) is killed after EDGEINIT_COMMAND_TIMEOUT."""
    single(target / "images" / "app")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "skopeo").write_text("#!/bin/sh\nexec sleep 30\n")
    (bindir / "skopeo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("EDGEINIT_COMMAND_TIMEOUT", "0.5")
    run = unpack(target, "/images/app")
    assert run.status == "failed" and "skopeo did not finish within 0.5 s" in run.error


# -- dry run ---------------------------------------------------------------------------------


def test_dry_run_reads_the_config_only_and_writes_nothing(target: Path) -> None:
    single(target / "images" / "app")
    run = unpack(target, "/images/app", dry_run=True)
    assert run.status == "ok" and run.entry.changed
    assert run.entry.changes[-1].startswith("unpack /images/app (this machine's platform")
    assert not (target / "srv").exists() and debris(target) == []
    unpack(target, "/images/app")
    assert not unpack(target, "/images/app", dry_run=True).entry.changed


# -- from a registry -------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1 over TLS, its certificate trusted through
    SSL_CERT_FILE (what Go's TLS reads as the system trust store). Yields HOST:PORT."""
    binary = shutil.which("docker-registry")
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("no local registry: docker-registry and openssl are not installed "
                    "(Debian packages docker-registry, openssl)")
    d = tmp_path / "registry"
    d.mkdir()
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {d / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
        f"  tls:\n    certificate: {cert}\n    key: {key}\n")
    proc = subprocess.Popen([binary, "serve", str(d / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("docker-registry did not start")
            time.sleep(0.05)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def push(layout: Path, ref: str) -> None:
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--all", "--quiet",
                    f"oci:{layout}:latest", f"docker://{ref}"], check=True, capture_output=True)


def test_from_a_registry_with_a_platform(target: Path, tmp_path: Path, registry: str) -> None:
    multi(tmp_path / "multi")
    push(tmp_path / "multi", f"{registry}/edge/app:1")
    run = unpack(target, f"{registry}/edge/app:1", "/srv/other", f"linux/{OTHER_ARCH}")
    assert run.status == "ok", run.error
    assert (target / "srv" / "other" / "which").read_text() == OTHER_ARCH
    run = unpack(target, f"docker://{registry}/edge/app:1", "/srv/mine")
    assert run.status == "ok", run.error
    assert (target / "srv" / "mine" / "which").read_text() == HOST_ARCH
    assert not unpack(target, f"{registry}/edge/app:1", "/srv/mine").entry.changed


def test_a_registry_tls_certificate_is_verified(target: Path, tmp_path: Path, registry: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    single(tmp_path / "app")
    push(tmp_path / "app", f"{registry}/edge/app:1")
    monkeypatch.delenv("SSL_CERT_FILE")
    run = unpack(target, f"{registry}/edge/app:1")
    assert run.status == "failed" and "certificate" in run.error
    assert not (target / "srv").exists()


def test_a_missing_tag_in_the_registry_fails(target: Path, registry: str) -> None:
    run = unpack(target, f"{registry}/edge/none:1")
    assert run.status == "failed"
    assert run.error.startswith(f"/srv/app: image {registry}/edge/none:1: skopeo: ")


@needs_root
def test_owners_survive_a_merge(target: Path) -> None:
    app = target / "srv" / "app"
    app.mkdir(parents=True)
    (app / "other").write_text("x")
    single(target / "images" / "app")
    assert unpack(target, "/images/app").status == "ok"
    st = os.lstat(app / "home" / "edge")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (OWNER, 0o700)


def test_the_roots_own_top_directory_can_be_the_target(target: Path) -> None:
    """`target: /` has no directory beside it: the work directory is made inside and the
    image merged around the system's files."""
    single(target / "images" / "app")
    run = unpack(target, "/images/app", "/")
    assert run.status == "ok", run.error
    assert (target / "etc" / "app.conf").read_text() == "v=1\n"
    assert (target / "etc" / "os-release").exists() and (target / "tool").is_symlink()
    assert debris(target) == []
    assert not unpack(target, "/images/app", "/").entry.changed
