"""The HTTP metadata services (aws, gcp, openstack, azure, digitalocean, hetzner,
scaleway, vultr, packet, metaldata) and VMware guestinfo, one function per provider."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from edgeinit.log import log
from edgeinit.plugins.base import Context
from edgeinit.plugins.datasource.common import (
    AZURE_API,
    DEFAULT_TIMEOUT,
    ENDPOINTS,
    MAX_BODY,
    RPCTOOL,
    RPCTOOL_TIMEOUT,
    BadMetadata,
    DataSource,
    Found,
    NoAnswer,
)

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")



# -- HTTP metadata services -----------------------------------------------------------


def metadata_timeout() -> float:
    """EDGEINIT_DATASOURCE_TIMEOUT (default 2 s), never above EDGEINIT_FETCH_TIMEOUT."""
    from edgeinit.config.fetch import fetch_timeout

    try:
        own = float(os.environ.get("EDGEINIT_DATASOURCE_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        own = DEFAULT_TIMEOUT
    return min(own if own > 0 else DEFAULT_TIMEOUT, fetch_timeout())


def base_url(service: str) -> str:
    variable, default = ENDPOINTS[service]
    return (os.environ.get(variable) or default).rstrip("/")


class _Unreachable(Exception):
    """No HTTP answer at all (refused, unresolvable, timed out, cut off)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def valid_fqdn(name: str) -> bool:
    """A host name as a metadata service may serve it: labels of letters, digits and
    hyphens, at most 253 characters (a kernel hostname holds only MAX_HOSTNAME)."""
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def looks_like_html(body: bytes) -> bool:
    head = body.lstrip()[:512].lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body")) or b"<html" in head


def _shown(body: bytes) -> str:
    if looks_like_html(body):
        return "an HTML page"
    text = body.decode("utf-8", "replace").strip()
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


