"""The immutable root filesystem layout: `edgeinit mount-layout` (SPEC sections 6, 7.11).

`plan` turns the layout env file (`/run/cos/cos-layout.env`), the kernel command line
and the current mounts into an ordered list of mount operations and the new root's
`/etc/fstab`, without touching anything; `mount` applies such a plan on a root with
mount(8), blkid, fsck and rsync, and writes the run report.
"""
