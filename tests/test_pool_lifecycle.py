"""ClientPool lifecycle: open and close, expire, discard, resize, stats, repr and logging."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from test_pool_support import (
    CREATE_SHAPES,
    THREAD_SHAPES,
    FakeClient,
    FakeService,
    ThreadService,
    bounded_test,  # noqa: F401 - an autouse fixture that bounds each test
    hold,
    messages,
    wait_until,
    within,
)

from asyncext import ClientPool, ConnectionFailed, PoolClosed, PoolOptions


async def test_pool_async_with_opens_and_closes() -> None:
    """async with opens the pool and closes it, destroying its clients."""
    service = FakeService()
    async with service.pool() as pool:
        opened = repr(pool)
        async with pool.acquire() as client:
            pass
    assert " open:" in opened
    assert " closed:" in repr(pool)
    assert client.destroyed


async def test_pool_close_fails_waiters() -> None:
    """Waiting acquires fail with PoolClosed, naming the pool, when the pool closes."""
    service = FakeService()
    release = asyncio.Event()
    pool = service.pool(max_size=1)
    holder = asyncio.create_task(hold(pool, release, []))
    await wait_until(lambda: pool.stats().in_use == 1)
    waiter = asyncio.create_task(hold(pool, release, []))
    await wait_until(lambda: pool.stats().waiting == 1)
    closing = asyncio.create_task(pool.close())
    with pytest.raises(PoolClosed, match="'fake' is closed"):
        await within(waiter)
    release.set()
    await within(asyncio.gather(holder, closing))


async def test_pool_acquire_after_close() -> None:
    """A closed pool rejects acquire and open with PoolClosed."""
    service = FakeService()
    async with service.pool() as pool:
        pass
    with pytest.raises(PoolClosed):
        async with pool.acquire():
            pass
    with pytest.raises(PoolClosed):
        await within(pool.open())


async def test_pool_close_twice() -> None:
    """Closing twice, or twice at once, does nothing more."""
    service = FakeService()
    pool = service.pool()
    async with pool.acquire():
        pass
    await within(asyncio.gather(pool.close(), pool.close()))
    await within(pool.close())
    assert len(service.destroyed) == 1


async def test_pool_close_unused() -> None:
    """A pool that was never used closes without creating anything."""
    service = FakeService()
    pool = service.pool(min_size=2)
    await within(pool.close())
    assert service.create_calls == 0


async def test_pool_close_waits_for_busy() -> None:
    """close() waits for a client in use, then destroys it."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    pool = service.pool()
    holder = asyncio.create_task(hold(pool, release, got))
    await wait_until(lambda: len(got) == 1)
    closing = asyncio.create_task(pool.close(timeout=5))
    await asyncio.sleep(0.01)
    destroyed_while_held = got[0].destroyed
    release.set()
    await within(asyncio.gather(holder, closing), 1)
    assert not destroyed_while_held
    assert got[0].destroyed


