"""`#cloud-config` detection and conversion to yip stages (SPEC 2 and 4).

Reference: yip-behaviour.md 1.7 (loader_cloudinit.go) row by row; converted paths must
map back to the line the user wrote, so problems point into the original file.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgeinit.config.cloudconfig import is_cloud_config
from edgeinit.config.sources import Document, parse
from edgeinit.schema.problems import ERROR, UNSUPPORTED
from edgeinit.schema.step import Step, build_step
from edgeinit.schema.validate import findings


def doc_of(text: str, origin: str = "/oem/cc.yaml") -> Document:
    doc = parse(0, origin, text)
    assert isinstance(doc, Document), doc
    assert doc.cloud_config is not None
    return doc


def built(doc: Document, stage: str, index: int) -> Step:
    """The step as the run path builds it from the converted data."""
    return build_step(doc.data["stages"][stage][index], ("stages", stage, index))


def plugin_args(step: Step, name: str) -> Any:
    return next(a for p, a in step.plugins if p.name == name)


# -- detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "#cloud-config\nhostname: x\n",
        "#cloud-config   \t\nhostname: x\n",  # trailing whitespace ignored
        "#cloud-config",  # no newline at all
        "## template: jinja\n#cloud-config\nhostname: x\n",  # header comment first is fine
        "\n\n#cloud-config\n",  # blank lines first
        "# a comment\n   # indented comment\n#cloud-config\n",
        "#cloud-config\r\nhostname: x\r\n",
    ],
)
def test_detected_as_cloud_config(text: str) -> None:
    assert is_cloud_config(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "hostname: x\n#cloud-config\n",  # the first non-comment line ends the search
        "---\n#cloud-config\n",
        "stages: {}\n",
        "#cloud-configx\n",
        "#cloud-config-archive\n",
        "# cloud-config\n",
        "",
    ],
)
def test_not_cloud_config(text: str) -> None:
    assert is_cloud_config(text) is False


def test_yip_file_with_a_cloud_config_comment_later_stays_yip() -> None:
    doc = parse(0, "f.yaml", "stages:\n  boot: []\n#cloud-config\n")
    assert isinstance(doc, Document)
    assert doc.cloud_config is None


def test_jinja_header_is_accepted_but_not_rendered() -> None:
    """yip [T]: `## template: jinja` is allowed; `{{ }}` text is kept for the template layer."""
    doc = doc_of("## template: jinja\n#cloud-config\nhostname: '{{ ds.meta_data.name }}'\n")
    assert doc.data["stages"]["initramfs"][0]["hostname"] == "{{ ds.meta_data.name }}"


# -- the conversion table ------------------------------------------------------------


def test_hostname_goes_to_initramfs() -> None:
    doc = doc_of("#cloud-config\nhostname: node1\n")
    assert doc.data["stages"] == {"initramfs": [{"hostname": "node1"}]}
    assert doc.problems == []


def test_runcmd_write_files_users_and_keys_share_one_boot_step() -> None:
    """yip puts every boot-stage key into boot step 0 (so yip's plugin order applies)."""
    doc = doc_of(
        "#cloud-config\n"
        "runcmd:\n  - echo a\n"
        "write_files:\n  - path: /etc/x\n    content: hi\n"
        "users:\n  - name: bob\n"
        "ssh_authorized_keys:\n  - ssh-ed25519 AAA\n"
    )
    boot = doc.data["stages"]["boot"]
    assert len(boot) == 1
    assert set(boot[0]) == {"commands", "files", "users", "authorized_keys"}
    assert "network" not in doc.data["stages"]


def test_runcmd_strings_and_argv_lists() -> None:
    """Strings stay as written; cloud-init's argv form is joined with shell quoting."""
    doc = doc_of("#cloud-config\nruncmd:\n  - echo a > /tmp/x\n  - [ls, -l, 'a b']\n")
    step = built(doc, "boot", 0)
    assert step.problems == []
    assert plugin_args(step, "commands").commands == ["echo a > /tmp/x", "ls -l 'a b'"]


def test_write_files_fields_owner_and_octal_permission_strings() -> None:
    """owner -> owner_string; permissions are octal TEXT ('0640' and '755' both octal)."""
    doc = doc_of(
        "#cloud-config\n"
        "write_files:\n"
        "  - path: /etc/a\n    content: A\n    encoding: b64\n    owner: bob:wheel\n"
        "    permissions: '0640'\n"
        "  - path: /etc/b\n    permissions: '755'\n"
        "  - path: /etc/c\n    permissions: 0600\n"
        "  - path: /etc/d\n    permissions: ''\n"
    )
    step = built(doc, "boot", 0)
    assert step.problems == []
    files = plugin_args(step, "files").files
    assert [f.path for f in files] == ["/etc/a", "/etc/b", "/etc/c", "/etc/d"]
    assert (files[0].content, files[0].encoding, files[0].owner_string) == ("A", "b64",
                                                                             "bob:wheel")
    assert [f.permissions for f in files] == [0o640, 0o755, 0o600, None]


def test_milpa_files_are_write_files_too() -> None:
    doc = doc_of("#cloud-config\nmilpa_files:\n  - path: /etc/m\n    content: M\n")
    files = plugin_args(built(doc, "boot", 0), "files").files
    assert [(f.path, f.content) for f in files] == [("/etc/m", "M")]


@pytest.mark.parametrize("perm", ["0x1", "999", "8", "rw-r--r--", "17777"])
def test_invalid_octal_permissions_are_an_error_on_the_boot_step(perm: str) -> None:
    """yip fails the file; we fail the step that would write it, pointing at the line."""
    doc = doc_of(f"#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: '{perm}'\n")
    (problem,) = doc.problems
    assert problem.kind == ERROR
    assert problem.path == ("stages", "boot", 0, "files", 0, "permissions")
    assert perm in problem.message
    assert doc.locate(problem.path) == (4, 18)


def test_users_keyed_by_name_with_their_fields() -> None:
    doc = doc_of(
        "#cloud-config\n"
        "users:\n"
        "  - name: bob\n    passwd: secret\n    gecos: Bob\n    shell: /bin/bash\n"
        "    groups: [wheel, adm]\n    uid: 1500\n"
        "  - name: alice\n    groups: 'a, b'\n"
    )
    step = built(doc, "boot", 0)
    assert step.problems == []
    users = plugin_args(step, "users").users
    assert list(users) == ["bob", "alice"]
    bob = users["bob"]
    assert (bob.passwd, bob.gecos, bob.shell, bob.groups, bob.uid) == (
        "secret", "Bob", "/bin/bash", ["wheel", "adm"], "1500")
    assert bob.lock_passwd is False  # yip's default, unlike cloud-init's
    assert users["alice"].groups == ["a", "b"]


def test_user_keys_get_global_keys_too() -> None:
    """yip [T]: users bar with key faaapploo, global asdd -> bar: [faaapploo, asdd]."""
    doc = doc_of(
        "#cloud-config\n"
        "users:\n  - name: bar\n    ssh_authorized_keys: [faaapploo]\n  - name: baz\n"
        "ssh_authorized_keys: [asdd]\n"
    )
    keys = plugin_args(built(doc, "boot", 0), "authorized_keys").authorized_keys
    assert keys == {"bar": ["faaapploo", "asdd"], "baz": ["asdd"]}
    assert "root" not in keys


def test_global_keys_without_users_go_to_root() -> None:
    doc = doc_of("#cloud-config\nssh_authorized_keys:\n  - ssh-rsa AAA\n  - ssh-ed25519 BBB\n")
    assert doc.data["stages"] == {
        "boot": [{"authorized_keys": {"root": ["ssh-rsa AAA", "ssh-ed25519 BBB"]}}]}


def test_github_and_gitlab_keys_go_to_the_network_stage() -> None:
    """Fetching keys needs the network: those keys run in `network`, the rest in `boot`."""
    doc = doc_of(
        "#cloud-config\n"
        "users:\n  - name: bob\n    ssh_authorized_keys: [github:bob, ssh-rsa BOB]\n"
        "ssh_authorized_keys: [gitlab:test, ssh-ed25519 G]\n"
    )
    stages = doc.data["stages"]
    assert stages["network"] == [{"authorized_keys": {"bob": ["github:bob", "gitlab:test"]}}]
    assert stages["boot"][0]["authorized_keys"] == {"bob": ["ssh-rsa BOB", "ssh-ed25519 G"]}


def test_forge_key_match_is_a_prefix_match_as_in_yip() -> None:
    """yip tests the prefix `github`/`gitlab`, not `github:`."""
    doc = doc_of("#cloud-config\nssh_authorized_keys: [githubber]\n")
    assert doc.data["stages"] == {"network": [{"authorized_keys": {"root": ["githubber"]}}]}


def test_growpart_becomes_one_layout_step_per_device() -> None:
    """yip [T]: Stages["boot"][1].Layout.Device.Path == "/" (step 0 is the converted one)."""
    doc = doc_of("#cloud-config\nruncmd: [echo]\ngrowpart:\n  devices: ['/', /dev/sdb]\n")
    boot = doc.data["stages"]["boot"]
    assert len(boot) == 3
    for index, device in ((1, "/"), (2, "/dev/sdb")):
        step = built(doc, "boot", index)
        assert step.problems == []
        layout = plugin_args(step, "layout").layout
        assert layout.device.path == device
        assert layout.expand_partition.size == 0


def test_growpart_with_a_wrong_device_list_is_reported_with_its_line() -> None:
    """`devices` that is not a list cannot be converted; the failure names the line."""
    failure = parse(0, "cc.yaml", "#cloud-config\ngrowpart:\n  devices: /dev/sda\n")
    assert not isinstance(failure, Document)
    assert failure.line == 3
    assert "devices" in failure.message


def test_growpart_without_devices_does_not_fail_the_file() -> None:
    """The rest of the file must still load; at most a warning about growpart."""
    doc = parse(0, "cc.yaml", "#cloud-config\nhostname: h\ngrowpart:\n  mode: auto\n")
    assert isinstance(doc, Document)
    assert doc.data["stages"]["initramfs"] == [{"hostname": "h"}]
    assert all(p.kind != ERROR for p in doc.problems)


def test_stages_block_is_appended_after_converted_steps() -> None:
    """yip [T]: a `stages:` block in a cloud-config is kept, after the converted steps."""
    doc = doc_of(
        "#cloud-config\n"
        "runcmd: [echo converted]\n"
        "stages:\n"
        "  boot:\n    - name: extra\n      commands: [echo extra]\n"
        "  test:\n    - environment:\n        foo: bar\n"
    )
    stages = doc.data["stages"]
    assert [s.get("name") for s in stages["boot"]] == [None, "extra"]
    assert stages["boot"][0]["commands"] == ["echo converted"]
    assert stages["test"][0]["environment"] == {"foo": "bar"}


@pytest.mark.parametrize("key", ["packages", "bootcmd", "ntp", "chpasswd", "ssh_pwauth",
                                 "package_update", "timezone", "mounts"])
def test_other_cloud_config_keys_are_unsupported_problems(key: str) -> None:
    """yip ignores them silently; we report each (warning in run, problem in validate)."""
    doc = doc_of(f"#cloud-config\nhostname: h\n{key}: x\n")
    (problem,) = doc.problems
    assert problem.kind == UNSUPPORTED
    assert problem.path == (key,)
    assert problem.message == f"cloud-config key '{key}' is not supported by edgeinit"
    assert doc.locate(problem.path, key=True) == (3, 1)


def test_unsupported_write_files_keys_and_append() -> None:
    """`defer` is unsupported; `append: true` must not silently overwrite: an error."""
    doc = doc_of("#cloud-config\nwrite_files:\n  - path: /a\n    defer: true\n"
                 "  - path: /b\n    append: true\n")
    kinds = {p.path: p.kind for p in doc.problems}
    assert kinds == {("write_files", 0, "defer"): UNSUPPORTED,
                     ("stages", "boot", 0, "files", 1, "append"): ERROR}


def test_string_users_entry_is_unsupported() -> None:
    """`users: [default]` (cloud-init's default user) is a type error in yip; reported here."""
    doc = doc_of("#cloud-config\nusers: [default]\n")
    (problem,) = doc.problems
    assert problem.kind == UNSUPPORTED
    assert "default" in problem.message


def test_user_without_a_name_is_an_error() -> None:
    doc = doc_of("#cloud-config\nusers:\n  - shell: /bin/sh\n")
    (problem,) = doc.problems
    assert problem.kind == ERROR
    assert problem.message == "a user needs a 'name'"
    assert doc.locate(problem.path) == (3, 5)


def test_minimal_file_has_no_problems() -> None:
    doc = doc_of("#cloud-config\n")
    assert doc.data == {"stages": {}}
    assert doc.problems == []


# -- locating converted paths in the original text ------------------------------------

LOCATE_TEXT = (
    "#cloud-config\n"                        # 1
    "hostname: node1\n"                      # 2
    "runcmd:\n"                              # 3
    "  - echo a\n"                           # 4
    "write_files:\n"                         # 5
    "  - path: /etc/x\n"                     # 6
    "    owner: bob\n"                       # 7
    "    permissions: '0640'\n"              # 8
    "users:\n"                               # 9
    "  - name: bob\n"                        # 10
    "    shell: /bin/bash\n"                 # 11
    "    ssh_authorized_keys: [github:bob]\n"  # 12
    "ssh_authorized_keys:\n"                 # 13
    "  - ssh-ed25519 GLOBAL\n"               # 14
    "growpart:\n"                            # 15
    "  devices: [/dev/sda]\n"                # 16
    "stages:\n"                              # 17
    "  boot:\n"                              # 18
    "    - commands: [x]\n"                  # 19
)


@pytest.mark.parametrize(
    ("path", "key", "where"),
    [
        (("stages", "initramfs", 0, "hostname"), False, (2, 11)),
        (("stages", "initramfs", 0, "hostname"), True, (2, 1)),
        (("stages", "boot", 0, "commands", 0), False, (4, 5)),
        (("stages", "boot", 0, "files", 0, "owner_string"), True, (7, 5)),
        (("stages", "boot", 0, "files", 0, "permissions"), False, (8, 18)),
        (("stages", "boot", 0, "users", "bob", "shell"), False, (11, 12)),
        (("stages", "network", 0, "authorized_keys", "bob", 0), False, (12, 27)),
        (("stages", "boot", 0, "authorized_keys", "bob", 0), False, (14, 5)),
        (("stages", "boot", 1, "layout"), False, (16, 13)),
        (("stages", "boot", 2, "commands"), False, (19, 17)),
    ],
)
def test_document_locate_maps_back_to_the_original_line(path: tuple, key: bool,
                                                        where: tuple[int, int]) -> None:
    """A problem in converted data must name the line the user wrote, not a made-up one."""
    doc = doc_of(LOCATE_TEXT)
    assert doc.locate(path, key=key) == where


def test_validate_findings_point_into_the_cloud_config() -> None:
    """End to end: a typo in a write_files entry and an unsupported key, with lines."""
    text = ("#cloud-config\n"
            "packages: [vim]\n"
            "write_files:\n"
            "  - path: /etc/x\n"
            "    permissons: '0644'\n")
    doc = doc_of(text, origin="cc.yaml")
    lines = [str(f) for f in findings([doc])]
    assert lines == [
        "cc.yaml:2:1: cloud-config key 'packages' is not supported by edgeinit",
        "cc.yaml:5:5: unknown key 'permissons'; did you mean 'permissions'?",
    ]
