"""`downloads` (issue #7, yip-behaviour 3.3, SPEC 7.2, 7.10, 8): URLs fetched into files of
a scratch target root, through the real engine (tests/unit/plugin_harness.py), from real
HTTP(S) servers on 127.0.0.1.

Mode and owner as `files` has them; a path ending in / takes the name from the URL; a
second download of the same bytes changes nothing; a failed download names the URL and
leaves the old file, and no temp file, behind; bodies are streamed, not held in memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeinit.plugins.base import PluginError
from edgeinit.plugins.downloads import name_from_url, shown_url
from edgeinit.target import fs
from edgeinit.target.changes import DownloadFile, MakeDir, SetAttrs
from tests.conftest import IS_ROOT, needs_root, small_tmpfs
from tests.unit.plugin_harness import run_step

# As root: ids the host does not have (chown works for any id); else our own.
UID, GID = (4242, 4343) if IS_ROOT else (os.getuid(), os.getgid())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                      "edge:x:4242:4343:Edge:/home/edge:/bin/sh\n")
    (r / "etc" / "group").write_text("root:x:0:\nedge:x:4343:\nwheel:x:5555:edge\n")
    return r


def real(step: str | dict, root: Path):
    return run_step(step, root, dry_run=False)


def dl(path: str, url: str, **extra: object) -> dict:
    return {"downloads": [{"path": path, "url": url, **extra}]}


def attrs(p: Path) -> tuple[int, int, int]:
    st = os.lstat(p)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def full_state(p: Path) -> tuple:
    """Bytes, mode, owner, inode and mtime: an untouched file keeps all of them."""
    st = os.lstat(p)
    return p.read_bytes(), st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_mtime_ns


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(f"*{fs.TEMP_SUFFIX}"))


# -- pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "name"), [
    ("http://h/a/b/tool.tar.gz", "tool.tar.gz"),
    ("https://h/dl/my%20file.txt?x=1#frag", "my file.txt"),
    ("http://h/x", "x"),
])
def test_name_from_url_is_the_last_path_segment(url: str, name: str) -> None:
    assert name_from_url(url) == name


@pytest.mark.parametrize("url", ["http://h/dir/", "http://h", "http://h/a/..", "http://h/.",
                                 "http://h/a%2Fb", "http://h/x%00"])
def test_name_from_url_refuses_empty_dot_and_slash_names(url: str) -> None:
    with pytest.raises(PluginError, match="cannot take a file name from the URL"):
        name_from_url(url)


def test_shown_url_masks_a_password_only() -> None:
    assert shown_url("https://ops:s3cret@h:8443/f?a=1") == "https://ops:********@h:8443/f?a=1"
    assert shown_url("https://ops@h/f") == "https://ops@h/f"
    assert shown_url("http://h/f") == "http://h/f"


# -- writing -------------------------------------------------------------------------------


def test_new_file_gets_0644_root_and_missing_parents(root: Path, http_server) -> None:
    base = http_server({"/a.conf": (200, "key=value\n")})
    run = real(dl("/opt/app/a.conf", base + "/a.conf"), root)
    assert run.status == "ok" and run.entry.changed, run.error
    assert [c.path for c in run.of(MakeDir)] == ["/opt", "/opt/app"]
    (w,) = run.of(DownloadFile)
    assert run.entry.changes[-1] == (f"download {base}/a.conf -> /opt/app/a.conf "
                                     "(10 bytes, mode 0644, owner 0:0)")
    target = root / "opt" / "app" / "a.conf"
    assert target.read_bytes() == b"key=value\n"
    assert attrs(target) == (0o644, 0, 0) if IS_ROOT else attrs(target)[0] == 0o644
    assert w.staged and not os.path.exists(w.staged)
    assert leftovers(root) == []


def test_permissions_owner_and_group(root: Path, http_server) -> None:
    base = http_server({"/k": (200, "secret\n")})
    run = real(dl("/etc/k", base + "/k", permissions=0o600, owner=UID, group=GID), root)
    assert run.status == "ok", run.error
    assert attrs(root / "etc" / "k") == (0o600, UID, GID)


@needs_root
def test_owner_string_is_looked_up_in_the_targets_passwd_and_group(root: Path,
                                                                  http_server) -> None:
    """As `files`: "user" means the user's primary group, "user:group" names both; the
    ids come from the target (4242 is nobody on the host)."""
    base = http_server({"/f": (200, "x")})
    run = real({"downloads": [{"path": "/a", "url": base + "/f", "owner_string": "edge"},
                              {"path": "/b", "url": base + "/f", "ownerstring": "edge:wheel"}]},
               root)
    assert run.status == "ok", run.error
    assert attrs(root / "a")[1:] == (4242, 4343)
    assert attrs(root / "b")[1:] == (4242, 5555)


def test_unknown_owner_string_fails_the_entry_and_writes_nothing(root: Path,
                                                                http_server) -> None:
    base = http_server({"/f": (200, "x")})
    run = real(dl("/a", base + "/f", owner_string="nobody-here"), root)
    assert run.status == "failed" and "nobody-here" in run.error
    assert not (root / "a").exists()


@needs_root
def test_existing_file_keeps_its_mode_and_owner_when_not_given(root: Path,
                                                               http_server) -> None:
    """SPEC 7.10: only what the entry sets changes (yip would chmod it to 0000)."""
    target = root / "etc" / "app.conf"
    target.write_text("old\n")
    os.chown(target, 4242, 4343)
    os.chmod(target, 0o640)
    base = http_server({"/new": (200, "new\n")})
    run = real(dl("/etc/app.conf", base + "/new"), root)
    assert run.status == "ok", run.error
    assert target.read_text() == "new\n"
    assert attrs(target) == (0o640, 4242, 4343)
    assert run.entry.changes == [f"replace with {base}/new -> /etc/app.conf "
                                 "(4 bytes, mode 0640, owner 4242:4343)"]


def test_path_ending_in_slash_takes_the_name_from_the_url(root: Path, http_server) -> None:
    base = http_server({"/dl/v1/tool%20x.sh?sig=abc": (200, "#!/bin/sh\n")})
    run = real(dl("/usr/local/bin/", base + "/dl/v1/tool%20x.sh?sig=abc", permissions=0o755),
               root)
    assert run.status == "ok", run.error
    target = root / "usr" / "local" / "bin" / "tool x.sh"
    assert target.read_text() == "#!/bin/sh\n" and attrs(target)[0] == 0o755


def test_existing_directory_takes_the_name_from_the_url_too(root: Path, http_server) -> None:
    """yip's downloader saves into a directory named as the destination."""
    (root / "srv").mkdir()
    base = http_server({"/files/data.bin": (200, b"\x00\x01")})
    run = real(dl("/srv", base + "/files/data.bin"), root)
    assert run.status == "ok", run.error
    assert (root / "srv" / "data.bin").read_bytes() == b"\x00\x01"


