"""`#cloud-config` files, converted to stages as yip converts them (SPEC section 4).

`hostname` goes to the `initramfs` stage; `runcmd`, `write_files`, `users` and
`ssh_authorized_keys` to one step of the `boot` stage, keys named `github:`/`gitlab:`
to the `network` stage; `growpart` becomes `layout` steps; a `stages:` block in the
same file is appended. Every other cloud-config key is reported as unsupported.

The conversion also returns a map from paths in the converted document back to the
cloud-config keys they came from, so problems point at the line the user wrote.
"""

from __future__ import annotations

import shlex
from typing import Any

from edgeinit.schema.problems import ERROR, UNSUPPORTED, Path, Problem, unsupported_key

CONVERTED_KEYS = ("hostname", "runcmd", "write_files", "milpa_files", "users",
                  "ssh_authorized_keys", "growpart", "stages", "name")
WRITE_FILE_KEYS = {"path": "path", "content": "content", "encoding": "encoding",
                   "owner": "owner_string", "permissions": "permissions"}
WRITE_FILE_UNSUPPORTED = ("defer", "source")
USER_KEYS = ("name", "passwd", "gecos", "homedir", "no_create_home", "primary_group", "groups",
             "no_user_group", "system", "no_log_init", "shell", "lock_passwd", "uid",
             "ssh_authorized_keys")


def is_cloud_config(text: str) -> bool:
    """True when a `#cloud-config` line comes before the first non-comment line."""
    for line in text.splitlines():
        stripped = line.rstrip()
        if stripped == "#cloud-config":
            return True
        if not stripped.strip():
            continue
        if stripped.lstrip().startswith("#"):
            continue
        return False
    return False


class Converted:
    """A cloud-config document as yip stages, with its path map and problems."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {"stages": {}}
        self.paths: dict[Path, Path] = {}  # converted path prefix -> cloud-config path
        self.problems: list[Problem] = []

    def step(self, stage: str) -> tuple[int, dict[str, Any]]:
        steps = self.data["stages"].setdefault(stage, [])
        if not steps:
            steps.append({})
        return 0, steps[0]

    def original(self, path: Path) -> Path:
        """The cloud-config path a converted path came from (longest known prefix)."""
        for n in range(len(path), 0, -1):
            mapped = self.paths.get(path[:n])
            if mapped is not None:
                return mapped + path[n:]
        return path


def convert(doc: Any) -> Converted:
    out = Converted()
    if doc is None:
        return out
    if not isinstance(doc, dict):
        out.problems.append(Problem((), "expected a mapping at the top of the file"))
        return out
    if "name" in doc:
        out.data["name"] = doc["name"]
        out.paths[("name",)] = ("name",)
    for key in doc:
        if key not in CONVERTED_KEYS:
            out.problems.append(unsupported_key((), key, "cloud-config key"))
    if doc.get("hostname") is not None:
        _, step = out.step("initramfs")
        step["hostname"] = doc["hostname"]
        out.paths[("stages", "initramfs", 0, "hostname")] = ("hostname",)
    _runcmd(doc, out)
    _write_files(doc, out)
    _users(doc, out)
    _growpart(doc, out)
    _stages(doc, out)
    return out


def _boot(out: Converted) -> tuple[Path, dict[str, Any]]:
    index, step = out.step("boot")
    return ("stages", "boot", index), step


def _runcmd(doc: dict[str, Any], out: Converted) -> None:
    runcmd = doc.get("runcmd")
    if runcmd is None:
        return
    prefix, step = _boot(out)
    out.paths[(*prefix, "commands")] = ("runcmd",)
    if not isinstance(runcmd, list):
        step["commands"] = runcmd  # the schema reports the wrong type
        return
    commands = []
    for entry in runcmd:
        if isinstance(entry, list):  # cloud-init's argv form
            commands.append(shlex.join(str(a) if a is not None else "" for a in entry))
        else:
            commands.append(entry)
    step["commands"] = commands


def _write_files(doc: dict[str, Any], out: Converted) -> None:
    for key in ("write_files", "milpa_files"):
        entries = doc.get(key)
        if entries is None:
            continue
        prefix, step = _boot(out)
        files = step.setdefault("files", [])
        if not isinstance(entries, list):
            out.paths[(*prefix, "files")] = (key,)
            step["files"] = entries
            continue
        for i, entry in enumerate(entries):
            j = len(files)
            out.paths[(*prefix, "files", j)] = (key, i)
            if not isinstance(entry, dict):
                files.append(entry)
                continue
            converted: dict[str, Any] = {}
            for name, value in entry.items():
                src: Path = (key, i, name)
                if name in WRITE_FILE_KEYS:
                    target = WRITE_FILE_KEYS[name]
                    out.paths[(*prefix, "files", j, target)] = src
                    if name == "permissions":
                        value = _octal_permissions(value, (*prefix, "files", j, target), out)
                    converted[target] = value
                elif name == "append":
                    if _truthy(value):
                        out.problems.append(Problem(
                            (*prefix, "files", j, "append"),
                            "write_files 'append: true' is not supported; refusing to "
                            "overwrite the file"))
                        out.paths[(*prefix, "files", j, "append")] = src
                elif name in WRITE_FILE_UNSUPPORTED:
                    out.problems.append(unsupported_key((key, i), name, "write_files key"))
                else:
                    converted[name] = value  # the schema reports it as unknown
                    out.paths[(*prefix, "files", j, name)] = src
            files.append(converted)


def _octal_permissions(value: Any, path: Path, out: Converted) -> Any:
    """cloud-config permissions are octal text: "0644" and "644" both mean 0o644."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return value
    text = value.strip()
    digits = text[2:] if text[:2].lower() == "0o" else text
    try:
        mode = int(digits, 8)
    except ValueError:
        out.problems.append(Problem(path, f"expected octal permissions, got '{value}'"))
        return None
    if not 0 <= mode <= 0o7777:
        out.problems.append(Problem(path, f"expected octal permissions up to 07777, got '{value}'"))
        return None
    return str(mode)


