"""`edgeinit mount-layout` for real: mounts as root in a private mount namespace.

Each "boot" is one `unshare --mount --propagation private` process: it mounts a tmpfs
on /run (so the layout's /run/overlay stays in the namespace), runs `python -m edgeinit
mount-layout` on a fake sysroot in a temporary directory, then reports what it sees
(findmnt, file contents, modes, owners, xattrs) as JSON. When the process ends, the
namespace and all its mounts are gone; the ext4 images labelled COS_PERSISTENT /
COS_OEM sit on loop devices (one image per filesystem: `losetup -P` makes no partition
nodes here) that are detached in `finally`. udev does not run here, so the labels are
found by probing with blkid.

Without root, unshare, losetup, mkfs.ext4, blkid or rsync, the namespace tests skip
and say why. The executor's failure handling (a failing fsck, a failed dependency, a
failed seeding) is also tested without root, with a fake command runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeinit.layout import mount as layout_mount
from edgeinit.layout.plan import plan_layout
from tests.conftest import IS_ROOT, REPO

TOOLS = ("unshare", "losetup", "mkfs.ext4", "blkid", "rsync", "findmnt", "mount", "umount")

# ------------------------------------------------------------------ the namespace harness


@pytest.fixture(scope="module")
def can_mount() -> None:
    if not IS_ROOT:
        pytest.skip("needs root: loop devices and mounts in a private mount namespace")
    for tool in TOOLS:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (rsync: apt-get install rsync)")
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "d=$(mktemp -d) && mkdir $d/l $d/u $d/w $d/m && mount -t overlay overlay "
         "-o lowerdir=$d/l,upperdir=$d/u,workdir=$d/w $d/m; rc=$?; umount $d/m; "
         "rm -rf $d; exit $rc"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount an overlay in a private mount namespace here: "
                    f"{probe.stderr.strip()}")


def _devices_labelled(label: str) -> list[str]:
    out = subprocess.run(["blkid", "-c", "/dev/null", "-t", f"LABEL={label}", "-o", "device"],
                         capture_output=True, text=True, check=False).stdout
    return out.split()


@contextlib.contextmanager
def loop_images(tmp_path: Path, images: dict[str, Path | None]) -> Iterator[dict[str, str]]:
    """ext4 images (label -> directory to fill it from, or None) on loop devices;
    label -> device. Detached at the end, whatever happens."""
    for label in images:
        others = _devices_labelled(label)
        if others:
            pytest.skip(f"another device is labelled {label} ({', '.join(others)}); "
                        "the layout would find it too")
    attached: dict[str, str] = {}
    try:
        for label, content in images.items():
            img = tmp_path / f"{label}.img"
            argv = ["mkfs.ext4", "-q", "-F", "-L", label]
            if content is not None:
                argv += ["-d", str(content)]
            subprocess.run([*argv, str(img), "64M"], check=True, capture_output=True)
            proc = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                pytest.skip(f"no loop device here: {proc.stderr.strip()}")
            attached[label] = proc.stdout.strip()
        yield attached
    finally:
        for device in attached.values():
            subprocess.run(["losetup", "-d", device], check=False)


INSPECT = r'''
import json, os, subprocess, sys
root, paths = sys.argv[1], json.loads(sys.argv[2])
out = {"mounts": json.loads(subprocess.run(
    ["findmnt", "--json", "--list", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS"],
    capture_output=True, text=True).stdout)["filesystems"], "files": {}}
for rel in paths:
    p = rel if rel.startswith("/run/") else os.path.join(root, rel.lstrip("/"))
    try:
        st = os.lstat(p)
    except OSError:
        out["files"][rel] = None
        continue
    entry = {"mode": oct(st.st_mode & 0o7777), "uid": st.st_uid, "gid": st.st_gid,
             "xattrs": {}}
    for name in os.listxattr(p, follow_symlinks=False):
        entry["xattrs"][name] = os.getxattr(p, name, follow_symlinks=False).hex()
    if os.path.isfile(p):
        entry["content"] = open(p, encoding="utf-8", errors="replace").read()
    out["files"][rel] = entry
print(json.dumps(out))
'''


class Boot:
    """The outcome of one boot: the command's exit status and output, and the
    namespace's mounts and files as seen right after it."""

    def __init__(self, rc: int, out: str, err: str, seen: dict, root: Path) -> None:
        self.rc, self.out, self.err = rc, out, err
        self.seen = seen
        self.root = str(root)

    def mounts(self) -> list[dict]:
        """Mounts under the sysroot or on /run/overlay, in mount order, targets made
        relative to the new root."""
        out = []
        for m in self.seen["mounts"]:
            target = m["target"]
            if target.startswith(self.root + "/"):
                out.append({**m, "target": target[len(self.root):]})
            elif target == "/run/overlay":
                out.append(m)
        return out

    def mount(self, target: str) -> dict:
        found = [m for m in self.mounts() if m["target"] == target]
        assert found, f"{target} is not mounted: {self.mounts()}\n{self.err}"
        return found[-1]

    def file(self, rel: str) -> dict | None:
        return self.seen["files"][rel]

    def text(self, rel: str) -> str:
        entry = self.file(rel)
        assert entry is not None, f"{rel} does not exist\n{self.err}"
        return entry["content"]


