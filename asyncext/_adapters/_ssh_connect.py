"""Opening SSH connections: host key check, phases, timeouts and retries.

A connection goes through three phases, all bounded by one ``connect_timeout`` deadline:

1. TCP connect, done here rather than by asyncssh, so that its end is known;
2. key exchange, which ends with the host key check (`_SessionWatcher.begin_auth` marks
   the switch);
3. authentication.

A timeout names the phase it interrupted. Nothing from the user's ``~/.ssh`` is used: asyncssh
reads its config file, agent, default keys, ``known_hosts`` and X.509 bundles only when an
option is left at its default, so every one of those options is set here.

sshd drops unauthenticated connections past its ``MaxStartups`` limit before the key exchange
ends. Such a drop is retried with jittered exponential back-off until the deadline; a failure
during authentication is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncssh

from .._errors import ConnectionFailed, HostKeyMismatch
from ._hostkeys import (
    describe_key,
    host_key_algorithms,
    key_family,
    learned_family,
    remember_family,
)
from ._ssh_settings import DEFAULT_PORT, ConnectSettings

logger = logging.getLogger("asyncext.ssh")

T = TypeVar("T")

PHASE_HANDSHAKE_SLOT = "waiting for a free handshake slot"
PHASE_TCP = "TCP connect"
PHASE_KEY_EXCHANGE = "key exchange"
PHASE_AUTHENTICATION = "authentication"

RETRY_BASE_DELAY = 0.05
"""Seconds of the first back-off after a dropped handshake; doubled on each retry."""
RETRY_MAX_DELAY = 2.0
MAX_ATTEMPTS = 10

# Failures that mean the server dropped the connection before authentication began.
_DROPPED = (asyncssh.ConnectionLost, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

# One handshake limiter per event loop and (host, port, limit): asyncio primitives belong to
# the loop they were first used on.
_handshake_slots: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int, int], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


@dataclass
class _Attempt:
    """State of one connection attempt: its phase and the host key the server offered."""

    phase: str = PHASE_HANDSHAKE_SLOT
    offered: asyncssh.SSHKey | None = None
    rejected: bool = False
    connection: asyncssh.SSHClientConnection | None = None

    def has_server_banner(self) -> bool:
        """Return whether the server sent its SSH version line before the attempt ended."""
        if self.connection is None:
            return False
        return self.connection.get_extra_info("server_version") is not None


@dataclass
class _Credentials:
    username: str
    password: str | None = None
    client_key: asyncssh.SSHKey | None = None


class _SessionWatcher(asyncssh.SSHClient):
    """Checks the host key against the pin and records the phase of the handshake."""

    def __init__(self, system: str, settings: ConnectSettings, attempt: _Attempt) -> None:
        self._system = system
        self._settings = settings
        self._attempt = attempt

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._attempt.connection = conn

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self._attempt.offered = key
        pin = self._settings.pin
        if pin is None:
            logger.warning(
                "system %r: accepting host key %s of %s without checking it, because "
                "ignore_fingerprint is true",
                self._system,
                describe_key(key),
                self._settings.endpoint,
            )
            return True
        if pin.matches(key):
            return True
        self._attempt.rejected = True
        return False

    def begin_auth(self, username: str) -> None:
        self._attempt.phase = PHASE_AUTHENTICATION


async def open_connection(
    system: str,
    settings: ConnectSettings,
    *,
    password: str | None = None,
    client_key: asyncssh.SSHKey | None = None,
) -> asyncssh.SSHClientConnection:
    """Connect and authenticate to an SSH server, checking its host key first.

    Args:
        system: the system's name, for messages and log lines.
        settings: where to connect and the limits to apply.
        password: password for password and keyboard-interactive authentication.
        client_key: decrypted private key for public key authentication.

    Raises:
        HostKeyMismatch: the server's host key does not match the pin; no credential was sent.
        ConnectionFailed: the server cannot be reached, a phase timed out, or
            authentication failed.
    """
    if password is None and client_key is None:
        # Nothing else could log in, because the agent and ~/.ssh are never read.
        raise ConnectionFailed(
            f"system {system!r} has no password and no private_key, so it cannot log in to "
            f"{settings.endpoint}; store a password or a private key for it",
            system=system,
        )

    credentials = _Credentials(settings.username, password, client_key)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.connect_timeout
    pin = settings.pin
    rejected: dict[str, asyncssh.SSHKey] = {}
    attempt_number = 0

    while True:
        attempt_number += 1
        attempt = _Attempt()
        algorithms = _algorithms_to_request(settings, rejected)
        if not algorithms:
            raise _mismatch(system, settings, rejected)

        try:
            connection = await _within_deadline(
                deadline, _connect_once(system, settings, credentials, attempt, algorithms)
            )
        except asyncio.TimeoutError:
            raise _timed_out(system, settings, attempt.phase) from None
        except asyncssh.HostKeyNotVerifiable as exc:
            if not attempt.rejected or attempt.offered is None or pin is None:
                raise _failed(system, settings, exc) from exc
            rejected[key_family(attempt.offered)] = attempt.offered
            if pin.key is not None:
                # A public key pin names its type, and the server offered a key of that type.
                raise _mismatch(system, settings, rejected) from None
            continue
        except asyncssh.KeyExchangeFailed as exc:
            # The server has no key of the types still allowed after a rejection.
            if rejected:
                raise _mismatch(system, settings, rejected) from None
            raise _failed(system, settings, exc) from exc
        except asyncssh.PermissionDenied as exc:
            raise ConnectionFailed(
                f"system {system!r}: authentication as {settings.username!r} on "
                f"{settings.endpoint} failed ({exc.reason}); check username, password and "
                "private_key, and that the server accepts this key for this account",
                system=system,
            ) from exc
        except _DROPPED as exc:
            # After the server has rejected the key types it was asked for, it closes the
            # connection when none of the remaining types is one it has.
            if rejected and attempt.has_server_banner():
                raise _mismatch(system, settings, rejected) from None
            delay = _retry_delay(attempt_number)
            remaining = deadline - loop.time()
            if (
                attempt.phase != PHASE_KEY_EXCHANGE
                or attempt_number >= MAX_ATTEMPTS
                or delay >= remaining
            ):
                raise _failed(system, settings, exc, phase=attempt.phase) from exc
            logger.info(
                "system %r: %s closed the connection during the key exchange (attempt %d); "
                "retrying in %.2f s",
                system,
                settings.endpoint,
                attempt_number,
                delay,
            )
            await asyncio.sleep(delay)
            continue
        except (OSError, asyncssh.Error) as exc:
            raise _failed(system, settings, exc, phase=attempt.phase) from exc

        if pin is not None and pin.key is None and attempt.offered is not None:
            remember_family(settings.host, settings.port, pin, key_family(attempt.offered))
        return connection


async def scan_host_key(host: str, port: int = DEFAULT_PORT, *, timeout: float = 15.0) -> str:
    """Fetch an SSH server's host key fingerprint, for trust on first use.

    The connection ends after the key exchange; no credential is sent. The server is asked
    for its key types in the order a connection uses, so the returned fingerprint is the
    one a system with this fingerprint connects with.

    Args:
        host: the server's name or address.
        port: the server's SSH port.
        timeout: seconds for the whole exchange.

    Returns:
        The fingerprint as ``ssh-keygen -l`` prints it, such as ``SHA256:47DEQpj8…``.
        Compare it with the server's own before you trust it.

    Raises:
        ConnectionFailed: the server cannot be reached or did not complete the key exchange.
    """
    label = f"{host}:{port}"
    settings = ConnectSettings(
        host=host, port=port, username="asyncext-scan", pin=None, connect_timeout=timeout
    )
    attempt = _Attempt()

    class KeyRecorder(asyncssh.SSHClient):
        def validate_host_public_key(
            self, host: str, addr: str, port: int, key: asyncssh.SSHKey
        ) -> bool:
            attempt.offered = key
            return False

    credentials = _Credentials("asyncext-scan")
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        connection = await _within_deadline(
            deadline,
            _connect_once(
                label,
                settings,
                credentials,
                attempt,
                host_key_algorithms(None),
                client_factory=KeyRecorder,
            ),
        )
    except asyncio.TimeoutError:
        raise _timed_out(label, settings, attempt.phase, scanning=True) from None
    except asyncssh.HostKeyNotVerifiable:
        if attempt.offered is not None:
            return attempt.offered.get_fingerprint("sha256")
        raise
    except (OSError, asyncssh.Error) as exc:
        raise _failed(label, settings, exc, phase=attempt.phase, scanning=True) from exc

    # Unreachable in practice: KeyRecorder rejects every key, so the handshake cannot finish.
    connection.abort()
    raise ConnectionFailed(f"{label} completed a handshake without a host key check")


async def _connect_once(
    system: str,
    settings: ConnectSettings,
    credentials: _Credentials,
    attempt: _Attempt,
    algorithms: list[str],
    *,
    client_factory: Callable[[], asyncssh.SSHClient] | None = None,
) -> asyncssh.SSHClientConnection:
    """Make one connection attempt, recording its phase in ``attempt``."""
    factory = client_factory or (lambda: _SessionWatcher(system, settings, attempt))

    attempt.phase = PHASE_HANDSHAKE_SLOT
    async with _handshake_slot(settings):
        attempt.phase = PHASE_TCP
        sock = await _open_socket(settings.host, settings.port)

        attempt.phase = PHASE_KEY_EXCHANGE
        try:
            connection: asyncssh.SSHClientConnection = await asyncssh.connect(
                settings.host,
                settings.port,
                sock=sock,
                client_factory=factory,
                username=credentials.username,
                password=credentials.password,
                client_keys=[credentials.client_key] if credentials.client_key else None,
                # Host keys are checked by the client factory; an empty trusted list makes
                # asyncssh ask it about every key instead of reading known_hosts files.
                known_hosts=([], [], []),
                server_host_key_algs=algorithms,
                # Nothing from ~/.ssh or the environment: no config file, agent, default
                # keys, agent identities, PKCS#11 provider, X.509 bundle or Kerberos.
                config=None,
                agent_path=None,
                agent_identities=None,
                pkcs11_provider=None,
                x509_trusted_certs=None,
                x509_trusted_cert_paths=None,
                gss_kex=False,
                gss_auth=False,
                host_based_auth=False,
                # The deadline above bounds the handshake; asyncssh's own timers stay as a
                # backstop that never fires first.
                connect_timeout=None,
                login_timeout=settings.connect_timeout + 5.0,
                keepalive_interval=settings.keepalive_interval,
                keepalive_count_max=settings.keepalive_count_max,
            )
        except BaseException:
            # asyncssh closes the connection it built; the socket may not have reached it yet.
            sock.close()
            raise

    attempt.phase = "connected"
    return connection


async def _open_socket(host: str, port: int) -> socket.socket:
    """Return a connected non-blocking TCP socket, trying each address of ``host`` in turn."""
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last_error: OSError | None = None

    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock

    assert last_error is not None  # getaddrinfo returns at least one address or raises
    raise last_error


def _handshake_slot(settings: ConnectSettings) -> asyncio.Semaphore:
    """Return the limiter of concurrent handshakes to this host and port."""
    loop = asyncio.get_running_loop()
    slots = _handshake_slots.setdefault(loop, {})
    key = (settings.host, settings.port, settings.max_concurrent_handshakes)
    semaphore = slots.get(key)
    if semaphore is None:
        semaphore = slots[key] = asyncio.Semaphore(settings.max_concurrent_handshakes)
    return semaphore


async def _within_deadline(deadline: float, work: Awaitable[T]) -> T:
    """Await ``work``, raising `asyncio.TimeoutError` at the loop time ``deadline``."""
    remaining = deadline - asyncio.get_running_loop().time()
    return await asyncio.wait_for(work, max(remaining, 0.0))


def _algorithms_to_request(
    settings: ConnectSettings, rejected: dict[str, asyncssh.SSHKey]
) -> list[str]:
    pin = settings.pin
    first = None
    if pin is not None and not rejected:
        first = learned_family(settings.host, settings.port, pin)
    return host_key_algorithms(pin, exclude=rejected, first=first)


def _retry_delay(attempt_number: int) -> float:
    """Return a full-jitter back-off: random up to base * 2**(n-1), capped."""
    ceiling = min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2 ** (attempt_number - 1))
    return random.uniform(0.0, ceiling)


def _mismatch(
    system: str, settings: ConnectSettings, rejected: dict[str, asyncssh.SSHKey]
) -> HostKeyMismatch:
    pin = settings.pin
    assert pin is not None and rejected
    offered_keys = list(rejected.values())
    first = offered_keys[0]
    offered_text = ", ".join(
        f"{pin.describe_offered(key)} ({key_family(key)})" for key in rejected.values()
    )
    return HostKeyMismatch(
        f"system {system!r}: the host key of {settings.endpoint} does not match the "
        f"fingerprint; expected {pin.text}, the server offered {offered_text}. No credential "
        "was sent. If the server's key was changed on purpose, confirm the new fingerprint "
        "with the server's administrator and update fingerprint; otherwise someone may be "
        "intercepting the connection",
        system=system,
        expected=pin.text,
        offered=pin.describe_offered(first),
        key_type=key_family(first),
    )


def _timed_out(
    system: str, settings: ConnectSettings, phase: str, *, scanning: bool = False
) -> ConnectionFailed:
    hints = {
        PHASE_HANDSHAKE_SLOT: "other connections to the same server were still in their "
        "handshake; raise connect_timeout or options['max_concurrent_handshakes']",
        PHASE_TCP: "the server did not accept the TCP connection; check host, port and firewalls",
        PHASE_KEY_EXCHANGE: "the server accepted the TCP connection but did not complete the "
        "SSH key exchange; check that the port belongs to an SSH server and that it is not "
        "overloaded",
        PHASE_AUTHENTICATION: "the server did not finish authenticating the user; check "
        "that it is not overloaded or waiting on a slow authentication back end",
    }
    subject = (
        f"scanning the host key of {settings.endpoint}"
        if scanning
        else (f"system {system!r}: connecting to {settings.endpoint}")
    )
    timeout_hint = "" if scanning else " or raise options['connect_timeout']"
    return ConnectionFailed(
        f"{subject} timed out after {settings.connect_timeout:g} s during the {phase} phase; "
        f"{hints.get(phase, 'try again')}{timeout_hint}",
        system=None if scanning else system,
    )


def _failed(
    system: str,
    settings: ConnectSettings,
    exc: BaseException,
    *,
    phase: str | None = None,
    scanning: bool = False,
) -> ConnectionFailed:
    reason = _describe(exc)
    if isinstance(exc, ConnectionRefusedError):
        hint = "nothing listens on that port; check host and port"
    elif isinstance(exc, socket.gaierror):
        hint = "the host name cannot be resolved; check host"
    elif isinstance(exc, _DROPPED):
        hint = (
            "the server closed the connection before the SSH handshake finished; check that "
            "the port belongs to an SSH server, and if that server limits unauthenticated "
            "connections (sshd's MaxStartups), lower options['max_concurrent_handshakes']"
        )
    else:
        hint = "check the server and the system's settings"
    where = f" during the {phase} phase" if phase and phase != "connected" else ""
    if scanning:
        subject = f"scanning the host key of {settings.endpoint} failed"
    else:
        subject = f"system {system!r}: connecting to {settings.endpoint} failed"
    return ConnectionFailed(
        f"{subject}{where}: {reason}; {hint}", system=None if scanning else system
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
