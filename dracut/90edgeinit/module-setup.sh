#!/bin/bash
# dracut module "edgeinit": runs edgeinit's initrd stages (rootfs, the immutable
# layout, initramfs) from the initramfs, with the real root's Python and edgeinit,
# chrooted into /sysroot (see edgeinit-initrd-run).
#
# Included only when named: dracut --add edgeinit ...
#
# The module directory holds, besides this file and the generator, copies of the
# initrd units and helper that the project keeps in systemd/ (edgeinit-rootfs.service,
# edgeinit-initramfs.service, edgeinit-initrd-run); see dracut/README.md.

# Never picked by dracut on its own: only with --add edgeinit (or add_dracutmodules+=).
check() {
    return 255
}

depends() {
    echo systemd
    return 0
}

install() {
    local f unit
    for f in edgeinit-initrd-run edgeinit-generator.sh edgeinit-rootfs.service \
        edgeinit-mount-layout.service edgeinit-initramfs.service; do
        if [[ ! -f "$moddir/$f" ]]; then
            derror "edgeinit: $moddir/$f is missing (install the module as dracut/README.md says)"
            return 1
        fi
    done

    # The helper's needs (it runs /sysroot's edgeinit chrooted; edgeinit itself and
    # its Python live in the real root, not here), blkid to look at labels when
    # debugging; the generator uses only shell builtins, mkdir, ln and systemd-escape.
    inst_multiple sh mount umount chroot blkid mkdir ln systemd-escape

    inst_script "$moddir/edgeinit-initrd-run" /usr/lib/edgeinit/edgeinit-initrd-run
    inst_script "$moddir/edgeinit-generator.sh" \
        "$systemdutildir/system-generators/edgeinit-generator"

    for unit in edgeinit-rootfs.service edgeinit-mount-layout.service \
        edgeinit-initramfs.service; do
        inst_simple "$moddir/$unit" "$systemdsystemunitdir/$unit"
    done
    # Enabled as their [Install] sections say: initrd-fs.target.wants/ for the rootfs
    # stage and the layout, initrd.target.wants/ for the initramfs stage.
    $SYSTEMCTL -q --root "$initdir" enable edgeinit-rootfs.service \
        edgeinit-mount-layout.service edgeinit-initramfs.service
}
