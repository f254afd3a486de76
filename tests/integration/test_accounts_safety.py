"""The account files under stress (SPEC 7.10, issue #3): a crash after any write, another
process holding the shadow-utils lock, a real `useradd -R` racing with edgeinit, and
pwck/grpck on a copy of this machine's own /etc after entity edits.

The host's account files are only ever read (copied into scratch roots).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeinit.target import accounts as acc
from edgeinit.target import fs
from edgeinit.target.accounts import Table
from edgeinit.target.root import TargetRoot
from tests.conftest import REPO, needs_root

DAY = 20000
NAMES = ("passwd", "shadow", "group", "gshadow")

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "edge:x:1000:1000:Edge:/home/edge:/bin/sh\n"
          "old:x:1001:1001:Old:/home/old:/bin/sh\n")
SHADOW = ("root:*:19000:0:99999:7:::\n"
          "edge:!:19000:0:99999:7:::\n"
          "old:!:19000:0:99999:7:::\n")
GROUP = "root:x:0:\nsudo:x:27:edge,old\nedge:x:1000:\nold:x:1001:\noldgrp:x:1500:old\n"
GSHADOW = "root:*::\nsudo:*::edge,old\nedge:!::\nold:!::\noldgrp:!::old\n"
REY_HASH = "$6$fixedsaltfixeds$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVAC"

# Adds, changes and deletes across all four files, in two steps.
MIXED = f"""\
stages:
  boot:
    - name: identities
      ensure_entities:
        - entity: |
            kind: group
            group_name: admin
            password: x
            gid: 900
            users: edge
        - entity: |
            kind: user
            username: rey
            group: admin
            homedir: /home/rey
            shell: /bin/bash
        - entity: |
            kind: shadow
            username: rey
            password: "{REY_HASH}"
        - entity: |
            kind: shadow
            username: root
            password: "!"
      delete_entities:
        - entity: |
            kind: user
            username: old
        - entity: |
            kind: group
            group_name: oldgrp
    - name: more
      ensure_entities:
        - entity: |
            kind: group
            group_name: sudo
            users: rey
