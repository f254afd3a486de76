#!/bin/sh
# edgeinit-generator: a systemd generator for the initrd (installed by the dracut module
# as /usr/lib/systemd/system-generators/edgeinit-generator). It writes a mount unit for
# the OEM partition at /sysroot/oem, wanted by and ordered before
# edgeinit-rootfs.service, so that the rootfs stage (chrooted into /sysroot) sees /oem,
# as the cos-toolkit's oem.mount does for its rootfs stage.
#
# Kernel arguments (the last of each wins; an edgeinit.* argument wins over rd.cos.*):
#   edgeinit.oemlabel=LABEL, rd.cos.oemlabel=LABEL  the label (default COS_OEM); an empty
#                                                   value means no OEM mount at all
#   edgeinit.oemtimeout=S, rd.cos.oemtimeout=S      how long to wait for the device, in
#                                                   seconds (default 120; 1..1800, a value
#                                                   outside is clamped, a non-number
#                                                   means the default)
#   edgeinit.disable, rd.cos.disable                no unit at all (alone or as NAME=...,
#                                                   as the units' ConditionKernelCommandLine=)
# The command line is read from /proc/cmdline and dracut's /etc/cmdline.d/*.conf
# (EDGEINIT_GENERATOR_CMDLINE names other files, for tests).
#
# Writes into the generator's normal directory ($1):
#   sysroot-oem.mount
#   edgeinit-rootfs.service.wants/sysroot-oem.mount -> ../sysroot-oem.mount
#   dev-disk-by\x2dlabel-LABEL.device.d/50-edgeinit-oemtimeout.conf (JobRunningTimeoutSec=)
# A missing partition makes the mount fail after the timeout; the rootfs stage still
# runs (it only wants the mount), without /oem.

set -u

out=${1:-}
if [ -z "$out" ]; then
    echo "edgeinit-generator: usage: edgeinit-generator NORMAL_DIR [EARLY_DIR LATE_DIR]" >&2
    exit 2
fi

files=${EDGEINIT_GENERATOR_CMDLINE:-"/etc/cmdline.d/*.conf /proc/cmdline"}

# Only shell builtins from here on, besides mkdir, ln and systemd-escape, which the
# module installs: the initramfs has no grep, and may have no sed.

label=COS_OEM
label_cos=""
label_ei=""
timeout_cos=""
timeout_ei=""
disabled=""
have_label_cos=""
have_label_ei=""

word() {
    case $1 in
        edgeinit.disable|edgeinit.disable=*|rd.cos.disable|rd.cos.disable=*)
            disabled=$1 ;;
        edgeinit.oemlabel=*) label_ei=${1#*=}; have_label_ei=1 ;;
        rd.cos.oemlabel=*) label_cos=${1#*=}; have_label_cos=1 ;;
        edgeinit.oemtimeout=*) timeout_ei=${1#*=} ;;
        rd.cos.oemtimeout=*) timeout_cos=${1#*=} ;;
    esac
}

set -f
# shellcheck disable=SC2086  # the file list is split and globbed on purpose
for f in $(set +f; echo $files); do
    [ -r "$f" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do
        trimmed=${line#"${line%%[![:space:]]*}"}
        case $trimmed in \#*) continue ;; esac
        # shellcheck disable=SC2086  # split the line into words (globbing is off)
        for w in $line; do
            word "$w"
        done
    done < "$f"
done
set +f

if [ -n "$disabled" ]; then
    exit 0
fi

if [ -n "$have_label_ei" ]; then
    label=$label_ei
elif [ -n "$have_label_cos" ]; then
    label=$label_cos
fi
if [ -z "$label" ]; then
    exit 0
fi

timeout=${timeout_ei:-$timeout_cos}
case $timeout in
    ''|*[!0-9]*) timeout=120 ;;
    *)
        # Leading zeros off, so that the shell does not read the number as octal.
        while [ "${timeout#0}" != "$timeout" ]; do
            timeout=${timeout#0}
        done
        timeout=${timeout:-0}
        if [ "${#timeout}" -gt 4 ] || [ "$timeout" -gt 1800 ]; then
            timeout=1800
        elif [ "$timeout" -lt 1 ]; then
            timeout=1
        fi
        ;;
esac

# udev's by-label names escape '/' and blanks as \x2f and \x20.
dev_label=""
rest=$label
while [ -n "$rest" ]; do
    c=${rest%"${rest#?}"}
    rest=${rest#?}
    case $c in
        /) dev_label="$dev_label\\x2f" ;;
        " ") dev_label="$dev_label\\x20" ;;
        *) dev_label="$dev_label$c" ;;
    esac
done
dev="/dev/disk/by-label/$dev_label"
dev_unit=$(systemd-escape --path --suffix=device "$dev") || exit 1

mkdir -p "$out/edgeinit-rootfs.service.wants" "$out/$dev_unit.d" || exit 1

printf '%s\n' \
    "# Written by edgeinit-generator (dracut module edgeinit)." \
    "[Unit]" \
    "Description=edgeinit OEM partition (LABEL=$label) at /sysroot/oem" \
    "DefaultDependencies=no" \
    "After=sysroot.mount" \
    "Before=edgeinit-rootfs.service edgeinit-mount-layout.service initrd-fs.target" \
    "Conflicts=umount.target" \
    "Before=umount.target" \
    "" \
    "[Mount]" \
    "What=$dev" \
    "Where=/sysroot/oem" \
    "Options=rw,suid,dev,exec,async" \
    > "$out/sysroot-oem.mount" || exit 1

ln -sf ../sysroot-oem.mount "$out/edgeinit-rootfs.service.wants/sysroot-oem.mount" || exit 1

printf '%s\n' \
    "# Written by edgeinit-generator: how long the OEM mount waits for its device." \
    "[Unit]" \
    "JobRunningTimeoutSec=$timeout" \
    > "$out/$dev_unit.d/50-edgeinit-oemtimeout.conf" || exit 1
exit 0
