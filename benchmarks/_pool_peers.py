"""Drivers that put each pool compared by ``benchmarks/pool.py`` behind one small interface.

A peer's maker imports it, so a peer that is not installed raises ImportError there; the
benchmarks report it as not measured, with `missing_peer` as the reason.

Every driver pools the same no-op client with at most 10 clients, and is used through the
pool's own documented context manager. Options are left at their defaults except where a
default would make the pool smaller than 10 clients or shrink it while it is measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import SimpleNamespace, TracebackType
from typing import Any

from asyncext import ClientPool, PoolOptions

MAX_SIZE = 10
FLOOR = "asyncio.Queue"
OURS = "asyncext ClientPool"


class NoopClient:
    """A client whose every operation does nothing, so that only the pool is measured."""

    closed = False

    async def close(self) -> None:
        self.closed = True


async def create_noop() -> NoopClient:
    return NoopClient()


async def destroy_noop(client: NoopClient) -> None:
    await client.close()


async def check_noop(client: NoopClient) -> bool:
    return not client.closed


@dataclass
class Driver:
    """One pool under test: how to enter a client and how to shut the pool down."""

    name: str
    acquire: Callable[[], AbstractAsyncContextManager[Any]]
    close: Callable[[], Awaitable[None]]


# --- the floor: no pool logic at all ----------------------------------------------------


class QueueLease:
    """A class-based async context manager over a bare `asyncio.Queue` of clients."""

    __slots__ = ("_client", "_queue")

    def __init__(self, queue: asyncio.Queue[NoopClient]) -> None:
        self._queue = queue
        self._client: NoopClient | None = None

    async def __aenter__(self) -> NoopClient:
        self._client = await self._queue.get()
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._client is not None
        self._queue.put_nowait(self._client)
        self._client = None


async def make_floor() -> Driver:
    queue: asyncio.Queue[NoopClient] = asyncio.Queue()
    for _ in range(MAX_SIZE):
        queue.put_nowait(NoopClient())

    async def close() -> None:
        pass

    return Driver(FLOOR, lambda: QueueLease(queue), close)


# --- asyncext ---------------------------------------------------------------------------


async def make_asyncext() -> Driver:
    pool = ClientPool(
        create_noop,
        destroy_noop,
        check_noop,
        options=PoolOptions(max_size=MAX_SIZE),
        name="bench",
    )
    await pool.open()
    return Driver(OURS, pool.acquire, pool.close)


# --- peers ------------------------------------------------------------------------------


async def make_asyncio_connection_pool() -> Driver:
    from asyncio_connection_pool import ConnectionPool, ConnectionStrategy

    class Strategy(ConnectionStrategy[NoopClient]):
        async def make_connection(self) -> NoopClient:
            return NoopClient()

        def connection_is_closed(self, conn: NoopClient) -> bool:
            return conn.closed

        async def close_connection(self, conn: NoopClient) -> None:
            await conn.close()

    pool = ConnectionPool(strategy=Strategy(), max_size=MAX_SIZE)

    async def close() -> None:
        pass  # the pool has no close method; its connections are plain objects here

    return Driver("asyncio-connection-pool", pool.get_connection, close)


async def make_generic_connection_pool() -> Driver:
    from generic_connection_pool.asyncio import BaseConnectionManager, ConnectionPool

    class Manager(BaseConnectionManager[str, NoopClient]):
        async def create(self, endpoint: str) -> NoopClient:
            return NoopClient()

        async def dispose(self, endpoint: str, conn: NoopClient) -> None:
            await conn.close()

    # min_idle equal to max_size keeps all 10 connections. With the default of 1, the pool
    # disposes of the other 9 after idle_timeout (60 s by default), within a long run.
    pool: ConnectionPool[str, NoopClient] = ConnectionPool(
        Manager(), min_idle=MAX_SIZE, max_size=MAX_SIZE, total_max_size=MAX_SIZE
    )
    return Driver("generic-connection-pool", lambda: pool.connection("benchmark"), pool.close)


class StandInConnection:
    """The part of psycopg's AsyncConnection that psycopg_pool uses, doing nothing.

    psycopg_pool 3.3 calls ``connect()``, reads ``pgconn.transaction_status``, enters the
    connection as a context manager, sets ``_pool``, ``_created_at`` and ``_expire_at``,
    and calls ``close()``.
    """

    def __init__(self) -> None:
        from psycopg.pq import TransactionStatus

        self.pgconn = SimpleNamespace(transaction_status=TransactionStatus.IDLE)
        self._pool: Any = None
        self.closed = False

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> StandInConnection:
        return cls()

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> StandInConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass


async def make_psycopg_pool() -> Driver:
    from psycopg_pool import AsyncConnectionPool

    # psycopg_pool keeps min_size connections and grows to max_size; 10 and 10 gives the
    # same fixed pool of 10 as the others.
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        "",
        connection_class=StandInConnection,
        min_size=MAX_SIZE,
        max_size=MAX_SIZE,
        open=False,
        name="bench",
    )
    await pool.open(wait=True)
    return Driver("psycopg_pool", pool.connection, pool.close)


async def make_connpool() -> Driver:
    from connpool import AsyncConnectionPool, PoolConfig

    pool: AsyncConnectionPool[NoopClient] = AsyncConnectionPool.from_callables(
        create_noop,
        close=destroy_noop,
        config=PoolConfig(max_size=MAX_SIZE),
        name="bench",
    )
    await pool.open()
    return Driver("connpool", pool.connection, pool.close)


def missing_peer(error: ImportError) -> str:
    """Return the reason a peer cannot be measured, with the command that installs it."""
    return f"not installed ({error}); install the peers with pip install -e '.[bench]'"


MAKERS: dict[str, Callable[[], Awaitable[Driver]]] = {
    FLOOR: make_floor,
    OURS: make_asyncext,
    "asyncio-connection-pool": make_asyncio_connection_pool,
    "generic-connection-pool": make_generic_connection_pool,
    "psycopg_pool": make_psycopg_pool,
    "connpool": make_connpool,
}
"""Each pool's maker by its name: the floor first, asyncext second, then the peers."""
