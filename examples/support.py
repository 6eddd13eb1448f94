"""Scaffolding shared by the examples: an SFTP server in this process, and a store's pools.

None of this is needed in an application: there the SFTP server is a real one, and the store
manages its pools by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from asyncext import PoolStats, SystemStore

HOST = "127.0.0.1"
USERNAME = "demo"


@dataclass
class SFTPServer:
    """Address of the in-process SFTP server and the client key that it accepts."""

    host: str
    port: int
    username: str
    private_key: str
    """The client's private key in OpenSSH format, unencrypted."""
    host_key_fingerprint: str
    """The server's own fingerprint, for comparing with what `scan_host_key` fetched."""
    connections: int = 0
    """SSH connections the server has accepted so far, host key scans included."""

    def fields(self) -> dict[str, Any]:
        """Return the record fields of an ``sftp`` system for this server, without the pin."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "private_key": self.private_key,
        }


@contextlib.asynccontextmanager
async def serve_sftp(root: Path) -> AsyncIterator[SFTPServer]:
    """Run asyncssh's SFTP server on 127.0.0.1 and a free port, serving the folder ``root``.

    The server has a new ed25519 host key and accepts one new client key, and no password.
    Its SFTP root is ``root``, an existing folder: asyncssh maps every path that the client
    sends to a path below it.

    NOTE: asyncssh's ``chroot`` maps paths; it is not an operating system chroot, so a
    symlink inside ``root`` that points outside is still followed. Serve only folders that
    this process fills itself.
    """
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

    server = SFTPServer(
        host=HOST,
        port=0,
        username=USERNAME,
        private_key=client_key.export_private_key().decode(),
        host_key_fingerprint=host_key.get_fingerprint("sha256"),
    )

    open_connections: set[asyncssh.SSHServerConnection] = set()

    class ConnectionCounter(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            server.connections += 1
            open_connections.add(conn)
            self._conn = conn

        def connection_lost(self, exc: Exception | None) -> None:
            open_connections.discard(self._conn)

    acceptor = await asyncssh.listen(
        HOST,
        0,
        server_factory=ConnectionCounter,
        server_host_keys=[host_key],
        authorized_client_keys=authorized,
        sftp_factory=lambda channel: asyncssh.SFTPServer(channel, chroot=bytes(root)),
        # Nothing from this machine's SSH setup: no sshd_config, no host keys of its own.
        config=None,
    )
    server.port = acceptor.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        # Closing the listener leaves accepted connections open, so they are closed too.
        acceptor.close()
        for connection in list(open_connections):
            connection.close()
            await connection.wait_closed()
        await acceptor.wait_closed()


def pool_stats(store: SystemStore, name: str) -> PoolStats:
    """Return the counters of the pool that serves ``system.client()`` for system ``name``.

    The pool exists once the system's first ``client()`` has run with pooling on, and its
    final counters stay readable after the store is closed.
    """
    stats = store.pool_stats(name)
    if stats is None:
        raise LookupError(f"system {name!r} has no pool yet: pooling is off or unused")
    return stats
