"""Issue 4's "done when": the offline enable/disable/mask trees match `systemctl --root`.

Each scenario builds one scratch root with unit files (and, for some, links made
beforehand by the real `systemctl --root enable`), copies it twice, runs the real
`systemctl --root=COPY1 VERB UNIT` once per unit (as yip does) and
`edgeinit run --root COPY2` with one systemctl step doing the same, and compares the
two trees: every path, its type, a directory's or file's mode, a file's content, a
link's target. The units systemctl refuses (exit status != 0) must be exactly the ones
edgeinit's step names as failed. A second edgeinit run must change nothing.

No systemd needs to run for `systemctl --root`; systemd 252 is what these scenarios
were written against (`systemctl --version` is in every failure message).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

SYSTEMCTL = shutil.which("systemctl")
pytestmark = pytest.mark.skipif(SYSTEMCTL is None, reason="systemctl is not installed")

U = "usr/lib/systemd/system"
E = "etc/systemd/system"
VERBS = ("enable", "disable", "mask")  # edgeinit's order within a step


def _version() -> str:
    if SYSTEMCTL is None:
        return "none"
    out = subprocess.run([SYSTEMCTL, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEINIT_SYSTEMD", raising=False)


def build(root: Path, tree: dict[str, object]) -> None:
    """tree: path -> text (a file), ("link", target), or ("dir",). The unit directories
    are made too, unless the tree says "_bare" or has its own `lib`."""
    root.mkdir()
    for rel in ("etc/systemd/system", U, "lib/systemd/system"):
        if "_bare" in tree:
            break
        if not any(k == rel.split("/")[0] and isinstance(v, tuple) for k, v in tree.items()):
            (root / rel).mkdir(parents=True, exist_ok=True)
    for rel, spec in tree.items():
        if rel == "_bare":
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, tuple) and spec[0] == "link":
            os.symlink(spec[1], path)
        elif isinstance(spec, tuple):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(str(spec))


def snapshot(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(stat.S_IMODE(st.st_mode)))
            else:
                out[rel] = ("file", oct(stat.S_IMODE(st.st_mode)), path.read_bytes())
    return out


def systemctl(root: Path, verb: str, unit: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMCTL is not None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    return subprocess.run([SYSTEMCTL, f"--root={root}", "--no-pager", verb, unit], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def step_yaml(ops: list[tuple[str, str]]) -> str:
    lines = ["stages:", "  boot:", "    - name: units", "      systemctl:"]
    for verb in VERBS:
        units = [u for v, u in ops if v == verb]
        if units:
            lines.append(f"        {verb}: [{', '.join(json.dumps(u) for u in units)}]")
    return "\n".join(lines) + "\n"


FAILED = re.compile(r"systemctl: (enable|disable|mask) (\S+?): ")


def compare(cli, write, tmp_path: Path, tree: dict[str, object], ops: list[tuple[str, str]],
            before: list[tuple[str, str]] = ()) -> dict:  # type: ignore[assignment]
    """Run both on copies of one root; assert equal trees and equal failures."""
    assert [VERBS.index(v) for v, _ in ops] == sorted(VERBS.index(v) for v, _ in ops), \
        "ops must be in edgeinit's order: enable, disable, mask"
    base = tmp_path / "base"
    build(base, tree)
    for verb, unit in before:
        done = systemctl(base, verb, unit)
        assert done.returncode == 0, done.stderr
    ref, ours = tmp_path / "systemctl", tmp_path / "edgeinit"
    shutil.copytree(base, ref, symlinks=True)
    shutil.copytree(base, ours, symlinks=True)
    refused = set()
    log = []
    for verb, unit in ops:
        done = systemctl(ref, verb, unit)
        log.append(f"$ systemctl {verb} {unit} -> {done.returncode}\n{done.stderr.strip()}")
        if done.returncode != 0:
            refused.add((verb, unit if "." in unit else unit + ".service"))
    src = write("units.yaml", step_yaml(ops))
    result = cli("run", "--stage", "boot", "--root", ours, "--json", src)
    step = result.json()["steps"][0]
    failed = set(FAILED.findall(step["error"] or ""))
    context = f"{_version()}\n" + "\n".join(log) + f"\nedgeinit: {step}"
    want, got = snapshot(ref), snapshot(ours)
    differ = {k: (want.get(k), got.get(k)) for k in sorted(set(want) | set(got))
              if want.get(k) != got.get(k)}
    assert not differ, f"trees differ (systemctl, edgeinit): {differ}\n{context}"
    assert failed == refused, context
    assert result.code == (1 if refused else 0), context
    # A second run changes nothing, and says so.
    again = cli("run", "--stage", "boot", "--root", ours, "--json", src).json()["steps"][0]
    assert snapshot(ours) == got
    assert again["changed"] is False, again
    return step


INSTALL = "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\n"


def test_enable_units_from_every_directory(cli, write, tmp_path):
    """Plain services in /usr/lib, /lib, /usr/local/lib, /etc and /run; WantedBy,
    RequiredBy, Alias, Also (a socket), names with and without `.service`."""
    tree = {
        f"{U}/a.service": INSTALL + "WantedBy=multi-user.target\nRequiredBy=b.target\n"
                                    "Alias=aa.service\nAlso=a.socket\n",
        f"{U}/a.socket": "[Socket]\nListenStream=/run/a\n[Install]\nWantedBy=sockets.target\n",
        "lib/systemd/system/l.service": INSTALL + "WantedBy=multi-user.target\n",
        "usr/local/lib/systemd/system/z.service": INSTALL + "WantedBy=graphical.target\n",
        f"{E}/e.service": INSTALL + "WantedBy=multi-user.target\nAlias=ee.service\n",
        "run/systemd/system/r.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/k.timer": "[Timer]\nOnBootSec=1\n[Install]\nWantedBy=timers.target\n",
    }
    compare(cli, write, tmp_path, tree, [("enable", u) for u in
                                         ("a", "l.service", "z", "e", "r", "k.timer")])


def test_enable_prefers_the_first_directory_of_the_search_path(cli, write, tmp_path):
    """/etc before /usr/local/lib before /lib before /usr/lib: the link points at the
    file found first."""
    body = INSTALL + "WantedBy=multi-user.target\n"
    tree = {f"{U}/x.service": body, "lib/systemd/system/x.service": body,
            f"{U}/y.service": body, f"{E}/y.service": body,
            f"{U}/w.service": body, "usr/local/lib/systemd/system/w.service": body}
    compare(cli, write, tmp_path, tree, [("enable", "x"), ("enable", "y"), ("enable", "w")])


def test_enable_templates_instances_dropins_and_specifiers(cli, write, tmp_path):
    tree = {
        f"{U}/t@.service": INSTALL + "WantedBy=multi-user.target\nDefaultInstance=one\n"
                                     "Alias=tt@.service\n",
        f"{U}/g@.service": INSTALL + "WantedBy=getty.target\n",
        f"{U}/d.service": "[Service]\nExecStart=/bin/true\n",
        f"{U}/d.service.d/10-install.conf": "[Install]\nWantedBy=a.target\n",
        f"{E}/d.service.d/20-more.conf": "[Install]\nRequiredBy=b.target\n",
        f"{U}/sp@.service": INSTALL + "WantedBy=\nWantedBy=c.target \\\n  e.target \"f.target\"\n"
                                      "# a comment\n[Install]\nWantedBy=g@%i.target\n"
                                      "RequiredBy=h-%p.target\nAlias=sp-%i@.service\n",
        f"{U}/v@.service": INSTALL + "Alias=xx@inst.service\nWantedBy=multi-user.target\n",
    }
    compare(cli, write, tmp_path, tree, [
        ("enable", "t@"), ("enable", "t@two.service"), ("enable", "g@tty1"), ("enable", "d"),
        ("enable", "sp@x"), ("enable", "v@inst")])


def test_disable_removes_what_systemctl_removes(cli, write, tmp_path):
    """Units enabled by the real systemctl beforehand, plus links made by hand: in a deep
    directory, chained through another link, an instance link of a template, a link
    whose name is not a unit name (kept), a link named after the unit pointing elsewhere.
    Directories that become empty go; ones that were empty stay."""
    tree = {
        f"{U}/a.service": INSTALL + "WantedBy=multi-user.target\nRequiredBy=b.target\n"
                                    "Alias=aa.service\nAlso=a.socket\n",
        f"{U}/a.socket": "[Socket]\nListenStream=/run/a\n[Install]\nWantedBy=sockets.target\n",
        f"{U}/t@.service": INSTALL + "WantedBy=multi-user.target\nDefaultInstance=one\n"
                                     "Alias=tt@.service\n",
        f"{U}/n.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/keep.service": INSTALL + "WantedBy=multi-user.target\n",
        "elsewhere/foo.service": ("link", "/usr/lib/systemd/system/n.service"),
        f"{E}/x.target.wants/chained.service": ("link", "/elsewhere/foo.service"),
        f"{E}/x.target.wants/t@seven.service": ("link", "/opt/zz.service"),
        f"{E}/x.target.wants/notaunit": ("link", "/usr/lib/systemd/system/n.service"),
        f"{E}/deep/er/n.service": ("link", "/usr/lib/systemd/system/n.service"),
        f"{E}/q.target.wants/n.service": ("link", "/somewhere/else.service"),
        f"{E}/empty.target.wants": ("dir",),
        f"{E}/n.service.d/link.conf": ("link", "/usr/lib/systemd/system/n.service"),
    }
    before = [("enable", "a"), ("enable", "t@"), ("enable", "t@two"), ("enable", "n"),
              ("enable", "keep")]
    step = compare(cli, write, tmp_path, tree,
                   [("disable", "a"), ("disable", "t@"), ("disable", "n.service")], before)
    assert step["changed"] is True


def test_disable_an_instance_keeps_the_template_enabled(cli, write, tmp_path):
    tree = {f"{U}/t@.service": INSTALL + "WantedBy=multi-user.target\nDefaultInstance=one\n"
                                         "Alias=tt@.service\n"}
    compare(cli, write, tmp_path, tree, [("disable", "t@two")],
            [("enable", "t@"), ("enable", "t@two")])


def test_mask(cli, write, tmp_path):
    """An enabled unit, a unit that does not exist (masked all the same), an already
    masked one, a template; a unit file in /etc/systemd/system is refused."""
    tree = {
        f"{U}/n.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/m.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/t@.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{E}/local.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{E}/m.service": ("link", "/dev/null"),
    }
    step = compare(cli, write, tmp_path, tree, [
        ("mask", "n"), ("mask", "nope"), ("mask", "m"), ("mask", "t@"), ("mask", "local")],
        [("enable", "n")])
    assert any("nope.service does not exist" in w for w in step["warnings"]), step


def test_reenable_and_remask_change_nothing(cli, write, tmp_path):
    """Links already made by systemctl: edgeinit finds nothing to do (changed false)."""
    tree = {
        f"{U}/a.service": INSTALL + "WantedBy=multi-user.target\nAlias=aa.service\n",
        f"{U}/t@.service": INSTALL + "WantedBy=multi-user.target\nDefaultInstance=one\n",
    }
    step = compare(cli, write, tmp_path, tree, [("enable", "a"), ("enable", "t@"),
                                                ("mask", "gone")],
                   [("enable", "a"), ("enable", "t@"), ("mask", "gone")])
    assert step["changed"] is False and step["status"] == "ok", step


def test_existing_links_kept_replaced_or_refused(cli, write, tmp_path):
    """A .wants link to the same name in another search directory is kept; one pointing
    elsewhere is replaced; an alias pointing elsewhere is an error (the rest is still
    done); a file in the way of an alias is an error."""
    tree = {
        f"{U}/n.service": INSTALL + "WantedBy=multi-user.target\nAlias=n2.service\n",
        f"{U}/k.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/f.service": INSTALL + "WantedBy=multi-user.target\nAlias=f2.service\n",
        f"{E}/multi-user.target.wants/n.service": ("link", "/lib/systemd/system/n.service"),
        f"{E}/n2.service": ("link", "/usr/lib/systemd/system/other.service"),
        f"{E}/multi-user.target.wants/k.service": ("link", "/opt/zzz.service"),
        f"{E}/f2.service": "[Service]\nExecStart=/bin/false\n",
    }
    compare(cli, write, tmp_path, tree, [("enable", "n"), ("enable", "k"), ("enable", "f")])


def test_units_systemctl_refuses(cli, write, tmp_path):
    """Each refused by both, naming the unit: unknown, masked, a template without
    DefaultInstance, a bad alias (its other links still made), a generated unit, an
    alias in /etc/systemd/system, a same-name link in the search path. A unit without
    [Install] is not an error (nothing to do), nor is a linked unit file."""
    tree = {
        f"{U}/masked.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{E}/masked.service": ("link", "/dev/null"),
        f"{U}/empty.service": "",
        f"{U}/t3@.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/m.service": INSTALL + "WantedBy=multi-user.target\nAlias=m.socket\n",
        "run/systemd/generator/gen.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/b.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{E}/bb.service": ("link", "/usr/lib/systemd/system/b.service"),
        f"{U}/x.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{E}/x.service": ("link", "/usr/lib/systemd/system/x.service"),
        f"{U}/static.service": "[Service]\nExecStart=/bin/true\n",
        "opt/o.service": INSTALL + "WantedBy=multi-user.target\nAlso=b.service\n",
        f"{E}/o.service": ("link", "/opt/o.service"),
        f"{U}/y.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/y2.socket": ("link", "y.service"),
    }
    compare(cli, write, tmp_path, tree, [
        ("enable", u) for u in ("nope", "masked", "empty", "t3@", "m", "gen", "bb", "x",
                                "static", "o", "y2.socket")])


def test_vendor_alias_symlinks_are_followed(cli, write, tmp_path):
    """A symlink in /usr/lib to another unit (relative or absolute) enables that unit."""
    tree = {
        f"{U}/n.service": INSTALL + "WantedBy=multi-user.target\nAlias=n2.service\n",
        f"{U}/vendoralias.service": ("link", "n.service"),
        f"{U}/b.service": INSTALL + "WantedBy=multi-user.target\n",
        f"{U}/rel2.service": ("link", "../../../lib/systemd/system/b.service"),
    }
    compare(cli, write, tmp_path, tree, [("enable", "vendoralias"), ("enable", "rel2")])


def test_merged_usr_root(cli, write, tmp_path):
    """/lib -> usr/lib (a merged-/usr image): systemctl 252 finds /lib first and links
    there; disable removes those links again."""
    base = {
        "lib": ("link", "usr/lib"),
        f"{U}/x.service": INSTALL + "WantedBy=multi-user.target\nAlias=xx.service\n",
        f"{U}/y.service": INSTALL + "WantedBy=multi-user.target\n",
    }
    compare(cli, write, tmp_path, base, [("enable", "x"), ("disable", "y")], [("enable", "y")])


def test_enable_into_a_root_without_etc(cli, write, tmp_path):
    """/etc/systemd/system and its parents are made (0755) as systemctl makes them."""
    tree = {"_bare": True,
            f"{U}/a.service": INSTALL + "WantedBy=multi-user.target\nAlias=aa.service\n"}
    compare(cli, write, tmp_path, tree, [("enable", "a"), ("mask", "b")])


REAL_UNITS = Path("/usr/lib/systemd/system")


@pytest.mark.skipif(not REAL_UNITS.is_dir(), reason="no /usr/lib/systemd/system here")
@pytest.mark.parametrize("verb", ["enable", "disable"])
def test_every_unit_file_of_this_machine(cli, write, tmp_path, verb):
    """The unit files this machine ships (their real [Install] sections, aliases, Also=,
    templates and vendor symlinks), copied into a scratch root: every one enabled, or
    every one enabled by systemctl first and then disabled, one by one."""
    tree: dict[str, object] = {}
    for path in sorted(REAL_UNITS.iterdir()):
        rel = f"{U}/{path.name}"
        if path.is_symlink():
            tree[rel] = ("link", os.readlink(path))
        elif path.is_file():
            tree[rel] = path.read_text(errors="replace")
    names = sorted(p.name for p in REAL_UNITS.iterdir()
                   if p.is_file() and not p.is_symlink() and "." in p.name)
    assert len(names) > 20
    before = []
    if verb == "disable":
        base = tmp_path / "probe"
        build(base, tree)
        before = [("enable", n) for n in names if systemctl(base, "enable", n).returncode == 0]
    compare(cli, write, tmp_path, tree, [(verb, n) for n in names], before)
