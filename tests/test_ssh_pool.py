"""Pooled ssh and sftp clients against sshd: health checks, server-side closes, bursts, channels."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from faults import frozen
from sshd import SSHServer

from asyncext import ConnectionFailed, ExternalSystem, PoolOptions, SystemStore, adapter_for
from asyncext._adapters._ssh_channels import channel_slots

SOON = 10.0
"""Seconds a test waits for an event that should come within about one second."""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SystemStore]:
    """A pooled store that checks every idle client before handing it out.

    The default check_interval skips the check for a client used in the last half second,
    and these tests end connections right after using them.
    """
    options = PoolOptions(max_size=4, check_interval=0)
    async with SystemStore(tmp_path / "systems.db", pool=options) as opened:
        yield opened


async def add(
    store: SystemStore, server: SSHServer, system_type: str, **fields: Any
) -> ExternalSystem:
    return await store.add("box", system_type, **server.fields(system_type, **fields))


def pool_stats(store: SystemStore, name: str = "box") -> Any:
    pools = store._pools
    assert pools is not None
    pool = pools.pool_for(name)
    assert pool is not None
    return pool.stats()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds; fail after `SOON` seconds.

    For state that changes on a reply from sshd and has no event to wait on.
    """
    deadline = asyncio.get_running_loop().time() + SOON
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class FreezableProxy:
    """A TCP proxy to a server whose open connections can be frozen, like a dead network.

    New connections made after `freeze` pass data normally.
    """

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._flowing: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        for flowing in self._flowing:
            flowing.clear()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        flowing = asyncio.Event()
        flowing.set()
        self._flowing.append(flowing)
        for source, sink in ((reader, target_writer), (target_reader, writer)):
            task = asyncio.ensure_future(self._pump(source, sink, flowing))
            self._tasks.add(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event
    ) -> None:
        try:
            while data := await source.read(65536):
                await flowing.wait()
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


async def test_sftp_pooled_client_is_reused(store: SystemStore, sshd: SSHServer) -> None:
    """Two uses in a row share one pooled connection."""
    system = await add(store, sshd, "sftp")
    async with system.client() as first:
        await first.write_text("pooled.txt", "x")
    async with system.client() as second:
        assert await second.read_text("pooled.txt") == "x"
    assert second is first
    assert pool_stats(store).created == 1


async def test_sftp_shared_session_serves_holders(tmp_path: Path, sshd: SSHServer) -> None:
    """Eight holders sharing one pooled SFTP client work at once without mixing replies."""
    options = PoolOptions(max_size=1, max_leases=8)
    async with SystemStore(tmp_path / "shared-sftp.db", pool=options) as store:
        system = await add(store, sshd, "sftp")
        await asyncio.to_thread((sshd.data_folder / "shared").mkdir, exist_ok=True)

        async def round_trip(number: int) -> bytes:
            async with system.client() as files:
                await files.write_bytes(f"shared/{number}.bin", bytes([number]) * 50000)
                return bytes(await files.read_bytes(f"shared/{number}.bin"))

        results = await asyncio.gather(*(round_trip(number) for number in range(8)))
        assert results == [bytes([number]) * 50000 for number in range(8)]
        assert pool_stats(store).created == 1


async def test_ssh_check_client_detects_closed_connection(
    store: SystemStore, start_sshd: Callable[..., SSHServer]
) -> None:
    """A connection the server ended fails its check and is replaced on the next use."""
    server = start_sshd()
    system = await add(store, server, "ssh")
    async with system.client() as first:
        await first.run("true", check=True)

    await server.drop_until_closed(first)
    assert not await adapter_for("ssh").check_client(first)

    async with system.client() as second:
        result = await second.run("echo again", check=True)
    assert result.stdout == "again\n"
    assert second is not first


async def test_ssh_keepalive_detects_frozen_peer(store: SystemStore, sshd: SSHServer) -> None:
    """Keepalives close a pooled connection whose peer stopped answering; the next use works."""
    proxy = FreezableProxy(sshd.port)
    await proxy.start()
    try:
        options = {"keepalive_interval": 0.2, "keepalive_count_max": 2}
        system = await add(store, sshd, "ssh", port=proxy.port, options=options)
        async with system.client() as first:
            await first.run("true", check=True)

        proxy.freeze()
        await asyncio.wait_for(first.wait_closed(), SOON)
        assert not await adapter_for("ssh").check_client(first)

        async with system.client() as second:
            await second.run("true", check=True)
        assert second is not first
    finally:
        await proxy.close()


