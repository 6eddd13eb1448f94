"""Errors raised inside an ssh ``client()`` block: a lost connection becomes ConnectionFailed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest
from sshd import SSHServer

from asyncext import ConnectionFailed, PoolOptions, SystemStore

SOON = 10.0
"""Seconds a test waits for an event that should come within about one second."""


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled", "unpooled"])
async def test_ssh_lost_connection_names_system(
    tmp_path: Path, start_sshd: Callable[..., SSHServer], pooled: bool
) -> None:
    """A connection dropped during a command ends the block with ConnectionFailed."""
    server = start_sshd()
    pool = PoolOptions(max_size=2) if pooled else None
    async with SystemStore(tmp_path / "systems.db", pool=pool) as store:
        system = await store.add("box", "ssh", **server.fields("ssh"))

        async def drop_soon(connection: asyncssh.SSHClientConnection) -> None:
            await asyncio.sleep(0.5)
            await server.drop_until_closed(connection)

        with pytest.raises(ConnectionFailed) as caught:
            async with system.client() as connection:
                dropper = asyncio.ensure_future(drop_soon(connection))
                await asyncio.wait_for(
                    connection.run("sleep 5", check=True, stdin=asyncssh.DEVNULL), SOON
                )
                # asyncssh returns without an exit status when the channel closes early.
                await connection.run("true", check=True)
        await dropper

        async with system.client() as connection:
            result = await connection.run("echo again", check=True)

    assert caught.value.system == "box"
    assert "'box'" in str(caught.value)
    assert "connection failed inside the client() block" in str(caught.value)
    assert caught.value.__cause__ is not None
    assert result.stdout == "again\n"


async def test_ssh_command_failure_passes_unchanged(sshd: SSHServer) -> None:
    """A command's own failure is not a connection failure and keeps asyncssh's type."""
    with pytest.raises(asyncssh.ProcessError):
        async with sshd.system("ssh").client() as connection:
            await connection.run("exit 3", check=True)


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
async def test_ssh_block_own_errors_pass_unchanged(sshd: SSHServer, system_type: str) -> None:
    """Connection errors that do not come from the system's own connection keep their type:
    one raised by the block's own code, and a channel the server refuses on a live
    connection."""
    system = sshd.system(system_type)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

    with pytest.raises(ConnectionRefusedError):
        async with system.client():
            raise ConnectionRefusedError("the block's own socket was refused")

    with pytest.raises(asyncssh.ChannelOpenError):
        async with system.client() as client:
            connection = client if system_type == "ssh" else client.connection
            await connection.open_connection("127.0.0.1", port)