def boot(tmp_path: Path, root: Path, env_text: str, *, cmdline: str = "",
         after: str = "", inspect: tuple[str, ...] = ()) -> Boot:
    """Run mount-layout on `root` in a fresh private mount namespace; `after` is shell
    run in that namespace after it (edits through the mounts)."""
    n = len(list(tmp_path.glob("boot*")))
    work = tmp_path / f"boot{n}"
    work.mkdir()
    (work / "layout.env").write_text(env_text)
    (work / "cmdline").write_text(cmdline)
    (work / "inspect.py").write_text(INSPECT)
    script = textwrap.dedent("""\
        set -u
        mount -t tmpfs -o mode=0755 tmpfs /run
        "$PYTHON" -m edgeinit mount-layout --sysroot "$ROOT" --env-file "$WORK/layout.env" \\
            --cmdline "$WORK/cmdline" >"$WORK/stdout" 2>"$WORK/stderr"
        echo $? >"$WORK/rc"
        """) + textwrap.dedent(after) + textwrap.dedent("""\
        "$PYTHON" "$WORK/inspect.py" "$ROOT" "$PATHS"
        """)
    env = {**os.environ, "PYTHON": sys.executable, "ROOT": str(root), "WORK": str(work),
           "PATHS": json.dumps(list(inspect)),
           "EDGEINIT_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300, check=False)
    assert proc.returncode == 0, f"the namespace script failed: {proc.stderr}"
    rc_text = (work / "rc").read_text().strip()
    return Boot(int(rc_text), (work / "stdout").read_text(), (work / "stderr").read_text(),
                json.loads(proc.stdout), root)


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec",
                           textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, check=False)