async def test_sftp_session_reopened_after_channel_timeout(
    store: SystemStore, start_sshd: Callable[..., SSHServer]
) -> None:
    """An SFTP session the server closed while the connection lives is opened again."""
    server = start_sshd(ChannelTimeout="session:subsystem:sftp=1")
    system = await add(store, server, "sftp")
    async with system.client() as files:
        await files.write_text("kept.txt", "still here")
        session = files.sftp

    await asyncio.wait_for(session.wait_closed(), SOON)
    async with system.client() as again:
        assert await again.read_text("kept.txt") == "still here"
    assert again is files
    assert again.sftp is not session
    assert not again.connection.is_closed()


async def test_sftp_session_reopened_on_use(start_sshd: Callable[..., SSHServer]) -> None:
    """An unpooled client re-opens a session the server closed, on its next call."""
    server = start_sshd(ChannelTimeout="session:subsystem:sftp=1")
    async with server.system("sftp").client() as files:
        session = files.sftp
        await asyncio.wait_for(session.wait_closed(), SOON)
        assert await files.listdir() == []
        assert files.sftp is not session


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
async def test_idle_connection_closed_by_server(
    store: SystemStore, start_sshd: Callable[..., SSHServer], system_type: str
) -> None:
    """A pooled connection that sshd closed as unused is replaced without an error."""
    server = start_sshd(UnusedConnectionTimeout="1", ChannelTimeout="session:subsystem:sftp=1")
    system = await add(store, server, system_type)
    async with system.client() as first:
        connection = first if system_type == "ssh" else first.connection

    await asyncio.wait_for(connection.wait_closed(), SOON)
    async with system.client() as second:
        if system_type == "ssh":
            await second.run("true", check=True)
        else:
            await second.listdir()
    assert second is not first
    assert pool_stats(store).created == 2


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
async def test_closed_connection_replaced_before_check_due(
    tmp_path: Path, start_sshd: Callable[..., SSHServer], system_type: str
) -> None:
    """A connection closed by the server is replaced even when its check is not yet due."""
    server = start_sshd()
    options = PoolOptions(max_size=4, check_interval=60)
    async with SystemStore(tmp_path / "systems.db", pool=options) as store:
        system = await add(store, server, system_type)
        async with system.client() as first:
            connection = first if system_type == "ssh" else first.connection

        await server.drop_until_closed(connection)
        async with system.client() as second:
            if system_type == "ssh":
                await second.run("true", check=True)
            else:
                await second.listdir()
        stats = pool_stats(store)

    assert second is not first
    assert (stats.created, stats.failed_checks) == (2, 0)


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
async def test_frozen_server_fails_check(
    tmp_path: Path, start_sshd: Callable[..., SSHServer], system_type: str
) -> None:
    """An idle connection whose server stopped answering fails its check within the check
    timeout, long before the keepalives would close it, and a new connection serves."""
    server = start_sshd()
    # The check timeout is create_timeout when that is below 5 s.
    options = PoolOptions(max_size=4, check_interval=0.1, create_timeout=1.0)
    async with SystemStore(tmp_path / "systems.db", pool=options) as store:
        system = await add(store, server, system_type)
        async with system.client() as first:
            pass

        with frozen(server.connection_processes()) as stopped:
            await asyncio.sleep(0.2)
            started = time.monotonic()
            async with system.client() as second:
                if system_type == "ssh":
                    await second.run("true", check=True)
                else:
                    await second.listdir()
            elapsed = time.monotonic() - started
        stats = pool_stats(store)

    assert stopped, "no connection process was stopped"
    assert second is not first
    assert elapsed < 1.0 + 2.0
    assert stats.failed_checks == 1


async def test_burst_of_connects_within_max_startups(
    tmp_path: Path, start_sshd: Callable[..., SSHServer]
) -> None:
    """Twelve first connects at once succeed against sshd that drops past two handshakes."""
    server = start_sshd(MaxStartups="2")
    options = PoolOptions(max_size=12, max_concurrent_creates=12)
    async with SystemStore(tmp_path / "burst.db", pool=options) as store:
        system = await add(store, server, "ssh")
        everyone_connected = asyncio.Event()
        connected = 0

        async def use() -> str:
            nonlocal connected
            async with system.client() as connection:
                connected += 1
                if connected == 12:
                    everyone_connected.set()
                # Holding every lease until all twelve exist forces twelve connections.
                await asyncio.wait_for(everyone_connected.wait(), 30)
                result = await connection.run("echo ok", check=True)
                return str(result.stdout)

        results = await asyncio.gather(*(use() for _ in range(12)))

        assert results == ["ok\n"] * 12
        assert pool_stats(store).created == 12
    assert "past MaxStartups" in server.log()


