"""OCI images unpacked into the target: skopeo fetches, verifies, converts and picks the
platform; umoci applies the layers (whiteouts, opaque directories, owners, modes).

Sources (`source` of unpack_images):
- `/path` to an OCI image layout directory (it has an `oci-layout` file), or to a tar
  archive of one (`oci-archive`) or of `docker save` (`docker-archive`), told apart by
  their members; `oci:/path[:tag]`, `oci-archive:/path[:tag]` and
  `docker-archive:/path[:ref]` say it explicitly. Paths are inside the root (SPEC 1).
- anything else is a registry reference (`registry.example/app:1.0`, or
  `docker://...`), fetched by skopeo with the system's registry configuration, trust
  policy and credentials (/etc/containers, auth.json); TLS is verified unless that
  configuration marks the registry insecure.

The platform (`os/arch[/variant]`) picks an image from a multi-platform index, nested
(the usual form, chosen by skopeo) or listed directly in a layout's index.json (chosen
here, and handed to skopeo as a one-image view of the layout); unset, it is this
machine's. An image is identified by the sha256 of its config blob, which is stamped on
the target directory as an extended attribute, so unpacking the same image again
changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Iterator

from edgeinit.model import Record

LOCAL_TRANSPORTS = ("oci-archive", "docker-archive", "oci")  # longest prefix first
STAMP_ATTRS = ("user.edgeinit.image", "trusted.edgeinit.image")
WORK_NAME = ".edgeinit-unpack.edgeinit-new"  # inside a target that is merged into
REF = "edgeinit"
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
           "i686": "386", "i586": "386", "i386": "386"}
_LOGRUS = re.compile(r'^time="[^"]*" level=\w+ msg="(.*)"\s*$')


class ImageError(Exception):
    """An image that cannot be read or unpacked; the message says which and why."""


class Source(Record):
    shown: str  # as the config gives it
    transport: str  # oci, oci-archive, docker-archive or docker
    location: str  # a host path, or a registry reference
    tag: str = ""

    def ref(self) -> str:
        if self.transport == "docker":
            return "docker://" + self.location
        return f"{self.transport}:{self.location}" + (f":{self.tag}" if self.tag else "")


# -- what the config names ---------------------------------------------------------------


def parse_platform(text: str) -> tuple[str, str, str]:
    """("linux", "arm64", "v8") from "linux/arm64/v8"; ImageError when malformed."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
        raise ImageError(f"platform '{text}' is not OS/ARCH[/VARIANT] (e.g. linux/arm64)")
    return parts[0].strip(), parts[1].strip(), parts[2].strip() if len(parts) == 3 else ""


def host_platform() -> tuple[str, str, str]:
    """This machine's platform, with Go's names (linux/amd64, linux/arm/v7)."""
    machine = os.uname().machine
    variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine, "")
    return "linux", GO_ARCH.get(machine, machine), variant


def parse_source(text: str, resolve: object) -> Source:
    """The Source a config's `source` names; `resolve(path)` gives a path's host path."""
    text = text.strip()
    if not text:
        raise ImageError("no source")
    if text.startswith("docker://"):
        return Source(text, "docker", text[len("docker://"):])
    for transport in LOCAL_TRANSPORTS:
        if text.startswith(transport + ":"):
            path, tag = _split_tag(text[len(transport) + 1:])
            return Source(text, transport, _existing(resolve, path), tag)
    if text.startswith("/"):
        host = _existing(resolve, text)
        return Source(text, detect(host), host)
    return Source(text, "docker", text)


def _split_tag(rest: str) -> tuple[str, str]:
    path, sep, tag = rest.rpartition(":")
    if sep and path and "/" not in tag:
        return path, tag
    return rest, ""


def _existing(resolve: object, path: str) -> str:
    host = resolve(path)  # type: ignore[operator]
    if not os.path.exists(host):
        raise ImageError("no such file or directory")
    return host


def detect(host: str) -> str:
    """The skopeo transport of a local image: oci, oci-archive or docker-archive."""
    import tarfile

    if os.path.isdir(host):
        if os.path.isfile(os.path.join(host, "oci-layout")):
            return "oci"
        raise ImageError("not an OCI image: a directory without an oci-layout file")
    names: set[str] = set()
    try:
        with tarfile.open(host, "r:*") as tar:
            for i, member in enumerate(tar):
                name = member.name[2:] if member.name.startswith("./") else member.name
                names.add(name.strip("/"))
                if "oci-layout" in names or i > 100_000:
                    break
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ImageError("not an OCI image: neither an image layout directory nor a tar "
                         f"archive of one ({e})") from None
    if "oci-layout" in names:
        return "oci-archive"
    if "manifest.json" in names:
        return "docker-archive"
    raise ImageError("not an OCI image: a tar archive with neither an oci-layout nor a "
                     "manifest.json")


