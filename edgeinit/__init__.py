"""edgeinit: an on-device stage runner for yip / Elemental / cloud-init config files."""

__version__ = "0.1.0"
