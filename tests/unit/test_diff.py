"""Dry-run diffs never show a secret (SPEC 1 `--dry-run`, 7.9).

Password hashes, `password=` values and private key bodies are masked in readable
files; a file others cannot read (or one marked secret) is summarised, never shown.
"""

from __future__ import annotations

import pytest

from edgeinit.target.changes import WriteFile
from edgeinit.target.diff import MASK, file_diff, mask_text

HASH = "$6$rounds=5000$saltsalt$Qx3Xq0o8gXh1y9V7lq0rJ5m9l8gkz2Wc3b0a1d2e3f4g5h6i7j8k9l0m1n2o3p4"
KEY_BODY = "MIIEpAIBAAKCAQEA7bq5xUqQ3bXJ8y0secretkeymaterial"


def test_plain_diff_is_unified() -> None:
    """An ordinary config file gets an ordinary unified diff."""
    out = file_diff("/etc/motd", b"a\nb\n", b"a\nc\n")
    assert out.splitlines() == ["--- /etc/motd", "+++ /etc/motd", "@@ -1,2 +1,2 @@", " a",
                                "-b", "+c"]


def test_new_file_diff_is_from_dev_null() -> None:
    """A created file diffs against /dev/null."""
    out = file_diff("/etc/new", None, b"x\n")
    assert out.startswith("--- /dev/null\n+++ /etc/new\n")
    assert "+x\n" in out


def test_equal_content_has_no_diff() -> None:
    assert file_diff("/etc/x", b"same", b"same") == ""


def test_missing_final_newline_is_marked() -> None:
    """Lines without a newline must not run into the next diff line."""
    out = file_diff("/etc/x", b"a", b"b")
    assert "-a\n\\ No newline at end of file\n+b\n\\ No newline at end of file\n" in out


@pytest.mark.parametrize("hashed", [
    HASH,
    "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
    "$2b$12$KIXQJQqJtH0m5y3F8y5QeO3rjyY3Ff7rVZx4q9m1q2w3e4r5t6y7u",
    "$1$abcdefgh$ijklmnopqrstuvwxyzABCD",
    "$5$salt$hashhashhash",
])
def test_password_hashes_are_masked(hashed: str) -> None:
    """Hashes of every crypt scheme in shadow-like lines are masked; other fields stay."""
    line = f"root:{hashed}:19000:0:99999:7:::\n"
    out = file_diff("/etc/shadow.example", None, line.encode(), mode=0o644)
    assert hashed not in out
    assert f"+root:{MASK}:19000:0:99999:7:::" in out


@pytest.mark.parametrize("line,shown", [
    ("password=hunter2", f"password={MASK}"),
    ("PASSWORD = hunter2 more words", f"PASSWORD = {MASK}"),
    ("db_passwd: hunter2", f"db_passwd: {MASK}"),
    ("api_key=hunter2", f"api_key={MASK}"),
    ("token: hunter2", f"token: {MASK}"),
    ("secret=hunter2", f"secret={MASK}"),
])
def test_password_assignments_are_masked(line: str, shown: str) -> None:
    """`password=...` and friends are masked whatever the separator and case."""
    out = file_diff("/etc/app.conf", b"", (line + "\nother=1\n").encode())
    assert "hunter2" not in out
    assert f"+{shown}\n" in out
    assert "+other=1\n" in out


def test_private_key_body_is_masked_but_markers_stay() -> None:
    """A private key in a readable file: BEGIN/END lines shown, every body line masked."""
    pem = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
           f"{KEY_BODY}\n{KEY_BODY[::-1]}\n"
           "-----END OPENSSH PRIVATE KEY-----\n"
           "after=1\n")
    out = file_diff("/etc/ssl/key.pem", None, pem.encode(), mode=0o644)
    assert KEY_BODY not in out and KEY_BODY[::-1] not in out
    assert "+-----BEGIN OPENSSH PRIVATE KEY-----\n" in out
    assert "+-----END OPENSSH PRIVATE KEY-----\n" in out
    assert out.count(f"+{MASK}\n") == 2
    assert "+after=1\n" in out


def test_secrets_in_old_content_are_masked_too() -> None:
    """The removed side of a diff is masked like the added side."""
    out = file_diff("/etc/app.conf", b"password=oldsecret\n", b"password=newsecret\n")
    assert "oldsecret" not in out and "newsecret" not in out


def test_mask_text_leaves_ordinary_text() -> None:
    """Masking must not eat ordinary lines (a diff that hides everything is useless)."""
    text = "NTP = 0.pool\nnameserver 1.1.1.1\nprice is $5\n"
    assert mask_text(text) == text


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o660, 0o700, 0o000])
def test_file_not_readable_by_others_is_summarised(mode: int) -> None:
    """0600/0640/...: content never shown, only line counts."""
    out = file_diff("/etc/secret", b"old1\nold2\n", b"topsecret\n", mode=mode)
    assert "topsecret" not in out and "old1" not in out
    assert "content masked" in out
    assert "2 lines -> 1 lines" in out


def test_secret_flag_masks_even_a_readable_file() -> None:
    """A change marked secret (a password-bearing file) is summarised whatever its mode."""
    out = file_diff("/etc/x", None, b"plaintext\n", secret=True, mode=0o644)
    assert "plaintext" not in out
    assert "absent -> 1 lines" in out


def test_binary_content_is_summarised() -> None:
    """Non-UTF-8 content is reported by size, not dumped."""
    out = file_diff("/bin/blob", b"\xff\xfe", b"\x00\xff\x01", mode=0o755)
    assert "binary content: 2 -> 3 bytes" in out


def test_write_file_diff_uses_its_mode() -> None:
    """WriteFile.diff masks by the mode the file will have (here kept 0600 from disk)."""
    change = WriteFile("/etc/wpa.conf", "/x/etc/wpa.conf", b"psk=abc\n", 0o600, 0, 0,
                       b"psk=old\n")
    assert "psk=abc" not in change.diff()
    readable = WriteFile("/etc/motd", "/x/etc/motd", b"hi\n", 0o644, 0, 0, None)
    assert "+hi\n" in readable.diff()
