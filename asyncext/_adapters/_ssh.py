"""The ``ssh`` adapter, and the base class it shares with ``sftp``.

The ``ssh`` client is asyncssh's own `asyncssh.SSHClientConnection`, so everything asyncssh
offers (``run``, ``create_process``, port forwarding, ``start_sftp_client``) works on it. Its
session channels go through `ChannelSlots`, which keeps pool holders that share one connection
within the server's session limit.
"""

from __future__ import annotations

import abc
import logging
from typing import TYPE_CHECKING

import asyncssh

from .._tasks import CLEANUP_TIMEOUT, run_shielded
from ._base import Adapter, ClientT
from ._hostkeys import describe_key
from ._keys import load_private_key
from ._registry import register_adapter
from ._ssh_channels import channel_slots, install_channel_slots
from ._ssh_connect import open_connection
from ._ssh_settings import read_settings, validate_ssh_system

if TYPE_CHECKING:
    from .._system import ExternalSystem

logger = logging.getLogger("asyncext.ssh")


class SSHAdapterBase(Adapter[ClientT]):
    """Validation and connection code shared by the adapters that speak SSH."""

    def validate(self, system: ExternalSystem) -> None:
        validate_ssh_system(system)

    def is_connection_error(self, client: ClientT, error: BaseException) -> bool:
        # asyncssh reports a lost connection as DisconnectError (ConnectionLost among
        # them), a channel it could not open as ChannelOpenError, and a broken socket as a
        # ConnectionError. The same errors also come from the block's own sockets, other
        # connections or a refused port forward, so only a closed connection counts.
        if not isinstance(
            error, (asyncssh.DisconnectError, asyncssh.ChannelOpenError, ConnectionError)
        ):
            return False
        return self.connection_of(client).is_closed()

    def is_closed(self, client: ClientT) -> bool:
        return self.connection_of(client).is_closed()

    @abc.abstractmethod
    def connection_of(self, client: ClientT) -> asyncssh.SSHClientConnection:
        """Return the SSH connection that carries the client."""

    async def connect(self, system: ExternalSystem) -> asyncssh.SSHClientConnection:
        """Open an authenticated connection whose session channels respect the server's limit.

        Raises:
            HostKeyMismatch: the server's host key does not match ``fingerprint``.
            ConnectionFailed: the server cannot be reached, a phase timed out, the
                passphrase is wrong or authentication failed.
            InvalidSystem: the private key's format is unsupported, or it is encrypted and
                ``private_key_password`` is not set.
            EncryptionKeyError: a secret cannot be decrypted with the store's key.
        """
        settings = read_settings(system)
        client_key = await load_private_key(system)
        password = system.password.reveal() if system.password is not None else None

        connection = await open_connection(
            system.name, settings, password=password, client_key=client_key
        )
        install_channel_slots(connection, system.name)
        logger.info(
            "system %r: connected to %s as %r",
            system.name,
            settings.endpoint,
            settings.username,
        )
        return connection


def describe_connection(connection: asyncssh.SSHClientConnection) -> str:
    """Return ``host:port, host key SHA256:… (ED25519)`` for connection test reports."""
    host, port = connection.get_extra_info("peername", ("?", 0))[:2]
    key = connection.get_server_host_key()
    key_text = describe_key(key) if key is not None else "unknown"
    return f"{host}:{port}, host key {key_text}"


async def is_responsive(connection: asyncssh.SSHClientConnection) -> bool:
    """Return whether the connection is open and its server answers a request.

    A frozen server keeps the connection open until asyncssh's keepalives give up, which
    takes ``keepalive_interval`` x (``keepalive_count_max`` + 1) seconds: 60 s by default.
    The pool bounds this round trip with its check timeout instead.
    """
    if connection.is_closed():
        return False

    # NOTE: asyncssh 2.24 has no public request that waits for the server's reply, so
    # this sends the keepalive that asyncssh's own timer sends, through its private
    # method. Without that method, only the local state is checked.
    request = getattr(connection, "_make_global_request", None)
    if request is None:
        return True
    await request(b"keepalive@openssh.com")
    return not connection.is_closed()


async def close_connection(connection: asyncssh.SSHClientConnection) -> None:
    """Close the connection and wait until its socket is closed."""
    connection.close()
    await connection.wait_closed()


@register_adapter
class SSHAdapter(SSHAdapterBase[asyncssh.SSHClientConnection]):
    """An SSH host; the client is an `asyncssh.SSHClientConnection`.

    Record fields: ``host``, ``port`` (default 22), ``username``, ``password`` and/or
    ``private_key`` (with ``private_key_password`` when it is encrypted), and ``fingerprint``
    or ``ignore_fingerprint=True``. Options: ``connect_timeout`` (seconds, default 15),
    ``keepalive_interval`` (seconds, default 15, 0 turns it off), ``keepalive_count_max``
    (default 3) and ``max_concurrent_handshakes`` (default 8).

    Opening a client raises `ConnectionFailed` naming the system. Calls on the client are
    asyncssh's own, so a connection lost during one raises asyncssh's error, such as
    `asyncssh.ConnectionLost` or `asyncssh.ChannelOpenError`; it leaves the ``client()``
    block as `ConnectionFailed` naming the system, with asyncssh's error chained.
    NOTE: asyncssh's ``run(..., check=True)`` returns with ``exit_status`` None, raising
    nothing, when the connection drops while the command runs (seen with asyncssh 2.24).
    """

    system_type = "ssh"
    description = "an SSH host (client: asyncssh.SSHClientConnection)"

    async def get_client(self, system: ExternalSystem) -> asyncssh.SSHClientConnection:
        return await self.connect(system)

    async def destroy_client(self, client: asyncssh.SSHClientConnection) -> None:
        await close_connection(client)

    async def check_client(self, client: asyncssh.SSHClientConnection) -> bool:
        return await is_responsive(client)

    def connection_of(self, client: asyncssh.SSHClientConnection) -> asyncssh.SSHClientConnection:
        return client

    def lease_limit(self, client: asyncssh.SSHClientConnection) -> int | None:
        slots = channel_slots(client)
        return None if slots is None else slots.limit

    async def test_connection(self, system: ExternalSystem) -> str:
        connection = await self.connect(system)
        try:
            return f"connected to {describe_connection(connection)}"
        finally:
            await run_shielded(lambda: close_connection(connection), timeout=CLEANUP_TIMEOUT)
