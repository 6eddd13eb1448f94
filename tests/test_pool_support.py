"""A fake service whose clients the pool tests create, check and destroy (no tests here)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread
import pytest

from asyncext import ClientPool, PoolOptions

T = TypeVar("T")

TEST_DEADLINE = 15.0
"""Seconds a pool test may run before `bounded_test` cancels its tasks and fails it."""


class FakeClient:
    """A client of `FakeService`; ``alive`` turns false when its server drops it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.alive = True
        self.destroyed = False

    def __repr__(self) -> str:
        return f"<FakeClient #{self.number}>"


class FakeService:
    """Counts creates, checks and destroys, and lets a test slow down or break each one."""

    def __init__(self) -> None:
        self.created: list[FakeClient] = []
        self.destroyed: list[FakeClient] = []
        self.create_calls = 0
        self.check_calls = 0
        self.max_alive = 0
        self.create_error: BaseException | None = None
        self.create_delay = 0.0
        self.check_delay = 0.0
        self.destroy_delay = 0.0
        self.create_gate: asyncio.Event | None = None
        self.create_started = asyncio.Event()
        self.shield_create = False
        """Run each create under `asyncio.shield`, so that, like a connect in a worker
        thread, it goes on and makes its client when the pool cancels it."""

    @property
    def alive(self) -> int:
        """Clients created and not yet destroyed."""
        return len(self.created) - len(self.destroyed)

    async def create(self) -> FakeClient:
        self.create_calls += 1
        self.create_started.set()
        if self.shield_create:
            return await asyncio.shield(self._connect())
        return await self._connect()

    async def _connect(self) -> FakeClient:
        if self.create_gate is not None:
            await self.create_gate.wait()
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        if self.create_error is not None:
            raise self.create_error
        client = FakeClient(len(self.created) + 1)
        self.created.append(client)
        self.max_alive = max(self.max_alive, self.alive)
        return client

    async def check(self, client: FakeClient) -> bool:
        self.check_calls += 1
        if self.check_delay:
            await asyncio.sleep(self.check_delay)
        return client.alive

    async def destroy(self, client: FakeClient) -> None:
        if self.destroy_delay:
            await asyncio.sleep(self.destroy_delay)
        client.destroyed = True
        self.destroyed.append(client)

    def pool(self, *, check: bool = True, **options: Any) -> ClientPool[FakeClient]:
        """Return a pool named 'fake' over this service.

        Its ``acquire_timeout`` is 5 s unless given, so that an acquire that no client
        reaches fails well before `TEST_DEADLINE`.
        """
        options.setdefault("acquire_timeout", 5.0)
        return ClientPool(
            self.create,
            self.destroy,
            self.check if check else None,
            PoolOptions(**options),
            name="fake",
        )


THREAD_SHAPES = ["to_thread", "shielded_executor", "anyio_thread"]
"""Ways a create runs blocking work in a worker thread; cancelling each drops its result."""

CREATE_SHAPES = [*THREAD_SHAPES, "shielded_coroutine"]
"""`THREAD_SHAPES`, and a coroutine that keeps running under `asyncio.shield` when its
create is cancelled."""


class ThreadService:
    """Makes clients the way a blocking driver does, in a worker thread, and records how
    many are alive at once.

    Each create blocks until the test calls `finish`. ``shape`` names how the create
    awaits its work: one of `CREATE_SHAPES`.
    """

    def __init__(self, shape: str) -> None:
        self.shape = shape
        self.calls = 0
        self.created = 0
        self.peak = 0
        self.alive: set[int] = set()
        self.destroyed: list[int] = []
        self._lock = threading.Lock()
        self._thread_gate = threading.Event()
        self._loop_gate = asyncio.Event()

    def finish(self) -> None:
        """Let every create, running or still to come, make its client."""
        self._thread_gate.set()
        self._loop_gate.set()

    def connect(self) -> int:
        """Make a client in a worker thread, once `finish` is called (at most 5 s)."""
        self._thread_gate.wait(5)
        return self._make()

    async def connect_in_loop(self) -> int:
        await self._loop_gate.wait()
        return self._make()

    def _make(self) -> int:
        with self._lock:
            self.created += 1
            self.alive.add(self.created)
            self.peak = max(self.peak, len(self.alive))
            return self.created

    async def create(self) -> int:
        self.calls += 1
        if self.shape == "to_thread":
            return await asyncio.to_thread(self.connect)
        if self.shape == "shielded_executor":
            loop = asyncio.get_running_loop()
            return await asyncio.shield(loop.run_in_executor(None, self.connect))
        if self.shape == "anyio_thread":
            return await anyio.to_thread.run_sync(self.connect)
        assert self.shape == "shielded_coroutine"
        return await asyncio.shield(self.connect_in_loop())

    async def destroy(self, client: int) -> None:
        with self._lock:
            self.alive.discard(client)
            self.destroyed.append(client)

    def pool(self, **options: Any) -> ClientPool[int]:
        """Return a pool named 'threads' over this service."""
        return ClientPool(self.create, self.destroy, options=PoolOptions(**options), name="threads")


async def wait_until(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.001)


async def acquire_outcome(pool: ClientPool[Any]) -> Any:
    """Acquire a client and release it at once; return it, or the exception raised."""
    try:
        async with pool.acquire() as client:
            return client
    except Exception as exc:
        return exc


async def hold(pool: ClientPool[Any], release: asyncio.Event, got: list[Any]) -> None:
    """Acquire a client, append it to ``got``, and keep it until ``release`` is set."""
    async with pool.acquire() as client:
        got.append(client)
        await release.wait()


def messages(records: list[logging.LogRecord], level: int) -> list[str]:
    """Return the messages of the ``asyncext.pool`` records at ``level``."""
    return [
        record.getMessage()
        for record in records
        if record.name == "asyncext.pool" and record.levelno == level
    ]


async def within(awaitable: Awaitable[T], seconds: float = 2.0) -> T:
    """Return ``await awaitable``; fail the test if it takes longer than ``seconds``.

    Unlike `asyncio.wait_for`, it cannot mistake a `PoolTimeout` raised by the awaitable,
    which is a `TimeoutError` too, for its own timeout.
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait((task,), timeout=seconds)
    if not done:
        task.cancel()
        # Retrieve the outcome, or asyncio logs it from a finalizer when the task is freed.
        task.add_done_callback(lambda finished: finished.cancelled() or finished.exception())
        raise AssertionError(f"{awaitable!r} did not finish within {seconds} s")
    return task.result()


@pytest.fixture(autouse=True)
async def bounded_test() -> AsyncIterator[None]:
    """Cancel every task of a test still running after `TEST_DEADLINE` seconds, and fail it.

    A pool that loses a waiter's future leaves the waiter with no timer to end its wait, so
    without this bound such a test would hang the suite instead of failing. Each test
    module imports this fixture, which is how pytest finds an autouse fixture outside a
    conftest.
    """
    loop = asyncio.get_running_loop()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        for task in asyncio.all_tasks(loop):
            task.cancel()

    timer = loop.call_later(TEST_DEADLINE, expire)
    yield
    timer.cancel()
    if expired:
        pytest.fail(f"the test ran longer than {TEST_DEADLINE} s: one of its waits never ended")