def posix_acl(user_id: int) -> bytes:
    """A system.posix_acl_access value: user::rw- user:ID:r-- group::r-- mask::r--
    other::---, in the kernel's xattr format (no setfacl needed)."""
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, user_id), (0x04, 4, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def make_sysroot(tmp_path: Path) -> Path:
    """A small image: /etc with ssh config and a host key (mode, owner, xattr, ACL),
    /var with logs, /srv, /usr/local with a file the volume hides, empty /oem."""
    root = tmp_path / "sysroot"
    for d in ("etc/ssh", "var/lib/rancher", "var/log", "srv", "usr/local/bin", "oem", "home"):
        (root / d).mkdir(parents=True)
    (root / "etc/fstab").write_text("# the image's fstab\n")
    (root / "etc/hostname").write_text("image\n")
    (root / "etc/ssh/sshd_config").write_text("PermitRootLogin no\n")
    key = root / "etc/ssh/ssh_host_ed25519_key"
    key.write_text("not really a key\n")
    os.chown(key, 123, 456)
    key.chmod(0o600)
    os.setxattr(key, "user.edgeinit", b"seeded")
    (root / "var/log/image.log").write_text("from the image\n")
    (root / "var/lib/rancher/k3s.yaml").write_text("image: k3s\n")
    (root / "srv/www").write_text("srv\n")
    (root / "usr/local/bin/hidden").write_text("hidden by COS_PERSISTENT\n")
    return root


# ------------------------------------------------------------------ the layout, live

LAYOUT_ENV = """\
OVERLAY="tmpfs:25%"
PERSISTENT_STATE_BIND="true"
PERSISTENT_STATE_PATHS="/etc/ssh /var/lib/rancher /var/log"
RW_PATHS="/var /etc /srv"
VOLUMES="LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local LABEL=COS_LONGHORN:/var/lib/longhorn"
"""

INSPECTED = ("/etc/fstab", "/etc/hostname", "/etc/ssh/sshd_config",
             "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/new_in_image",
             "/etc/systemd/system/etc.mount.d/override.conf", "/var/log/image.log",
             "/var/lib/rancher/k3s.yaml", "/var/lib/longhorn/marker", "/oem/90_custom.yaml",
             "/usr/local/bin/hidden", "/usr/local/.state/etc-ssh.bind/ssh_host_ed25519_key",
             "/usr/local/.state/etc-ssh.bind/sshd_config", "/etc/edited-in-boot-1",
             "/run/overlay/etc.overlay/upper/fstab", "/srv/www")


@pytest.mark.root
def test_layout_mounts_seeds_state_and_keeps_persisted_edits_across_boots(
        can_mount: None, tmp_path: Path) -> None:
    root = make_sysroot(tmp_path)
    acl = posix_acl(4321)
    key = root / "etc/ssh/ssh_host_ed25519_key"
    try:
        os.setxattr(key, "system.posix_acl_access", acl)
        has_acl = True
    except OSError:
        has_acl = False  # the temp filesystem has no ACLs: that part is not checked
    oem = tmp_path / "oem-content"
    oem.mkdir()
    (oem / "90_custom.yaml").write_text("stages: {}\n")
    longhorn = tmp_path / "longhorn-content"
    longhorn.mkdir()
    (longhorn / "marker").write_text("on COS_LONGHORN\n")
    images = {"COS_OEM": oem, "COS_PERSISTENT": None, "COS_LONGHORN": longhorn}
    with loop_images(tmp_path, images) as devices:
        first = boot(tmp_path, root, LAYOUT_ENV, inspect=INSPECTED, after="""\
            echo "PasswordAuthentication no" >>"$ROOT/etc/ssh/sshd_config"
            echo ephemeral >"$ROOT/etc/edited-in-boot-1"
            """)
        assert first.rc == 0, first.out + first.err

        # overlays on /etc /var /srv, upper dirs on the tmpfs /run/overlay
        assert first.mount("/run/overlay")["fstype"] == "tmpfs"
        assert "size=" in first.mount("/run/overlay")["options"]
        for path in ("/etc", "/var", "/srv"):
            m = first.mount(path)
            assert m["fstype"] == "overlay"
            name = path.strip("/")
            assert f"upperdir=/run/overlay/{name}.overlay/upper" in m["options"]
            assert f"workdir=/run/overlay/{name}.overlay/work" in m["options"]
        assert first.text("/srv/www") == "srv\n"
        # volumes found by label (blkid: udev does not run here)
        assert first.mount("/oem")["source"] == devices["COS_OEM"]
        assert first.mount("/usr/local")["source"] == devices["COS_PERSISTENT"]
        assert first.text("/oem/90_custom.yaml") == "stages: {}\n"
        assert first.file("/usr/local/bin/hidden") is None
        # parent-first: the COS_LONGHORN volume under the /var overlay is mounted after
        # it and stays visible (the cos-toolkit's string sort mounts /var over it)
        order = [m["target"] for m in first.mounts()]
        assert order.index("/var") < order.index("/var/lib/longhorn")
        assert first.mount("/var/lib/longhorn")["source"] == devices["COS_LONGHORN"]
        assert first.text("/var/lib/longhorn/marker") == "on COS_LONGHORN\n"
        # state paths bound from the persistent volume, after /usr/local and their parent
        for path, name in (("/etc/ssh", "etc-ssh"), ("/var/lib/rancher", "var-lib-rancher"),
                           ("/var/log", "var-log")):
            m = first.mount(path)
            assert m["source"] == f"{devices['COS_PERSISTENT']}[/.state/{name}.bind]"
            assert order.index(path) > order.index("/usr/local")
            assert order.index(path) > order.index("/" + path.split("/")[1])
        # seeded from the image, with mode, owner, xattrs and ACL
        seeded = first.file("/usr/local/.state/etc-ssh.bind/ssh_host_ed25519_key")
        assert seeded is not None
        mode = "0o640" if has_acl else "0o600"  # the ACL's mask r-- shows as group bits
        assert oct(key.stat().st_mode & 0o7777) == mode
        assert (seeded["mode"], seeded["uid"], seeded["gid"]) == (mode, 123, 456)
        assert seeded["xattrs"]["user.edgeinit"] == b"seeded".hex()
        if has_acl:
            assert seeded["xattrs"]["system.posix_acl_access"] == acl.hex()
        assert first.text("/var/log/image.log") == "from the image\n"
        assert first.text("/var/lib/rancher/k3s.yaml") == "image: k3s\n"
        # the edit made through the bind landed in the state directory
        assert first.text("/usr/local/.state/etc-ssh.bind/sshd_config") == (
            "PermitRootLogin no\nPasswordAuthentication no\n")
        # fstab: written into the ephemeral /etc upper, the exact lines of the reference
        fstab = first.text("/etc/fstab")
        assert first.text("/run/overlay/etc.overlay/upper/fstab") == fstab
        lines = [line for line in fstab.splitlines() if not line.startswith("#")]
        assert lines[1:] == [
            "tmpfs /run/overlay tmpfs defaults,size=25% 0 0",
            "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0",
            "overlay /etc overlay defaults,lowerdir=/etc,upperdir=/run/overlay/etc.overlay/"
            "upper,workdir=/run/overlay/etc.overlay/work,x-systemd.requires-mounts-for="
            "/run/overlay",
            "overlay /srv overlay defaults,lowerdir=/srv,upperdir=/run/overlay/srv.overlay/"
            "upper,workdir=/run/overlay/srv.overlay/work,x-systemd.requires-mounts-for="
            "/run/overlay",
            "overlay /var overlay defaults,lowerdir=/var,upperdir=/run/overlay/var.overlay/"
            "upper,workdir=/run/overlay/var.overlay/work,x-systemd.requires-mounts-for="
            "/run/overlay",
            "/dev/disk/by-label/COS_PERSISTENT /usr/local auto defaults 0 0",
            "/dev/disk/by-label/COS_LONGHORN /var/lib/longhorn auto defaults 0 0",
            "/usr/local/.state/etc-ssh.bind /etc/ssh none defaults,bind 0 0",
            "/usr/local/.state/var-log.bind /var/log none defaults,bind 0 0",
            "/usr/local/.state/var-lib-rancher.bind /var/lib/rancher none defaults,bind 0 0",
        ]
        assert lines[0].endswith(" / auto ro 0 0")
        assert first.text("/etc/systemd/system/etc.mount.d/override.conf") == (
            "[Mount]\nLazyUnmount=true\n")
        # the image itself is untouched: all of that went to the overlays and volumes
        assert (root / "etc/fstab").read_text() == "# the image's fstab\n"
        assert not (root / "etc/systemd").exists()
        assert not (root / "etc/edited-in-boot-1").exists()
        assert (root / "etc/ssh/sshd_config").read_text() == "PermitRootLogin no\n"
        # the run report, for `edgeinit status`
        report = json.loads((tmp_path / "state" / "mount-layout.json").read_text())
        assert report["stage"] == "mount-layout" and report["ok"] is True
        by_name = {s["name"]: s for s in report["steps"]}
        assert by_name["volume /usr/local"]["status"] == "ok"
        assert by_name["state-bind /etc/ssh"]["source"].endswith("layout.env")
        assert all(s["status"] == "ok" for s in report["steps"])

        # between boots (everything unmounted: the namespace is gone): edit a file the
        # image also ships, in the state directory itself; the image gets a new file
        # and a changed one (an upgrade)
        edit = in_namespace(f"""\
            m=$(mktemp -d)
            mount {devices['COS_PERSISTENT']} "$m"
            echo "edited in the state" >"$m/.state/var-log.bind/image.log"
            touch -d 2001-01-01 "$m/.state/var-log.bind/image.log"
            umount "$m"
            rmdir "$m"
            """)
        assert edit.returncode == 0, edit.stderr
        (root / "etc/ssh/new_in_image").write_text("new\n")
        (root / "etc/ssh/sshd_config").write_text("PermitRootLogin no\nUpgraded yes\n")

        second = boot(tmp_path, root, LAYOUT_ENV, inspect=INSPECTED)
        assert second.rc == 0, second.out + second.err
        # persisted edits stay: rsync --ignore-existing seeded nothing over them
        assert second.text("/etc/ssh/sshd_config") == (
            "PermitRootLogin no\nPasswordAuthentication no\n")
        assert second.text("/var/log/image.log") == "edited in the state\n"
        # what the state lacked is seeded from the image
        assert second.text("/etc/ssh/new_in_image") == "new\n"
        # ephemeral edits are gone
        assert second.file("/etc/edited-in-boot-1") is None
        assert second.text("/etc/fstab") == fstab


@pytest.mark.root
def test_state_overlays_keep_their_upper_on_the_persistent_volume(
        can_mount: None, tmp_path: Path) -> None:
    root = make_sysroot(tmp_path)
    env = ('VOLUMES="LABEL=COS_PERSISTENT:/usr/local"\nRW_PATHS="/etc"\n'
           'PERSISTENT_STATE_PATHS="/etc/ssh"\n')
    seen = ("/etc/fstab", "/etc/ssh/sshd_config", "/etc/ssh/added",
            "/usr/local/.state/etc-ssh.overlay/upper/added")
    with loop_images(tmp_path, {"COS_PERSISTENT": None}) as devices:
        first = boot(tmp_path, root, env, inspect=seen,
                     after='echo kept >"$ROOT/etc/ssh/added"\n')
        second = boot(tmp_path, root, env, inspect=seen)
    assert first.rc == 0 and second.rc == 0, first.err + second.err
    m = first.mount("/etc/ssh")
    assert m["fstype"] == "overlay"
    assert "upperdir=/usr/local/.state/etc-ssh.overlay/upper" in m["options"].replace(
        str(root), "")
    assert first.mount("/usr/local")["source"] == devices["COS_PERSISTENT"]
    assert first.text("/usr/local/.state/etc-ssh.overlay/upper/added") == "kept\n"
    assert second.text("/etc/ssh/added") == "kept\n"
    assert second.text("/etc/ssh/sshd_config") == "PermitRootLogin no\n"
    assert not (root / "etc/ssh/added").exists()
    assert ("overlay /etc/ssh overlay defaults,lowerdir=/etc/ssh,upperdir=/usr/local/.state/"
            "etc-ssh.overlay/upper,workdir=/usr/local/.state/etc-ssh.overlay/work,"
            "x-systemd.requires-mounts-for=/usr/local\n") in second.text("/etc/fstab")


@pytest.mark.root
def test_a_missing_device_fails_its_mount_and_the_rest_still_runs(
        can_mount: None, tmp_path: Path) -> None:
    root = make_sysroot(tmp_path)
    env = ('VOLUMES="LABEL=COS_OEM:/oem LABEL=EDGEINIT_NO_SUCH:/usr/local"\n'
           'RW_PATHS="/etc /var"\nPERSISTENT_STATE_PATHS="/etc/ssh /srv"\n'
           'PERSISTENT_STATE_BIND="true"\n')
    assert not _devices_labelled("EDGEINIT_NO_SUCH")
    with loop_images(tmp_path, {"COS_OEM": None}) as devices:
        result = boot(tmp_path, root, env, cmdline="quiet edgeinit.layout.timeout=1",
                      inspect=("/etc/fstab",))
    assert result.rc == 1
    # logged with its device and path, and waited for (bounded) first
    assert ("error: volume /usr/local: no device LABEL=EDGEINIT_NO_SUCH appeared within 1 s"
            in result.err)
    assert "volume /usr/local: waiting up to 1 s for LABEL=EDGEINIT_NO_SUCH" in result.err
    # the summary says what failed
    assert "1 failed:\n  volume /usr/local: no device LABEL=EDGEINIT_NO_SUCH" in result.out
    # what does not depend on it is mounted
    assert result.mount("/oem")["source"] == devices["COS_OEM"]
    assert result.mount("/etc")["fstype"] == "overlay"
    assert result.mount("/var")["fstype"] == "overlay"
    # the state paths need /usr/local: not mounted, so their image content stays
    targets = [m["target"] for m in result.mounts()]
    assert "/usr/local" not in targets and "/etc/ssh" not in targets
    assert "/srv" not in targets
    assert "/dev/disk/by-label/EDGEINIT_NO_SUCH /usr/local auto defaults 0 0" in (
        result.text("/etc/fstab"))
    report = json.loads((tmp_path / "state" / "mount-layout.json").read_text())
    assert report["ok"] is False
    status = {s["name"]: s["status"] for s in report["steps"]}
    assert status["volume /usr/local"] == "failed"
    assert status["state-bind /etc/ssh"] == "skipped"
    assert status["state-bind /srv"] == "skipped"
    assert status["volume /oem"] == "ok"
    assert status["overlay /etc"] == "ok"
    assert status["/etc/fstab"] == "ok"
    # and `edgeinit status` shows it
    shown = subprocess.run([sys.executable, "-m", "edgeinit", "status"], capture_output=True,
                           text=True, cwd=REPO, timeout=60, check=False,
                           env={**os.environ, "EDGEINIT_STATE_DIR": str(tmp_path / "state")})
    assert shown.returncode == 1
    assert any(line.split()[:2] == ["mount-layout", "failed"]
               for line in shown.stdout.splitlines()), shown.stdout


# ------------------------------------------------------------------ dry run on the seed


def test_dry_run_on_the_seeds_env_file_prints_plan_and_fstab_and_mounts_nothing(
        cli: Callable, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ran = cli("run", "--stage", "rootfs", "--root", scratch,
              REPO / "samples" / "derivative" / "system" / "oem")
    assert ran.code == 0, ran.err
    env_file = scratch / "run" / "cos" / "cos-layout.env"
    before = layout_mount.read_mounts()
    empty = tmp_path / "cmdline"
    empty.write_text("")
    result = cli("mount-layout", "--dry-run", "--sysroot", "/", "--env-file", env_file,
                 "--cmdline", empty)
    assert result.code == 0, result.err
    assert layout_mount.read_mounts() == before
    assert not (tmp_path / "state" / "mount-layout.json").exists()
    plan, _, fstab = result.out.partition("/etc/fstab:\n")
    steps = [line.split()[1:3] for line in plan.splitlines()[1:]]
    assert steps[:6] == [["overlay-base", "/run/overlay"], ["volume", "/oem"],
                         ["overlay", "/etc"], ["overlay", "/srv"], ["overlay", "/var"],
                         ["volume", "/usr/local"]]
    assert len(steps) == 21 and all(kind == "state-bind" for kind, _ in steps[6:])
    assert "tmpfs /run/overlay tmpfs defaults,size=25% 0 0\n" in fstab
    assert "/usr/local/.state/var-lib-rancher.bind /var/lib/rancher none defaults,bind 0 0\n" \
        in fstab


def test_mount_layout_usage(cli: Callable, tmp_path: Path) -> None:
    assert cli("mount-layout", "--sysroot", tmp_path / "missing").code == 2
    assert cli("mount-layout", "--bogus").code == 2
    assert cli("mount-layout", "extra").code == 2
    disabled = tmp_path / "cmdline"
    disabled.write_text("quiet rd.cos.disable")
    result = cli("mount-layout", "--sysroot", tmp_path, "--cmdline", disabled,
                 "--env-file", tmp_path / "none.env")
    assert result.code == 0 and result.out == ""
    assert not (tmp_path / "state" / "mount-layout.json").exists()


# ------------------------------------------------------------------ failure handling,
# without root: the executor with a fake command runner on a temporary sysroot


class FakeRunner:
    """Records every command; answers blkid with a device, others with `codes`."""

    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.codes = codes or {}
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str]:
        self.calls.append(argv)
        name = os.path.basename(argv[0])
        if name == "blkid":
            return 0, "/dev/fake-" + argv[4].partition("=")[2].lower() + "\n"
        code = self.codes.get(name, 0)
        return code, f"{name} says no" if code else ""

    def ran(self, name: str) -> list[list[str]]:
        return [c for c in self.calls if os.path.basename(c[0]) == name]


def executor(tmp_path: Path, env: str, runner: FakeRunner) -> layout_mount.Executor:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    layout = plan_layout(env, "", [], str(root))
    return layout_mount.Executor(layout, "layout.env", runner=runner, udev=False,
                                 run_dir=str(tmp_path / "run"))


def test_a_failing_fsck_is_logged_and_the_volume_still_mounted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = FakeRunner({"systemd-fsck": 4, "fsck": 4})
    ex = executor(tmp_path, 'VOLUMES="LABEL=DATA:/data LABEL=DATA:/data2"\nRW_PATHS=""\n',
                  runner)
    entries = {e.name: e for e in ex.apply()}
    assert entries["volume /data"].status == "ok"
    assert "filesystem check of LABEL=DATA (/dev/fake-data) failed (exit 4)" in (
        entries["volume /data"].warnings[0])
    checks = [c for c in runner.calls if "fsck" in os.path.basename(c[0])]
    assert len(checks) == 1  # once per device, before its first mount
    data = ["mount", "-t", "auto", "/dev/fake-data", str(tmp_path / "root/data")]
    assert data in runner.ran("mount")
    assert runner.calls.index(checks[0]) < runner.calls.index(data)


def test_a_failed_mount_skips_what_depends_on_it_only(tmp_path: Path) -> None:
    class FailOne(FakeRunner):
        def __call__(self, argv: list[str], timeout: float) -> tuple[int, str]:
            if argv[0] == "mount" and argv[-1].endswith("/usr/local"):
                self.calls.append(argv)
                return 32, "mount: wrong fs type"
            return super().__call__(argv, timeout)

    runner = FailOne()
    ex = executor(tmp_path, 'VOLUMES="LABEL=P:/usr/local"\nRW_PATHS="/etc"\n'
                            'PERSISTENT_STATE_PATHS="/etc/ssh"\nPERSISTENT_STATE_BIND=true\n',
                  runner)
    entries = {e.name: e for e in ex.apply()}
    assert entries["volume /usr/local"].status == "failed"
    assert "LABEL=P (/dev/fake-p)" in entries["volume /usr/local"].error
    assert str(tmp_path / "root/usr/local") in entries["volume /usr/local"].error
    assert entries["overlay /etc"].status == "ok"
    assert entries["state-bind /etc/ssh"].status == "skipped"
    assert "/usr/local" in entries["state-bind /etc/ssh"].reason
    assert not runner.ran("rsync")


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_seeding_never_hides_the_image_behind_an_empty_state(
        tmp_path: Path, existed: bool) -> None:
    runner = FakeRunner({"rsync": 23})
    ex = executor(tmp_path, 'RW_PATHS=""\nPERSISTENT_STATE_PATHS="/etc/ssh"\n'
                            'PERSISTENT_STATE_BIND=true\n', runner)
    state = tmp_path / "root/usr/local/.state/etc-ssh.bind"
    if existed:
        state.mkdir(parents=True)
    entries = {e.name: e for e in ex.apply()}
    entry = entries["state-bind /etc/ssh"]
    assert entry.status == "failed"
    assert "rsync says no" in entry.error
    binds = [c for c in runner.ran("mount") if "bind" in c]
    assert bool(binds) == existed  # persisted state is bound all the same; a new one not


def test_waiting_through_udev_wakes_on_events_and_gives_up_at_the_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "by-label" / "COS_PERSISTENT"
    polls: list[float | None] = []

    class Monitor:
        @classmethod
        def from_netlink(cls, context: object) -> Monitor:
            return cls()

        def filter_by(self, subsystem: str) -> None:
            assert subsystem == "block"

        def start(self) -> None:
            pass

        def poll(self, timeout: float | None = None) -> object:
            polls.append(timeout)
            if len(polls) == 2:  # the second event is the device with the label
                link.parent.mkdir(exist_ok=True)
                link.write_text("")
            return object()

    fake = type(sys)("pyudev")
    fake.Context = lambda: None  # type: ignore[attr-defined]
    fake.Monitor = Monitor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyudev", fake)
    layout = plan_layout('RW_PATHS=""\n', "edgeinit.layout.timeout=30", [], str(tmp_path))
    ex = layout_mount.Executor(layout, "env", runner=FakeRunner(), udev=True)
    assert ex._wait_udev(str(link)) is True
    assert len(polls) == 2 and all(t is not None and 0 < t <= 30 for t in polls)

    class Silent(Monitor):
        def poll(self, timeout: float | None = None) -> object:
            polls.append(timeout)
            return None  # nothing happened within the timeout

    fake.Monitor = Silent  # type: ignore[attr-defined]
    polls.clear()
    layout = plan_layout('RW_PATHS=""\n', "edgeinit.layout.timeout=0", [], str(tmp_path))
    ex = layout_mount.Executor(layout, "env", runner=FakeRunner(), udev=True)
    with pytest.raises(layout_mount.LayoutError, match="no device LABEL=NONE appeared"):
        ex.find_device("LABEL=NONE", "volume /x")
    assert polls == []  # a zero budget: no wait at all


def test_mountinfo_is_read_with_its_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "90 27 0:50 / /mnt/with\\040space rw shared:5 - tmpfs tmp\\134fs rw\n"
        "91 27 7:1 /.state/etc-ssh.bind /etc/ssh rw - ext4 /dev/loop1 rw\n")
    assert layout_mount.read_mounts(str(info)) == [
        ("/dev/vda", "/", "ext4"), ("tmp\\fs", "/mnt/with space", "tmpfs"),
        ("/dev/loop1", "/etc/ssh", "ext4")]
    assert layout_mount.read_mounts(str(tmp_path / "none")) == []
