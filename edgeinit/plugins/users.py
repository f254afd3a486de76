"""`users`: create and update accounts (schema only until the identity issue, #3)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class User(Record):
    name: str = spec("", doc="Defaults to the map key.")
    passwd: str = spec("", secret=True, doc="Plain text (hashed with SHA-512) or a crypt hash.")
    ssh_authorized_keys: list[str] = spec(factory=list, doc="Keys, or github:NAME / gitlab:NAME.")
    gecos: str = spec("", doc="Comment field.")
    homedir: str = spec("", doc="Home directory (default /home/NAME).")
    no_create_home: bool = spec(False, doc="Do not create the home directory.")
    primary_group: str = spec("", doc="Primary group (default: a group named after the user).")
    groups: list[str] = spec(factory=list, doc="Supplementary groups (created if missing).")
    no_user_group: bool = spec(False, doc="Do not create a group named after the user.")
    system: bool = spec(False, doc="A system account (id below 1000).")
    no_log_init: bool = spec(False, doc="Accepted for compatibility.")
    shell: str = spec("", doc="Login shell.")
    lock_passwd: bool = spec(False, doc="Lock the password.")
    uid: str = spec("", doc="Numeric uid.")


class Args(Record):
    users: dict[str, User] = spec(factory=dict, doc="Accounts by name.")


PLUGIN = Plugin("users", Args, None, issue="#3")
