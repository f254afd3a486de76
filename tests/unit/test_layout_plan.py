"""The layout planner (edgeinit/layout/plan.py), pure: env file + kernel command line +
current mounts -> ordered mounts and /etc/fstab.

Expected lines and directory names are those of ../shared/reference/immutable-rootfs.md
(the cos-toolkit's `cos-mount-layout.sh`, 2023), except where SPEC 7.11 changes them:
parent-first order by path depth, duplicates skipped with a warning, a missing env file
means the defaults.
"""

from __future__ import annotations

import pytest

from edgeinit.layout.plan import (
    DEFAULT_TIMEOUT,
    ETC_MOUNT_DROPIN,
    ETC_MOUNT_DROPIN_TEXT,
    Layout,
    host_path,
    mangle,
    norm_path,
    plan_layout,
)

# the initrd: the real root on /sysroot, the initrd's /run
SYSROOT_MOUNTS = [("rootfs", "/", "rootfs"), ("tmpfs", "/run", "tmpfs"),
                  ("/dev/vda2", "/sysroot", "ext4")]
# the same seen from inside `chroot /sysroot` (edgeinit-initrd-run), with /run bound
CHROOT_MOUNTS = [("/dev/vda2", "/", "ext4"), ("proc", "/proc", "proc"),
                 ("tmpfs", "/run", "tmpfs")]

STOCK_2023 = 'OVERLAY="tmpfs:25%"\nVOLUMES="LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local"\n'


def overlay_line(path: str, base: str = "/run/overlay", required: str | None = None) -> str:
    name = path.lstrip("/").replace("/", "-")
    line = (f"overlay {path} overlay defaults,lowerdir={path},"
            f"upperdir={base}/{name}.overlay/upper,workdir={base}/{name}.overlay/work")
    required = base if required is None else required
    return line + (f",x-systemd.requires-mounts-for={required}" if required else "")


def fstab_lines(layout: Layout) -> list[str]:
    return [line for line in layout.fstab.splitlines() if not line.startswith("#")]


def plan(env: str | None, cmdline: str = "", mounts=SYSROOT_MOUNTS,
         sysroot: str = "/sysroot") -> Layout:
    return plan_layout(env, cmdline, mounts, sysroot)


def order(layout: Layout) -> list[tuple[str, str]]:
    return [(op.kind, op.target) for op in layout.ops]


# ------------------------------------------------------------------ exact fstab lines

STOCK_FSTAB = [
    "/dev/vda2 / auto ro 0 0",
    "tmpfs /run/overlay tmpfs defaults,size=25% 0 0",
    "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0",
    overlay_line("/etc"), overlay_line("/home"), overlay_line("/opt"), overlay_line("/root"),
    overlay_line("/srv"), overlay_line("/var"),
    "/dev/disk/by-label/COS_PERSISTENT /usr/local auto defaults 0 0",
]