async def test_fifteen_commands_share_connections(tmp_path: Path, sshd: SSHServer) -> None:
    """Fifteen concurrent commands over shared connections all succeed with MaxSessions 10."""
    options = PoolOptions(max_size=2, max_leases=15)
    async with SystemStore(tmp_path / "shared.db", pool=options) as store:
        system = await add(store, sshd, "ssh")

        async def command(number: int) -> str:
            async with system.client() as connection:
                # Long enough for all fifteen channels to be wanted at once.
                result = await connection.run(f"sleep 0.2; echo {number}", check=True)
                return str(result.stdout).strip()

        results = await asyncio.gather(*(command(number) for number in range(15)))

    assert results == [str(number) for number in range(15)]


async def test_commands_share_one_session_slot(
    tmp_path: Path, start_sshd: Callable[..., SSHServer]
) -> None:
    """Commands in quick succession on one connection all run under MaxSessions 1.

    sshd may still count a channel that the client has just closed, so a refusal while none
    of the connection's channels is open must be retried rather than raised.
    """
    server = start_sshd(MaxSessions="1")
    options = PoolOptions(max_size=1, max_leases=8)
    async with SystemStore(tmp_path / "single.db", pool=options) as store:
        system = await add(store, server, "ssh")

        async def command(number: int) -> str:
            async with system.client() as connection:
                result = await connection.run(f"echo {number}", check=True)
                return str(result.stdout).strip()

        for _ in range(3):
            results = await asyncio.wait_for(
                asyncio.gather(*(command(number) for number in range(8))), 60
            )
            assert results == [str(number) for number in range(8)]


async def test_channel_refusal_sends_holders_elsewhere(tmp_path: Path, sshd: SSHServer) -> None:
    """After sshd refuses an eleventh channel, that connection serves ten and others get more."""
    options = PoolOptions(max_size=2, max_leases=12)
    adapter = adapter_for("ssh")
    async with SystemStore(tmp_path / "limit.db", pool=options) as store:
        system = await add(store, sshd, "ssh")
        release = asyncio.Event()
        processes: list[asyncssh.SSHClientProcess[Any]] = []
        holding = asyncio.Event()
        connections: list[Any] = []

        async def hold() -> None:
            async with system.client() as connection:
                connections.append(connection)
                process = await connection.create_process("cat")
                processes.append(process)
                if len(processes) == 10:
                    holding.set()
                await release.wait()
                process.stdin.write_eof()
                await process.wait()

        holders = [asyncio.ensure_future(hold()) for _ in range(11)]
        await asyncio.wait_for(holding.wait(), SOON)

        # The eleventh holder shares the first connection and waits for a channel there.
        first = connections[0]
        assert all(connection is first for connection in connections)
        await wait_until(lambda: adapter.lease_limit(first) is not None)
        assert adapter.lease_limit(first) == 10

        # New holders now go to another connection.
        async with system.client() as other:
            assert other is not first
            result = await other.run("echo elsewhere", check=True)
        assert result.stdout == "elsewhere\n"

        release.set()
        await asyncio.wait_for(asyncio.gather(*holders), SOON)
    assert len(processes) == 11


