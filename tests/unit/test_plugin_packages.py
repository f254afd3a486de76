"""`packages` and `package_pins` (yip-behaviour 3.18): the plan, through the real engine.

The target is a temp dir with stand-in manager binaries (detection looks only at which
executables exist); what the package database says is stubbed where the plan asks it,
and asked for real of a stand-in dpkg-query in a chroot (needs root). apt for real, in a
Debian chroot, is tests/integration/test_packages_apt.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeinit.target import pkgmgr
from edgeinit.target.changes import RunCommand, WriteFile
from edgeinit.target.root import TargetRoot
from tests.unit.plugin_harness import run_step

APT = pkgmgr.BY_NAME["apt"]


def make_root(tmp_path: Path, *binaries: str, os_id: str = "debian") -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text(f"ID={os_id}\n")
    for b in binaries:
        path = root / b.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return root


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The stubbed package database: {"installed": {name: [(status, version)]},
    "unknown": [...], "upgradable": [...]}; calls are counted in "asked"."""
    state: dict = {"installed": {}, "unknown": [], "upgradable": [], "asked": []}

    def installed(root, manager, names):
        state["asked"].append(("installed", manager.name, list(names)))
        return {n: [pkgmgr.Installed(s, v) for s, v in state["installed"].get(n, [])]
                for n in names}

    def unknown(root, names):
        state["asked"].append(("unknown", list(names)))
        return [n for n in names if n in state["unknown"]]

    def upgradable(root):
        state["asked"].append(("upgradable",))
        return list(state["upgradable"])

    monkeypatch.setattr(pkgmgr, "installed", installed)
    monkeypatch.setattr(pkgmgr, "unknown_apt_packages", unknown)
    monkeypatch.setattr(pkgmgr, "apt_upgradable", upgradable)
    return state


def commands(run) -> list[str]:
    return [c.command for c in run.of(RunCommand)]


# ------------------------------------------------------------------ detection


def test_detect_by_binary_and_os_release_breaks_ties(tmp_path: Path) -> None:
    root = make_root(tmp_path, "/usr/bin/apt-get")
    assert pkgmgr.detect(TargetRoot(str(root))).name == "apt"
    both = make_root(tmp_path / "b", "/usr/bin/dnf", "/usr/bin/zypper", os_id="opensuse-leap")
    assert pkgmgr.detect(TargetRoot(str(both))).name == "zypper"
    (both / "etc" / "os-release").write_text('ID="rocky"\nID_LIKE="rhel centos fedora"\n')
    assert pkgmgr.detect(TargetRoot(str(both))).name == "dnf"
    apk = make_root(tmp_path / "c", "/sbin/apk", os_id="alpine")
    assert pkgmgr.detect(TargetRoot(str(apk))).name == "apk"


def test_a_file_that_is_not_executable_is_no_manager(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "apt-get").write_text("")
    with pytest.raises(pkgmgr.PackageError, match="no package manager found in the target"):
        pkgmgr.detect(TargetRoot(str(root)))


def test_no_package_manager_fails_the_step(tmp_path: Path) -> None:
    run = run_step({"packages": {"install": ["hello"]}}, make_root(tmp_path))
    assert run.status == "failed" and run.changes == []
    assert run.error.startswith("packages: no package manager found in the target ")
    assert "(looked for apt-get, dnf, zypper, apk, pacman in " in run.error


# ------------------------------------------------------------------ packages with apt


def test_yips_order_and_apt_commands(tmp_path: Path, db: dict) -> None:
    """refresh -> upgrade -> install -> remove, non-interactive, in the target."""
    db["installed"] = {"old": [("installed", "1")]}
    db["upgradable"] = ["libc6"]
    run = run_step({"packages": {"remove": ["old"], "install": ["hello", "sl"],
                                 "upgrade": True, "refresh": True}},
                   make_root(tmp_path, "/usr/bin/apt-get"))
    env = "DEBIAN_FRONTEND=noninteractive APT_LISTCHANGES_FRONTEND=none "
    opts = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
    assert commands(run) == [
        env + "apt-get -y -q update",
        env + f"apt-get -y -q {opts} upgrade",
        env + f"apt-get -y -q {opts} --no-install-recommends install hello sl",
        env + "apt-get -y -q remove old"]
    assert run.status == "ok" and run.entry.changed


def test_installed_packages_are_not_installed_again_nor_absent_ones_removed(
        tmp_path: Path, db: dict) -> None:
    """Idempotent: what the target's dpkg says decides; nothing to do = no change.
    A package with only its config files left counts as removed; a half-installed one is
    installed again and can be removed."""
    db["installed"] = {"hello": [("installed", "2.10-3")], "gone": [("config-files", "1")],
                       "half": [("half-installed", "1")]}
    root = make_root(tmp_path, "/usr/bin/apt-get")
    run = run_step({"packages": {"install": ["hello"], "remove": ["gone", "never"]}}, root)
    assert run.changes == [] and not run.entry.changed and run.status == "ok"
    run = run_step({"packages": {"install": ["hello", "half"], "remove": ["half"]}}, root)
    assert [c.split()[-2:] for c in commands(run)] == [["install", "half"], ["remove", "half"]]


