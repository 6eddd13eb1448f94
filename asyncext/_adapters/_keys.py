"""Private keys given as text: format checks, decryption and the errors for each failure.

Accepted formats are those asyncssh imports: OpenSSH (``BEGIN OPENSSH PRIVATE KEY``), PEM
(``BEGIN RSA PRIVATE KEY`` and similar, optionally encrypted with ``Proc-Type: 4,ENCRYPTED``)
and PKCS#8 (``BEGIN PRIVATE KEY`` / ``BEGIN ENCRYPTED PRIVATE KEY``), for ed25519, ECDSA and
RSA keys. No message built here contains key text or a passphrase.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING

import anyio.to_thread
import asyncssh

from .._errors import ConnectionFailed, InvalidSystem

if TYPE_CHECKING:
    from .._system import ExternalSystem

_PUTTY_HEADER = "PuTTY-User-Key-File-"
_OPENSSH_MAGIC = b"openssh-key-v1\x00"

# Imported keys by a digest of (key text, passphrase): decrypting an OpenSSH key runs bcrypt
# and takes a noticeable fraction of a second, which every new connection would pay again.
_IMPORTED: OrderedDict[bytes, asyncssh.SSHKey] = OrderedDict()
_MAX_IMPORTED = 64


def check_private_key_text(system_name: str, text: str, has_passphrase: bool) -> None:
    """Check a private key's format without decrypting it; used by validation.

    Raises:
        InvalidSystem: the text is a PuTTY key, a public key, not a key at all, or an
            encrypted key without ``private_key_password``.
    """
    problem = _format_problem(text)
    if problem is not None:
        raise InvalidSystem(f"system {system_name!r}: private_key {problem}", system=system_name)
    if _is_encrypted(text) and not has_passphrase:
        raise InvalidSystem(_missing_passphrase_message(system_name), system=system_name)


async def load_private_key(system: ExternalSystem) -> asyncssh.SSHKey | None:
    """Return the system's private key, decrypted, or None when it has none.

    Decryption runs in a worker thread. Keys already imported in this process are reused.

    Raises:
        InvalidSystem: the key's format is unsupported, or it is encrypted and no
            ``private_key_password`` is set.
        ConnectionFailed: the passphrase is wrong.
        EncryptionKeyError: the stored secret cannot be decrypted with the store's key.
    """
    if system.private_key is None:
        return None
    text = system.private_key.reveal()
    passphrase = (
        system.private_key_password.reveal() if system.private_key_password is not None else None
    )
    check_private_key_text(system.name, text, passphrase is not None)
    if not _is_encrypted(text):
        passphrase = None

    cache_key = hashlib.sha256(
        text.encode() + b"\x00" + (passphrase or "").encode() + b"\x00" + bytes([bool(passphrase)])
    ).digest()
    cached = _IMPORTED.get(cache_key)
    if cached is not None:
        _IMPORTED.move_to_end(cache_key)
        return cached

    try:
        key = await anyio.to_thread.run_sync(asyncssh.import_private_key, text, passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        # The text was checked above, so a failure of an encrypted key is its passphrase.
        if passphrase is not None:
            raise ConnectionFailed(
                f"system {system.name!r}: private_key_password does not decrypt the private "
                "key; set the passphrase the key was encrypted with",
                system=system.name,
            ) from None
        raise InvalidSystem(
            f"system {system.name!r}: private_key could not be read ({exc}); give a private "
            "key in OpenSSH, PEM or PKCS#8 format",
            system=system.name,
        ) from None

    _IMPORTED[cache_key] = key
    while len(_IMPORTED) > _MAX_IMPORTED:
        _IMPORTED.popitem(last=False)
    return key


def _missing_passphrase_message(system_name: str) -> str:
    return (
        f"system {system_name!r}: private_key is encrypted but private_key_password is not "
        "set; set it to the key's passphrase"
    )


def _format_problem(text: str) -> str | None:
    """Return what is wrong with the key text's format, or None when it looks usable."""
    stripped = text.strip()
    if stripped.startswith(_PUTTY_HEADER):
        return (
            "is a PuTTY .ppk key, which is not supported; convert it to OpenSSH format "
            "with: puttygen key.ppk -O private-openssh -o key (or in PuTTYgen: "
            "Conversions > Export OpenSSH key) and store the converted text"
        )
    if stripped.startswith(("ssh-", "ecdsa-", "sk-")) or "PUBLIC KEY-----" in stripped:
        return "is a public key; give the private half of the key pair"
    if not stripped.startswith("-----BEGIN ") or "PRIVATE KEY-----" not in stripped:
        return (
            "is not a private key in a supported format; give the text of an OpenSSH, "
            "PEM or PKCS#8 private key, starting with '-----BEGIN'"
        )
    return None


def _is_encrypted(text: str) -> bool:
    """Return whether the key text is encrypted, read from its armour and header."""
    stripped = text.strip()
    if "BEGIN ENCRYPTED PRIVATE KEY" in stripped or "Proc-Type: 4,ENCRYPTED" in stripped:
        return True
    if "BEGIN OPENSSH PRIVATE KEY" not in stripped:
        return False
    return _openssh_cipher(stripped) not in (None, b"none")


def _openssh_cipher(text: str) -> bytes | None:
    """Return the cipher name in an OpenSSH private key's header, or None if unreadable."""
    lines = text.splitlines()
    body = "".join(line.strip() for line in lines[1:] if not line.startswith("-----"))
    try:
        blob = base64.b64decode(body)
    except (binascii.Error, ValueError):
        return None
    if not blob.startswith(_OPENSSH_MAGIC):
        return None
    offset = len(_OPENSSH_MAGIC)
    if len(blob) < offset + 4:
        return None
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    return blob[offset + 4 : offset + 4 + length]