async def test_session_limit_learned_without_retry_storm(
    tmp_path: Path, start_sshd: Callable[..., SSHServer]
) -> None:
    """Fifteen holders of one connection learn MaxSessions 10 and wait for sessions to end.

    Five channel opens are still in flight when sshd rejects the first of them, so only the
    ten confirmed channels count toward the limit. The rejected holders must wait for one of
    those ten to close instead of retrying at once.
    """
    holders = 15
    server = start_sshd(MaxSessions="10")
    options = PoolOptions(max_size=1, max_leases=20)
    async with SystemStore(tmp_path / "one-connection.db", pool=options) as store:
        system = await add(store, server, "ssh")
        connections: list[Any] = []

        async def command(number: int) -> str:
            async with system.client() as connection:
                connections.append(connection)
                # Long enough that ten sessions still run when the last five are requested.
                result = await connection.run(f"sleep 1; echo {number}", check=True)
                return str(result.stdout).strip()

        results = await asyncio.wait_for(
            asyncio.gather(*(command(number) for number in range(holders))), 60
        )

        assert results == [str(number) for number in range(holders)]
        assert all(connection is connections[0] for connection in connections)
        assert adapter_for("ssh").lease_limit(connections[0]) == 10

    # sshd logs "no more sessions" for each session channel it rejects at MaxSessions.
    refusals = server.log().count("no more sessions")
    assert refusals >= 1, "sshd rejected no channel, so the limit was never reached"
    assert refusals <= 2 * holders, f"sshd rejected {refusals} channels for {holders} holders"


async def cancel_channel_open(
    connection: asyncssh.SSHClientConnection, cancel_point: str, number: int
) -> None:
    """Cancel the caller of one channel open on ``connection`` at ``cancel_point``."""
    if cancel_point == "by_timeouts":
        # A channel open and its exec request took about a millisecond on 127.0.0.1 on a
        # 2-core machine. Timeouts of 0.1 to 1.5 ms therefore end some calls before the server
        # confirms the channel, some while the exec request is in flight and some while the
        # command runs. The other cancel points do not depend on timing.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(connection.run("sleep 2"), (number + 1) * 0.0001)
        return

    if cancel_point == "before_confirmation":
        caller = asyncio.ensure_future(connection.run("sleep 5"))
        # No packet is read between the caller's first step, which starts the channel open,
        # and this task's next step, so the cancellation comes before the confirmation.
        await asyncio.sleep(0)
        caller.cancel()
    else:

        def cancel_caller() -> asyncssh.SSHClientSession[str]:
            # asyncssh calls the session factory when the server confirms the channel, before
            # it sends the exec request.
            caller.cancel()
            return asyncssh.SSHClientSession()

        caller = asyncio.ensure_future(connection.create_session(cancel_caller, "cat"))

    with pytest.raises(asyncio.CancelledError):
        await caller


@pytest.mark.parametrize("cancel_point", ["before_confirmation", "during_request", "by_timeouts"])
async def test_cancelled_channel_opens_are_closed(
    tmp_path: Path, start_sshd: Callable[..., SSHServer], cancel_point: str
) -> None:
    """Callers cancelled while their channel opens leave no session behind on the server.

    asyncssh 2.24 ignores the cancellation of a channel open and of the exec request after
    it, so a channel left that way would stay open on sshd. Fifteen of them would fill
    MaxSessions 10 of a connection that the pool still hands out.
    """
    server = start_sshd(MaxSessions="10")
    options = PoolOptions(max_size=1, max_leases=20)
    async with SystemStore(tmp_path / "cancelled.db", pool=options) as store:
        system = await add(store, server, "ssh")
        async with system.client() as connection:
            slots = channel_slots(connection)
            assert slots is not None
            for number in range(15):
                try:
                    await cancel_channel_open(connection, cancel_point, number)
                except asyncssh.ChannelOpenError as exc:
                    pytest.fail(f"sshd rejected channel open {number + 1} of 15: {exc}")
            await wait_until(lambda: slots.open_channels == 0)
        if cancel_point == "before_confirmation":
            # A channel the server confirms after its caller is gone runs no command.
            assert "Starting session: command" not in server.log()

        # Ten holders of the same connection each keep a command running until all ten run.
        processes: list[asyncssh.SSHClientProcess[Any]] = []
        all_running = asyncio.Event()

        async def hold() -> None:
            async with system.client() as holder:
                assert holder is connection
                process = await holder.create_process("cat")
                processes.append(process)
                if len(processes) == 10:
                    all_running.set()
                await all_running.wait()
                process.stdin.write_eof()
                await process.wait()

        holders = [asyncio.ensure_future(hold()) for _ in range(10)]
        try:
            await asyncio.wait_for(asyncio.gather(*holders), SOON)
        except (asyncssh.ChannelOpenError, ConnectionFailed, asyncio.TimeoutError) as exc:
            pytest.fail(f"sshd ran {len(processes)} of 10 commands at once: {exc!r}")
        finally:
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)

        await wait_until(lambda: slots.open_channels == 0)
        assert adapter_for("ssh").lease_limit(connection) in (None, 10)