def test_a_version_asked_for_is_compared(tmp_path: Path, db: dict) -> None:
    db["installed"] = {"hello": [("installed", "2.10-2")], "sl": [("installed", "5.02-1")]}
    run = run_step({"packages": {"install": ["hello=2.10-3", "sl=5.02-1", "x/bookworm"]}},
                   make_root(tmp_path, "/usr/bin/apt-get"))
    assert commands(run)[0].endswith("install hello=2.10-3 x/bookworm")
    assert ("installed", "apt", ["hello", "sl"]) in db["asked"]


def test_nothing_to_upgrade_runs_no_upgrade(tmp_path: Path, db: dict) -> None:
    run = run_step({"packages": {"upgrade": True}}, make_root(tmp_path, "/usr/bin/apt-get"))
    assert run.changes == [] and db["asked"] == [("upgradable",)]


def test_an_unknown_package_fails_the_install_by_name_and_installs_nothing(
        tmp_path: Path, db: dict) -> None:
    db["unknown"] = ["nosuch"]
    db["installed"] = {"old": [("installed", "1")]}
    run = run_step({"packages": {"install": ["hello", "nosuch=1.0"], "remove": ["old"]}},
                   make_root(tmp_path, "/usr/bin/apt-get"))
    assert run.status == "failed"
    assert run.error == ("packages: apt knows no package 'nosuch' (not in the target's "
                         "package index; refresh: true updates it); nothing installed")
    assert [c.split()[-2:] for c in commands(run)] == [["remove", "old"]]


@pytest.mark.parametrize(("name", "why"), [
    ("-y", "'-y' is an option, not a package name"),
    ("a b", "'a b' is not a package name"),
    ("", "an empty package name"),
])
def test_bad_package_names(tmp_path: Path, db: dict, name: str, why: str) -> None:
    run = run_step({"packages": {"install": ["ok", name]}},
                   make_root(tmp_path, "/usr/bin/apt-get"))
    assert run.status == "failed" and run.changes == []
    assert run.error.startswith(f"packages: install: {why}")


def test_names_are_shell_quoted(tmp_path: Path, db: dict) -> None:
    run = run_step({"packages": {"install": ["a;reboot"]}}, make_root(tmp_path, "/usr/bin/apt-get"))
    assert commands(run)[0].endswith("install 'a;reboot'")


# ------------------------------------------------------------------ other managers


@pytest.mark.parametrize(("binary", "expected"), [
    ("/usr/bin/dnf", ["dnf -y makecache", "dnf -y upgrade",
                      "dnf -y install --setopt=install_weak_deps=False hello",
                      "dnf -y remove old"]),
    ("/usr/bin/zypper", ["zypper --non-interactive refresh", "zypper --non-interactive update",
                         "zypper --non-interactive install --no-recommends hello",
                         "zypper --non-interactive remove old"]),
    ("/sbin/apk", ["apk update", "apk upgrade --no-cache", "apk add --no-cache hello",
                   "apk del old"]),
    ("/usr/bin/pacman", ["pacman -Sy --noconfirm", "pacman -Syu --noconfirm",
                         "pacman -S --noconfirm --needed hello", "pacman -R --noconfirm old"]),
])
def test_other_managers(tmp_path: Path, db: dict, binary: str, expected: list[str]) -> None:
    db["installed"] = {"old": [("installed", "1")]}
    run = run_step({"packages": {"refresh": True, "upgrade": True, "install": ["hello"],
                                 "remove": ["old"]}}, make_root(tmp_path, binary, os_id="x"))
    assert commands(run) == expected


def test_installed_asks_the_targets_package_database(shell_target: Path) -> None:
    """The query runs in the target (chrooted) and its answers are read per package."""
    bin_dir = shell_target / "usr" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    # A stand-in that honours the text before ${...} in -f (as dpkg-query prints the
    # format given) and warns on stderr for libc6: only the format's lines are data.
    (bin_dir / "dpkg-query").write_text(
        "#!/bin/sh\nfor a; do case $a in -f=*) fmt=${a#-f=};; esac; n=$a; done\n"
        "pre=${fmt%%\\$*}\n"
        'case "$n" in\n'
        "  hello) echo \"${pre}installed 2.10-3\";;\n"
        "  libc6) echo 'dpkg-query: warning: parsing file' >&2\n"
        "         echo \"${pre}installed 2.36-9\"; echo \"${pre}config-files 2.36-8\";;\n"
        "  gone) echo \"${pre}config-files 1.0\";;\n"
        "  *) echo \"dpkg-query: no packages found matching $n\" >&2; exit 1;;\n"
        "esac\n")
    (bin_dir / "dpkg-query").chmod(0o755)
    got = pkgmgr.installed(TargetRoot(str(shell_target)), APT,
                           ["hello", "libc6", "gone", "nosuch"])
    assert got == {"hello": [pkgmgr.Installed("installed", "2.10-3")],
                   "libc6": [pkgmgr.Installed("installed", "2.36-9"),
                             pkgmgr.Installed("config-files", "2.36-8")],
                   "gone": [pkgmgr.Installed("config-files", "1.0")],
                   "nosuch": []}
    assert [e.complete for e in got["gone"]] == [False]
    assert [e.present for e in got["gone"]] == [False]


