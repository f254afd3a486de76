"""What the datasource plugin's providers share: settings, the model, what a provider finds."""

from __future__ import annotations

from collections.abc import Callable

from edgeinit.model import Record, spec

CONFIG_DIR = "/run/config"
DEFAULT_USERDATA_NAME = "userdata.yaml"
DEFAULT_TIMEOUT = 2.0
RPCTOOL_TIMEOUT = 10.0
MAX_BODY = 16 * 1024 * 1024
AZURE_API = "?api-version=2021-01-01&format=text"
MAX_HOSTNAME = 64  # what sethostname(2) takes

ENDPOINTS: dict[str, tuple[str, str]] = {
    "aws": ("EDGEINIT_DATASOURCE_AWS_URL", "http://169.254.169.254"),
    "openstack": ("EDGEINIT_DATASOURCE_OPENSTACK_URL", "http://169.254.169.254"),
    "gcp": ("EDGEINIT_DATASOURCE_GCP_URL", "http://metadata.google.internal"),
    "azure": ("EDGEINIT_DATASOURCE_AZURE_URL", "http://169.254.169.254"),
    "azure-wireserver": ("EDGEINIT_DATASOURCE_AZURE_WIRESERVER_URL", "http://168.63.129.16"),
    "digitalocean": ("EDGEINIT_DATASOURCE_DIGITALOCEAN_URL", "http://169.254.169.254"),
    "hetzner": ("EDGEINIT_DATASOURCE_HETZNER_URL", "http://169.254.169.254"),
    "scaleway": ("EDGEINIT_DATASOURCE_SCALEWAY_URL", "http://169.254.42.42"),
    "vultr": ("EDGEINIT_DATASOURCE_VULTR_URL", "http://169.254.169.254"),
    "packet": ("EDGEINIT_DATASOURCE_PACKET_URL", "https://metadata.platformequinix.com"),
    "metaldata": ("EDGEINIT_DATASOURCE_METALDATA_URL", "http://metaldata"),
}
RPCTOOL = ("EDGEINIT_DATASOURCE_VMWARE_RPCTOOL", "vmware-rpctool")


class DataSource(Record):
    providers: list[str] = spec(factory=list, doc="Providers to try, in order.")
    path: str = spec("", doc="Where to write the user-data (default /run/config).")
    userdata_name: str = spec("", doc="File name for the user-data (default userdata.yaml).")




class NoAnswer(Exception):
    """The provider is not there; the next one is tried. The message says why."""


class BadMetadata(Exception):
    """The provider answered with something unusable; the step fails."""


class Found(Record):
    """What the winning provider served, read completely before anything is written."""

    provider: str
    where: str  # its base URL, device or file, for the log
    user_data: bytes | None = None
    side_files: list[tuple[str, bytes, int]] = spec(factory=list)  # (under /run/config, data, mode)
    warnings: list[str] = spec(factory=list)
    after: Callable[[], str | None] | None = None  # run once written (Azure's report ready)