async def test_pool_close_timeout_destroys_busy(caplog: pytest.LogCaptureFixture) -> None:
    """A client still in use after close's timeout is destroyed, once."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    pool = service.pool()
    holder = asyncio.create_task(hold(pool, release, got))
    await wait_until(lambda: len(got) == 1)
    await within(pool.close(timeout=0.05))
    destroyed_at_close = got[0].destroyed
    release.set()
    await within(holder)
    assert destroyed_at_close
    assert service.destroyed == got
    assert any("still in use" in line for line in messages(caplog.records, logging.WARNING))


@pytest.mark.parametrize("shape", CREATE_SHAPES)
async def test_pool_close_waits_for_create(shape: str) -> None:
    """close() lets a create that cancelling would not stop finish, and destroys its client."""
    service = ThreadService(shape)
    pool = service.pool(max_size=2)
    acquiring = asyncio.create_task(pool.acquire().__aenter__())
    await wait_until(lambda: service.calls == 1)

    closing = asyncio.create_task(pool.close(timeout=5))
    with pytest.raises(PoolClosed):
        await within(acquiring)
    closed_before_create_ended = closing.done()
    service.finish()
    await within(closing)
    stats = pool.stats()
    assert not closed_before_create_ended
    assert service.created == 1
    assert service.alive == set()
    assert service.peak == 1
    assert (stats.size, stats.created, stats.destroyed) == (0, 1, 1)


async def test_pool_close_destroys_late_client() -> None:
    """A create cancelled by close() that returns a client all the same has it destroyed."""
    gate = asyncio.Event()
    created: list[FakeClient] = []
    destroyed: list[FakeClient] = []
    started = asyncio.Event()

    async def create() -> FakeClient:
        started.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            await gate.wait()  # ignores the cancellation and completes
        client = FakeClient(1)
        created.append(client)
        return client

    async def destroy(client: FakeClient) -> None:
        destroyed.append(client)

    pool = ClientPool(create, destroy, options=PoolOptions(min_size=1), name="late")
    await within(pool.open())
    await within(started.wait())
    await within(pool.close(timeout=0.05))
    gate.set()
    await wait_until(lambda: len(destroyed) == 1)
    assert destroyed == created


async def test_pool_close_cancels_create_after_timeout() -> None:
    """close() cancels a create still running at the end of its timeout."""
    service = FakeService()
    service.create_gate = asyncio.Event()
    pool = service.pool(min_size=1)
    await within(pool.open())
    await within(service.create_started.wait())

    loop = asyncio.get_running_loop()
    started = loop.time()
    await within(pool.close(timeout=0.05))
    elapsed = loop.time() - started
    stats = pool.stats()
    assert elapsed < 1.0
    assert service.alive == 0
    assert stats.size == 0


async def test_pool_expire_idle_now_busy_later() -> None:
    """expire() destroys idle clients at once and clients in use when they come back."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with service.pool() as pool:
        holder = asyncio.create_task(hold(pool, release, got))
        await wait_until(lambda: len(got) == 1)
        busy = got[0]
        async with pool.acquire() as idle:
            pass
        pool.expire()
        await wait_until(lambda: idle.destroyed)
        busy_destroyed_while_held = busy.destroyed
        release.set()
        await within(holder)
        async with pool.acquire() as fresh:
            pass
    assert not busy_destroyed_while_held
    assert busy.destroyed
    assert fresh not in (idle, busy)


async def test_pool_expire_during_create() -> None:
    """A client whose create began before expire() is destroyed, not handed out."""
    service = FakeService()
    service.create_gate = asyncio.Event()
    got: list[FakeClient] = []
    async with service.pool() as pool:
        holder = asyncio.create_task(hold(pool, asyncio.Event(), got))
        await within(service.create_started.wait())
        pool.expire()
        service.create_gate.set()
        await wait_until(lambda: len(got) == 1)
        holder.cancel()
        await within(asyncio.gather(holder, return_exceptions=True))
    assert service.created[0].destroyed
    assert got[0] is service.created[1]


@pytest.mark.parametrize("shape", THREAD_SHAPES)
async def test_pool_expire_during_thread_create(shape: str) -> None:
    """A client made in a worker thread that was started before expire() is destroyed."""
    service = ThreadService(shape)
    release = asyncio.Event()
    got: list[int] = []
    async with service.pool(max_size=1) as pool:
        holder = asyncio.create_task(hold(pool, release, got))
        await wait_until(lambda: service.calls == 1)
        pool.expire()
        service.finish()
        await wait_until(lambda: service.destroyed == [1] and got == [2])
        release.set()
        await within(holder)
        stats = pool.stats()
    assert service.peak == 1
    assert service.alive == set()
    assert (stats.created, stats.destroyed) == (2, 1)


async def test_pool_discard_held(caplog: pytest.LogCaptureFixture) -> None:
    """A discarded client is destroyed on release, with a warning naming it."""
    service = FakeService()
    async with service.pool() as pool:
        async with pool.acquire() as client:
            pool.discard(client)
            destroyed_while_held = client.destroyed
        destroyed_on_release = client.destroyed
        async with pool.acquire() as replacement:
            pass
    assert not destroyed_while_held
    assert destroyed_on_release
    assert replacement is not client
    warnings = messages(caplog.records, logging.WARNING)
    assert any("client #1 discarded" in line for line in warnings)


async def test_pool_discard_not_held() -> None:
    """discard() rejects an idle client and a foreign object."""
    service = FakeService()
    async with service.pool() as pool:
        async with pool.acquire() as client:
            pass
        with pytest.raises(ValueError, match="not checked out from pool 'fake'"):
            pool.discard(client)
        with pytest.raises(ValueError, match="not checked out"):
            pool.discard(FakeClient(99))


