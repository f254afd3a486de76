"""target/crypt.py: SHA-512 crypt through the system's libcrypt, checked against OpenSSL's
independent implementation; which configured values are hashed and which are kept."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from edgeinit.target import crypt

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None,
                                   reason="openssl is not installed (an independent SHA-512 "
                                          "crypt to compare with)")


def openssl_sha512(password: str, salt: str) -> str:
    out = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
                         input=password + "\n", capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_new_hash_is_sha512_with_a_16_char_random_salt():
    h = crypt.sha512_crypt("elemental")
    assert re.fullmatch(r"\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}", h), h
    assert crypt.sha512_crypt("elemental") != h  # a new salt every time


def test_hash_verifies_the_right_password_only():
    h = crypt.sha512_crypt("rey")
    assert crypt.verify("rey", h)
    assert not crypt.verify("Rey", h)
    assert not crypt.verify("", h)
    assert not crypt.verify("rey", "x")  # not a hash: never verifies
    assert not crypt.verify("rey", "!" + h)  # a locked hash is not a hash of anything


@needs_openssl
@pytest.mark.parametrize("password", ["elemental", "p@ss w:rd é", "x"])
def test_same_bytes_as_openssl_for_the_same_salt(password):
    """libcrypt and OpenSSL compute the same SHA-512 crypt for a given salt."""
    salt = "abcdefgh12345678"
    expected = openssl_sha512(password, salt)
    assert expected.startswith(f"$6${salt}$")
    # Our own salted computation, and verification of OpenSSL's hash.
    assert crypt._crypt(password, f"$6${salt}$") == expected
    assert crypt.verify(password, expected)
    assert not crypt.verify(password + "x", expected)


@needs_openssl
def test_our_random_salted_hash_verifies_with_openssl():
    h = crypt.sha512_crypt("kairos")
    salt = h.split("$")[2]
    assert openssl_sha512("kairos", salt) == h


@pytest.mark.parametrize("value", [
    "$6$abc$def", "$y$j9T$abc$def", "$5$x$y", "$1$x$y",  # hashes
    "!", "!!", "!$6$abc$def", "*", "",  # locked, disabled, empty
])
def test_hashes_locks_and_empty_pass_through(value):
    assert crypt.shadow_password(value) == value
    assert crypt.shadow_password(value, current=crypt.sha512_crypt("other")) == value


def test_plain_text_is_hashed():
    stored = crypt.shadow_password("elemental")
    assert stored.startswith("$6$") and crypt.verify("elemental", stored)


def test_stored_hash_of_the_same_plain_text_is_kept():
    """Idempotent: a plain password whose hash is already stored writes nothing new."""
    current = crypt.sha512_crypt("elemental")
    assert crypt.shadow_password("elemental", current) == current


@needs_openssl
def test_stored_openssl_hash_of_the_same_plain_text_is_kept():
    current = openssl_sha512("elemental", "saltsalt")
    assert crypt.shadow_password("elemental", current) == current


def test_other_plain_text_gets_a_new_hash():
    current = crypt.sha512_crypt("old")
    stored = crypt.shadow_password("new", current)
    assert stored != current and crypt.verify("new", stored)
    assert crypt.shadow_password("new", "!") != "!"  # a locked line is not "the same"


def test_nul_byte_is_refused():
    with pytest.raises(crypt.CryptError):
        crypt.sha512_crypt("a\0b")


def test_is_hash():
    assert crypt.is_hash("$6$a$b") and crypt.is_hash("$y$j9T$a$b")
    assert not crypt.is_hash("x") and not crypt.is_hash("!") and not crypt.is_hash("")
