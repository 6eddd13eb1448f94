"""Validation of ``ssh`` and ``sftp`` records and the connection settings read from them."""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import EncryptionKeyError, InvalidSystem
from .._validation import shorten
from ._hostkeys import HostKeyPin, parse_fingerprint
from ._keys import check_private_key_text

if TYPE_CHECKING:
    from .._system import ExternalSystem

DEFAULT_PORT = 22


@dataclass(frozen=True)
class ConnectSettings:
    """How to connect to an SSH server, from a record's fields and ``options``."""

    host: str
    port: int
    username: str
    pin: HostKeyPin | None
    """The expected host key; None when ``ignore_fingerprint`` is true."""

    connect_timeout: float = 15.0
    """Seconds for the TCP connect, the key exchange and authentication together."""
    keepalive_interval: float = 15.0
    """Seconds between keepalive requests on an idle connection; 0 turns them off."""
    keepalive_count_max: int = 3
    """Unanswered keepalive requests after which the connection counts as dead."""
    max_concurrent_handshakes: int = 8
    """Handshakes this process runs at once against one host and port.

    sshd drops unauthenticated connections beyond its ``MaxStartups`` limit (10 by default),
    so a burst of new connections is let through a few at a time.
    """

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


# Numeric options: the rule shown when a value is invalid, and whether 0 is allowed.
_NUMBER_OPTIONS = {
    "connect_timeout": ("a number of seconds greater than 0", False),
    "keepalive_interval": ("a number of seconds, 0 to turn keepalives off", True),
}
_COUNT_OPTIONS = {
    "keepalive_count_max": "an integer of at least 1",
    "max_concurrent_handshakes": "an integer of at least 1",
}


def validate_ssh_system(system: ExternalSystem) -> None:
    """Check the fields that every SSH-based adapter needs.

    Raises:
        InvalidSystem: a field is missing or malformed; the message names it and the fix.
    """
    name = system.name
    kind = system.system_type

    if not system.host or not system.host.strip():
        raise InvalidSystem(
            f"system {name!r} of type {kind!r} needs host: the server's name or address",
            system=name,
        )
    if not system.username:
        raise InvalidSystem(
            f"system {name!r} of type {kind!r} needs username: the account to log in as",
            system=name,
        )

    if system.fingerprint is not None:
        try:
            parse_fingerprint(system.fingerprint)
        except ValueError as exc:
            raise InvalidSystem(f"system {name!r}: fingerprint {exc}", system=name) from None
        if system.ignore_fingerprint:
            # Both set would look pinned while nothing is checked.
            raise InvalidSystem(
                f"system {name!r} has a fingerprint and ignore_fingerprint=True; set "
                "ignore_fingerprint=False so that the pinned host key is checked, or remove "
                "the fingerprint",
                system=name,
            )
    elif not system.ignore_fingerprint:
        port = system.port or DEFAULT_PORT
        raise InvalidSystem(
            f"system {name!r} has no fingerprint, so the server's identity cannot be checked. "
            f"Fetch it with: await asyncext.scan_host_key({system.host!r}, {port}) or "
            f"asyncext trust {shlex.quote(name)}; compare it with the server's own "
            "'ssh-keygen -l -f <host key>.pub' and set fingerprint, or set "
            "ignore_fingerprint=True to connect without checking (unsafe)",
            system=name,
        )

    _validate_options(system)
    _validate_private_key(system)


def read_settings(system: ExternalSystem) -> ConnectSettings:
    """Return the connection settings of a validated record."""
    assert system.host is not None and system.username is not None  # checked by validation

    pin = None
    if not system.ignore_fingerprint and system.fingerprint is not None:
        pin = parse_fingerprint(system.fingerprint)
    options = system.options
    defaults = ConnectSettings(host="", port=0, username="", pin=None)
    return ConnectSettings(
        host=system.host,
        port=system.port or DEFAULT_PORT,
        username=system.username,
        pin=pin,
        connect_timeout=float(options.get("connect_timeout", defaults.connect_timeout)),
        keepalive_interval=float(options.get("keepalive_interval", defaults.keepalive_interval)),
        keepalive_count_max=int(options.get("keepalive_count_max", defaults.keepalive_count_max)),
        max_concurrent_handshakes=int(
            options.get("max_concurrent_handshakes", defaults.max_concurrent_handshakes)
        ),
    )


def _validate_options(system: ExternalSystem) -> None:
    name = system.name
    options = system.options

    for option, (rule, zero_allowed) in _NUMBER_OPTIONS.items():
        if option not in options:
            continue
        value = options[option]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if (
            not is_number
            or not math.isfinite(value)
            or value < 0
            or (value == 0 and not zero_allowed)
        ):
            raise InvalidSystem(
                f"system {name!r}: options[{option!r}] is {shorten(value)}; it must be {rule}",
                system=name,
            )

    for option, rule in _COUNT_OPTIONS.items():
        if option not in options:
            continue
        value = options[option]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidSystem(
                f"system {name!r}: options[{option!r}] is {shorten(value)}; it must be {rule}",
                system=name,
            )


def _validate_private_key(system: ExternalSystem) -> None:
    """Check the private key's format when its text can be read.

    A stored record's secrets may be encrypted with a key this process does not have. Such a
    key is checked when the client connects, so that other fields can still be updated.
    """
    if system.private_key is None:
        return
    try:
        text = system.private_key.reveal()
    except EncryptionKeyError:
        return
    check_private_key_text(system.name, text, system.private_key_password is not None)
