"""Planned changes: what a plugin wants done, as data.

Plugins only ever return these. The engine prints them for `--dry-run` (recording file
changes in the root's overlay so that later steps plan against them) and otherwise
applies them, one at a time, through this module. Each change knows how to describe
itself without leaking secrets.
"""

from __future__ import annotations

import os
from typing import Any

from edgeinit.model import Record
from edgeinit.target import exec as exec_
from edgeinit.target import fs
from edgeinit.target.root import FileState, TargetRoot


class ApplyError(Exception):
    """A change that could not be made; the message names the path or command."""


class WriteFile(Record):
    """Replace (or create) a regular file atomically."""

    path: str  # inside the target, for people
    host_path: str
    content: bytes
    mode: int
    uid: int
    gid: int
    old: bytes | None = None  # current content, for the diff
    old_state: FileState | None = None
    secret: bool = False  # mask the content in diffs

    def describe(self) -> str:
        what = "create" if self.old_state is None else "write"
        return f"{what} {self.path} (mode {self.mode:04o}, owner {self.uid}:{self.gid})"

    def diff(self) -> str:
        from edgeinit.target.diff import file_diff

        return file_diff(self.path, self.old, self.content, secret=self.secret, mode=self.mode)

    def apply(self, root: TargetRoot) -> None:
        try:
            fs.atomic_write(self.host_path, self.content, self.mode, self.uid, self.gid,
                            sync_dir=False)
            root.touched(self.host_path)
        except OSError as e:
            raise ApplyError(f"cannot write {self.path}: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        root.record(
            self.host_path,
            FileState("file", self.mode, self.uid, self.gid, len(self.content)),
            self.content,
        )


