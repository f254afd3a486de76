"""`datasource`: user-data and metadata from a cloud's metadata service or a local medium.

yip's semantics (../shared/reference/yip-behaviour.md 3.16), but deterministic:
providers are tried one at a time, in the order given (each name once), and the first
that answers wins; the ones after it are never asked. yip probes the network providers
in parallel and takes whichever answers first, and always tries cdrom/config-drive first.

- `/run/config` (0755) is always made first, even when no provider answers.
- The winner's metadata goes to side files in /run/config, as yip's providers write
  them: `hostname`, `ssh/authorized_keys` (0600), and per provider e.g. `public_ipv4`,
  `local_ipv4`, `instance_id`, `availability_zone`, ... (all 0644).
- Its user-data (for a multipart document, the first `text/cloud-config` part) is
  written to `BASE/userdata`, where BASE is `path`, or /run/config when `path` is
  not set or the winner is the `file` provider (whose `path` is its input). When the
  user-data loads as a yip or #cloud-config document it is also written to
  `BASE/<userdata_name>` (default `userdata.yaml`); else when its first line starts with
  `#!`, `BASE/userdata` is made 0744 and run (chrooted under --root, like commands).
- Then, as in yip: when /run/config/hostname exists, the hostname is applied as by the
  `hostname` plugin (a name longer than the kernel's 64 characters, such as a long
  GCP FQDN, by its first label, with a warning); when /run/config/ssh/authorized_keys
  exists, its keys are added to root's authorized_keys as by the `authorized_keys`
  plugin.
- No provider answering fails the step with the list of what was tried and why. A
  provider that answers with something unusable (a hostname that is an HTML page, keys
  that are not the JSON it promises, a user-data request that fails other than with
  404) fails the step with the provider and the URL; nothing of it is written, and the
  providers after it are not tried. Everything a provider serves is read before
  anything is written.

Providers:
  aws           IMDS, IMDSv2 token when offered (else v1): /latest/meta-data/hostname,
                .../public-keys/0/openssh-key, /latest/user-data
  openstack     the EC2-compatible paths of the same service (as yip), no token
  gcp           /computeMetadata/v1/instance/hostname, .../project/attributes/ssh-keys
                ("user:key" lines), .../instance/attributes/user-data;
                header Metadata-Flavor: Google
  azure         IMDS /metadata/instance/compute/{vmId,name,publicKeys/0/keyData,userData
                (base64)}?api-version=2021-01-01&format=text, header Metadata: true; then
                reports ready to the wire server (GET goal state, POST health), not in
                a dry run
  digitalocean  /metadata/v1/ (index), .../hostname, .../public-keys, .../user-data
  hetzner       /hetzner/v1/metadata/{hostname,public-keys (a JSON list)},
                /hetzner/v1/userdata
  scaleway      /conf (KEY=VALUE lines: HOSTNAME, SSH_PUBLIC_KEYS_N_KEY, ...);
                /user_data/cloud-init, asked from a source port below 1024 (needs root)
  vultr         /v1/ (index), /v1/hostname, /v1/public-keys, /latest/user-data
  packet        /metadata (JSON: hostname, ssh_keys), /userdata (`#!ipxe` is not
                user-data)
  metaldata     /get/meta/{hostname,authorized-keys}, /get/user
  vmware        guestinfo.{metadata,userdata,vendordata} (+ `.encoding`: base64,
                gzip+base64) read with `vmware-rpctool "info-get KEY"` (open-vm-tools)
  cdrom         devices labelled cidata or CIDATA, then /dev/sr*; mounted read-only
                (iso9660, then vfat) in a private temp dir; file `user-data`, else `config`
  config-drive  devices labelled config-2 or CONFIG-2, then /dev/sr*;
                `openstack/latest/user_data`
  file          the file `path` (inside the root); only when `path` is set

Devices and metadata services are those of the machine edgeinit runs on, whatever
`--root` is; every file is written inside the root, and the `file` provider reads its
`path` inside the root, as any config path.

Environment (base URLs: scheme, host and port; the paths above are appended):
  EDGEINIT_DATASOURCE_AWS_URL           http://169.254.169.254
  EDGEINIT_DATASOURCE_OPENSTACK_URL     http://169.254.169.254
  EDGEINIT_DATASOURCE_GCP_URL           http://metadata.google.internal
  EDGEINIT_DATASOURCE_AZURE_URL         http://169.254.169.254
  EDGEINIT_DATASOURCE_AZURE_WIRESERVER_URL  http://168.63.129.16
  EDGEINIT_DATASOURCE_DIGITALOCEAN_URL  http://169.254.169.254
  EDGEINIT_DATASOURCE_HETZNER_URL       http://169.254.169.254
  EDGEINIT_DATASOURCE_SCALEWAY_URL      http://169.254.42.42
  EDGEINIT_DATASOURCE_VULTR_URL         http://169.254.169.254
  EDGEINIT_DATASOURCE_PACKET_URL        https://metadata.platformequinix.com
  EDGEINIT_DATASOURCE_METALDATA_URL     http://metaldata
  EDGEINIT_DATASOURCE_VMWARE_RPCTOOL    vmware-rpctool (the command run)
  EDGEINIT_DATASOURCE_TIMEOUT           2 (seconds; yip's is 2)
Every metadata request gives up after EDGEINIT_DATASOURCE_TIMEOUT seconds without an
answer or progress, and never waits longer than EDGEINIT_FETCH_TIMEOUT (at most 30 s),
name resolution included. Requests never go through a proxy (the services are
link-local). Mounting and reading a device is bounded too (target.devices).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterator

from edgeinit.log import log
from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.target.changes import Change, RunCommand
from edgeinit.target.plan import plan_attrs, plan_dirs, plan_write
from edgeinit.target.root import PathError, check_config_path

CONFIG_DIR = "/run/config"
DEFAULT_USERDATA_NAME = "userdata.yaml"
DEFAULT_TIMEOUT = 2.0
RPCTOOL_TIMEOUT = 10.0
MAX_BODY = 16 * 1024 * 1024
AZURE_API = "?api-version=2021-01-01&format=text"
MAX_HOSTNAME = 64  # what sethostname(2) takes
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

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


class Args(Record):
    datasource: DataSource | None = spec(None, doc="Where to look for user-data.")


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


# -- the plan -------------------------------------------------------------------------


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    ds = args.datasource
    if ds is None or not ds.providers:
        return
    names = _provider_names(ds, ctx)
    name = ds.userdata_name.strip() or DEFAULT_USERDATA_NAME
    if "/" in name or name in (".", ".."):
        raise PluginError(f"userdata_name '{name}' must be a file name")
    if ds.path:
        try:
            check_config_path(ds.path)
        except PathError as e:
            raise PluginError(str(e)) from None
    yield from _plan_config_dir(ctx)
    found = None
    tried: list[str] = []
    for provider in names:
        log.info("datasource: trying %s", provider)
        try:
            found = PROVIDERS[provider](ds, ctx)
        except NoAnswer as e:
            log.info("datasource: %s did not answer: %s", provider, e)
            tried.append(f"{provider} ({e})")
            continue
        except BadMetadata as e:
            raise PluginError(str(e)) from None
        break
    if found is None:
        raise PluginError("no metadata/userdata found: no provider answered; tried "
                          + ("; ".join(tried) if tried else "no known provider"))
    log.info("datasource: %s answered (%s)", found.provider, found.where)
    for warning in found.warnings:
        ctx.warn(warning)
    for rel, content, mode in found.side_files:
        yield from plan_write(ctx.root, f"{CONFIG_DIR}/{rel}", content, mode=mode)
    if found.user_data:
        base = ds.path if ds.path and found.provider != "file" else CONFIG_DIR
        yield from _plan_user_data(found, base, name, ctx)
    else:
        ctx.warn(f"{found.provider} answered but serves no user-data")
    if found.after is not None and not ctx.dry_run:
        problem = found.after()
        if problem:
            ctx.warn(problem)
    yield from _apply_side_files(ctx)


def _plan_config_dir(ctx: Context) -> Iterator[Change]:
    """/run/config, 0755 (as yip ensures it, mode included)."""
    host = ctx.root.resolve(CONFIG_DIR)
    st = ctx.root.state(host)
    if st is not None and st.kind == "dir":
        yield from plan_attrs(ctx.root, CONFIG_DIR, host, st, 0o755, None, None)
    else:
        yield from plan_dirs(ctx.root, CONFIG_DIR, 0o755)


def _provider_names(ds: DataSource, ctx: Context) -> list[str]:
    """The providers to try, each once, in the order given; unknown names are skipped
    with a warning (yip ignores them silently)."""
    names: list[str] = []
    for raw in ds.providers:
        provider = raw.strip()
        if provider in names:
            continue
        if provider not in PROVIDERS:
            ctx.warn(f"unknown datasource provider '{provider}' skipped (known: "
                     + ", ".join(PROVIDERS) + ")")
            continue
        if provider == "file" and not ds.path:
            ctx.warn("the 'file' provider needs `path` (the file to read); skipped")
            continue
        names.append(provider)
    return names


def _plan_user_data(found: Found, base: str, name: str, ctx: Context) -> Iterator[Change]:
    assert found.user_data is not None
    data = first_cloud_config_part(found.user_data)
    text = data.decode("utf-8", "replace")
    loads = loads_as_config(text)
    script = not loads and text.startswith("#!")
    userdata = posixpath.join(base, "userdata")
    yield from plan_write(ctx.root, userdata, data, mode=0o744 if script else 0o644)
    if loads:
        yield from plan_write(ctx.root, posixpath.join(base, name), data, mode=0o644)
    elif script:
        import shlex

        yield RunCommand(shlex.quote(userdata), label=f"user-data script {userdata}")
    else:
        ctx.warn(f"the user-data from {found.provider} is neither a yip/#cloud-config "
                 f"document nor a #! script; it is only written to {userdata}")


def _apply_side_files(ctx: Context) -> Iterator[Change]:
    """yip's follow-up: /run/config/hostname and /run/config/ssh/authorized_keys, from
    this provider or an earlier one, are applied (the keys to root, as yip adds them
    for the user it runs as)."""
    text = ctx.root.read_text(CONFIG_DIR + "/hostname")
    hostname = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    if len(hostname) > MAX_HOSTNAME and valid_fqdn(hostname):
        short = hostname.split(".")[0]
        ctx.warn(f"the hostname {hostname} is longer than {MAX_HOSTNAME} characters; "
                 f"using its first label, {short}")
        hostname = short
    if hostname:
        from edgeinit.plugins import hostname as hostname_plugin

        yield from hostname_plugin.plan(hostname_plugin.Args(hostname=hostname), ctx)
    text = ctx.root.read_text(CONFIG_DIR + "/ssh/authorized_keys")
    keys = [line.strip() for line in (text or "").splitlines()
            if line.strip() and not line.strip().startswith("#")]
    if keys:
        from edgeinit.plugins.authorized_keys import plan_user_keys

        yield from plan_user_keys("root", keys, ctx)


# -- user-data ------------------------------------------------------------------------


def first_cloud_config_part(data: bytes) -> bytes:
    """For a multipart document (VMware's, with or without its MIME headers; yip's
    boundary is MIMEBOUNDARY), the first text/cloud-config part; else `data` as is."""
    if b"MIMEBOUNDARY" not in data and b"multipart/" not in data[:4096].lower():
        return data
    import email

    msg = email.message_from_bytes(data)
    if not msg.is_multipart():
        msg = email.message_from_bytes(
            b'Content-Type: multipart/mixed; boundary="MIMEBOUNDARY"\n\n' + data)
    for part in msg.walk():
        if not part.is_multipart() and part.get_content_type() == "text/cloud-config":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    return data


def loads_as_config(text: str) -> bool:
    """Whether edgeinit (like yip's schema.Load) reads the text as a config document."""
    from edgeinit.config.sources import Document, parse

    return isinstance(parse(0, "user-data", text), Document)


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


# -- local media and files ------------------------------------------------------------


def _medium(provider: str, labels: tuple[str, ...], names: tuple[str, ...]) -> Found:
    from edgeinit.target import devices

    try:
        candidates = devices.by_labels(labels)
    except devices.DeviceError as e:
        raise NoAnswer(str(e)) from None
    candidates += [d for d in devices.cdrom_drives() if d not in candidates]
    if not candidates:
        raise NoAnswer(f"no device labelled {' or '.join(labels)} and no optical drive "
                       f"({devices.CDROM_GLOB})")
    reasons = []
    for device in candidates:
        try:
            got = devices.read_first(device, names)
        except devices.DeviceError as e:
            reasons.append(f"{device}: {e}")
            continue
        if got is None or not got[1]:
            reasons.append(f"{device}: no {' or '.join(names)}")
            continue
        return Found(provider, f"{device}: {got[0]}", got[1])
    raise NoAnswer("; ".join(reasons))


def _cdrom(ds: DataSource, ctx: Context) -> Found:
    return _medium("cdrom", ("cidata", "CIDATA"), ("user-data", "config"))


def _config_drive(ds: DataSource, ctx: Context) -> Found:
    return _medium("config-drive", ("config-2", "CONFIG-2"), ("openstack/latest/user_data",))


def _file(ds: DataSource, ctx: Context) -> Found:
    root = ctx.root
    try:
        host = root.resolve(ds.path)
        st = root.state(host)
        if st is None:
            raise NoAnswer(f"{ds.path} does not exist")
        if st.kind != "file":
            raise NoAnswer(f"{ds.path} is not a regular file")
        data = root.read_bytes(host)
    except (OSError, PathError) as e:
        raise NoAnswer(f"{ds.path}: {getattr(e, 'strerror', None) or e}") from None
    return Found("file", ds.path, data or None)


PROVIDERS: dict[str, Callable[[DataSource, Context], Found]] = {
    "aws": _aws, "azure": _azure, "gcp": _gcp, "hetzner": _hetzner,
    "openstack": _openstack, "packet": _packet, "scaleway": _scaleway, "vultr": _vultr,
    "digitalocean": _digitalocean, "metaldata": _metaldata, "vmware": _vmware,
    "cdrom": _cdrom, "config-drive": _config_drive, "file": _file,
}

PLUGIN = Plugin("datasource", Args, plan)