CASES = {
    # the stock 2023 00_rootfs.yaml, default RW_PATHS: /usr/local is the volume, not an
    # overlay; the reference's lines, parent-first by depth (volumes first at a depth)
    "stock 2023": (STOCK_2023, "", STOCK_FSTAB),
    # the same from inside the chroot the initrd unit uses: the same fstab
    "stock 2023, chrooted": (STOCK_2023, "", STOCK_FSTAB),
    # state paths as overlays: upper and work on the state target, which needs /usr/local
    "state overlays": (
        STOCK_2023 + 'RW_PATHS="/etc /var"\n'
                     'PERSISTENT_STATE_PATHS="/var/lib/rancher /etc/ssh"\n',
        "",
        ["/dev/vda2 / auto ro 0 0",
         "tmpfs /run/overlay tmpfs defaults,size=25% 0 0",
         "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0",
         overlay_line("/etc"), overlay_line("/var"),
         "/dev/disk/by-label/COS_PERSISTENT /usr/local auto defaults 0 0",
         "overlay /etc/ssh overlay defaults,lowerdir=/etc/ssh,"
         "upperdir=/usr/local/.state/etc-ssh.overlay/upper,"
         "workdir=/usr/local/.state/etc-ssh.overlay/work,"
         "x-systemd.requires-mounts-for=/usr/local",
         "overlay /var/lib/rancher overlay defaults,lowerdir=/var/lib/rancher,"
         "upperdir=/usr/local/.state/var-lib-rancher.overlay/upper,"
         "workdir=/usr/local/.state/var-lib-rancher.overlay/work,"
         "x-systemd.requires-mounts-for=/usr/local"]),
    "state binds": (
        STOCK_2023 + 'RW_PATHS="/etc /var"\nPERSISTENT_STATE_BIND="true"\n'
                     'PERSISTENT_STATE_PATHS="/var/lib/rancher /etc/ssh"\n',
        "",
        ["/dev/vda2 / auto ro 0 0",
         "tmpfs /run/overlay tmpfs defaults,size=25% 0 0",
         "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0",
         overlay_line("/etc"), overlay_line("/var"),
         "/dev/disk/by-label/COS_PERSISTENT /usr/local auto defaults 0 0",
         "/usr/local/.state/etc-ssh.bind /etc/ssh none defaults,bind 0 0",
         "/usr/local/.state/var-lib-rancher.bind /var/lib/rancher none defaults,bind 0 0"]),
    # the recovery variant: /usr/local becomes an overlay named usr-local
    "/usr/local as overlay": (
        'OVERLAY="tmpfs:25%"\nVOLUMES="LABEL=COS_OEM:/oem"\nRW_PATHS="/etc /usr/local"\n',
        "",
        ["/dev/vda2 / auto ro 0 0",
         "tmpfs /run/overlay tmpfs defaults,size=25% 0 0",
         "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0",
         overlay_line("/etc"),
         "overlay /usr/local overlay defaults,lowerdir=/usr/local,"
         "upperdir=/run/overlay/usr-local.overlay/upper,"
         "workdir=/run/overlay/usr-local.overlay/work,"
         "x-systemd.requires-mounts-for=/run/overlay"]),
    # no env file: kernel arguments only (and the default RW_PATHS minus the volume)
    "kernel arguments only": (
        None,
        "quiet rd.cos.overlay=LABEL=COS_OVL rd.cos.mount=LABEL=COS_PERSISTENT:/usr/local "
        "rd.cos.mount=UUID=0a1b-2c3d:/data rd.cos.debugrw",
        ["/dev/vda2 / auto rw 0 0",
         "/dev/disk/by-label/COS_OVL /run/overlay auto defaults 0 0",
         "/dev/disk/by-uuid/0a1b-2c3d /data auto defaults 0 0",
         overlay_line("/etc"), overlay_line("/home"), overlay_line("/opt"),
         overlay_line("/root"), overlay_line("/srv"), overlay_line("/var"),
         "/dev/disk/by-label/COS_PERSISTENT /usr/local auto defaults 0 0"]),
    # the default overlay is tmpfs:20%; the env file's OVERLAY beats rd.cos.overlay
    "no env file, no arguments: the defaults": (
        None, "",
        ["/dev/vda2 / auto ro 0 0", "tmpfs /run/overlay tmpfs defaults,size=20% 0 0",
         *[overlay_line(p) for p in ("/etc", "/home", "/opt", "/root", "/srv", "/var")],
         overlay_line("/usr/local")]),
    "OVERLAY beats rd.cos.overlay": ('OVERLAY="tmpfs:1G"\nRW_PATHS=""\n',
                                     "rd.cos.overlay=tmpfs:30%",
                                     ["/dev/vda2 / auto ro 0 0",
                                      "tmpfs /run/overlay tmpfs defaults,size=1G 0 0"]),
    "rd.cos.overlay when OVERLAY is unset": ('RW_PATHS=""\n', "rd.cos.overlay=tmpfs:30%",
                                             ["/dev/vda2 / auto ro 0 0",
                                              "tmpfs /run/overlay tmpfs defaults,size=30% 0 0"]),
    "block overlay by device": ('OVERLAY="/dev/vdb3"\nRW_PATHS=""\n', "",
                                ["/dev/vda2 / auto ro 0 0",
                                 "/dev/vdb3 /run/overlay auto defaults 0 0"]),
    # MERGE=false drops the kernel's mounts even with VOLUMES empty (cos-toolkit)
    "MERGE=false, empty VOLUMES": (
        'MERGE="false"\nVOLUMES=""\nRW_PATHS="/etc"\n',
        "rd.cos.mount=LABEL=COS_PERSISTENT:/usr/local",
        ["/dev/vda2 / auto ro 0 0", "tmpfs /run/overlay tmpfs defaults,size=20% 0 0",
         overlay_line("/etc")]),
    # MERGE=true (the default): kernel mounts appended unless VOLUMES has the mount point
    "MERGE=true, VOLUMES wins": (
        'VOLUMES="LABEL=MINE:/usr/local"\nRW_PATHS=""\n',
        "rd.cos.mount=LABEL=COS_PERSISTENT:/usr/local rd.cos.mount=/dev/vdc1:/data",
        ["/dev/vda2 / auto ro 0 0", "tmpfs /run/overlay tmpfs defaults,size=20% 0 0",
         "/dev/vdc1 /data auto defaults 0 0",
         "/dev/disk/by-label/MINE /usr/local auto defaults 0 0"]),
    "DEBUG_RW": ('DEBUG_RW="true"\nRW_PATHS=""\n', "",
                 ["/dev/vda2 / auto rw 0 0", "tmpfs /run/overlay tmpfs defaults,size=20% 0 0"]),
    "rd.cos.debugrw=0 is off": ('RW_PATHS=""\n', "rd.cos.debugrw=0",
                                ["/dev/vda2 / auto ro 0 0",
                                 "tmpfs /run/overlay tmpfs defaults,size=20% 0 0"]),
    # RW_PATHS="" (set, empty): no ephemeral overlays at all
    "RW_PATHS empty": ('RW_PATHS=""\nVOLUMES="LABEL=COS_OEM:/oem"\n', "",
                       ["/dev/vda2 / auto ro 0 0",
                        "tmpfs /run/overlay tmpfs defaults,size=20% 0 0",
                        "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0"]),
    "device forms": (
        'RW_PATHS=""\nVOLUMES="PARTLABEL=data:/data UUID=ab-cd:/u /dev/sdb1:/x '
        'PARTUUID=12-34:/p"\n', "",
        ["/dev/vda2 / auto ro 0 0", "tmpfs /run/overlay tmpfs defaults,size=20% 0 0",
         "/dev/disk/by-partlabel/data /data auto defaults 0 0",
         "/dev/disk/by-partuuid/12-34 /p auto defaults 0 0",
         "/dev/disk/by-uuid/ab-cd /u auto defaults 0 0",
         "/dev/sdb1 /x auto defaults 0 0"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fstab_lines(name: str) -> None:
    env, cmdline, expected = CASES[name]
    chrooted = "chrooted" in name
    layout = plan(env, cmdline, *((CHROOT_MOUNTS, "/") if chrooted else (SYSROOT_MOUNTS,)))
    assert fstab_lines(layout) == expected
    assert layout.fstab.startswith("# ")  # comment lines are allowed in fstab
    assert layout.fstab.endswith("\n")


def test_the_etc_mount_dropin_is_exactly_the_cos_toolkits() -> None:
    assert ETC_MOUNT_DROPIN == "/etc/systemd/system/etc.mount.d/override.conf"
    assert ETC_MOUNT_DROPIN_TEXT == "[Mount]\nLazyUnmount=true\n"


# ------------------------------------------------------------------ the seed


SEED_ENV = """\
OVERLAY="tmpfs:25%"
PERSISTENT_STATE_BIND="true"
PERSISTENT_STATE_PATHS="/etc/systemd /etc/rancher /etc/ssh /etc/iscsi /etc/cni /home /opt \
/root /usr/libexec /var/log /var/lib/rancher /var/lib/kubelet /var/lib/NetworkManager \
/var/lib/longhorn /var/lib/cni"
RW_PATHS="/var /etc /srv"
VOLUMES="LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local"
"""

SEED_STATE = ["/home", "/opt", "/root", "/etc/systemd", "/etc/rancher", "/etc/ssh",
              "/etc/iscsi", "/etc/cni", "/usr/libexec", "/var/log", "/var/lib/rancher",
              "/var/lib/kubelet", "/var/lib/NetworkManager", "/var/lib/longhorn",
              "/var/lib/cni"]


def test_the_seeds_derivative_layout_in_full() -> None:
    layout = plan(SEED_ENV)
    assert layout.warnings == [] and layout.skipped == []
    assert order(layout) == [
        ("overlay-base", "/run/overlay"), ("volume", "/oem"), ("overlay", "/etc"),
        ("overlay", "/srv"), ("overlay", "/var"), ("volume", "/usr/local"),
        *[("state-bind", p) for p in SEED_STATE]]
    deps = {op.target: op.depends_on for op in layout.ops}
    assert deps["/etc"] == ("/run/overlay",)
    assert deps["/oem"] == () and deps["/usr/local"] == ()
    assert deps["/home"] == ("/usr/local",)
    assert deps["/etc/ssh"] == ("/etc", "/usr/local")
    assert deps["/var/lib/longhorn"] == ("/var", "/usr/local")
    assert deps["/usr/libexec"] == ("/usr/local",)
    assert fstab_lines(layout) == [
        "/dev/vda2 / auto ro 0 0",
        "tmpfs /run/overlay tmpfs defaults,size=25% 0 0",
        "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0",
        overlay_line("/etc"), overlay_line("/srv"), overlay_line("/var"),
        "/dev/disk/by-label/COS_PERSISTENT /usr/local auto defaults 0 0",
        *[f"/usr/local/.state/{p.lstrip('/').replace('/', '-')}.bind {p} none "
          "defaults,bind 0 0" for p in SEED_STATE]]
    assert "/usr/local/.state/var-lib-NetworkManager.bind /var/lib/NetworkManager none " \
           "defaults,bind 0 0" in layout.fstab
    assert layout.state_bind is True and layout.timeout == DEFAULT_TIMEOUT


# ------------------------------------------------------------------ order and nesting


def test_a_volume_under_an_rw_path_is_mounted_after_the_overlay() -> None:
    # the cos-toolkit sorts "/var/lib/longhorn:/dev/..." before "/var:overlay" and then
    # hides the volume under the /var overlay (immutable-rootfs.md section 6.1)
    layout = plan('VOLUMES="LABEL=COS_PERSISTENT:/usr/local LABEL=LONGHORN:/var/lib/longhorn"\n'
                  'RW_PATHS="/var"\n')
    assert order(layout) == [("overlay-base", "/run/overlay"), ("overlay", "/var"),
                             ("volume", "/usr/local"), ("volume", "/var/lib/longhorn")]
    assert layout.op("/var/lib/longhorn").depends_on == ("/var",)
    assert sorted(["/var/lib/longhorn:/dev/x", "/var:overlay"])[0].startswith("/var/lib")


def test_a_volume_under_a_state_path_comes_after_the_state_mount() -> None:
    layout = plan('VOLUMES="LABEL=P:/usr/local LABEL=K3S:/var/lib/rancher/k3s/storage"\n'
                  'RW_PATHS="/var"\nPERSISTENT_STATE_PATHS="/var/lib/rancher"\n'
                  'PERSISTENT_STATE_BIND="true"\n')
    targets = [t for _, t in order(layout)]
    assert targets.index("/var/lib/rancher") < targets.index("/var/lib/rancher/k3s/storage")
    assert layout.op("/var/lib/rancher/k3s/storage").depends_on == ("/var/lib/rancher",)
    assert layout.op("/var/lib/rancher").depends_on == ("/var", "/usr/local")


def test_nested_state_paths_parent_first_and_under_an_rw_overlay() -> None:
    layout = plan('VOLUMES="LABEL=P:/usr/local"\nRW_PATHS="/etc"\nPERSISTENT_STATE_BIND=true\n'
                  'PERSISTENT_STATE_PATHS="/etc/rancher/k3s /etc/rancher /etc/ssh"\n')
    assert [t for k, t in order(layout) if k == "state-bind"] == [
        "/etc/rancher", "/etc/ssh", "/etc/rancher/k3s"]
    assert layout.op("/etc/rancher/k3s").depends_on == ("/etc/rancher", "/usr/local")
    assert layout.warnings == []  # a state path under an RW_PATH overlay is fine


def test_the_same_path_twice_is_planned_once_with_a_warning() -> None:
    layout = plan('VOLUMES="LABEL=A:/data LABEL=B:/data/ LABEL=COS_OEM:/oem"\n'
                  'RW_PATHS="/etc /etc/ /var /srv/a-b /srv/a/b"\n'
                  'PERSISTENT_STATE_PATHS="/etc /oem /var/lib/rancher /var/lib-rancher '
                  '/var/lib/kubelet /var/lib/kubelet"\nPERSISTENT_STATE_BIND="true"\n')
    assert order(layout) == [
        ("overlay-base", "/run/overlay"), ("volume", "/data"), ("volume", "/oem"),
        ("overlay", "/etc"), ("overlay", "/var"), ("overlay", "/srv/a-b"),
        ("state-bind", "/var/lib/rancher"), ("state-bind", "/var/lib/kubelet")]
    assert layout.op("/data").device == "LABEL=A"  # the first one wins
    skipped = [(s.origin, s.target) for s in layout.skipped]
    assert skipped == [("VOLUMES", "/data"), ("RW_PATHS", "/etc"), ("RW_PATHS", "/srv/a/b"),
                       ("PERSISTENT_STATE_PATHS", "/etc"), ("PERSISTENT_STATE_PATHS", "/oem"),
                       ("PERSISTENT_STATE_PATHS", "/var/lib-rancher"),
                       ("PERSISTENT_STATE_PATHS", "/var/lib/kubelet")]
    assert len([w for w in layout.warnings if " skipped: " in w]) == len(skipped)
    # colliding directory names (the cos-toolkit would share one state directory)
    assert any("/var/lib-rancher skipped" in w and "var-lib-rancher is also /var/lib/rancher"
               in w for w in layout.warnings)
    assert any("/srv/a/b skipped" in w and "srv-a-b.overlay" in w for w in layout.warnings)
    assert sum(line.split()[1] == "/etc" for line in fstab_lines(layout)) == 1
    assert sum(line.split()[1] == "/data" for line in fstab_lines(layout)) == 1


def test_an_rw_path_that_is_a_volume_gives_way_silently() -> None:
    layout = plan(STOCK_2023)
    assert layout.op("/usr/local").kind == "volume"
    assert layout.warnings == [] and layout.skipped == []


def test_a_state_path_holding_the_state_target_is_skipped() -> None:
    layout = plan('RW_PATHS=""\nPERSISTENT_STATE_PATHS="/usr /srv"\nPERSISTENT_STATE_BIND=1\n')
    assert [s.target for s in layout.skipped] == ["/usr"]
    assert "PERSISTENT_STATE_BIND='1' is not 'true': treated as false" in layout.warnings
    assert layout.op("/srv").kind == "state-overlay"  # not bind: "1" is not "true"
    # the state target is on no volume: said, and no requires-mounts-for the root
    assert any("do not survive a reboot" in w for w in layout.warnings)
    assert "x-systemd.requires-mounts-for" not in layout.op("/srv").options


def test_custom_state_target_requires_its_volume() -> None:
    layout = plan('VOLUMES="LABEL=DATA:/data"\nRW_PATHS=""\n'
                  'PERSISTENT_STATE_TARGET="/data/state/"\nPERSISTENT_STATE_PATHS="/etc/ssh"\n')
    assert fstab_lines(layout)[-1] == (
        "overlay /etc/ssh overlay defaults,lowerdir=/etc/ssh,"
        "upperdir=/data/state/etc-ssh.overlay/upper,workdir=/data/state/etc-ssh.overlay/work,"
        "x-systemd.requires-mounts-for=/data")
    assert layout.op("/etc/ssh").depends_on == ("/data",)


# ------------------------------------------------------------------ inputs


def test_a_missing_env_file_means_the_defaults() -> None:
    layout = plan(None)
    assert order(layout) == [("overlay-base", "/run/overlay")] + [
        ("overlay", p) for p in ("/etc", "/home", "/opt", "/root", "/srv", "/var", "/usr/local")]
    assert layout.overlay == "tmpfs:20%"
    assert layout.warnings == []


@pytest.mark.parametrize("cmdline", ["rd.cos.disable", "edgeinit.disable",
                                     "quiet edgeinit.disable=1", "rd.cos.disable=0"])
def test_kernel_arguments_turn_the_layout_off(cmdline: str) -> None:
    layout = plan(STOCK_2023, cmdline)
    assert layout.disabled and layout.ops == [] and layout.fstab == ""


def test_bad_entries_are_skipped_with_a_warning() -> None:
    layout = plan('VOLUMES="bogus:/z LABEL=:/w nocolon LABEL=X: /dev/sdb1:/ LABEL=OK:/ok"\n'
                  'RW_PATHS="/ / /with,comma"\nOVERLAY="nonsense"\n')
    assert [op.target for op in layout.ops if op.kind == "volume"] == ["/ok"]
    assert len(layout.skipped) == 8
    assert layout.op("/run/overlay").options == "defaults,size=20%"
    assert any("OVERLAY='nonsense'" in w for w in layout.warnings)


def test_labels_with_a_slash_are_escaped_as_udev_does() -> None:
    layout = plan('VOLUMES="LABEL=a/b:/y"\nRW_PATHS=""\n')
    assert layout.op("/y").fs_spec == "/dev/disk/by-label/a\\x2fb"


def test_merge_false_warns_about_the_dropped_kernel_mounts() -> None:
    layout = plan('MERGE="false"\n', "rd.cos.mount=LABEL=X:/x")
    assert layout.op("/x") is None
    assert any("rd.cos.mount" in w and "LABEL=X:/x" in w for w in layout.warnings)
    layout = plan('MERGE="no"\n', "")
    assert "MERGE='no' is not 'true': treated as false" in layout.warnings


def test_already_mounted_targets_are_not_mounted_again_but_stay_in_fstab() -> None:
    mounts = [*SYSROOT_MOUNTS, ("/dev/vdb1", "/sysroot/oem", "ext4"),
              ("tmpfs", "/run/overlay", "tmpfs")]
    layout = plan(STOCK_2023, "", mounts)
    assert layout.op("/oem").mounted == "/dev/vdb1 (ext4)"
    assert layout.op("/run/overlay").mounted == "tmpfs (tmpfs)"
    assert layout.op("/etc").mounted == ""
    assert fstab_lines(layout) == STOCK_FSTAB


def test_a_sysroot_that_is_an_overlay_gets_no_base_and_no_rw_overlays() -> None:
    layout = plan(STOCK_2023 + 'PERSISTENT_STATE_PATHS="/etc/ssh"\n', "",
                  [("overlay", "/sysroot", "overlay")])
    assert order(layout) == [("volume", "/oem"), ("volume", "/usr/local"),
                             ("state-overlay", "/etc/ssh")]
    assert fstab_lines(layout)[0] == "/dev/disk/by-label/COS_OEM /oem auto defaults 0 0"


def test_the_root_line_comes_from_the_filesystem_holding_the_sysroot() -> None:
    layout = plan_layout('RW_PATHS=""\n', "", [("/dev/vda", "/", "ext4")], "/tmp/x/sysroot")
    assert fstab_lines(layout)[0] == "/dev/vda / auto ro 0 0"
    layout = plan_layout('RW_PATHS=""\n', "", [], "/")
    assert fstab_lines(layout)[0].startswith("tmpfs /run/overlay")
    assert any("no line for /" in w for w in layout.warnings)


@pytest.mark.parametrize(("cmdline", "timeout", "warned"), [
    ("", 60.0, False), ("edgeinit.layout.timeout=5", 5.0, False),
    ("edgeinit.layout.timeout=0.5", 0.5, False), ("edgeinit.layout.timeout=abc", 60.0, True),
    ("edgeinit.layout.timeout=99999", 60.0, True)])
def test_the_device_wait_timeout(cmdline: str, timeout: float, warned: bool) -> None:
    layout = plan(None, cmdline)
    assert layout.timeout == timeout
    assert bool(layout.warnings) == warned


def test_paths_names_and_where_they_live() -> None:
    assert mangle("/var/lib/rancher") == "var-lib-rancher"
    assert mangle("/var/lib-rancher") == "var-lib-rancher"  # the collision the planner skips
    assert norm_path("etc/") == norm_path("//etc/./") == "/etc"
    assert host_path("/sysroot", "/etc") == "/sysroot/etc"
    assert host_path("/sysroot", "/run/overlay") == "/run/overlay"
    assert host_path("/sysroot", "/runner") == "/sysroot/runner"
    assert host_path("/", "/etc") == "/etc"