"""


@pytest.fixture(autouse=True)
def fixed_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acc, "days_since_epoch", lambda now=None: DAY)


def make_root(where: Path) -> Path:
    (where / "etc").mkdir(parents=True)
    for name, text in zip(NAMES, (PASSWD, SHADOW, GROUP, GSHADOW), strict=True):
        (where / "etc" / name).write_text(text)
    return where


def contents(root: Path) -> dict[str, str]:
    return {n: (root / "etc" / n).read_text() for n in NAMES}


def consistent(files: dict[str, str]) -> bool:
    """Every passwd user has a shadow line, every group a gshadow line."""
    def names(name: str, kind: str) -> set[str]:
        return set(Table("/x", files[name], kind).names())

    return (names("passwd", "user") <= names("shadow", "shadow")
            and names("group", "group") <= names("gshadow", "gshadow"))


def debris(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(fs.TEMP_SUFFIX)]


class Crash(BaseException):
    """The process dies here (not an error anything may catch)."""


# -- crash consistency ----------------------------------------------------------------------

def test_crash_after_any_write_leaves_consistent_files_and_the_next_run_converges(
        cli, tmp_path, write, monkeypatch):
    src = write("mixed.yaml", MIXED)
    real_write = fs.atomic_write

    # The uninterrupted run: every write it makes, in order.
    clean = make_root(tmp_path / "clean")
    writes: list[tuple[str, bytes]] = []

    def recording(host_path: str, data: bytes, *args: object, **kwargs: object) -> None:
        writes.append((host_path, data))
        real_write(host_path, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fs, "atomic_write", recording)
    res = cli("run", "--stage", "boot", "--root", clean, src)
    monkeypatch.setattr(fs, "atomic_write", real_write)
    assert res.code == 0, res.err
    expected = contents(clean)
    assert "rey:x:1002:900:Created by entities:/home/rey:/bin/bash\n" in expected["passwd"]
    assert "old:" not in expected["passwd"] + expected["shadow"]
    assert expected["group"] == ("root:x:0:\nsudo:x:27:edge,rey\nedge:x:1000:\nold:x:1001:\n"
                                 "admin:x:900:edge\n")
    assert expected["gshadow"] == "root:*::\nsudo:*::edge,rey\nedge:!::\nold:!::\nadmin:!::edge\n"
    assert len(writes) >= 10

    for k in range(len(writes)):
        root = make_root(tmp_path / f"crash{k}")
        calls = 0

        def crashing(host_path: str, data: bytes, *args: object, limit: int = k,
                     **kwargs: object) -> None:
            nonlocal calls
            calls += 1
            if calls > limit:  # die half-way through this write: a partial temp file stays
                Path(fs.temp_path_for(host_path)).write_bytes(data[: len(data) // 2])
                raise Crash
            real_write(host_path, data, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(fs, "atomic_write", crashing)
        with pytest.raises(Crash):
            cli("run", "--stage", "boot", "--root", root, src)
        monkeypatch.setattr(fs, "atomic_write", real_write)

        # On disk: exactly the first k writes of the clean run, and consistent.
        replay = dict(zip(NAMES, (PASSWD, SHADOW, GROUP, GSHADOW), strict=True))
        for host_path, data in writes[:k]:
            name = Path(host_path).name
            if name in replay:
                replay[name] = data.decode()
        now = contents(root)
        assert now == replay, f"crash after {k} writes"
        assert consistent(now), f"crash after {k} writes: {now}"

        # The next run ends where the uninterrupted one did, with no temp file left.
        res = cli("run", "--stage", "boot", "--root", root, src)
        assert res.code == 0, res.err
        assert contents(root) == expected, f"crash after {k} writes"
        assert debris(root) == [], f"crash after {k} writes"


# -- the lock -------------------------------------------------------------------------------

@pytest.fixture
def lock_holder() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """hold(root): a child process holding the fcntl write lock on ROOT/etc/.pwd.lock
    until its stdin is closed."""
    children: list[subprocess.Popen[str]] = []

    def hold(root: Path) -> subprocess.Popen[str]:
        lock = root / "etc" / ".pwd.lock"
        child = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, os, sys\n"
             f"fd = os.open({str(lock)!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
             "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        return child

    yield hold
    for child in children:
        if child.poll() is None:
            child.communicate("", timeout=30)


ADMIN = ("stages:\n  boot:\n    - ensure_entities:\n        - entity: |\n"
         "            kind: group\n            group_name: admin\n            gid: 900\n")


def test_edgeinit_waits_for_the_lock_then_applies(tmp_path, write, state_dir, lock_holder):
    root = make_root(tmp_path / "root")
    src = write("admin.yaml", ADMIN)
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("")
    holder = lock_holder(root)
    run = subprocess.Popen(
        [sys.executable, "-m", "edgeinit", "run", "--stage", "boot", "--root", str(root),
         "--cmdline", str(cmdline), src],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "EDGEINIT_STATE_DIR": str(state_dir)})
    assert run.stderr is not None
    seen = []
    for line in run.stderr:  # ends by itself: edgeinit gives up after LOCK_TIMEOUT
        seen.append(line)
        if "waiting for /etc/.pwd.lock" in line:
            break
    assert any("waiting for /etc/.pwd.lock" in line for line in seen), seen
    assert contents(root)["group"] == GROUP  # nothing written while the lock is held
    holder.communicate("", timeout=30)  # release
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0, "".join(seen) + err
    assert contents(root)["group"] == GROUP + "admin::900:\n"


def test_lock_held_past_the_timeout_fails_the_step_clearly(cli, tmp_path, write, monkeypatch,
                                                          lock_holder):
    root = make_root(tmp_path / "root")
    monkeypatch.setattr(acc, "LOCK_TIMEOUT", 0.3)
    lock_holder(root)
    res = cli("run", "--stage", "boot", "--root", root, "--json", write("a.yaml", ADMIN))
    assert res.code == 1
    (step,) = res.json()["steps"]
    assert step["status"] == "failed"
    assert step["error"] == ("cannot edit the accounts: /etc/.pwd.lock is held by another "
                             "process (waited 0.3 s)")
    assert contents(root)["group"] == GROUP and debris(root) == []
    assert not (root / "etc" / "group-").exists()


needs_useradd = pytest.mark.skipif(shutil.which("useradd") is None,
                                   reason="shadow-utils' useradd is not installed")


def blocked_on_lock(pid: int) -> bool:
    """Whether `pid` waits for a POSIX lock (a `->` line of /proc/locks)."""
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[5] == str(pid) for line in f)


@needs_root
@needs_useradd
def test_useradd_waits_while_edgeinit_holds_the_lock(tmp_path):
    """The lock edgeinit takes is the one shadow-utils takes: `useradd -R ROOT` blocks
    on it (seen in /proc/locks) and goes on once edgeinit lets go."""
    root = make_root(tmp_path / "root")
    with acc.pwd_lock(TargetRoot(str(root))):
        useradd = subprocess.Popen(["useradd", "-R", str(root), "-M", "alice"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30  # a bound for a wait, not a timing assertion
        while not blocked_on_lock(useradd.pid):
            assert useradd.poll() is None, useradd.communicate()[0]
            assert time.monotonic() < deadline, "useradd never waited for the lock"
            time.sleep(0.02)
        assert "alice" not in contents(root)["passwd"]
    out, _ = useradd.communicate(timeout=60)
    assert useradd.returncode == 0, out
    files = contents(root)
    assert "\nalice:x:" in files["passwd"] and "\nalice:" in files["shadow"]
    assert consistent(files)


@needs_root
@needs_useradd
def test_useradd_racing_with_edgeinit_loses_nothing(cli, tmp_path, write):
    """useradd -R and edgeinit edit the same root at once, ten times each: every user
    and group of both ends up there and the files stay consistent."""
    root = make_root(tmp_path / "root")
    (root / "etc" / "login.defs").write_text("UID_MIN 2000\nGID_MIN 2000\n")
    src = write("race.yaml", "stages:\n  boot:\n    - ensure_entities:\n" + "".join(
        f"        - entity: |\n            kind: group\n            group_name: eg{i}\n"
        f"        - entity: |\n            kind: user\n            username: eu{i}\n"
        f"            group: eg{i}\n"
        for i in range(10)))
    errors: list[str] = []

    def useradds() -> None:
        for i in range(10):
            proc = subprocess.run(["useradd", "-R", str(root), "-M", f"ua{i}"],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)

    thread = threading.Thread(target=useradds)
    thread.start()
    res = cli("run", "--stage", "boot", "--root", root, src)
    thread.join(timeout=120)
    assert res.code == 0, res.err
    assert errors == []
    files = contents(root)
    for i in range(10):
        for name, file in ((f"ua{i}", "passwd"), (f"ua{i}", "shadow"), (f"eg{i}", "group"),
                           (f"eg{i}", "gshadow"), (f"eu{i}", "passwd"), (f"eu{i}", "shadow")):
            assert f"\n{name}:" in files[file], (name, file)
    assert consistent(files)
    uids = [row[2] for row in Table("/x", files["passwd"], "user").rows()]
    assert len(uids) == len(set(uids))  # no uid handed out twice


# -- pwck / grpck on a copy of this machine's /etc ----------------------------------------------

def copy_of_host_etc(where: Path) -> Path:
    for name in (*NAMES, "login.defs"):
        if not os.path.exists(f"/etc/{name}"):
            pytest.skip(f"this machine has no /etc/{name}")
    (where / "etc").mkdir(parents=True)
    for name in (*NAMES, "login.defs"):
        src = Path("/etc") / name
        dest = where / "etc" / name
        shutil.copy2(src, dest)  # reads the host's file; never writes it
        st = src.stat()
        os.chown(dest, st.st_uid, st.st_gid)
    # What the new users will point at, so that pwck has nothing to say about them.
    for d in ("home/rey", "home/tmpuser", "bin"):
        (where / d).mkdir(parents=True, exist_ok=True)
    for sh in ("bin/bash", "bin/sh"):
        (where / sh).write_text("")
        os.chmod(where / sh, 0o755)
    return where


def check(tool: str, root: Path) -> tuple[int, list[str]]:
    proc = subprocess.run([tool, "-r", "-R", str(root)], capture_output=True, text=True,
                          check=False)
    return proc.returncode, sorted(set((proc.stdout + proc.stderr).splitlines()))


ENTITY_EDITS = f"""\
stages:
  boot:
    - name: add
      ensure_entities:
        - entity: |
            kind: group
            group_name: admin
            password: x
            gid: 900
        - entity: |
            kind: user
            username: rey
            group: admin
            homedir: /home/rey
            shell: /bin/bash
        - entity: |
            kind: shadow
            username: rey
            password: rey
            last_changed: now
        - entity: |
            kind: group
            group_name: tmpgrp
            users: rey
        - entity: |
            kind: user
            username: tmpuser
            group: tmpgrp
            homedir: /home/tmpuser
            shell: /bin/sh
        - entity: |
            kind: group
            group_name: admin
            users: rey,tmpuser
        - entity: |
            kind: gshadow
            name: admin
            password: "!"
            administrators: rey
            members: rey,tmpuser
        - entity: |
            kind: shadow
            username: root
            password: "{REY_HASH}"
    - name: remove
      delete_entities:
        - entity: |
            kind: user
            username: tmpuser
        - entity: |
            kind: group
            group_name: tmpgrp
        - entity: |
            kind: group
            group_name: no-such-group