def test_split_spec() -> None:
    dnf = pkgmgr.BY_NAME["dnf"]
    assert pkgmgr.split_spec(APT, "hello=2.10") == ("hello", "2.10")
    assert pkgmgr.split_spec(APT, "hello:amd64") == ("hello:amd64", None)
    assert pkgmgr.split_spec(APT, "hello/bookworm") is None
    assert pkgmgr.split_spec(APT, "lib*") is None
    assert pkgmgr.split_spec(dnf, "hello") == ("hello", None)
    assert pkgmgr.split_spec(dnf, "hello>=2") is None


# ------------------------------------------------------------------ package_pins


def test_apt_pins_a_file_per_package(tmp_path: Path) -> None:
    root = make_root(tmp_path, "/usr/bin/apt-get")
    run = run_step({"package_pins": {"hello": "2.10-3", "libstdc++6": "12.*", "empty": ""}},
                   root)
    files = {c.path: c.content for c in run.of(WriteFile)}
    assert files == {
        "/etc/apt/preferences.d/edgeinit-hello.pref":
            b"Explanation: package_pins (edgeinit)\nPackage: hello\nPin: version 2.10-3\n"
            b"Pin-Priority: 1001\n",
        "/etc/apt/preferences.d/edgeinit-libstdc__6.pref":
            b"Explanation: package_pins (edgeinit)\nPackage: libstdc++6\nPin: version 12.*\n"
            b"Pin-Priority: 1001\n"}
    assert run.warnings == ["package_pins: empty version for 'empty' (skipped)"]
    done = run_step({"package_pins": {"hello": "2.10-3"}}, root, dry_run=False)
    assert done.entry.changed
    again = run_step({"package_pins": {"hello": "2.10-3"}}, root, dry_run=False)
    assert again.changes == [] and not again.entry.changed


def test_apk_world_keeps_other_entries(tmp_path: Path) -> None:
    root = make_root(tmp_path, "/sbin/apk", os_id="alpine")
    (root / "etc" / "apk").mkdir()
    (root / "etc" / "apk" / "world").write_text("alpine-base\ncurl>8\nopenssh\n")
    run = run_step({"package_pins": {"curl": "8.5.0-r0", "jq": "1.7"}}, root, dry_run=False)
    assert (root / "etc" / "apk" / "world").read_text() == (
        "alpine-base\ncurl=8.5.0-r0\nopenssh\njq=1.7\n")
    again = run_step({"package_pins": {"curl": "8.5.0-r0", "jq": "1.7"}}, root)
    assert again.changes == [] and run.entry.changed


def test_zypper_and_dnf_locks(tmp_path: Path) -> None:
    z = make_root(tmp_path / "z", "/usr/bin/zypper", os_id="sles")
    run = run_step({"package_pins": {"hello": "2.10"}}, z)
    assert commands(run) == ["zypper --non-interactive addlock hello=2.10 || "
                             "zypper --non-interactive addlock hello"]
    (z / "etc" / "zypp").mkdir()
    (z / "etc" / "zypp" / "locks").write_text("type: package\nmatch_type: glob\n"
                                              "solvable_name: hello\n")
    assert run_step({"package_pins": {"hello": "2.10"}}, z).changes == []
    d = make_root(tmp_path / "d", "/usr/bin/dnf", os_id="fedora")
    assert commands(run_step({"package_pins": {"hello": "2.10"}}, d)) == [
        "dnf -y versionlock add hello-2.10"]
    (d / "etc" / "dnf" / "plugins").mkdir(parents=True)
    (d / "etc" / "dnf" / "plugins" / "versionlock.list").write_text(
        "hello-0:2.10-7.fc39.*\n")
    assert run_step({"package_pins": {"hello": "2.10"}}, d).changes == []


def test_pacman_has_no_pins_and_bad_pin_names(tmp_path: Path) -> None:
    run = run_step({"package_pins": {"hello": "1"}}, make_root(tmp_path, "/usr/bin/pacman"))
    assert run.changes == [] and run.warnings == [
        "package_pins: pacman has no version pins; nothing pinned"]
    bad = run_step({"package_pins": {"hello=1": "1"}}, make_root(tmp_path, "/usr/bin/apt-get"))
    assert bad.status == "failed" and bad.error == "package_pins: 'hello=1' is not a package name"
