"""Password hashes with the system's libcrypt: SHA-512 crypt for new ones, any for checks.

Python's `crypt` module is deprecated (gone in 3.13); libcrypt (libxcrypt on Debian,
Essential) is what `passwd` and PAM use, so hashes it makes and checks are exactly the
system's. ctypes is imported only when a password is hashed or checked.
"""

from __future__ import annotations

import secrets
from typing import Any

_SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LIB: Any = None


class CryptError(Exception):
    """libcrypt is missing or refused the input."""


def _crypt(key: str, setting: str) -> str:
    global _LIB
    if _LIB is None:
        import ctypes

        for name in ("libcrypt.so.1", "libcrypt.so.2", "libcrypt.so"):
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise CryptError("libcrypt not found: cannot hash passwords")
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        _LIB = lib
    if "\0" in key:
        raise CryptError("a password cannot contain a NUL character")
    out = _LIB.crypt(key.encode(), setting.encode())
    if not out or out.startswith(b"*"):
        raise CryptError("libcrypt refused the hash setting")
    return str(out.decode())


def sha512_crypt(password: str) -> str:
    """`$6$<16 random salt chars>$...`: a new SHA-512 crypt hash of `password`."""
    salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    return _crypt(password, f"$6${salt}$")


def verify(password: str, hashed: str) -> bool:
    """Whether `password` is the plain text of the crypt hash `hashed`."""
    if not is_hash(hashed):
        return False
    try:
        return secrets.compare_digest(_crypt(password, hashed), hashed)
    except CryptError:
        return False


def is_hash(value: str) -> bool:
    """A crypt hash as yip recognises one: it starts with `$` (`$6$`, `$y$`, `$5$`, `$1$`)."""
    return value.startswith("$")


def shadow_password(value: str, current: str | None = None) -> str:
    """The shadow field for a configured password, as entities/yip decide it.

    A crypt hash, `!`-prefixed (locked) values, `*` and the empty string are stored as
    given; any other value is plain text and is hashed, unless `current` already is its
    hash (then it is kept, so a run that changes nothing writes nothing).
    """
    if value == "" or value == "*" or value.startswith(("$", "!")):
        return value
    if current and verify(value, current):
        return current
    return sha512_crypt(value)
