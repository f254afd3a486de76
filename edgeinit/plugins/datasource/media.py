"""Local media and files: cdrom (cidata), config-drive (config-2) and the file provider."""

from __future__ import annotations

from edgeinit.plugins.base import Context
from edgeinit.plugins.datasource.common import DataSource, Found, NoAnswer
from edgeinit.target.root import PathError

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
