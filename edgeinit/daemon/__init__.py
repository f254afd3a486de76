"""`edgeinit daemon`: the reconcile service and its D-Bus API (SPEC section 1, 8).

notify.py   sd_notify over $NOTIFY_SOCKET (READY, STATUS, WATCHDOG, STOPPING)
watch.py    the config directories under the root, watched with inotify (ctypes)
udev.py     block devices with a configured label: mount read-only, apply, unmount
bus.py      io.edgeinit.Manager1 on the system bus (dbus-next)
client.py   what `edgeinit status` asks the running daemon
service.py  the asyncio main loop tying them together

Nothing here is imported by `edgeinit run`: the daemon's imports (asyncio, dbus-next,
pyudev) are paid only by `edgeinit daemon` and, for the client, by `edgeinit status`.
"""

BUS_NAME = "io.edgeinit.Manager1"
OBJECT_PATH = "/io/edgeinit/Manager1"
INTERFACE = "io.edgeinit.Manager1"


class Stopping(Exception):
    """The daemon is shutting down and takes no more work."""


class NameTaken(Exception):
    """Another process owns the daemon's bus name."""
