"""`unpack_images`: an OCI image's file system unpacked into a directory of the target.

`source` is a registry reference, or a path (inside the root) to an OCI image layout or
to an OCI or docker-archive tarball; `platform` (`os/arch[/variant]`, Go's names) picks
from a multi-platform index, this machine's when unset. The work is done by skopeo and
umoci (target/oci.py); nothing here talks to a registry itself.

As yip, a missing target directory is created (parents 0755) and an existing one is
unpacked into: the image's files replace files of the same name, its directories merge
into existing ones, other files stay. Unlike yip, the image is unpacked completely
(layers, whiteouts) into a work directory first, so a failure (an unreachable registry,
a digest that does not match, a full disk) leaves the target as it was; a new target
appears all at once. The image's config digest is stamped on the target directory, so
a second run with the same image changes nothing. A source that is not an OCI image
(no oci-layout, no manifest.json, a config without rootfs) fails its entry clearly.

The plan reads only the image's config (skopeo inspect; for a registry, the manifest
and the config, no layers), also in a dry run, so a dry run says which image would be
unpacked, or that it is already there, without downloading its layers.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target.changes import Change
from edgeinit.target.changes import UnpackImage as Unpack
from edgeinit.target.plan import plan_dirs
from edgeinit.target.root import PathError


class UnpackImage(Record):
    source: str = spec("", doc="Image reference, OCI layout or tarball.")
    target: str = spec("", doc="Directory to unpack into.")
    platform: str = spec("", doc="e.g. linux/arm64 (default: this machine's).")


class Args(Record):
    unpack_images: list[UnpackImage] = spec(factory=list, doc="Images to unpack.")


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    from edgeinit.target.oci import ImageError

    for entry in args.unpack_images:
        try:
            yield from _plan_one(entry, ctx)
        except (PluginError, PathError, ImageError) as e:
            ctx.fail(f"{entry.target or '(no target)'}: image {entry.source or '(none)'}: {e}")


def _plan_one(entry: UnpackImage, ctx: Context) -> Iterator[Change]:
    from edgeinit.target import oci

    root = ctx.root
    if not entry.source.strip():
        raise PluginError("an image needs a source")
    if not entry.target.strip():
        raise PluginError("an image needs a target directory")
    platform = entry.platform.strip()
    if platform:
        oci.parse_platform(platform)
    target = ctx.render(entry.target)
    host = root.resolve(target)
    st = root.state(host)
    if st is not None and st.kind != "dir":
        raise PathError(f"'{target}' exists and is not a directory")
    source = oci.parse_source(ctx.render(entry.source), root.resolve)
    digest = "sha256:" + hashlib.sha256(oci.image_config(source, platform)).hexdigest()
    if st is not None and oci.stamp_of(host) == digest:
        return  # this image is already unpacked there
    if st is None:
        parent = posixpath.dirname(root.display(host)) or "/"
        yield from plan_dirs(root, parent)
    yield Unpack(target, host, source, platform, digest, merge=st is not None)


PLUGIN = Plugin("unpack_images", Args, plan)