# -- skopeo and umoci --------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ImageError(f"{name} is not installed on this system (Debian package {name}); "
                         "unpack_images runs skopeo and umoci")
    return path


def _run(argv: list[str]) -> bytes:
    """Run a tool, bounded by EDGEINIT_COMMAND_TIMEOUT; its stdout, ImageError on failure."""
    from edgeinit.target.exec import ToolError, run_tool

    try:
        done = run_tool(argv, env={**os.environ, "LC_ALL": "C"})
    except ToolError as e:
        suffix = " (EDGEINIT_COMMAND_TIMEOUT)" if e.kind == "timeout" else ""
        raise ImageError(f"{e}{suffix}") from None
    out = done.stdout
    if done.returncode != 0:
        lines = []
        for line in done.err.splitlines():
            found = _LOGRUS.match(line)
            line = found[1].replace('\\"', '"') if found else line.strip(" \t\u2022\u2a2f")
            if line and line not in ("... done",):
                lines.append(line)
        why = "; ".join(lines[-4:]) or f"exit status {done.returncode}"
        raise ImageError(f"{os.path.basename(argv[0])}: {why}")
    return out


def _skopeo(platform: str, *args: str) -> list[str]:
    from edgeinit.target.exec import command_timeout

    argv = [_tool("skopeo"), "--command-timeout", f"{int(command_timeout())}s"]
    if not any(os.path.exists(p) for p in ("/etc/containers/policy.json",
                                           os.path.expanduser("~/.config/containers/policy.json"))):
        argv.append("--insecure-policy")  # no trust policy on this system: as yip, none
    if platform:
        os_, arch, variant = parse_platform(platform)
        argv += ["--override-os", os_, "--override-arch", arch]
        if variant:
            argv += ["--override-variant", variant]
    return argv + list(args)


@contextlib.contextmanager
def opened(source: Source, platform: str) -> Iterator[str]:
    """The skopeo reference to read `source` for `platform`: the source itself, or a
    one-image view of a layout whose index.json lists several platforms' images."""
    import tempfile

    if source.transport != "oci" or source.tag:
        yield source.ref()
        return
    try:
        with open(os.path.join(source.location, "index.json"), "rb") as f:
            index = json.load(f)
        manifests = list(index.get("manifests") or [])
    except (OSError, ValueError, AttributeError) as e:
        raise ImageError(f"not an OCI image: no readable index.json ({e})") from None
    if len(manifests) <= 1:
        yield source.ref()
        return
    chosen = choose(manifests, parse_platform(platform) if platform else host_platform())
    view = tempfile.mkdtemp(prefix="edgeinit-oci-")
    try:
        shutil.copyfile(os.path.join(source.location, "oci-layout"),
                        os.path.join(view, "oci-layout"))
        annotations = {**(chosen.get("annotations") or {}),
                       "org.opencontainers.image.ref.name": REF}
        with open(os.path.join(view, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [{**chosen, "annotations": annotations}]},
                      f)
        os.symlink(os.path.join(source.location, "blobs"), os.path.join(view, "blobs"))
        yield f"oci:{view}:{REF}"
    finally:
        shutil.rmtree(view, ignore_errors=True)


def choose(manifests: list[dict], want: tuple[str, str, str]) -> dict:
    """The descriptor of index.json for platform `want` (a variant, when wanted, must
    match; otherwise the first image of that OS and architecture)."""
    os_, arch, variant = want
    have = []
    for descriptor in manifests:
        p = descriptor.get("platform") or {}
        if not isinstance(p, dict):
            continue
        have.append("/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant"))
                             if x))
        if p.get("os") == os_ and p.get("architecture") == arch and (
                not variant or p.get("variant", variant) == variant):
            return descriptor
    wanted = "/".join(x for x in want if x)
    if not have:
        raise ImageError(f"{len(manifests)} images and no platforms named; name one with "
                         "oci:PATH:TAG")
    raise ImageError(f"no image for {wanted} (there are {', '.join(have)})")


def image_config(source: Source, platform: str) -> bytes:
    """The raw config blob of the image that `platform` picks (read-only: registries
    send the manifest and the config, no layers). ImageError when it is not an image."""
    with opened(source, platform) as ref:
        raw = _run(_skopeo(platform, "inspect", "--config", "--raw", ref))
    try:
        config = json.loads(raw)
    except ValueError:
        config = None
    if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
        raise ImageError("not a container image (its config has no rootfs)")
    if platform:
        os_, arch, _ = parse_platform(platform)
        if (config.get("os"), config.get("architecture")) != (os_, arch) and \
                config.get("architecture"):
            raise ImageError(f"the image is {config.get('os')}/{config.get('architecture')}, "
                             f"not {os_}/{arch}")
    return raw


