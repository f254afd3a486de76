"""From SOURCE arguments to loaded config documents, in run order (SPEC sections 1, 2).

A source is a file, a directory (its `.yaml`/`.yml` files, walked depth-first with
each directory's entries sorted by name, as yip's walk does), `-` (standard input), an
http(s) URL, or the kernel command line. Paths given on the command line are paths of
the machine running edgeinit; the default directories and `edgeinit.setup=` paths
are paths of the target, resolved inside the root.

Loading never raises for bad input: a file that cannot be read or parsed becomes a
`Failure` naming the file (and line), and the other files still load.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from typing import Any

from edgeinit.config import cloudconfig, yamlload
from edgeinit.model import Record, spec
from edgeinit.schema.problems import ERROR, UNKNOWN, Path, Problem
from edgeinit.target.root import PathError, TargetRoot

DEFAULT_DIRS = ("/system/oem", "/oem", "/usr/local/oem")
MAX_CONFIG_BYTES = 16 * 1024 * 1024


class Document(Record):
    """One loaded config file, in yip's shape: {"name": ..., "stages": {...}}."""

    group: int  # index of the SOURCE argument it came from (after: stays within one)
    origin: str  # the file as found on this machine, the URL, "-" or "cmdline"
    data: dict[str, Any]
    text: str | None = None  # for line numbers; None when there is no text (cmdline)
    cloud_config: cloudconfig.Converted | None = None
    problems: list[Problem] = spec(factory=list)  # paths in `data`'s space
    tree: Any = None  # composed YAML nodes, built on demand (for line numbers)

    @property
    def name(self) -> str:
        """The config's name for `after:` and logs: its `name:`, else its origin."""
        name = self.data.get("name")
        return name if isinstance(name, str) and name else self.origin

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of a path of `data` in the text (0, 0 if unknown)."""
        if self.text is None:
            return (0, 0)
        if self.cloud_config is not None:
            path = self.cloud_config.original(path)
        if self.tree is None:
            self.tree = yamlload.compose(self.text)
        return yamlload.locate_in(self.tree, path, key=key)

    def where(self, path: Path, *, key: bool = False) -> str:
        line, col = self.locate(path, key=key)
        return f"{self.origin}:{line}:{col}" if line else self.origin


class Failure(Record):
    """A source (or one file of it) that could not be loaded."""

    group: int
    origin: str
    message: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.origin}:{self.line}:{self.column}: {self.message}"
        return f"{self.origin}: {self.message}"


Loaded = Document | Failure


def parse(group: int, origin: str, text: str) -> Loaded:
    """A document from its text (yip or #cloud-config); a Failure for invalid YAML."""
    try:
        raw, more = yamlload.load_first(text)
    except yamlload.YamlError as e:
        return Failure(group, origin, f"invalid YAML: {e.message}", e.line, e.column)
    loaded = _parsed(group, origin, text, raw)
    if more and isinstance(loaded, Document):
        loaded.problems.append(Problem((), "only the first YAML document of the file is read; "
                                       "the documents after '---' are ignored", UNKNOWN))
    return loaded


def _parsed(group: int, origin: str, text: str, raw: Any) -> Loaded:
    if cloudconfig.is_cloud_config(text):
        converted = cloudconfig.convert(raw)
        doc = Document(group, origin, converted.data, text, converted)
        doc.problems.extend(converted.problems)
        return _check_top(doc, yip=False)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return Failure(group, origin, "expected a mapping at the top of the file", 1, 1)
    return _check_top(Document(group, origin, raw, text), yip=True)


def _check_top(doc: Document, *, yip: bool) -> Loaded:
    """Top-level shape: `name` a scalar, `stages` a mapping; other keys are unknown."""
    from edgeinit.schema.problems import unknown_key

    if yip:
        for key in doc.data:
            if key not in ("name", "stages"):
                doc.problems.append(unknown_key((), key, ("name", "stages")))
    name = doc.data.get("name")
    if isinstance(name, (dict, list)):
        doc.problems.append(Problem(("name",), "expected a string, got a "
                                    + ("mapping" if isinstance(name, dict) else "list")))
        doc.data["name"] = ""
    stages = doc.data.get("stages")
    if stages is None:
        doc.data["stages"] = {}
    elif not isinstance(stages, dict):
        line, col = doc.locate(("stages",))
        return Failure(doc.group, doc.origin, "'stages' must be a mapping of stage names to "
                       "lists of steps", line, col)
    for problem in doc.problems:
        if problem.kind == ERROR and problem.path[:1] != ("stages",):
            line, col = doc.locate(problem.path, key=problem.at_key)
            return Failure(doc.group, doc.origin, problem.message, line, col)
    return doc


# -- sources --------------------------------------------------------------------------


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def load_sources(
    specs: list[str],
    root: TargetRoot,
    *,
    cmdline: str | None = None,
    stdin: Any = None,
) -> list[Loaded]:
    """Every document of every source, in run order.

    With no specs, the default directories under the root (missing ones skipped). The
    kernel command line's `edgeinit.setup=` sources come after the others, and its
    dot-notation config last of all.
    """
    from edgeinit.config import cmdline as cmdline_mod

    loaded: list[Loaded] = []
    group = 0
    if specs:
        for spec in specs:
            loaded.extend(_load_spec(group, spec, root, stdin, in_root=False))
            group += 1
    else:
        for d in DEFAULT_DIRS:
            try:
                host = root.resolve(d)
            except PathError:
                continue
            if os.path.isdir(host):
                loaded.extend(_load_dir(group, host, d, root))
                group += 1
    if cmdline:
        for spec in cmdline_mod.setup_sources(cmdline):
            loaded.extend(_load_spec(group, spec, root, stdin, in_root=True))
            group += 1
        dots = cmdline_mod.dot_config(cmdline)
        if dots:
            loaded.append(Document(group, "cmdline", dots))
    return loaded


def _load_spec(
    group: int, spec: str, root: TargetRoot, stdin: Any, *, in_root: bool
) -> list[Loaded]:
    if spec == "-":
        stream = stdin if stdin is not None else sys.stdin
        try:
            text = stream.read()
        except (OSError, UnicodeDecodeError) as e:
            return [Failure(group, "-", f"cannot read standard input: {e}")]
        return [parse(group, "-", text)]
    if is_url(spec):
        return [_load_url(group, spec)]
    if in_root:
        try:
            host = root.resolve(spec)
        except PathError as e:
            return [Failure(group, spec, str(e))]
        target = spec
    else:
        host = spec
        target = None
    try:
        st = os.stat(host)
    except FileNotFoundError:
        return [Failure(group, host, "no such file or directory")]
    except OSError as e:
        return [Failure(group, host, f"cannot read: {e.strerror or e}")]
    if stat.S_ISDIR(st.st_mode):
        return _load_dir(group, host, target, root)
    return [_load_file(group, host, host)]


def walk(host_dir: str) -> Iterator[str]:
    """Config files under a directory in yip's order: depth-first, entries sorted by name.

    Files must end in `.yaml` or `.yml` (exactly, lower case; hidden ones included);
    symbolic links to directories are not followed, links to files are read.
    """
    try:
        names = sorted(os.listdir(host_dir))
    except OSError:
        return
    for name in names:
        path = os.path.join(host_dir, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from walk(path)
        elif name.endswith((".yaml", ".yml")):
            yield path


def _load_dir(group: int, host_dir: str, target_dir: str | None, root: TargetRoot) -> list[Loaded]:
    out: list[Loaded] = []
    for host in walk(host_dir):
        if target_dir is None:
            out.append(_load_file(group, host, host))
            continue
        # A file inside the root: read it through the root, so links stay inside, and
        # name it by the path the config directory has (not where a link led).
        target = target_dir.rstrip("/") + "/" + os.path.relpath(host, host_dir)
        origin = os.path.join(root.path, target.lstrip("/"))
        try:
            real = root.resolve(target)
        except PathError as e:
            out.append(Failure(group, origin, str(e)))
            continue
        out.append(_load_file(group, origin, real))
    return out


def _load_file(group: int, origin: str, host: str) -> Loaded:
    try:
        with open(host, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except IsADirectoryError:
        return Failure(group, origin, "is a directory")
    except OSError as e:
        return Failure(group, origin, f"cannot read: {e.strerror or e}")
    if len(data) > MAX_CONFIG_BYTES:
        return Failure(group, origin, f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return Failure(group, origin, f"not UTF-8 text (byte {e.start})")
    return parse(group, origin, text)


def _load_url(group: int, url: str) -> Loaded:
    from edgeinit.config.fetch import FetchError, fetch

    try:
        body = fetch(url, limit=MAX_CONFIG_BYTES)
    except FetchError as e:
        return Failure(group, url, str(e))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return Failure(group, url, f"not UTF-8 text (byte {e.start})")
    return parse(group, url, text)
