"""`datasource`: fetch user-data from a cloud or a local medium (schema only until #7)."""

from __future__ import annotations

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Plugin


class DataSource(Record):
    providers: list[str] = spec(factory=list, doc="Providers to try, in order.")
    path: str = spec("", doc="Where to write the user-data (default /run/config).")
    userdata_name: str = spec("", doc="File name for the user-data (default userdata.yaml).")


class Args(Record):
    datasource: DataSource | None = spec(None, doc="Where to look for user-data.")


PLUGIN = Plugin("datasource", Args, None, issue="#7")