"""


@needs_root
@pytest.mark.skipif(shutil.which("pwck") is None or shutil.which("grpck") is None,
                    reason="shadow-utils' pwck/grpck are not installed")
def test_pwck_and_grpck_find_no_new_problem_after_entity_edits(cli, tmp_path, write):
    root = copy_of_host_etc(tmp_path / "root")
    baseline = {tool: check(tool, root) for tool in ("pwck", "grpck")}
    before = contents(root)
    src = write("edits.yaml", ENTITY_EDITS)
    res = cli("run", "--stage", "boot", "--root", root, "--json", src)
    assert res.code == 0, res.out + res.err
    after = contents(root)
    assert after != before
    assert "\nrey:x:" in after["passwd"] and "tmpuser" not in "".join(after.values())
    assert "\nadmin:x:900:rey\n" in after["group"] and "\nadmin:!:rey:rey\n" in after["gshadow"]
    for tool, (code, lines) in baseline.items():
        new_code, new_lines = check(tool, root)
        assert set(new_lines) - set(lines) == set(), (tool, new_lines)
        assert new_code <= code, (tool, new_code, code)
    # A second run (which adds tmpuser again and removes it again) ends in the same place.
    res = cli("run", "--stage", "boot", "--root", root, "--json", src)
    assert res.code == 0 and contents(root) == after
    assert [s["changed"] for s in res.json()["steps"]] == [True, True]


@needs_root
@pytest.mark.skipif(shutil.which("grpck") is None, reason="grpck is not installed")
def test_grpck_notices_what_edgeinit_avoids(tmp_path):
    """The check above can fail: a group line without its gshadow line, written by
    hand, is a problem grpck reports."""
    root = copy_of_host_etc(tmp_path / "root")
    _, lines = check("grpck", root)
    with open(root / "etc" / "group", "a") as f:
        f.write("lonely:x:4242:\n")
    code, new_lines = check("grpck", root)
    assert set(new_lines) - set(lines) and code != 0