def test_url_without_a_file_name_fails_for_a_directory_path(root: Path, http_server) -> None:
    base = http_server({"/dir/": (200, "index")})
    run = real(dl("/srv/", base + "/dir/"), root)
    assert run.status == "failed" and "cannot take a file name from the URL" in run.error
    assert not (root / "srv").exists()


def test_a_path_that_climbs_out_of_the_root_is_refused(root: Path, http_server) -> None:
    base = http_server({"/f": (200, "x")})
    run = real(dl("/../../outside", base + "/f"), root)
    assert run.status == "failed" and "climbs above the root" in run.error
    assert not (root.parent / "outside").exists()


def test_a_symlink_on_the_way_resolves_inside_the_root(root: Path, http_server) -> None:
    (root / "link").symlink_to("/etc")  # absolute: the root's /etc, not the host's
    base = http_server({"/f": (200, "inside\n")})
    run = real(dl("/link/via-link", base + "/f"), root)
    assert run.status == "ok", run.error
    assert (root / "etc" / "via-link").read_text() == "inside\n"


# -- idempotency -------------------------------------------------------------------------


def test_second_download_of_the_same_bytes_changes_nothing(root: Path, http_server) -> None:
    base = http_server({"/f": (200, "same\n")})
    step = dl("/etc/f", base + "/f", permissions=0o600)
    assert real(step, root).entry.changed
    before = full_state(root / "etc" / "f")
    again = real(step, root)
    assert again.status == "ok" and not again.entry.changed and again.changes == []
    assert full_state(root / "etc" / "f") == before  # not even rewritten
    assert leftovers(root) == []


