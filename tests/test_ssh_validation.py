"""Validation of ssh and sftp records: required fields, fingerprints, options, key formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from leakcheck import register_secret

from asyncext import (
    ConnectionFailed,
    EncryptionKeyError,
    ExternalSystem,
    InvalidSystem,
    SystemStore,
)
from asyncext._adapters._hostkeys import parse_fingerprint
from asyncext._adapters._ssh_settings import read_settings

PASSPHRASE = "correct horse battery staple"
register_secret(PASSPHRASE)

_GENERATED = ed25519.Ed25519PrivateKey.generate()
PLAIN_KEY = _GENERATED.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.OpenSSH,
    serialization.NoEncryption(),
).decode()
ENCRYPTED_KEY = _GENERATED.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.OpenSSH,
    serialization.BestAvailableEncryption(PASSPHRASE.encode()),
).decode()
ED25519_KEY = asyncssh.import_private_key(PLAIN_KEY)
KEY_BODY_LINES = [line for line in ENCRYPTED_KEY.splitlines() if not line.startswith("-----")]
register_secret(*KEY_BODY_LINES, *PLAIN_KEY.splitlines()[1:-1])

FINGERPRINT = ED25519_KEY.get_fingerprint("sha256")

PUTTY_KEY = """PuTTY-User-Key-File-3: ssh-ed25519
Encryption: none
Comment: test
Public-Lines: 2
AAAAC3NzaC1lZDI1NTE5AAAAIGAtfqHV1mN0dHqHwLCL6kHYHJf0CYhlF1hEE3IVH3xQ
Private-Lines: 1
AAAAIEm6wFZ4Kv2c0S5Ww6OoGRnL1Hn8hDfyHbG3wRFWS3Ul
Private-MAC: 6d5b2d7f3f3c6e4a2e1b0b9a8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d
"""


def ssh_system(system_type: str = "ssh", **fields: Any) -> ExternalSystem:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "username": "deploy",
        "fingerprint": FINGERPRINT,
    }
    values.update(fields)
    return ExternalSystem(name="box", system_type=system_type, **values)


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
def test_ssh_validate_requires_host(system_type: str) -> None:
    """A record without host is invalid, and the message names the field."""
    with pytest.raises(InvalidSystem, match="needs host"):
        ssh_system(system_type, host=None)


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
def test_ssh_validate_requires_username(system_type: str) -> None:
    """A record without username is invalid, and the message names the field."""
    with pytest.raises(InvalidSystem, match="needs username"):
        ssh_system(system_type, username=None)


def test_ssh_port_defaults_to_22() -> None:
    """A record without port connects to port 22."""
    assert read_settings(ssh_system(port=None)).port == 22
    assert read_settings(ssh_system(port=2222)).port == 2222


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
def test_ssh_missing_fingerprint_says_how_to_get_it(system_type: str) -> None:
    """Without fingerprint or ignore_fingerprint the message names both ways to fetch one."""
    with pytest.raises(InvalidSystem) as raised:
        ssh_system(system_type, fingerprint=None, port=2222)
    message = str(raised.value)
    assert "await asyncext.scan_host_key('127.0.0.1', 2222)" in message
    assert "asyncext trust box" in message
    assert "ignore_fingerprint=True" in message


def test_ssh_ignore_fingerprint_needs_no_pin() -> None:
    """ignore_fingerprint=True makes a record without fingerprint valid."""
    system = ssh_system(fingerprint=None, ignore_fingerprint=True)
    assert read_settings(system).pin is None


@pytest.mark.parametrize(
    "value",
    ["SHA256:abc", "SHA256:" + "!" * 43, "MD5:zz:11", "md5:00", "nonsense", "ssh-ed25519 AAAA"],
)
def test_ssh_malformed_fingerprint_is_named(value: str) -> None:
    """A malformed fingerprint is invalid, and the message quotes the value."""
    with pytest.raises(InvalidSystem) as raised:
        ssh_system(fingerprint=value)
    assert repr(value) in str(raised.value)


def test_fingerprint_forms_are_accepted() -> None:
    """SHA256 with or without padding, MD5 in any case or bare, and key lines all parse."""
    public_line = ED25519_KEY.export_public_key("openssh").decode().strip()
    md5 = ED25519_KEY.get_fingerprint("md5")
    forms = {
        FINGERPRINT: FINGERPRINT,
        FINGERPRINT + "=": FINGERPRINT,
        "sha256:" + FINGERPRINT.split(":", 1)[1]: FINGERPRINT,
        md5: md5,
        "MD5:" + md5.removeprefix("MD5:").upper(): md5,
        md5.removeprefix("MD5:"): md5,
        public_line + " comment": public_line,
    }
    for value, canonical in forms.items():
        pin = parse_fingerprint(value)
        assert pin.text == canonical
        assert pin.matches(ED25519_KEY)


def test_fingerprint_pin_rejects_other_key() -> None:
    """A pin does not match another key of the same type."""
    other = asyncssh.generate_private_key("ssh-ed25519")
    for value in (FINGERPRINT, ED25519_KEY.get_fingerprint("md5")):
        assert not parse_fingerprint(value).matches(other)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("connect_timeout", 0),
        ("connect_timeout", -1),
        ("connect_timeout", "15"),
        ("connect_timeout", True),
        ("keepalive_interval", -1),
        ("keepalive_interval", "5"),
        ("keepalive_count_max", 0),
        ("keepalive_count_max", 1.5),
        ("max_concurrent_handshakes", 0),
        ("max_concurrent_handshakes", "4"),
    ],
)
def test_ssh_invalid_option_is_named(option: str, value: object) -> None:
    """An out-of-range or mistyped option is invalid, and the message names it and the value."""
    with pytest.raises(InvalidSystem) as raised:
        ssh_system(options={option: value})
    assert option in str(raised.value)
    assert repr(value) in str(raised.value)


def test_ssh_options_are_read() -> None:
    """Valid options reach the connection settings; others keep their defaults."""
    settings = read_settings(
        ssh_system(options={"connect_timeout": 2.5, "keepalive_interval": 0, "pool": {}})
    )
    assert settings.connect_timeout == 2.5
    assert settings.keepalive_interval == 0
    assert settings.keepalive_count_max == 3
    assert read_settings(ssh_system()).connect_timeout == 15.0


def test_ssh_putty_key_says_how_to_convert() -> None:
    """A PuTTY .ppk key is rejected with the puttygen command that converts it."""
    with pytest.raises(InvalidSystem) as raised:
        ssh_system(private_key=PUTTY_KEY)
    message = str(raised.value)
    assert "PuTTY" in message
    assert "puttygen key.ppk -O private-openssh" in message
    assert "AAAAC3NzaC1lZDI1NTE5" not in message


def test_ssh_public_key_as_private_key() -> None:
    """A public key given as private_key is rejected as such."""
    public_line = ED25519_KEY.export_public_key("openssh").decode()
    with pytest.raises(InvalidSystem, match="is a public key"):
        ssh_system(private_key=public_line)


def test_ssh_garbage_private_key() -> None:
    """Text that is no key is rejected without being quoted."""
    with pytest.raises(InvalidSystem) as raised:
        ssh_system(private_key="hunter2-not-a-key")
    assert "not a private key" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_ssh_encrypted_key_needs_passphrase() -> None:
    """An encrypted key without private_key_password is rejected, naming that field."""
    with pytest.raises(InvalidSystem) as raised:
        ssh_system(private_key=ENCRYPTED_KEY)
    message = str(raised.value)
    assert "encrypted" in message
    assert "private_key_password" in message
    assert all(line not in message for line in KEY_BODY_LINES)


def test_ssh_encrypted_key_with_passphrase_is_valid() -> None:
    """An encrypted key with a passphrase is accepted without being decrypted."""
    system = ssh_system(private_key=ENCRYPTED_KEY, private_key_password="wrong is fine here")
    assert system.private_key is not None


async def test_ssh_undecryptable_key_does_not_block_update(tmp_path: Path) -> None:
    """With the wrong store key, other fields still update and connecting names the system."""
    path = tmp_path / "systems.db"
    async with SystemStore(path, key=Fernet.generate_key().decode()) as store:
        await store.add(
            "box",
            "sftp",
            host="127.0.0.1",
            username="deploy",
            fingerprint=FINGERPRINT,
            private_key=PLAIN_KEY,
        )

    async with SystemStore(path, key=Fernet.generate_key().decode()) as store:
        updated = await store.update("box", host="localhost")
        assert updated.host == "localhost"
        with pytest.raises(EncryptionKeyError) as raised:
            async with updated.client():
                pass
        assert "box" in str(raised.value)


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
def test_ssh_pin_with_ignore_fingerprint_rejected(system_type: str) -> None:
    """A fingerprint together with ignore_fingerprint=True is rejected, not silently unused."""
    with pytest.raises(InvalidSystem, match="ignore_fingerprint=False"):
        ssh_system(system_type, ignore_fingerprint=True)


async def test_ssh_update_pin_needs_checking_on(tmp_path: Path) -> None:
    """Pinning a system that ignores host keys requires turning checking back on."""
    async with SystemStore(tmp_path / "systems.db") as store:
        await store.add("box", "sftp", host="127.0.0.1", username="u", ignore_fingerprint=True)
        with pytest.raises(InvalidSystem, match="ignore_fingerprint"):
            await store.update("box", fingerprint=FINGERPRINT)

        pinned = await store.update("box", fingerprint=FINGERPRINT, ignore_fingerprint=False)

    assert pinned.fingerprint == FINGERPRINT
    assert pinned.ignore_fingerprint is False


def test_ssh_private_key_as_fingerprint_not_quoted() -> None:
    """A private key pasted into fingerprint is rejected without quoting any of it."""
    with pytest.raises(InvalidSystem, match="contains a private key") as raised:
        ssh_system(fingerprint=PLAIN_KEY.replace("\n", " "))

    for line in PLAIN_KEY.splitlines()[1:-1]:
        assert line[:20] not in str(raised.value)


async def test_ssh_no_credentials_fails_before_connecting() -> None:
    """A record without password or private key fails with a message saying so."""
    system = ssh_system("sftp", port=9)

    with pytest.raises(ConnectionFailed, match="no password and no private_key"):
        async with system.client():
            pass