class MakeDir(Record):
    """Create one directory (the plan lists each missing ancestor, parents first)."""

    path: str
    host_path: str
    mode: int
    uid: int
    gid: int

    def describe(self) -> str:
        return f"mkdir {self.path} (mode {self.mode:04o}, owner {self.uid}:{self.gid})"

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        try:
            fs.make_dir(self.host_path, self.mode, self.uid, self.gid, sync_dir=False)
            root.touched(self.host_path)
        except FileExistsError:
            st = root.state(self.host_path)
            if st is None or st.kind != "dir":
                raise ApplyError(
                    f"cannot create directory {self.path}: a file is in the way") from None
            fs.set_attrs(self.host_path, self.mode, self.uid, self.gid)
        except OSError as e:
            raise ApplyError(f"cannot create directory {self.path}: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        root.record(self.host_path, FileState("dir", self.mode, self.uid, self.gid))


class SetAttrs(Record):
    """Change the mode and/or owner of an existing file or directory."""

    path: str
    host_path: str
    old: FileState
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    def describe(self) -> str:
        parts = []
        if self.mode is not None:
            parts.append(f"mode {self.old.mode:04o} -> {self.mode:04o}")
        if self.uid is not None or self.gid is not None:
            new_uid = self.old.uid if self.uid is None else self.uid
            new_gid = self.old.gid if self.gid is None else self.gid
            parts.append(f"owner {self.old.uid}:{self.old.gid} -> {new_uid}:{new_gid}")
        return f"set {self.path}: " + ", ".join(parts)

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        try:
            fs.set_attrs(self.host_path, self.mode, self.uid, self.gid)
        except OSError as e:
            raise ApplyError(f"cannot change {self.path}: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        old = root.state(self.host_path) or self.old
        new = FileState(
            old.kind,
            old.mode if self.mode is None else self.mode,
            old.uid if self.uid is None else self.uid,
            old.gid if self.gid is None else self.gid,
            old.size,
        )
        data = root.read_bytes(self.host_path) if old.kind == "file" else None
        root.record(self.host_path, new, data)


class CreateHome(Record):
    """A new home directory holding a copy of a skeleton directory, made all at once.

    The copy is built in `.NAME.edgeinit-new` beside the home and renamed into place,
    so a home either does not exist or is complete: a crash mid-copy leaves only the
    temp directory, which the next attempt removes and builds again.
    """

    path: str
    host_path: str
    mode: int
    uid: int
    gid: int
    skel_host: str | None  # None: an empty home
    skel: str = "/etc/skel"

    def describe(self) -> str:
        source = f" with a copy of {self.skel}" if self.skel_host else ""
        owner = f"{self.uid}:{self.gid}"
        return f"create home {self.path} (mode {self.mode:04o}, owner {owner}){source}"

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        try:
            fs.make_tree(self.host_path, self.mode, self.uid, self.gid, self.skel_host)
        except OSError as e:
            raise ApplyError(f"cannot create home {self.path}: {e.strerror or e}") from e
        root.touched(self.host_path)

    def record(self, root: TargetRoot) -> None:
        root.record(self.host_path, FileState("dir", self.mode, self.uid, self.gid))


class RunCommand(Record):
    """Run a shell command in the target (chrooted when the root is not `/`)."""

    command: str
    label: str = ""  # what to show instead of the command, when it carries a secret
    timeout: float | None = None

    @property
    def shown(self) -> str:
        """The command as logs and reports show it: the label, or the command with
        password hashes and `password=...` values masked."""
        if self.label:
            return self.label
        from edgeinit.target.diff import mask_text

        return mask_text(self.command)

    def describe(self) -> str:
        return f"run: {self.shown}"

    def diff(self) -> str:
        return ""

    def run(self, root: TargetRoot) -> exec_.CommandResult:
        return exec_.run_shell(root.path, self.command, self.timeout)

    def record(self, root: TargetRoot) -> None:
        """Commands are not run in a dry run; nothing to remember."""


class SetKernelHostname(Record):
    """sethostname(2) on the running system."""

    name: str

    def describe(self) -> str:
        return f"set the kernel hostname to {self.name}"

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        import socket

        try:
            socket.sethostname(self.name)
        except OSError as e:
            raise ApplyError(f"cannot set the kernel hostname: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        """Nothing in the target's files changes."""


class WriteKernelParam(Record):
    """Write a sysctl value to /proc/sys on the running system (not atomic: procfs)."""

    key: str
    value: str
    proc_path: str
    old: str | None = None

    def describe(self) -> str:
        was = "" if self.old is None else f" (was {self.old})"
        return f"sysctl {self.key} = {self.value}{was}"

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        try:
            fd = os.open(self.proc_path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, self.value.encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise ApplyError(f"cannot set sysctl {self.key}: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        """Kernel state is not part of the overlay."""


class LoadModule(Record):
    """Load a kernel module with modprobe on the running system."""

    name: str
    params: tuple[str, ...] = ()

    def describe(self) -> str:
        return "modprobe " + " ".join((self.name, *self.params))

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        import subprocess

        try:
            proc = subprocess.run(
                ["modprobe", self.name, *self.params],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=exec_.command_timeout(),
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise ApplyError(f"cannot load module {self.name}: {e}") from e
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip()
            raise ApplyError(f"cannot load module {self.name}: {msg or proc.returncode}")

    def record(self, root: TargetRoot) -> None:
        """Kernel state is not part of the overlay."""


class MakeSymlink(Record):
    """Create a symbolic link, or point an existing link elsewhere (renamed over it, so
    the name never goes missing). Already pointing at `target`: nothing to do."""

    path: str
    host_path: str
    target: str
    old: str | None = None  # the target of the link being replaced

    def describe(self) -> str:
        if self.old is None:
            return f"link {self.path} -> {self.target}"
        return f"relink {self.path} -> {self.target} (was -> {self.old})"

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        try:
            if os.path.islink(self.host_path) and os.readlink(self.host_path) == self.target:
                return
            fs.make_symlink(self.host_path, self.target, sync_dir=False)
            root.touched(self.host_path)
        except FileExistsError:
            raise ApplyError(f"cannot link {self.path}: something that is not a symbolic "
                             "link is in the way") from None
        except OSError as e:
            raise ApplyError(f"cannot link {self.path}: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        data = self.target.encode("utf-8", "surrogateescape")
        root.record(self.host_path, FileState("link", 0o777, 0, 0, len(data)), data)


class RemovePath(Record):
    """Remove a symbolic link (never what it points at). Already gone: nothing to do."""

    path: str
    host_path: str
    old: str = ""  # where it pointed, for people

    def describe(self) -> str:
        return f"remove {self.path}" + (f" (-> {self.old})" if self.old else "")

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        try:
            if not os.path.islink(self.host_path):
                if os.path.lexists(self.host_path):
                    raise ApplyError(f"cannot remove {self.path}: no longer a symbolic link")
                return
            os.unlink(self.host_path)
            root.touched(self.host_path)
        except FileNotFoundError:
            return
        except OSError as e:
            raise ApplyError(f"cannot remove {self.path}: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        root.record_removed(self.host_path)


class RemoveDir(Record):
    """Remove a directory left empty (by removing links). Gone, or no longer empty:
    nothing to do."""

    path: str
    host_path: str

    def describe(self) -> str:
        return f"remove empty directory {self.path}"

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        import errno

        try:
            os.rmdir(self.host_path)
            root.touched(self.host_path)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise ApplyError(f"cannot remove directory {self.path}: {e.strerror or e}"
                                 ) from e

    def record(self, root: TargetRoot) -> None:
        root.record_removed(self.host_path)


class SystemdCall(Record):
    """Ask the running systemd, over D-Bus, to enable, disable, mask or start a unit, or
    to reload its unit files. `bus` is a target.systemd_bus.Systemd of the step."""

    action: str  # "enable", "disable", "mask", "reload" or "start"
    unit: str
    bus: Any

    def describe(self) -> str:
        if self.action == "reload":
            return "reload systemd's unit files (daemon-reload)"
        return f"{self.action} {self.unit} (systemd over D-Bus)"

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        from edgeinit.target.systemd_bus import BusError

        try:
            if self.action == "reload":
                self.bus.reload()
            else:
                getattr(self.bus, self.action)(self.unit)
        except BusError as e:
            what = "reload systemd" if self.action == "reload" else f"{self.action} {self.unit}"
            why = f"unit {self.unit} does not exist ({e})" if e.no_such_unit else str(e)
            raise ApplyError(f"cannot {what}: {why}") from None

    def record(self, root: TargetRoot) -> None:
        """The running system's state is not part of the overlay."""


class DownloadFile(Record):
    """Put a downloaded body in place: the plan streamed it into the temp file beside
    the destination (`staged`); this gives it mode and owner and renames it over the
    file. In a dry run nothing was staged and `preview` holds a small body for the diff.
    """

    path: str
    host_path: str
    url: str  # as shown (a password in it masked)
    staged: str  # host path of the temp file beside the destination; "" in a dry run
    size: int
    mode: int
    uid: int
    gid: int
    old_state: FileState | None = None
    preview: bytes | None = None  # the body, when small enough to show a diff
    old: bytes | None = None  # the current content, when small enough to show a diff

    def describe(self) -> str:
        what = "download" if self.old_state is None else "replace with"
        return (f"{what} {self.url} -> {self.path} ({self.size} bytes, mode "
                f"{self.mode:04o}, owner {self.uid}:{self.gid})")

    def diff(self) -> str:
        from edgeinit.target.diff import file_diff

        if self.preview is not None and (self.old_state is None or self.old is not None):
            return file_diff(self.path, self.old, self.preview, mode=self.mode)
        before = "absent" if self.old_state is None else f"{self.old_state.size} bytes"
        return (f"--- {self.path}\n+++ {self.path}\n"
                f"@@ downloaded content: {before} -> {self.size} bytes @@\n")

    def apply(self, root: TargetRoot) -> None:
        if not self.staged:
            raise ApplyError(f"cannot write {self.path}: nothing was downloaded")
        try:
            fs.commit_staged(self.staged, self.host_path, self.mode, self.uid, self.gid,
                             sync_dir=False)
            root.touched(self.host_path)
        except OSError as e:
            raise ApplyError(f"cannot write {self.path}: {e.strerror or e}") from e

    def record(self, root: TargetRoot) -> None:
        root.record(self.host_path, FileState("file", self.mode, self.uid, self.gid, self.size),
                    self.preview)


class GitClone(Record):
    """Clone a repository into a path that does not exist yet (or is an empty directory,
    whose mode and owner `like` keeps), with the host's git (target/gitrepo.py)."""

    path: str
    host_path: str
    remote: Any  # gitrepo.Remote: its repr and every message mask the credentials
    branch: str
    commit: str  # the branch head when planned
    single_branch: bool = False
    like: tuple[int, int, int] | None = None  # mode, uid, gid of an empty directory there

    def describe(self) -> str:
        return (f"clone {self.remote.shown} (branch {self.branch} at {self.commit[:12]}) "
                f"into {self.path}")

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        from edgeinit.target import gitrepo

        try:
            with gitrepo.session(self.remote) as git:
                git.clone(self.host_path, self.branch, self.single_branch, self.like)
        except gitrepo.GitError as e:
            raise ApplyError(f"cannot clone {self.remote.shown} into {self.path}: {e}") from None
        except OSError as e:
            raise ApplyError(f"cannot clone {self.remote.shown} into {self.path}: "
                             f"{self.remote.mask(str(e.strerror or e))}") from None

    def record(self, root: TargetRoot) -> None:
        mode, uid, gid = self.like or (0o755, 0, 0)
        root.record(self.host_path, FileState("dir", mode, uid, gid))
        root.record(os.path.join(self.host_path, ".git"), FileState("dir", 0o755, 0, 0))


class GitUpdate(Record):
    """Fetch a branch into an existing repository and make its work tree the branch
    head (what differs is listed in `what`)."""

    path: str
    host_path: str
    remote: Any  # gitrepo.Remote
    branch: str
    commit: str
    local: Any  # gitrepo.Local: the repository as planned
    what: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"update {self.path} from {self.remote.shown}: " + ", ".join(self.what)

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        from edgeinit.target import gitrepo

        try:
            with gitrepo.session(self.remote) as git:
                git.update(self.host_path, self.branch, self.local)
        except gitrepo.GitError as e:
            raise ApplyError(f"cannot update {self.path}: {e}") from None
        except OSError as e:
            raise ApplyError(f"cannot update {self.path}: "
                             f"{self.remote.mask(str(e.strerror or e))}") from None

    def record(self, root: TargetRoot) -> None:
        """The repository's files are not part of the overlay."""


class UnpackImage(Record):
    """Unpack an OCI image into a directory with skopeo and umoci (target/oci.py): into
    a new directory all at once, or merged into an existing one."""

    target: str
    host_path: str
    source: Any  # oci.Source
    platform: str  # "os/arch[/variant]", or "" for this machine's
    digest: str  # sha256 of the image's config: what the directory is stamped with
    merge: bool = False

    def describe(self) -> str:
        platform = self.platform or "this machine's platform"
        how = "merged into the existing directory" if self.merge else "a new directory"
        return (f"unpack {self.source.shown} ({platform}, config {self.digest[:19]}) "
                f"into {self.target} ({how})")

    def diff(self) -> str:
        return ""

    def apply(self, root: TargetRoot) -> None:
        from edgeinit.target import oci

        try:
            oci.unpack(self.source, self.platform, self.host_path, self.digest, self.merge)
        except oci.ImageError as e:
            raise ApplyError(f"{self.target}: cannot unpack image {self.source.shown}: {e}"
                             ) from None
        except OSError as e:
            raise ApplyError(f"{self.target}: cannot unpack image {self.source.shown}: "
                             f"{e.strerror or e}") from None
        root.forget_links()  # the tree under the target is new
        root.touched(self.host_path)

    def record(self, root: TargetRoot) -> None:
        if not self.merge:
            root.record(self.host_path, FileState("dir", 0o755, 0, 0))


Change = (
    WriteFile | MakeDir | SetAttrs | CreateHome | RunCommand | SetKernelHostname
    | WriteKernelParam | LoadModule | MakeSymlink | RemovePath | RemoveDir | SystemdCall
    | DownloadFile | GitClone | GitUpdate | UnpackImage
)