def test_same_bytes_but_another_mode_only_changes_the_mode(root: Path, http_server) -> None:
    base = http_server({"/f": (200, "same\n")})
    real(dl("/etc/f", base + "/f"), root)
    ino = os.lstat(root / "etc" / "f").st_ino
    run = real(dl("/etc/f", base + "/f", permissions=0o600), root)
    assert [type(c) for c in run.changes] == [SetAttrs]
    assert attrs(root / "etc" / "f")[0] == 0o600 and os.lstat(root / "etc" / "f").st_ino == ino


def test_changed_remote_content_replaces_the_file(root: Path, http_server) -> None:
    base = http_server({"/f": (200, "v1\n")})
    real(dl("/etc/f", base + "/f"), root)
    http_server({"/f": (200, "v2\n")})
    run = real(dl("/etc/f", base + "/f"), root)
    assert run.entry.changed and (root / "etc" / "f").read_text() == "v2\n"


# -- failures ------------------------------------------------------------------------------


def test_http_error_fails_the_entry_keeps_the_old_file_and_the_others_run(
        root: Path, http_server) -> None:
    old = root / "etc" / "f"
    old.write_text("keep me\n")
    before = full_state(old)
    base = http_server({"/ok": (200, "fine\n")})
    run = real({"downloads": [{"path": "/etc/f", "url": base + "/missing"},
                              {"path": "/etc/g", "url": base + "/ok"}]}, root)
    assert run.status == "failed"
    assert run.error == f"/etc/f: cannot fetch {base}/missing: HTTP 404 Not Found"
    assert full_state(old) == before
    assert (root / "etc" / "g").read_text() == "fine\n"
    assert leftovers(root) == []


def test_failed_download_makes_no_parent_directories(root: Path, http_server) -> None:
    base = http_server()
    run = real(dl("/opt/new/dir/f", base + "/missing"), root)
    assert run.status == "failed" and not (root / "opt").exists()


