"""Shared fixtures: scratch target roots, a runnable shell inside them, the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
REFERENCE = REPO.parent / "shared" / "reference"
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (chroot, chown to other ids)")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def _ldd_paths(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    paths = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/") and os.path.exists(p):
                paths.append(p)
    return paths


def install_shell(root: Path) -> None:
    """Put /bin/sh (dash, with its libraries) into `root`, so chrooted commands run.

    Only shell builtins are available inside (echo, printf, test, exit, redirections).
    """
    dash = shutil.which("dash") or "/bin/sh"
    dash = os.path.realpath(dash)
    for src in [dash, *_ldd_paths(dash)]:
        dest = root / src.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(src), dest)
    (root / "bin").mkdir(exist_ok=True)
    sh = root / "bin" / "sh"
    if not sh.exists():
        os.symlink(os.path.relpath(root / dash.lstrip("/"), sh.parent), sh)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "64k") -> Iterator[Path]:
    """A tiny tmpfs mounted at `where` (made if missing): a real full disk for tests.

    Skips the test when not root or when mounting is not allowed here.
    """
    if not IS_ROOT:
        pytest.skip("needs root to mount a small tmpfs (a real full disk)")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(where)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """An empty target root with a minimal /etc (hosts, os-release, machine-id)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
    (root / "etc" / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nID=debian\n')
    (root / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    return root


@pytest.fixture
def shell_target(target: Path) -> Path:
    """`target` with a working /bin/sh (commands and `if:` run chrooted into it)."""
    if not IS_ROOT:
        pytest.skip("needs root: commands under --root run chrooted")
    install_shell(target)
    return target


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private EDGEINIT_STATE_DIR, so tests never touch /run/edgeinit."""
    d = tmp_path / "state"
    monkeypatch.setenv("EDGEINIT_STATE_DIR", str(d))
    return d


@pytest.fixture
def empty_cmdline(tmp_path: Path) -> Path:
    p = tmp_path / "cmdline"
    p.write_text("")
    return p


@pytest.fixture
def cli(state_dir: Path, empty_cmdline: Path) -> Callable[..., Result]:
    """Run `edgeinit ARGS` in-process; `run` gets `--cmdline <empty file>` unless given."""
    from edgeinit.cli import main

    def call(*args: str, stdin: str | None = None) -> Result:
        argv = [str(a) for a in args]
        if argv and argv[0] == "run" and "--cmdline" not in argv:
            argv += ["--cmdline", str(empty_cmdline)]
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as e:
                    code = int(e.code or 0)
        finally:
            sys.stdin = old_stdin
        return Result(code, out.getvalue(), err.getvalue())

    return call


@pytest.fixture
def cli_process(state_dir: Path, empty_cmdline: Path) -> Callable[..., Result]:
    """Run `python -m edgeinit ARGS` as a real process."""

    def call(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
        argv = [str(a) for a in args]
        if argv and argv[0] == "run" and "--cmdline" not in argv:
            argv += ["--cmdline", str(empty_cmdline)]
        full_env = {**os.environ, "EDGEINIT_STATE_DIR": str(state_dir), **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "edgeinit", *argv], input=stdin,
                              capture_output=True, text=True, env=full_env, check=False,
                              cwd=REPO, timeout=120)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return call


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write("conf/a.yaml", text) -> path under tmp_path/src."""

    def _write(rel: str, text: str) -> Path:
        p = tmp_path / "src" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    return _write


@pytest.fixture
def http_server() -> Iterator[Callable[..., str]]:
    """A real HTTP server on 127.0.0.1 serving routes: serve({"/a.yaml": (200, body)})."""
    import http.server
    import threading
    import time as time_mod

    routes: dict[str, tuple[int, bytes, float]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, delay = routes.get(self.path, (404, b"not found", 0.0))
            if delay:
                time_mod.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that gave up (timeout tests) is expected, not news

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()

    def serve(new_routes: dict[str, tuple] | None = None) -> str:
        for path, spec in (new_routes or {}).items():
            status, body, *rest = spec
            routes[path] = (status, body.encode() if isinstance(body, str) else body,
                            rest[0] if rest else 0.0)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    server.shutdown()
    server.server_close()


PERMISSIVE_POLICY = """
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
"""


@pytest.fixture
def private_bus(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A real dbus-daemon on a socket in a temporary directory.

    start() uses a permissive policy; start(policy=XML) takes <policy> elements (the
    real edgeinit policy, say); start(include=PATH) includes a policy file as the
    system bus does. Returns the bus address (unix:path=...). Skips without dbus-daemon.
    """
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed (Debian package dbus)")
    procs: list[subprocess.Popen[str]] = []

    def start(policy: str | None = None, include: str | Path | None = None) -> str:
        n = len(procs)
        sock = tmp_path / f"bus{n}.sock"
        conf = tmp_path / f"bus{n}.conf"
        extra = f"<include>{include}</include>" if include else ""
        conf.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            f"<busconfig><type>system</type><listen>unix:path={sock}</listen>"
            "<auth>EXTERNAL</auth>"
            f"{policy if policy is not None else PERMISSIVE_POLICY}{extra}</busconfig>\n")
        proc = subprocess.Popen([daemon, f"--config-file={conf}", "--nofork", "--nopidfile",
                                 "--print-address"], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        if not address:
            pytest.fail(f"dbus-daemon did not start with {conf}")
        return address

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