async def test_pool_resize_grows() -> None:
    """Raising max_size serves a waiter with a new client."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with service.pool(max_size=1) as pool:
        tasks = [asyncio.create_task(hold(pool, release, got)) for _ in range(2)]
        await wait_until(lambda: len(got) == 1 and pool.stats().waiting == 1)
        pool.resize(max_size=2)
        await wait_until(lambda: len(got) == 2)
        release.set()
        await within(asyncio.gather(*tasks))
    assert pool.options.max_size == 2


async def test_pool_resize_shrinks() -> None:
    """Lowering max_size destroys surplus idle clients now and busy ones on release."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with service.pool(max_size=4) as pool:
        tasks = [asyncio.create_task(hold(pool, release, got)) for _ in range(4)]
        await wait_until(lambda: len(got) == 4)
        release.set()
        await within(asyncio.gather(*tasks))
        pool.resize(max_size=1)
        await wait_until(lambda: pool.stats().size == 1)
        stats = pool.stats()
    assert (stats.idle, stats.destroyed) == (1, 3)


async def test_pool_resize_fills_min_size() -> None:
    """Raising min_size creates clients in the background."""
    service = FakeService()
    async with service.pool() as pool:
        await within(pool.open())
        pool.resize(min_size=2)
        await wait_until(lambda: pool.stats().idle == 2)


def test_pool_resize_invalid() -> None:
    """resize() rejects min_size above max_size and keeps the old sizes."""
    pool = FakeService().pool(max_size=3)
    with pytest.raises(ValueError, match="min_size"):
        pool.resize(min_size=4)
    assert (pool.options.min_size, pool.options.max_size) == (0, 3)


async def test_pool_stats_counts() -> None:
    """stats() counts creates, acquires, waits and destroys."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=1) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)
        waiter = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().waiting == 1)
        during = pool.stats()
        release.set()
        await within(asyncio.gather(holder, waiter))
        after = pool.stats()
    assert (during.size, during.idle, during.in_use, during.waiting) == (1, 0, 1, 1)
    assert (after.created, after.acquired, after.idle, after.waiting) == (1, 2, 1, 0)
    assert after.wait_time_total > 0
    assert pool.stats().destroyed == 1


async def test_pool_repr() -> None:
    """repr() is one line with the name, state and counts."""
    service = FakeService()
    async with service.pool() as pool, pool.acquire():
        text = repr(pool)
    assert text == "<ClientPool 'fake' open: 1 client (0 idle, 1 in use), 0 waiting, max_size=10>"


async def test_pool_logging(caplog: pytest.LogCaptureFixture) -> None:
    """Opening and closing log at INFO, acquire and release at DEBUG, each naming the pool."""
    caplog.set_level(logging.DEBUG, logger="asyncext.pool")
    service = FakeService()
    async with service.pool() as pool, pool.acquire():
        pass
    info = messages(caplog.records, logging.INFO)
    debug = messages(caplog.records, logging.DEBUG)
    records = [record for record in caplog.records if record.name == "asyncext.pool"]
    assert any(line.startswith("pool 'fake' opened") for line in info)
    assert any(line.startswith("pool 'fake' closed") for line in info)
    assert "pool 'fake': acquired client #1" in debug
    assert "pool 'fake': released client #1" in debug
    assert all("'fake'" in record.getMessage() for record in records)


async def test_pool_unclosed_warns() -> None:
    """An open pool that is garbage-collected warns how to close it."""
    pool = FakeService().pool()
    async with pool.acquire():
        pass
    with pytest.warns(ResourceWarning, match=r"await pool\.close\(\)"):
        del pool
        gc.collect()


def test_pool_rejects_bad_arguments() -> None:
    """The constructor rejects a create that is not callable and options of another type."""
    with pytest.raises(TypeError, match="create"):
        ClientPool(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PoolOptions"):
        ClientPool(FakeService().create, options={"max_size": 3})  # type: ignore[arg-type]


@pytest.mark.parametrize("returned", [object(), None], ids=["same-object", "none"])
async def test_pool_create_same_object_rejected(returned: object) -> None:
    """A create that returns an object the pool already holds fails that create only."""

    async def create() -> object:
        return returned

    pool = ClientPool(create, options=PoolOptions(max_size=2))
    async with pool:
        async with pool.acquire() as first:
            with pytest.raises(ConnectionFailed, match="already holds as client #1"):
                async with pool.acquire():
                    pass
        stats = pool.stats()

    assert first is returned
    assert (stats.size, stats.created, stats.create_errors) == (1, 1, 1)
    assert pool.stats().destroyed == 1