class Metadata:
    """GETs against one provider's metadata service: no proxy, every wait bounded."""

    def __init__(self, provider: str, base: str, headers: dict[str, str] | None = None,
                 query: str = "") -> None:
        self.provider = provider
        self.base = base.rstrip("/")
        self.headers = dict(headers or {})
        self.query = query
        self.timeout = metadata_timeout()
        self.warnings: list[str] = []
        self._resolved = False
        self._gave_up = ""  # an optional item timed out: the others are not asked

    def url(self, path: str) -> str:
        return self.base + path + self.query

    def request(self, url: str, *, method: str = "GET", data: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(HTTP status, body); _Unreachable when no HTTP answer came."""
        import http.client
        import urllib.error
        import urllib.request

        from edgeinit import __version__

        self._resolve(url)
        log.info("datasource: %s: %s %s (gives up after %g s without an answer)",
                 self.provider, method, url, self.timeout)
        request = urllib.request.Request(
            url, data=data, method=method,
            headers={"User-Agent": f"edgeinit/{__version__}", **self.headers, **(headers or {})})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout) as response:
                body = response.read(MAX_BODY + 1)
                status = response.status
        except urllib.error.HTTPError as e:
            try:
                body = e.read(64 * 1024)
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                e.close()
            return e.code, body
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise _Unreachable(f"no answer within {self.timeout:g} s",
                                   timed_out=True) from None
            raise _Unreachable(str(getattr(reason, "strerror", None) or reason)) from None
        except TimeoutError:
            raise _Unreachable(f"no answer within {self.timeout:g} s", timed_out=True) from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise _Unreachable(str(e) or type(e).__name__) from None
        if len(body) > MAX_BODY:
            raise BadMetadata(f"{self.provider}: {url}: larger than {MAX_BODY} bytes")
        return status, body

    def _resolve(self, url: str) -> None:
        """Name resolution bounded by the same timeout (getaddrinfo has none)."""
        if self._resolved:
            return
        import socket
        import threading
        import urllib.parse

        host = urllib.parse.urlsplit(url).hostname or ""
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, host)
                self._resolved = True
                return
            except OSError:
                pass
        outcome: list[BaseException | None] = []

        def work() -> None:
            try:
                socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                outcome.append(None)
            except OSError as e:
                outcome.append(e)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not outcome:
            raise _Unreachable(f"{host} not resolved within {self.timeout:g} s", timed_out=True)
        error = outcome[0]
        if error is not None:
            why = getattr(error, "strerror", None) or error
            raise _Unreachable(f"cannot resolve {host}: {why}")
        self._resolved = True

    def probe(self, path: str) -> bytes:
        """The body at `path`; NoAnswer when the service does not answer it with 200."""
        url = self.url(path)
        try:
            status, body = self.request(url)
        except _Unreachable as e:
            raise NoAnswer(f"{url}: {e}") from None
        if status != 200:
            raise NoAnswer(f"{url}: HTTP {status}")
        return body

    def need(self, path: str) -> bytes:
        """The body at `path`, which the answering service must serve."""
        url = self.url(path)
        try:
            status, body = self.request(url)
        except _Unreachable as e:
            raise BadMetadata(f"{self.provider}: {url}: {e}") from None
        if status != 200:
            raise BadMetadata(f"{self.provider}: {url}: HTTP {status}")
        return body

    def optional(self, path: str) -> bytes | None:
        """The body at `path`, or None when it is not there (404); another failure is a
        warning, and after a timeout the other optional items are not asked."""
        url = self.url(path)
        if self._gave_up:
            return None
        try:
            status, body = self.request(url)
        except _Unreachable as e:
            self.warnings.append(f"{self.provider}: {url}: {e}; skipped")
            if e.timed_out:
                self._gave_up = url
            return None
        if status == 404:
            return None
        if status != 200:
            self.warnings.append(f"{self.provider}: {url}: HTTP {status}; skipped")
            return None
        return body

    def user_data(self, path: str) -> bytes | None:
        """The user-data at `path`: None when there is none (404 or empty); any other
        failure fails the step (the provider answered, its user-data is broken)."""
        url = self.url(path)
        try:
            status, body = self.request(url)
        except _Unreachable as e:
            raise BadMetadata(f"{self.provider}: {url}: {e}") from None
        if status == 404:
            return None
        if status != 200:
            raise BadMetadata(f"{self.provider}: {url}: HTTP {status}")
        return body or None

    def hostname(self, path: str, *, probe: bool = False) -> bytes:
        """The hostname at `path`, checked (an HTML page is not a hostname)."""
        body = self.probe(path) if probe else self.need(path)
        return self.check_hostname(self.url(path), body)

    def check_hostname(self, url: str, body: bytes) -> bytes:
        name = body.decode("utf-8", "replace").strip()
        if not valid_fqdn(name):
            raise BadMetadata(f"{self.provider}: {url}: {_shown(body)} is not a valid hostname")
        return body

    def keys(self, url: str, body: bytes) -> bytes:
        """SSH keys as served (one per line), refused when they are an HTML page."""
        if looks_like_html(body):
            raise BadMetadata(f"{self.provider}: {url}: an HTML page, not SSH public keys")
        return body


def _key_lines(keys: list[str]) -> bytes:
    return "".join(key.strip() + "\n" for key in keys if key.strip()).encode()


def _optional_files(md: Metadata, prefix: str, items: tuple[tuple[str, str], ...]
                    ) -> list[tuple[str, bytes, int]]:
    out = []
    for item, file in items:
        value = md.optional(prefix + item)
        if value is not None:
            out.append((file, value, 0o644))
    return out


EC2_FILES = (("public-ipv4", "public_ipv4"), ("local-ipv4", "local_ipv4"),
             ("placement/availability-zone", "availability_zone"),
             ("instance-type", "instance_type"), ("instance-id", "instance_id"),
             ("local-hostname", "local_hostname"))


def _ec2(provider: str, md: Metadata) -> Found:
    meta = "/latest/meta-data/"
    side = [("hostname", md.hostname(meta + "hostname", probe=True), 0o644)]
    side += _optional_files(md, meta, EC2_FILES)
    keys = md.optional(meta + "public-keys/0/openssh-key")
    if keys:
        side.append(("ssh/authorized_keys", md.keys(md.url(meta + "public-keys/0/openssh-key"),
                                                    keys), 0o600))
    user_data = md.user_data("/latest/user-data")
    return Found(provider, md.base, user_data, side, md.warnings)


def _aws(ds: DataSource, ctx: Context) -> Found:
    md = Metadata("aws", base_url("aws"))
    url = md.url("/latest/api/token")
    try:  # IMDSv2 when the service offers a token; IMDSv1 when it does not
        status, token = md.request(url, method="PUT",
                                   headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    except _Unreachable as e:
        raise NoAnswer(f"{url}: {e}") from None
    if status == 200 and token.strip():
        md.headers["X-aws-ec2-metadata-token"] = token.decode("ascii", "replace").strip()
    return _ec2("aws", md)


def _openstack(ds: DataSource, ctx: Context) -> Found:
    return _ec2("openstack", Metadata("openstack", base_url("openstack")))


def _gcp(ds: DataSource, ctx: Context) -> Found:
    md = Metadata("gcp", base_url("gcp"), {"Metadata-Flavor": "Google"})
    instance, project = "/computeMetadata/v1/instance/", "/computeMetadata/v1/project/"
    side = [("hostname", md.hostname(instance + "hostname", probe=True), 0o644)]
    body = md.optional(project + "attributes/ssh-keys")
    if body is not None:
        md.keys(md.url(project + "attributes/ssh-keys"), body)
        keys = [line.split(":", 1)[1] for line in body.decode("utf-8", "replace").splitlines()
                if ":" in line]  # "user:key": the user is dropped, as yip does
        side.append(("ssh/authorized_keys", _key_lines(keys), 0o600))
    user_data = md.user_data(instance + "attributes/user-data")
    return Found("gcp", md.base, user_data, side, md.warnings)


AZURE_FILES = tuple((item, item.replace("/", "_")) for item in (
    "network/interface/0/ipv4/ipAddress/0/publicIpAddress",
    "network/interface/0/ipv4/ipAddress/0/privateIpAddress",
    "compute/zone", "compute/vmId"))


def _azure(ds: DataSource, ctx: Context) -> Found:
    import base64
    import binascii

    md = Metadata("azure", base_url("azure"), {"Metadata": "true"}, AZURE_API)
    root = "/metadata/instance/"
    md.probe(root + "compute/vmId")
    side = [("hostname", md.hostname(root + "compute/name"), 0o644)]
    key = md.optional(root + "compute/publicKeys/0/keyData")
    if key:
        side.append(("ssh/authorized_keys", md.keys(md.url(root + "compute/publicKeys/0/keyData"),
                                                    key), 0o600))
    side += _optional_files(md, root, AZURE_FILES)
    encoded = md.user_data(root + "compute/userData")
    user_data = None
    if encoded and encoded.strip():
        try:
            user_data = base64.b64decode(b"".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadMetadata(f"azure: {md.url(root + 'compute/userData')}: not base64: {e}"
                              ) from None
    return Found("azure", md.base, user_data or None, side, md.warnings,
                 after=_azure_report_ready)


def _azure_report_ready() -> str | None:
    """Tell Azure's wire server that provisioning is done (as yip does, best effort):
    a warning when it could not be told."""
    import xml.etree.ElementTree as ET

    wire = Metadata("azure", base_url("azure-wireserver"), {"x-ms-version": "2012-11-30"})
    url = wire.url("/machine?comp=goalstate")
    try:
        status, body = wire.request(url)
        if status != 200:
            return f"azure: cannot report ready: {url}: HTTP {status}"
        state = ET.fromstring(body)
        container = state.findtext("Container/ContainerId") or ""
        instance = state.findtext("Container/RoleInstanceList/RoleInstance/InstanceId") or ""
        health = ET.Element("Health")
        ET.SubElement(health, "GoalStateIncarnation").text = "1"
        cont = ET.SubElement(health, "Container")
        ET.SubElement(cont, "ContainerId").text = container
        role = ET.SubElement(ET.SubElement(cont, "RoleInstanceList"), "Role")
        ET.SubElement(role, "InstanceId").text = instance
        ET.SubElement(ET.SubElement(role, "Health"), "State").text = "Ready"
        url = wire.url("/machine?comp=health")
        status, _ = wire.request(url, method="POST", data=ET.tostring(health),
                                 headers={"x-ms-agent-name": "WALinuxAgent",
                                          "Content-Type": "text/xml;charset=utf-8"})
    except (_Unreachable, BadMetadata) as e:
        return f"azure: cannot report ready: {url}: {e}"
    except ET.ParseError as e:
        return f"azure: cannot report ready: {url}: not XML: {e}"
    if status != 200:
        return f"azure: cannot report ready: {url}: HTTP {status}"
    log.info("datasource: azure: reported ready (container %s, instance %s)", container,
             instance)
    return None


def _digitalocean(ds: DataSource, ctx: Context) -> Found:
    md = Metadata("digitalocean", base_url("digitalocean"))
    meta = "/metadata/v1/"
    md.probe(meta)
    side = [("hostname", md.hostname(meta + "hostname"), 0o644)]
    side += _optional_files(md, meta, (
        ("interfaces/public/0/ipv4/address", "public_ipv4"),
        ("interfaces/private/0/ipv4/address", "private_ipv4"),
        ("region", "region"), ("id", "id")))
    keys = md.optional(meta + "public-keys")
    if keys:
        side.append(("ssh/authorized_keys", md.keys(md.url(meta + "public-keys"), keys), 0o600))
    return Found("digitalocean", md.base, md.user_data(meta + "user-data"), side, md.warnings)


def _hetzner(ds: DataSource, ctx: Context) -> Found:
    import json

    md = Metadata("hetzner", base_url("hetzner"))
    meta = "/hetzner/v1/metadata/"
    side = [("hostname", md.hostname(meta + "hostname", probe=True), 0o644)]
    side += _optional_files(md, meta, (("public-ipv4", "public_ipv4"),
                                       ("instance-id", "instance_id")))
    body = md.optional(meta + "public-keys")
    if body is not None:
        url = md.url(meta + "public-keys")
        try:
            keys = json.loads(body)
        except ValueError as e:
            raise BadMetadata(f"hetzner: {url}: not a JSON list of keys "
                              f"({_shown(body)}: {e})") from None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadMetadata(f"hetzner: {url}: not a JSON list of keys: {_shown(body)}")
        side.append(("ssh/authorized_keys", _key_lines(keys), 0o600))
    return Found("hetzner", md.base, md.user_data("/hetzner/v1/userdata"), side, md.warnings)


def _scaleway(ds: DataSource, ctx: Context) -> Found:
    md = Metadata("scaleway", base_url("scaleway"))
    url = md.url("/conf")
    body = md.probe("/conf")
    if looks_like_html(body):
        raise BadMetadata(f"scaleway: {url}: an HTML page, not KEY=VALUE lines")
    conf: dict[str, str] = {}
    for line in body.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf.setdefault(key.strip(), value.strip().strip("'"))
    hostname = conf.get("HOSTNAME", "")
    if not hostname:
        raise BadMetadata(f"scaleway: {url}: no HOSTNAME= line")
    side = [("hostname", md.check_hostname(url, hostname.encode()), 0o644)]
    for key, file in (("ID", "instance_id"), ("LOCATION_ZONE_ID", "instance_location"),
                      ("PUBLIC_IP_ADDRESS", "public_ip"), ("PRIVATE_IP", "private_ip")):
        if conf.get(key):
            side.append((file, conf[key].encode(), 0o644))
    if "SSH_PUBLIC_KEYS" in conf:
        try:
            count = int(conf["SSH_PUBLIC_KEYS"])
        except ValueError:
            raise BadMetadata(f"scaleway: {url}: SSH_PUBLIC_KEYS is not a number: "
                              f"{conf['SSH_PUBLIC_KEYS']!r}") from None
        keys = [conf.get(f"SSH_PUBLIC_KEYS_{i}_KEY", "") for i in range(count)]
        side.append(("ssh/authorized_keys", _key_lines(keys), 0o600))
    return Found("scaleway", md.base, _scaleway_user_data(md), side, md.warnings)


def _scaleway_user_data(md: Metadata) -> bytes | None:
    """Scaleway serves user-data only to a client port below 1024 (so only to root)."""
    import errno
    import http.client
    import urllib.parse

    url = md.url("/user_data/cloud-init")
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    log.info("datasource: scaleway: GET %s from a port below 1024 (gives up after %g s "
             "without an answer)", url, md.timeout)
    for source in range(1023, 0, -1):
        conn = http.client.HTTPConnection(host, port, timeout=md.timeout,
                                          source_address=("", source))
        try:
            conn.connect()
        except PermissionError:
            conn.close()
            raise BadMetadata(f"scaleway: {url}: the user-data is served only to a source "
                              "port below 1024, which needs root") from None
        except OSError as e:
            conn.close()
            if e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                continue
            raise BadMetadata(f"scaleway: {url}: {e.strerror or e}") from None
        try:
            conn.request("GET", parts.path, headers={"User-Agent": "edgeinit"})
            response = conn.getresponse()
            body = response.read(MAX_BODY + 1)
        except (OSError, http.client.HTTPException) as e:
            raise BadMetadata(f"scaleway: {url}: {e or type(e).__name__}") from None
        finally:
            conn.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise BadMetadata(f"scaleway: {url}: HTTP {response.status}")
        if len(body) > MAX_BODY:
            raise BadMetadata(f"scaleway: {url}: larger than {MAX_BODY} bytes")
        return body or None
    raise BadMetadata(f"scaleway: {url}: no free source port below 1024")


def _vultr(ds: DataSource, ctx: Context) -> Found:
    md = Metadata("vultr", base_url("vultr"))
    md.probe("/v1/")
    side = [("hostname", md.hostname("/v1/hostname"), 0o644)]
    side += _optional_files(md, "/v1/", (
        ("interfaces/0/ipv4/address", "public_ipv4"),
        ("interfaces/1/ipv4/address", "private_ipv4"),
        ("interfaces/1/ipv4/netmask", "private_netmask"),
        ("region/regioncode", "region_code"), ("instanceid", "instance_id")))
    keys = md.optional("/v1/public-keys")
    if keys:
        side.append(("ssh/authorized_keys", md.keys(md.url("/v1/public-keys"), keys), 0o600))
    return Found("vultr", md.base, md.user_data("/latest/user-data"), side, md.warnings)


def _packet(ds: DataSource, ctx: Context) -> Found:
    import json

    md = Metadata("packet", base_url("packet"))
    url = md.url("/metadata")
    body = md.probe("/metadata")
    try:
        meta = json.loads(body)
    except ValueError as e:
        raise BadMetadata(f"packet: {url}: not JSON ({_shown(body)}: {e})") from None
    if not isinstance(meta, dict):
        raise BadMetadata(f"packet: {url}: not a JSON object: {_shown(body)}")
    if meta.get("error"):
        raise BadMetadata(f"packet: {url}: {meta['error']}")
    hostname = meta.get("hostname")
    if not isinstance(hostname, str):
        raise BadMetadata(f"packet: {url}: no hostname in the metadata")
    side = [("hostname", md.check_hostname(url, hostname.encode()), 0o644)]
    keys = meta.get("ssh_keys") or []
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise BadMetadata(f"packet: {url}: ssh_keys is not a list of strings")
    side.append(("ssh/authorized_keys", _key_lines(keys), 0o600))
    user_data = md.user_data("/userdata")
    if user_data and user_data.startswith(b"#!ipxe"):
        log.info("datasource: packet: the user-data is an iPXE script, not user-data")
        user_data = None
    return Found("packet", md.base, user_data, side, md.warnings)


def _metaldata(ds: DataSource, ctx: Context) -> Found:
    md = Metadata("metaldata", base_url("metaldata"))
    meta = "/get/meta/"
    side = [("hostname", md.hostname(meta + "hostname", probe=True), 0o644)]
    side += _optional_files(md, meta, (
        ("public-ipv4", "public_ipv4"), ("private-ipv4", "private_ipv4"),
        ("failure-domain", "failure_domain"), ("machine-id", "machine_id"),
        ("machine-type", "machine_type")))
    keys = md.optional(meta + "authorized-keys")
    if keys:
        side.append(("ssh/authorized_keys", md.keys(md.url(meta + "authorized-keys"), keys),
                     0o600))
    return Found("metaldata", md.base, md.user_data("/get/user"), side, md.warnings)


# -- VMware guestinfo -----------------------------------------------------------------


def _vmware(ds: DataSource, ctx: Context) -> Found:
    variable, default = RPCTOOL
    tool = os.environ.get(variable) or default

    def get(key: str) -> str | None:
        from edgeinit.target.exec import ToolError, run_tool

        log.info("datasource: vmware: %s 'info-get %s' (gives up after %g s)", tool, key,
                 RPCTOOL_TIMEOUT)
        try:
            done = run_tool([tool, f"info-get {key}"], timeout=RPCTOOL_TIMEOUT)
        except ToolError as e:
            if e.kind == "missing":
                raise NoAnswer(f"{tool} is not installed (open-vm-tools)") from None
            if e.kind == "timeout":
                raise NoAnswer(f"{tool} did not answer within {RPCTOOL_TIMEOUT:g} s") from None
            raise NoAnswer(str(e)) from None
        if done.returncode != 0:
            return None  # not set (or not a VMware guest)
        return done.stdout.decode("utf-8", "surrogateescape").removesuffix("\n")

    def present(value: str | None) -> bool:
        return value is not None and len(value) > 1 and value != "---"

    metadata, userdata = get("guestinfo.metadata"), get("guestinfo.userdata")
    if not (present(metadata) or present(userdata)):
        raise NoAnswer("no guestinfo.metadata or guestinfo.userdata (not a VMware guest, "
                       "or nothing set)")
    side = []
    vendordata = get("guestinfo.vendordata")
    if vendordata is not None:
        side.append(("vendordata", _vmware_decode(get, "guestinfo.vendordata", vendordata),
                     0o644))
    if metadata is not None:
        side.append(("metadata", _vmware_decode(get, "guestinfo.metadata", metadata), 0o644))
    user_data = None
    if userdata is not None:
        user_data = _vmware_decode(get, "guestinfo.userdata", userdata)
    return Found("vmware", f"guestinfo through {tool}", user_data or None, side)


def _vmware_decode(get: Callable[[str], str | None], key: str, value: str) -> bytes:
    import base64
    import binascii
    import gzip

    encoding = (get(key + ".encoding") or "").strip().lower()
    raw = value.encode("utf-8", "surrogateescape")
    try:
        if encoding == "":
            return raw
        if encoding in ("base64", "b64"):
            return base64.b64decode(b"".join(raw.split()), validate=True)
        if encoding in ("gzip+base64", "gz+b64", "gzip+b64", "gz+base64"):
            return gzip.decompress(base64.b64decode(b"".join(raw.split()), validate=True))
    except (binascii.Error, ValueError, OSError, EOFError) as e:
        raise BadMetadata(f"vmware: {key}: not valid {encoding}: {e}") from None
    raise BadMetadata(f"vmware: {key}: unknown encoding '{encoding}' (known: base64, "
                      "gzip+base64)")
