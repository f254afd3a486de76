"""`git`: clone or update a repository (schema only until the yip-parity issue, #7)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeinit.plugins.base import Plugin
from edgeinit.schema.fields import spec


@dataclass
class Auth:
    username: str = spec("", doc="User name for HTTPS.")
    password: str = spec("", secret=True, doc="Password for HTTPS.")
    private_key: str = spec("", secret=True, doc="SSH private key.")
    insecure: bool = spec(False, doc="Skip host key / TLS verification.")
    public_key: str = spec("", doc="SSH public key.")


@dataclass
class Git:
    url: str = spec("", doc="Repository URL.")
    path: str = spec("", doc="Where to clone it.")
    branch: str = spec("", doc="Branch to check out.")
    branch_only: bool = spec(False, doc="Fetch only that branch.")
    auth: Auth | None = spec(None, doc="Credentials.")


@dataclass
class Args:
    git: Git | None = spec(None, doc="A repository to clone or update.")


PLUGIN = Plugin("git", Args, None, issue="#7")