# -- unpacking ---------------------------------------------------------------------------


def stamp_of(host: str) -> str:
    """The config digest a directory was last unpacked from ("" when none)."""
    for attr in STAMP_ATTRS:
        with contextlib.suppress(OSError):
            return os.getxattr(host, attr, follow_symlinks=False).decode()
    return ""


def _stamp(host: str, digest: str) -> None:
    """Remember the digest on the directory (user.*, or trusted.* where a filesystem
    (tmpfs before Linux 6.6) has no user attributes). Where neither can be set, the
    image is unpacked again on the next run: slower, never wrong."""
    for attr in STAMP_ATTRS:
        try:
            os.setxattr(host, attr, digest.encode(), follow_symlinks=False)
            return
        except OSError:
            continue


def unpack(source: Source, platform: str, host: str, digest: str, merge: bool) -> None:
    """Unpack the image into `host`.

    The whole image is first copied (skopeo) and unpacked (umoci) into a work directory
    on the target's filesystem and synced to disk. A new target is then renamed into
    place, so it is absent or complete. An existing directory gets the image's entries
    moved in one by one (each rename atomic; a directory of the image merges into one
    already there, as yip's extraction does) and is stamped last, so an interrupted
    merge is done again by the next run. The work directory never stays behind (one
    left by a crash is removed by the next attempt).
    """
    from edgeinit.target.fs import fsync_dir, temp_path_for

    work = os.path.join(host, WORK_NAME) if merge else temp_path_for(host)
    if os.path.lexists(work):
        shutil.rmtree(work)
    os.mkdir(work, 0o700)
    try:
        layout, rootfs = os.path.join(work, "layout"), os.path.join(work, "rootfs")
        os.mkdir(os.path.join(work, "tmp"), 0o700)
        with opened(source, platform) as ref:
            _run(_skopeo(platform, "--tmpdir", os.path.join(work, "tmp"), "copy", "--quiet",
                         ref, f"oci:{layout}:{REF}"))
        rootless = ["--rootless"] if os.geteuid() != 0 else []  # owners kept only as root
        _run([_tool("umoci"), "raw", "unpack", *rootless, "--image", f"{layout}:{REF}", rootfs])
        if not merge:
            _stamp(rootfs, digest)
        os.sync()  # every unpacked file on disk before it becomes visible
        if merge:
            for attr in STAMP_ATTRS:  # half merged is no image: an interrupted merge is redone
                with contextlib.suppress(OSError):
                    os.removexattr(host, attr, follow_symlinks=False)
            merge_tree(rootfs, host)
            fsync_dir(host)
            _stamp(host, digest)
        else:
            os.rename(rootfs, host)
            fsync_dir(os.path.dirname(host))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def merge_tree(src: str, dest: str) -> None:
    """Move the entries of `src` into the existing directory `dest`: directories merge
    (taking the image's mode and owner), anything else replaces what is there. Symbolic
    links in `dest` are replaced, never followed."""
    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dest, name)
        s_st = os.lstat(s)
        try:
            d_st = os.lstat(d)
        except FileNotFoundError:
            d_st = None
        if d_st is not None and stat.S_ISDIR(d_st.st_mode):
            if stat.S_ISDIR(s_st.st_mode):
                merge_tree(s, d)
                os.chown(d, s_st.st_uid, s_st.st_gid)
                os.chmod(d, stat.S_IMODE(s_st.st_mode))
                continue
            shutil.rmtree(d)  # the image has a file or link where a directory was
        elif d_st is not None and stat.S_ISDIR(s_st.st_mode):
            os.unlink(d)  # a directory replaces a file or link
        _move(s, d)


def _move(src: str, dest: str) -> None:
    try:
        os.rename(src, dest)
    except OSError as e:
        if e.errno != errno.EXDEV:  # `dest` is on another filesystem (a mount point)
            raise
        from edgeinit.target.fs import temp_path_for

        tmp = temp_path_for(dest)
        _remove(tmp)  # debris of an interrupted copy
        try:
            _copy(src, tmp)
            os.rename(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                _remove(tmp)
            raise


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy(src: str, dest: str) -> None:
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(dest, 0o700)
        for name in sorted(os.listdir(src)):
            _copy(os.path.join(src, name), os.path.join(dest, name))
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dest, follow_symlinks=False)
        with open(dest, "rb+") as f:
            os.fsync(f.fileno())
    else:
        os.mknod(dest, st.st_mode, st.st_rdev)
    os.lchown(dest, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dest, stat.S_IMODE(st.st_mode))
