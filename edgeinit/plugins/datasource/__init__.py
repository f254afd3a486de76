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

import posixpath
from collections.abc import Callable, Iterator

from edgeinit.log import log
from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.plugins.datasource.cloud import (
    _aws,
    _azure,
    _digitalocean,
    _gcp,
    _hetzner,
    _metaldata,
    _openstack,
    _packet,
    _scaleway,
    _vmware,
    _vultr,
    valid_fqdn,
)
from edgeinit.plugins.datasource.common import (
    CONFIG_DIR,
    DEFAULT_USERDATA_NAME,
    MAX_HOSTNAME,
    BadMetadata,
    DataSource,
    Found,
    NoAnswer,
)
from edgeinit.plugins.datasource.media import _cdrom, _config_drive, _file
from edgeinit.target.changes import Change, RunCommand
from edgeinit.target.plan import plan_attrs, plan_dirs, plan_write
from edgeinit.target.root import PathError, check_config_path


class Args(Record):
    datasource: DataSource | None = spec(None, doc="Where to look for user-data.")


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


PROVIDERS: dict[str, Callable[[DataSource, Context], Found]] = {
    "aws": _aws, "azure": _azure, "gcp": _gcp, "hetzner": _hetzner,
    "openstack": _openstack, "packet": _packet, "scaleway": _scaleway, "vultr": _vultr,
    "digitalocean": _digitalocean, "metaldata": _metaldata, "vmware": _vmware,
    "cdrom": _cdrom, "config-drive": _config_drive, "file": _file,
}


PLUGIN = Plugin("datasource", Args, plan)
