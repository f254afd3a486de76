"""Commands in the target: `sh -c`, chrooted when the root is not `/`, always bounded."""

from __future__ import annotations

import contextlib
import os
import signal

from edgeinit.model import Record

DEFAULT_TIMEOUT = 900.0  # seconds; EDGEINIT_COMMAND_TIMEOUT overrides
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CommandResult(Record):
    returncode: int
    output: str
    timed_out: bool = False
    started: bool = True  # False when no shell could be started at all

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def command_timeout() -> float:
    raw = os.environ.get("EDGEINIT_COMMAND_TIMEOUT", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def run_shell(root: str, command: str, timeout: float | None = None) -> CommandResult:
    """Run `command` with /bin/sh inside `root`, output (stdout+stderr) captured."""
    import subprocess  # the run path pays for it only when a step runs something

    timeout = command_timeout() if timeout is None else timeout
    env = dict(os.environ)
    env.setdefault("PATH", SAFE_PATH)
    preexec = None
    if os.path.realpath(root) != "/":
        if not os.path.exists(os.path.join(root, "bin/sh")):
            return CommandResult(127, f"no /bin/sh in the root {root}", started=False)

        def preexec() -> None:  # runs in the child, before exec
            os.chroot(root)
            os.chdir("/")

    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            start_new_session=True,
            preexec_fn=preexec,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return CommandResult(126, f"cannot start /bin/sh: {e}", started=False)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, _ = proc.communicate()
        text = out.decode("utf-8", "replace") if out else ""
        return CommandResult(-1, text + f"\n(killed after {timeout:g} s)", timed_out=True)
    text = out.decode("utf-8", "replace") if out else ""
    return CommandResult(proc.returncode, text)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


class ToolError(Exception):
    """A program that could not be started or did not finish in time.

    `kind` is "missing" (not installed), "start" (could not be started) or "timeout";
    callers reword it in their own terms (GitError, DiskError, ...).
    """

    def __init__(self, kind: str, program: str, message: str, timeout: float = 0.0) -> None:
        super().__init__(message)
        self.kind = kind
        self.program = program
        self.timeout = timeout


class ToolResult(Record):
    """What a bounded program run left: its exit status and both output streams."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def message(self) -> str:
        """stderr, else stdout, stripped: what to quote when the program failed."""
        return self.err.strip() or self.out.strip()


def run_tool(
    argv: list[str],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    input: bytes | str | None = None,
) -> ToolResult:
    """Run a program of the machine edgeinit runs on (not chrooted), bounded.

    Output is captured; stdin is `input` or nothing. On timeout the whole process group
    is killed. Raises ToolError when the program is missing, cannot start or hangs; a
    non-zero exit status is the caller's to judge.
    """
    import subprocess

    timeout = command_timeout() if timeout is None else timeout
    program = os.path.basename(argv[0])
    data = input.encode() if isinstance(input, str) else input
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
            start_new_session=True)
    except FileNotFoundError:
        raise ToolError("missing", program, f"{program} is not installed") from None
    except OSError as e:
        raise ToolError("start", program, f"cannot run {program}: {e.strerror or e}") from None
    try:
        out, err = proc.communicate(input=data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        raise ToolError("timeout", program, f"{program} did not finish within {timeout:g} s",
                        timeout) from None
    return ToolResult(proc.returncode, out or b"", err or b"")