def _truthy(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "y")


def _is_forge_key(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(("github", "gitlab"))


def _users(doc: dict[str, Any], out: Converted) -> None:
    users = doc.get("users")
    global_keys = doc.get("ssh_authorized_keys")
    if global_keys is not None and not isinstance(global_keys, list):
        prefix, step = _boot(out)
        step["authorized_keys"] = {"root": global_keys}
        out.paths[(*prefix, "authorized_keys", "root")] = ("ssh_authorized_keys",)
        global_keys = None
    keys_by_user: dict[str, list[tuple[Any, Path]]] = {}
    if users is not None:
        prefix, step = _boot(out)
        if not isinstance(users, list):
            step["users"] = users
            out.paths[(*prefix, "users")] = ("users",)
        else:
            converted: dict[str, Any] = {}
            for i, entry in enumerate(users):
                if isinstance(entry, str):
                    out.problems.append(Problem(
                        ("users", i), f"the cloud-init user '{entry}' is not supported; "
                        "describe the user as a mapping", UNSUPPORTED))
                    continue
                if not isinstance(entry, dict) or not entry.get("name"):
                    bad: Path = (*prefix, "users", f"#{i}")
                    out.paths[bad] = ("users", i)
                    out.problems.append(Problem(bad, "a user needs a 'name'", ERROR))
                    continue
                name = str(entry["name"])
                user: dict[str, Any] = {}
                for field, value in entry.items():
                    src: Path = ("users", i, field)
                    if field == "ssh_authorized_keys":
                        if isinstance(value, list):
                            for k, key in enumerate(value):
                                keys_by_user.setdefault(name, []).append((key, (*src, k)))
                        elif value is not None:
                            out.problems.append(Problem(src, "expected a list of keys"))
                        continue
                    if field == "groups" and isinstance(value, str):
                        value = [g.strip() for g in value.split(",") if g.strip()]
                    if field not in USER_KEYS:
                        out.problems.append(
                            unsupported_key(("users", i), field, "cloud-init user key"))
                        continue
                    user[field] = value
                    out.paths[(*prefix, "users", name, field)] = src
                out.paths[(*prefix, "users", name)] = ("users", i)
                converted[name] = user
                keys_by_user.setdefault(name, [])
            step["users"] = converted
    if global_keys:
        owners = list(keys_by_user) or ["root"]
        for owner in owners:
            for k, key in enumerate(global_keys):
                keys_by_user.setdefault(owner, []).append((key, ("ssh_authorized_keys", k)))
    for owner, keys in keys_by_user.items():
        for key, src in keys:
            stage = "network" if _is_forge_key(key) else "boot"
            index, step = out.step(stage)
            per_user = step.setdefault("authorized_keys", {}).setdefault(owner, [])
            out.paths[("stages", stage, index, "authorized_keys", owner, len(per_user))] = src
            per_user.append(key)


def _growpart(doc: dict[str, Any], out: Converted) -> None:
    growpart = doc.get("growpart")
    if growpart is None:
        return
    if not isinstance(growpart, dict):
        out.problems.append(Problem(("growpart",), "expected a mapping with 'devices:'"))
        return
    devices = growpart.get("devices")
    mode = str(growpart.get("mode") or "").strip().lower()
    if devices is None or mode in ("off", "false", "no"):
        return  # as yip: nothing to grow without devices (cloud-init's `mode: off`)
    if not isinstance(devices, list):
        out.problems.append(Problem(("growpart", "devices"), "expected a list of devices"))
        return
    _boot(out)
    steps = out.data["stages"]["boot"]
    for i, device in enumerate(devices):
        out.paths[("stages", "boot", len(steps))] = ("growpart", "devices", i)
        steps.append({"layout": {"device": {"path": device}, "expand_partition": {"size": "0"}}})


def _stages(doc: dict[str, Any], out: Converted) -> None:
    stages = doc.get("stages")
    if stages is None:
        return
    if not isinstance(stages, dict):
        out.problems.append(Problem(("stages",), "expected a mapping of stages"))
        return
    for stage, steps in stages.items():
        existing = out.data["stages"].setdefault(stage, [])
        if not isinstance(steps, list):
            if steps is not None:
                out.problems.append(Problem(("stages", stage), "expected a list of steps"))
            continue
        offset = len(existing)
        for i, step in enumerate(steps):
            out.paths[("stages", stage, offset + i)] = ("stages", stage, i)
            existing.append(step)
