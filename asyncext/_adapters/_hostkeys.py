"""Host key pins: parsing ``fingerprint`` values, matching offered keys, algorithm order.

A pin is an OpenSSH fingerprint (``SHA256:…`` or ``MD5:…``, as ``ssh-keygen -l`` prints them)
or a public key line (``ssh-ed25519 AAAA… comment``). A public key line names its key type, so
the connection requests only that type from the server. A fingerprint does not, so the
connection requests the key types in `PREFERRED_FAMILIES` order, which puts ed25519 before RSA
as OpenSSH's own client does. asyncssh's default order (2.24) starts with RSA, and an ed25519
pin would then fail on every server that also has an RSA key. When a fingerprint does not match
the key offered, the next attempt leaves that key type out, so an RSA fingerprint still
connects to a server that prefers ed25519.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncssh
from asyncssh.public_key import get_public_key_algs

from .._validation import shorten

# Key families in the order they are requested from a server, each with the host key
# algorithms that serve it. Certificates are left out: a pin names a plain key.
PREFERRED_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ED25519", ("ssh-ed25519",)),
    ("ECDSA", ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")),
    ("ED448", ("ssh-ed448",)),
    ("RSA", ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")),
)

_FAMILY_BY_KEY_ALGORITHM = {
    b"ssh-ed25519": "ED25519",
    b"ssh-ed448": "ED448",
    b"ssh-rsa": "RSA",
    b"ssh-dss": "DSA",
    b"sk-ssh-ed25519@openssh.com": "ED25519-SK",
    b"sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}

_MD5_HEX = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){15}$")

# Key family that matched a fingerprint pin, by (host, port, pin), so that later connections
# ask for it first. Bounded, because a process may talk to many servers.
_LEARNED_FAMILIES: OrderedDict[tuple[str, int, str], str] = OrderedDict()
_MAX_LEARNED_FAMILIES = 1024


def key_family(key: asyncssh.SSHKey) -> str:
    """Return the key type as ``ssh-keygen -l`` names it: ``ED25519``, ``RSA``, ``ECDSA``, ..."""
    algorithm = key.algorithm
    if algorithm.startswith(b"ecdsa-sha2-"):
        return "ECDSA"
    return _FAMILY_BY_KEY_ALGORITHM.get(algorithm, algorithm.decode("ascii", "replace").upper())


def describe_key(key: asyncssh.SSHKey, hash_name: str = "sha256") -> str:
    """Return ``SHA256:… (ED25519)``: the key's fingerprint and its type."""
    return f"{key.get_fingerprint(hash_name)} ({key_family(key)})"


@dataclass(frozen=True)
class HostKeyPin:
    """The host key a system expects, parsed from its ``fingerprint`` field."""

    text: str
    """The fingerprint in canonical form: ``SHA256:…``, ``MD5:…`` or the public key line."""
    hash_name: str
    """``"sha256"`` or ``"md5"``: the hash used to show offered keys next to this pin."""
    digest: bytes | None = None
    key: asyncssh.SSHKey | None = None

    @property
    def family(self) -> str | None:
        """Key type of a public key pin; None for a fingerprint, which does not name one."""
        return None if self.key is None else key_family(self.key)

    def matches(self, offered: asyncssh.SSHKey) -> bool:
        """Return whether the server's ``offered`` host key is the pinned one."""
        if self.key is not None:
            return offered.public_data == self.key.public_data
        digest = hashlib.new(self.hash_name, offered.public_data).digest()
        return digest == self.digest

    def describe_offered(self, offered: asyncssh.SSHKey) -> str:
        """Return the offered key's fingerprint in this pin's hash, for messages."""
        return offered.get_fingerprint(self.hash_name)


