"""`datasource`: fetch user-data from a cloud or a local medium (schema only until #7)."""

from __future__ import annotations

from dataclasses import dataclass

from edgeinit.plugins.base import Plugin
from edgeinit.schema.fields import spec


@dataclass
class DataSource:
    providers: list[str] = spec(factory=list, doc="Providers to try, in order.")
    path: str = spec("", doc="Where to write the user-data (default /run/config).")
    userdata_name: str = spec("", doc="File name for the user-data (default userdata.yaml).")


@dataclass
class Args:
    datasource: DataSource | None = spec(None, doc="Where to look for user-data.")


PLUGIN = Plugin("datasource", Args, None, issue="#7")
