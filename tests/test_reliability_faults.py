"""Server faults under load through pooled clients: killed, frozen and cut off from sshd.

Each test runs eight workers that write and read files (sftp) or run a command (ssh) through
a pool of four connections, and injects one fault. Every operation must end within its bound,
with success or with `ConnectionFailed` naming the system. Work must succeed again within a
few seconds once the server is back. At the end the pool's counts must balance, and sshd must
keep no session once the store is closed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from faults import CommandLoad, FileLoad, TCPProxy, established_connections, frozen, wait_until
from sshd import SSHServer

from asyncext import ExternalSystem, PoolOptions, PoolStats, SystemStore

CONNECT_TIMEOUT = 2.0
KEEPALIVE_INTERVAL = 0.5
KEEPALIVE_COUNT_MAX = 2
DEAD_AFTER = KEEPALIVE_INTERVAL * (KEEPALIVE_COUNT_MAX + 1)
"""Seconds of silence after which asyncssh's keepalives close a connection."""

ACQUIRE_TIMEOUT = 6.0
BOUND = ACQUIRE_TIMEOUT + 2 * DEAD_AFTER + CONNECT_TIMEOUT + 2.0
"""Seconds any one operation may take: a full acquire wait, then a body whose connection
dies twice (the session and its one retry), plus a margin for a loaded machine."""

RECOVERY = 5.0
"""Seconds after the server is back within which every worker must succeed again."""

SOON = 10.0

WORKERS = 8
POOL = PoolOptions(max_size=4, acquire_timeout=ACQUIRE_TIMEOUT, create_timeout=5.0)
FAST_FAILURE = {
    "connect_timeout": CONNECT_TIMEOUT,
    "keepalive_interval": KEEPALIVE_INTERVAL,
    "keepalive_count_max": KEEPALIVE_COUNT_MAX,
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SystemStore]:
    async with SystemStore(tmp_path / "faults.db", pool=POOL) as opened:
        yield opened


@pytest.fixture(params=["sftp", "ssh"])
def system_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def add_system(
    store: SystemStore, server: SSHServer, system_type: str, **fields: Any
) -> ExternalSystem:
    fields = server.fields(system_type, options=FAST_FAILURE, **fields)
    return await store.add("box", system_type, **fields)


def start_load(system: ExternalSystem) -> FileLoad:
    """Return the running load that suits the system's type."""
    load_class = CommandLoad if system.system_type == "ssh" else FileLoad
    load = load_class(system, workers=WORKERS, bound=BOUND)
    load.start()
    return load


def pool_stats(store: SystemStore) -> PoolStats:
    stats = store.pool_stats("box")
    assert stats is not None, "the system has no pool"
    return stats


def is_balanced(store: SystemStore) -> Callable[[], bool]:
    def check() -> bool:
        stats = pool_stats(store)
        return stats.created - stats.destroyed == stats.size and stats.in_use == 0

    return check


async def wait_for_failures(load: FileLoad, since: float) -> None:
    """Wait until every worker has had an operation end in failure after ``since``."""

    def everyone_failed() -> bool:
        failed = {o.worker for o in load.outcomes if o.kind == "failed" and o.ended > since}
        return len(failed) == load.workers

    await wait_until(everyone_failed, BOUND, "every worker seeing the fault")


def assert_clean_outcomes(load: FileLoad, fault_at: float) -> None:
    """Assert that nothing hung or failed oddly, and that failures name the system."""
    kinds = load.summary()
    assert kinds.get("hung", 0) == 0, kinds
    others = [repr(o.error) for o in load.outcomes if o.kind == "other"]
    assert others == []
    failures = [o for o in load.outcomes if o.kind == "failed"]
    assert failures, "the fault caused no ConnectionFailed at all"
    assert {getattr(o.error, "system", None) for o in failures} == {"box"}
    for outcome in load.in_flight_at(fault_at):
        assert outcome.ended - outcome.started < BOUND


async def assert_pool_settles(store: SystemStore) -> None:
    await wait_until(is_balanced(store), SOON, "pool counts balancing")
    stats = pool_stats(store)
    assert stats.created - stats.destroyed == stats.size
    assert stats.in_use == 0
    assert stats.waiting == 0


async def test_faults_sshd_killed_and_restarted(
    store: SystemStore, start_sshd: Callable[..., SSHServer], system_type: str
) -> None:
    """sshd killed mid-load fails operations fast; after a restart on its port, work resumes."""
    server = start_sshd()
    system = await add_system(store, server, system_type)
    load = start_load(system)
    await load.wait_for_successes(after=0.0, timeout=SOON)

    fault_at = time.monotonic()
    server.kill()
    await wait_for_failures(load, fault_at)
    server.restart()
    restored_at = time.monotonic()
    await load.wait_for_successes(after=restored_at, timeout=RECOVERY)
    await load.stop()

    assert_clean_outcomes(load, fault_at)
    await assert_pool_settles(store)
    await store.close()
    await wait_until(lambda: established_connections(server.port) == 0, SOON, "sshd sessions")


async def test_faults_connection_processes_frozen(
    store: SystemStore, start_sshd: Callable[..., SSHServer], system_type: str
) -> None:
    """Operations on connections whose sshd processes are stopped fail after the keepalives."""
    server = start_sshd()
    system = await add_system(store, server, system_type)
    load = start_load(system)
    await load.wait_for_successes(after=0.0, timeout=SOON)

    with frozen(server.connection_processes()) as stopped:
        fault_at = time.monotonic()
        # New connections get new, running processes, so work resumes while these sleep.
        await load.wait_for_successes(after=fault_at + DEAD_AFTER, timeout=RECOVERY + DEAD_AFTER)
        in_flight = load.in_flight_at(fault_at)
    await load.stop()

    assert stopped, "no connection process was stopped"
    assert_clean_outcomes(load, fault_at)
    assert any(outcome.kind == "failed" for outcome in in_flight)
    await assert_pool_settles(store)
    await store.close()
    await wait_until(lambda: established_connections(server.port) == 0, SOON, "sshd sessions")


async def test_faults_network_cut_and_restored(
    store: SystemStore, start_sshd: Callable[..., SSHServer], system_type: str
) -> None:
    """A cut network fails operations within the keepalive bound; work resumes once restored."""
    server = start_sshd()
    proxy = TCPProxy(server.port)
    await proxy.start()
    try:
        system = await add_system(store, server, system_type, port=proxy.port)
        load = start_load(system)
        await load.wait_for_successes(after=0.0, timeout=SOON)

        fault_at = time.monotonic()
        await proxy.cut()
        await wait_for_failures(load, fault_at)
        await proxy.restore()
        restored_at = time.monotonic()
        await load.wait_for_successes(after=restored_at, timeout=RECOVERY)
        await load.stop()

        assert_clean_outcomes(load, fault_at)
        await assert_pool_settles(store)
        await store.close()
    finally:
        await proxy.close()
    await wait_until(lambda: established_connections(server.port) == 0, SOON, "sshd sessions")
