"""ClientPool under cancellation: nothing lost, nothing leaked, nothing swallowed."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from test_pool_support import (
    FakeClient,
    FakeService,
    bounded_test,  # noqa: F401 - an autouse fixture that bounds each test
    hold,
    messages,
    wait_until,
    within,
)

import asyncext._pool._supply
from asyncext import ClientPool, ConnectionFailed, PoolTimeout


@pytest.mark.parametrize("turns", range(7))
async def test_pool_handoff_to_cancelled_waiter(turns: int) -> None:
    """A waiter cancelled 0-6 loop turns after a release does not take the client along."""
    service = FakeService()
    got: list[FakeClient] = []
    forever = asyncio.Event()
    async with service.pool(max_size=1) as pool:
        async with pool.acquire():
            first = asyncio.create_task(hold(pool, forever, []))
            await wait_until(lambda: pool.stats().waiting == 1)
            second = asyncio.create_task(hold(pool, asyncio.Event(), got))
            await wait_until(lambda: pool.stats().waiting == 2)
        for _ in range(turns):
            await asyncio.sleep(0)
        first.cancel()

        await wait_until(lambda: len(got) == 1)
        stats = pool.stats()
        second.cancel()
        await within(asyncio.gather(first, second, return_exceptions=True))
    assert first.cancelled()
    assert stats.size == 1
    assert service.max_alive == 1


GIVE_UP_SWEEP = [
    # (max_size, seconds each create takes, seconds after which an acquire gives up)
    (1, 0.02, 0.005),
    (2, 0.02, 0.005),
    (2, 0.005, 0.005),
    (2, 0.05, 0.001),
    (2, 0.005, 0.02),
    (5, 0.02, 0.03),
]


async def hold_all(pool: ClientPool[FakeClient], count: int) -> list[FakeClient]:
    """Hold ``count`` clients at once, retrying when an acquire fails; return them."""
    while True:
        try:
            async with contextlib.AsyncExitStack() as stack:
                return [await stack.enter_async_context(pool.acquire()) for _ in range(count)]
        except (PoolTimeout, ConnectionFailed):
            await asyncio.sleep(0.002)


@pytest.mark.parametrize("how", ["acquire_timeout", "wait_for", "cancel", "create_timeout"])
@pytest.mark.parametrize(("max_size", "delay", "give_up"), GIVE_UP_SWEEP)
async def test_pool_cancelled_during_create(
    how: str, max_size: int, delay: float, give_up: float
) -> None:
    """Fifty acquires given up at many moments during slow creates never make more than
    max_size clients exist, counting clients made after their create was given up, and
    leave a working pool."""
    service = FakeService()
    service.create_delay = delay
    # Creates that time out go on, like a connect in a worker thread, and make late clients.
    service.shield_create = how == "create_timeout"
    options: dict[str, float] = {"max_size": max_size, "acquire_timeout": 5}
    if how == "acquire_timeout":
        options["acquire_timeout"] = give_up
    if how == "create_timeout":
        options["create_timeout"] = give_up
    pool = service.pool(**options)
    loop = asyncio.get_running_loop()

    async def attempt() -> None:
        async with pool.acquire():
            await asyncio.sleep(0)

    if how == "wait_for":
        attempts = [asyncio.ensure_future(asyncio.wait_for(attempt(), give_up)) for _ in range(50)]
    else:
        attempts = [asyncio.ensure_future(attempt()) for _ in range(50)]
    if how == "cancel":
        # Cancel points spread over three create times, from before the first create
        # ends until after the last waiter would have been served.
        for number, task in enumerate(attempts):
            loop.call_later(number * 3 * delay / len(attempts), task.cancel)
    results = await within(asyncio.gather(*attempts, return_exceptions=True))

    service.create_delay = 0
    clients = await within(hold_all(pool, max_size), 1)
    stats = pool.stats()
    await within(pool.close())
    expected = (PoolTimeout, ConnectionFailed, asyncio.TimeoutError, asyncio.CancelledError)
    assert all(result is None or isinstance(result, expected) for result in results)
    assert len({id(client) for client in clients}) == max_size
    assert service.max_alive <= max_size
    assert service.alive == 0
    assert stats.waiting == 0


async def test_pool_wait_for_cancels_acquire() -> None:
    """asyncio.wait_for around an acquire on a full pool raises after its own timeout."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=1, acquire_timeout=30) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)

        async def attempt() -> None:
            async with pool.acquire():
                pass

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError) as caught:
            await within(asyncio.wait_for(attempt(), 0.25))
        elapsed = loop.time() - started
        # PoolTimeout is a TimeoutError too: the pool must let the cancellation through.
        assert not isinstance(caught.value, PoolTimeout)
        waiting = pool.stats().waiting
        release.set()
        await within(holder)
    assert 0.2 <= elapsed < 1.0
    assert waiting == 0