def parse_fingerprint(text: str) -> HostKeyPin:
    """Parse a ``fingerprint`` field value.

    Accepts ``SHA256:<base64>`` (with or without ``=`` padding), ``MD5:<16 hex pairs>``, the
    16 hex pairs alone (as older ssh-keygen versions print them), or a public key line.

    Raises:
        ValueError: the value has none of these forms; the message lists the expected ones.
    """
    value = text.strip()
    if "PRIVATE KEY" in value:
        # Never quote it: the text is a credential pasted into the wrong field.
        raise ValueError(
            "contains a private key, not a host key fingerprint; keep the key secret, put it "
            "in private_key, and set fingerprint to the server's 'SHA256:…' fingerprint"
        )
    prefix, _, rest = value.partition(":")

    if prefix.upper() == "SHA256" and rest:
        try:
            digest = base64.b64decode(rest + "=" * (-len(rest) % 4), validate=True)
        except binascii.Error:
            digest = b""
        if len(digest) != 32:
            raise ValueError(
                f"{shorten(text)} is not a valid SHA256 fingerprint: expected 'SHA256:' "
                "followed by 43 base64 characters, as 'ssh-keygen -l' prints it"
            )
        canonical = "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
        return HostKeyPin(text=canonical, hash_name="sha256", digest=digest)

    hex_pairs = rest if prefix.upper() == "MD5" else value
    if _MD5_HEX.match(hex_pairs.lower()):
        digest = bytes.fromhex(hex_pairs.replace(":", ""))
        return HostKeyPin(text="MD5:" + hex_pairs.lower(), hash_name="md5", digest=digest)
    if prefix.upper() == "MD5":
        raise ValueError(
            f"{shorten(text)} is not a valid MD5 fingerprint: expected 'MD5:' followed by 16 "
            "colon-separated hex pairs, as 'ssh-keygen -l -E md5' prints it"
        )

    if " " in value:
        try:
            key = asyncssh.import_public_key(value)
        except (asyncssh.KeyImportError, ValueError):
            pass
        else:
            # The comment is dropped: it is not part of the key.
            canonical = " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])
            return HostKeyPin(text=canonical, hash_name="sha256", key=key)

    raise ValueError(
        f"{shorten(text)} is not a host key fingerprint: use 'SHA256:…' or 'MD5:…' as "
        "'ssh-keygen -l' prints them, or a public key line such as 'ssh-ed25519 AAAA…'"
    )


def host_key_algorithms(
    pin: HostKeyPin | None,
    *,
    exclude: Iterable[str] = (),
    first: str | None = None,
) -> list[str]:
    """Return the host key algorithms to request, most preferred first.

    Args:
        pin: the expected key; a public key pin restricts the list to its own type.
        exclude: key families already offered and rejected on this connection attempt.
        first: a key family to move to the front, learned from an earlier connection.
    """
    supported = {name.decode("ascii") for name in get_public_key_algs()}

    if pin is not None and pin.key is not None:
        family = pin.family
        known = dict(PREFERRED_FAMILIES).get(family or "")
        names: Sequence[str] = known or [name.decode("ascii") for name in pin.key.sig_algorithms]
        return [name for name in names if name in supported]

    excluded = set(exclude)
    families = [family for family, _ in PREFERRED_FAMILIES if family not in excluded]
    if first in families:
        families.remove(first)
        families.insert(0, first)
    algorithms = dict(PREFERRED_FAMILIES)
    return [name for family in families for name in algorithms[family] if name in supported]


def learned_family(host: str, port: int, pin: HostKeyPin) -> str | None:
    """Return the key family that matched ``pin`` on this server before, if any."""
    return _LEARNED_FAMILIES.get((host, port, pin.text))


def remember_family(host: str, port: int, pin: HostKeyPin, family: str) -> None:
    """Record the key family that matched a fingerprint pin; later connections request it first."""
    key = (host, port, pin.text)
    _LEARNED_FAMILIES[key] = family
    _LEARNED_FAMILIES.move_to_end(key)
    while len(_LEARNED_FAMILIES) > _MAX_LEARNED_FAMILIES:
        _LEARNED_FAMILIES.popitem(last=False)
