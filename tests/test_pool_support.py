"""A fake service whose clients the pool tests create, check and destroy (no tests here)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from asyncext import ClientPool, PoolOptions


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

    @property
    def alive(self) -> int:
        """Clients created and not yet destroyed."""
        return len(self.created) - len(self.destroyed)

    async def create(self) -> FakeClient:
        self.create_calls += 1
        self.create_started.set()
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
        """Return a pool named 'fake' over this service."""
        return ClientPool(
            self.create,
            self.destroy,
            self.check if check else None,
            PoolOptions(**options),
            name="fake",
        )


async def wait_until(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await asyncio.sleep(0.001)


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