def test_unreachable_host_fails_with_the_url(root: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = real(dl("/etc/f", f"http://127.0.0.1:{port}/f"), root)
    assert run.status == "failed"
    assert f"cannot fetch http://127.0.0.1:{port}/f" in run.error and "refused" in run.error


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/f", "/etc/passwd"])
def test_only_http_and_https_urls_are_downloaded(root: Path, url: str) -> None:
    run = real(dl("/etc/f", url), root)
    assert run.status == "failed" and "only http:// and https://" in run.error
    assert not (root / "etc" / "f").exists()


def test_a_password_in_the_url_never_reaches_the_report(root: Path, http_server) -> None:
    base = http_server({"/f": (200, "x")}).replace("http://", "http://ops:hunter22@")
    ok = real(dl("/a", base + "/f"), root)
    bad = real(dl("/b", base + "/missing"), root)
    assert "ops:********@" in ok.entry.changes[0] and "ops:********@" in bad.error
    assert "hunter22" not in repr(ok.entry) + repr(bad.entry)


def test_no_response_within_the_fetch_timeout_fails(root: Path, http_server,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC 8: a fetch gives up when no progress is made (EDGEINIT_FETCH_TIMEOUT)."""
    monkeypatch.setenv("EDGEINIT_FETCH_TIMEOUT", "0.3")
    base = http_server({"/slow": (200, "late", 3.0)})
    run = real(dl("/etc/f", base + "/slow"), root)
    assert run.status == "failed" and "no response within 0.3 s" in run.error
    assert not (root / "etc" / "f").exists() and leftovers(root) == []


def test_the_entry_timeout_bounds_the_wait_too(root: Path, http_server) -> None:
    base = http_server({"/slow": (200, "late", 3.0)})
    run = real(dl("/etc/f", base + "/slow", timeout=1), root)
    assert run.status == "failed" and "no response within 1 s" in run.error


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A TCP server on 127.0.0.1 that reads a request and hands the socket to a
    handler, for responses the http.server fixture cannot send (cut off, trickled)."""
    servers: list[socket.socket] = []
    stop = threading.Event()

    def start(handler: Callable[[socket.socket], None]) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        srv.settimeout(0.2)
        servers.append(srv)

        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    with contextlib.suppress(OSError):
                        handler(conn)

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    stop.set()
    for srv in servers:
        srv.close()


def test_a_body_cut_short_fails_and_keeps_the_old_file(root: Path, raw_server) -> None:
    old = root / "etc" / "f"
    old.write_text("old\n")
    before = full_state(old)
    base = raw_server(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                                          b"only ten b"))
    run = real(dl("/etc/f", base + "/f"), root)
    assert run.status == "failed" and "closed 90 bytes before the end" in run.error
    assert full_state(old) == before and leftovers(root) == []


def test_the_entry_timeout_bounds_the_whole_download(root: Path, raw_server) -> None:
    """A body that keeps trickling never trips the no-progress bound; `timeout` (yip:
    the client's total timeout) still ends it."""
    gone = threading.Event()

    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            if gone.wait(0.1):
                return
            conn.sendall(b"x")

    base = raw_server(trickle)
    try:
        run = real(dl("/etc/f", base + "/f", timeout=1), root)
    finally:
        gone.set()
    assert run.status == "failed" and "not complete within the entry's timeout" in run.error
    assert not (root / "etc" / "f").exists() and leftovers(root) == []


def test_a_full_disk_fails_and_leaves_the_old_file_and_no_temp(root: Path,
                                                              http_server) -> None:
    with small_tmpfs(root / "small", "64k") as small:
        old = small / "f"
        old.write_text("old\n")
        before = full_state(old)
        base = http_server({"/big": (200, b"z" * (1024 * 1024))})
        run = real(dl("/small/f", base + "/big"), root)
        assert run.status == "failed"
        assert "/small/f: cannot write the download of" in run.error and "space" in run.error
        assert full_state(old) == before
        assert sorted(os.listdir(small)) == ["f"]


def test_a_large_body_is_streamed_not_held_in_memory(root: Path, http_server) -> None:
    import tracemalloc

    body = bytes(range(256)) * (32 * 1024)  # 8 MiB
    base = http_server({"/big": (200, body)})
    tracemalloc.start()
    try:
        run = real(dl("/var/big.bin", base + "/big"), root)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert run.status == "ok", run.error
    assert (root / "var" / "big.bin").read_bytes() == body
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes for an 8 MiB body"


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate: (base URL, cert)."""
    import http.server
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"secure\n")

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # the refused handshake of the untrusted test

    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_tls_certificates_are_verified(root: Path, https_server) -> None:
    base, _ = https_server
    run = real(dl("/etc/f", base + "/f"), root)
    assert run.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in run.error
    assert not (root / "etc" / "f").exists()


def test_a_trusted_certificate_is_accepted(root: Path, https_server,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    base, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the system trust store, as OpenSSL reads it
    run = real(dl("/etc/f", base + "/f"), root)
    assert run.status == "ok", run.error
    assert (root / "etc" / "f").read_text() == "secure\n"


# -- dry run ---------------------------------------------------------------------------------


def test_dry_run_fetches_read_only_and_shows_a_diff(root: Path, http_server) -> None:
    (root / "etc" / "f").write_text("a=1\n")
    base = http_server({"/f": (200, "a=2\n")})
    run = run_step(dl("/etc/f", base + "/f"), root, dry_run=True)
    assert run.status == "ok" and run.entry.changed
    assert "-a=1\n+a=2\n" in run.entry.diff
    assert (root / "etc" / "f").read_text() == "a=1\n" and leftovers(root) == []


def test_dry_run_of_a_current_file_reports_no_change(root: Path, http_server) -> None:
    (root / "etc" / "f").write_text("same\n")
    os.chmod(root / "etc" / "f", 0o644)
    base = http_server({"/f": (200, "same\n")})
    run = run_step(dl("/etc/f", base + "/f"), root, dry_run=True)
    assert run.status == "ok" and not run.entry.changed


def test_dry_run_summarises_a_large_or_binary_body(root: Path, http_server) -> None:
    base = http_server({"/big": (200, b"\0" * 200_000)})
    run = run_step(dl("/opt/big", base + "/big"), root, dry_run=True)
    assert run.entry.changed and "@@ downloaded content: absent -> 200000 bytes @@" in \
        run.entry.diff
    assert not (root / "opt").exists() and leftovers(root) == []


def test_dry_run_masks_a_file_not_readable_by_others(root: Path, http_server) -> None:
    base = http_server({"/token": (200, "TOKEN=abc123\n")})
    run = run_step(dl("/etc/token", base + "/token", permissions=0o600), root, dry_run=True)
    assert "abc123" not in run.entry.diff and "content masked" in run.entry.diff


def test_dry_run_fails_like_the_real_run_for_a_missing_url(root: Path, http_server) -> None:
    base = http_server()
    run = run_step(dl("/etc/f", base + "/missing"), root, dry_run=True)
    assert run.status == "failed" and "HTTP 404" in run.error
