"""Connect timeouts name their phase, and no socket survives a timeout or a cancellation."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from sshd import FaultServer, start_fault_server

from asyncext import ConnectionFailed, ExternalSystem

PASSWORD = "frozen-auth-password-9"


@dataclass
class FrozenServer:
    """Accepts TCP connections and never sends a byte, like a hung SSH server."""

    port: int
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    readers: list[asyncio.StreamReader] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def wait_for_client_close(self) -> None:
        """Return once every accepted connection was closed by the client (EOF)."""
        for reader in self.readers:
            while await asyncio.wait_for(reader.read(4096), 5.0):
                pass


@pytest.fixture
async def frozen_server() -> AsyncIterator[FrozenServer]:
    state = FrozenServer(port=0)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.readers.append(reader)
        state.writers.append(writer)
        state.accepted.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    yield state
    for writer in state.writers:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full, so that a new TCP connect is never answered.

    Linux drops a SYN while the listen queue is full; with a backlog of 0 one queued
    connection fills it.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())
    yield listener.getsockname()[1]
    filler.close()
    listener.close()


@pytest.fixture
async def held_auth_server() -> AsyncIterator[FaultServer]:
    server = await start_fault_server(PASSWORD, hold_auth=True)
    yield server
    server.auth_gate.set()
    await server.close()


def frozen_system(port: int, timeout: float = 0.3, system_type: str = "ssh") -> ExternalSystem:
    return ExternalSystem(
        name="frozen",
        system_type=system_type,
        host="127.0.0.1",
        port=port,
        username="nobody",
        password="unused-password",
        ignore_fingerprint=True,
        options={"connect_timeout": timeout},
    )


def open_sockets() -> int:
    """Return how many sockets this process has open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
async def test_connect_timeout_in_key_exchange(
    frozen_server: FrozenServer, system_type: str
) -> None:
    """A server that never speaks fails after connect_timeout, naming the key exchange."""
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as raised:
        async with frozen_system(frozen_server.port, system_type=system_type).client():
            pass
    elapsed = time.monotonic() - started

    message = str(raised.value)
    assert "timed out after 0.3 s during the key exchange phase" in message
    assert "'frozen'" in message
    assert elapsed >= 0.3
    assert elapsed < 0.3 + 1.0
    await frozen_server.wait_for_client_close()


async def test_connect_timeout_leaves_no_socket(frozen_server: FrozenServer) -> None:
    """After a timeout the server sees the connection closed and no socket is left open."""
    before = open_sockets()
    with pytest.raises(ConnectionFailed):
        async with frozen_system(frozen_server.port).client():
            pass
    await frozen_server.wait_for_client_close()
    for writer in frozen_server.writers:
        writer.close()
        await writer.wait_closed()
    assert open_sockets() == before


async def test_connect_timeout_in_tcp_connect(full_backlog: int) -> None:
    """A server that never answers the TCP handshake fails in the TCP connect phase."""
    before = open_sockets()
    with pytest.raises(ConnectionFailed) as raised:
        async with frozen_system(full_backlog).client():
            pass
    assert "during the TCP connect phase" in str(raised.value)
    assert open_sockets() == before


async def test_connect_timeout_in_authentication(held_auth_server: FaultServer) -> None:
    """A server that never finishes checking the password fails in the authentication phase."""
    system = held_auth_server.system("ssh", options={"connect_timeout": 0.5})
    with pytest.raises(ConnectionFailed) as raised:
        async with system.client():
            pass
    assert "during the authentication phase" in str(raised.value)
    assert held_auth_server.auth_attempts == 1


async def test_cancelled_connect_closes_socket(frozen_server: FrozenServer) -> None:
    """Cancelling a connect during the key exchange closes its socket."""
    client = frozen_system(frozen_server.port, timeout=30).client()
    task = asyncio.ensure_future(client.__aenter__())
    await frozen_server.accepted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await frozen_server.wait_for_client_close()


async def test_cancelled_connect_during_authentication(held_auth_server: FaultServer) -> None:
    """Cancelling a connect while authentication is pending closes the connection."""
    system = held_auth_server.system("ssh", options={"connect_timeout": 30})
    task = asyncio.ensure_future(system.client().__aenter__())
    await held_auth_server.auth_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await asyncio.wait_for(held_auth_server.connection_closed.wait(), 5.0)
    assert held_auth_server.closed_connections == 1