async def test_pool_cancel_reaches_waiter() -> None:
    """task.cancel() ends a waiting acquire, and the pool keeps its client."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=1) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)
        waiter = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().waiting == 1)
        waiter.cancel()
        await within(asyncio.gather(waiter, return_exceptions=True))
        release.set()
        await within(holder)
        stats = pool.stats()
    assert waiter.cancelled()
    assert (stats.idle, stats.waiting, stats.size) == (1, 0, 1)


async def test_pool_release_skips_cancelled_waiter() -> None:
    """A released client goes to the oldest waiter still waiting, past a cancelled one."""
    service = FakeService()
    got: list[FakeClient] = []
    async with service.pool(max_size=1) as pool:
        async with pool.acquire() as held:
            cancelled = asyncio.create_task(hold(pool, asyncio.Event(), []))
            await wait_until(lambda: pool.stats().waiting == 1)
            live = asyncio.create_task(hold(pool, asyncio.Event(), got))
            await wait_until(lambda: pool.stats().waiting == 2)
            cancelled.cancel()
            await within(asyncio.gather(cancelled, return_exceptions=True))
        await wait_until(lambda: len(got) == 1)
        live.cancel()
        await within(asyncio.gather(live, return_exceptions=True))
    assert got == [held]


async def test_pool_cancelled_body_destroys_client(caplog: pytest.LogCaptureFixture) -> None:
    """A client whose block was cancelled is destroyed, with a warning."""
    service = FakeService()
    got: list[FakeClient] = []
    async with service.pool() as pool:
        task = asyncio.create_task(hold(pool, asyncio.Event(), got))
        await wait_until(lambda: len(got) == 1)
        task.cancel()
        await within(asyncio.gather(task, return_exceptions=True))
        stats = pool.stats()
    assert task.cancelled()
    assert got[0].destroyed
    assert (stats.size, stats.destroyed) == (0, 1)
    assert any("CancelledError" in line for line in messages(caplog.records, logging.WARNING))


async def test_pool_destroy_shielded_from_cancel() -> None:
    """A destroy runs to its end although the releasing task is cancelled meanwhile."""
    service = FakeService()
    service.destroy_delay = 0.05
    got: list[FakeClient] = []
    async with service.pool(max_uses=1) as pool:

        async def use_once() -> None:
            async with pool.acquire() as client:
                got.append(client)

        task = asyncio.create_task(use_once())
        await wait_until(lambda: len(got) == 1)
        await asyncio.sleep(0.01)  # the task is now inside the destroy
        task.cancel()
        await within(asyncio.gather(task, return_exceptions=True))
    assert task.cancelled()
    assert got[0].destroyed


async def test_pool_destroy_bounded(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destroy that hangs is abandoned after the cleanup timeout, with a warning."""
    monkeypatch.setattr(asyncext._pool._supply, "CLEANUP_TIMEOUT", 0.05)
    service = FakeService()
    service.destroy_delay = 60
    async with service.pool(max_uses=1) as pool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with pool.acquire():
            pass
        elapsed = loop.time() - started
        stats = pool.stats()
    assert elapsed < 1.0
    assert stats.size == 0
    assert any("destroying a client failed" in line for line in messages(caplog.records, 30))


async def test_pool_cancelled_during_check() -> None:
    """Cancelling an acquire during the health check destroys that client."""
    service = FakeService()
    async with service.pool(check_interval=0) as pool:
        async with pool.acquire() as client:
            pass
        service.check_delay = 60

        async def attempt() -> None:
            async with pool.acquire():
                pass

        task = asyncio.create_task(attempt())
        await wait_until(lambda: service.check_calls == 1)
        task.cancel()
        await within(asyncio.gather(task, return_exceptions=True))
        await wait_until(lambda: pool.stats().size == 0)
        stats = pool.stats()
    assert task.cancelled()
    assert client.destroyed
    assert stats.in_use == 0


async def test_pool_waiters_leave_nothing_behind() -> None:
    """Many cancelled and timed-out waiters leave no queued entry behind."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=1, acquire_timeout=0.02) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)
        waiters = [asyncio.create_task(hold(pool, release, [])) for _ in range(20)]
        await asyncio.sleep(0)
        for waiter in waiters[::2]:
            waiter.cancel()
        results = await within(asyncio.gather(*waiters, return_exceptions=True))
        queued = len(pool._waiters)
        release.set()
        await within(holder)
        stats = pool.stats()
    assert all(isinstance(result, (PoolTimeout, asyncio.CancelledError)) for result in results)
    assert queued == 0
    assert (stats.waiting, stats.idle, stats.size) == (0, 1, 1)
