"""`git`: clone or update a repository (schema only until the yip-parity issue, #7)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class Auth(Record):
    username: str = spec("", doc="User name for HTTPS.")
    password: str = spec("", secret=True, doc="Password for HTTPS.")
    private_key: str = spec("", secret=True, doc="SSH private key.")
    insecure: bool = spec(False, doc="Skip host key / TLS verification.")
    public_key: str = spec("", doc="SSH public key.")


class Git(Record):
    url: str = spec("", doc="Repository URL.")
    path: str = spec("", doc="Where to clone it.")
    branch: str = spec("", doc="Branch to check out.")
    branch_only: bool = spec(False, doc="Fetch only that branch.")
    auth: Auth | None = spec(None, doc="Credentials.")


class Args(Record):
    git: Git | None = spec(None, doc="A repository to clone or update.")


PLUGIN = Plugin("git", Args, None, issue="#7")
