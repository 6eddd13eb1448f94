"""ClientPool with max_leases > 1: one client shared by several holders at once."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from test_pool_support import (
    FakeClient,
    FakeService,
    bounded_test,  # noqa: F401 - an autouse fixture that bounds each test
    hold,
    wait_until,
    within,
)

from asyncext import ClientPool, PoolOptions


def shared_pool(
    service: FakeService, limits: dict[int, int | None] | None = None, **options: object
) -> ClientPool[FakeClient]:
    """Return a pool whose lease_limit reads ``limits`` by client number, if given."""

    def lease_limit(client: FakeClient) -> int | None:
        assert limits is not None
        return limits.get(client.number)

    return ClientPool(
        service.create,
        service.destroy,
        service.check,
        PoolOptions(**options),  # type: ignore[arg-type]
        name="shared",
        lease_limit=lease_limit if limits is not None else None,
    )


async def start_holders(
    pool: ClientPool[FakeClient], count: int, release: asyncio.Event, got: list[FakeClient]
) -> list[asyncio.Task[None]]:
    """Start ``count`` holders and wait until each has a client or waits for one."""
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(hold(pool, release, got)))
        await asyncio.sleep(0.001)
    await wait_until(lambda: len(got) + pool.stats().waiting == count)
    return tasks


async def test_pool_shared_client_serves_max_leases() -> None:
    """Six holders share two clients, three each."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with shared_pool(service, max_size=2, max_leases=3) as pool:
        tasks = await start_holders(pool, 6, release, got)
        stats = pool.stats()
        release.set()
        await within(asyncio.gather(*tasks))
    assert sorted(Counter(client.number for client in got).values()) == [3, 3]
    assert service.create_calls == 2
    assert (stats.size, stats.in_use, stats.waiting) == (2, 2, 0)


async def test_pool_shared_respects_max_size() -> None:
    """A seventh holder waits while two clients each serve three holders."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with shared_pool(service, max_size=2, max_leases=3) as pool:
        tasks = await start_holders(pool, 7, release, got)
        waiting = pool.stats().waiting
        release.set()
        await within(asyncio.gather(*tasks))
    assert waiting == 1
    assert len(got) == 7
    assert service.max_alive == 2


async def test_pool_shared_one_create_serves_waiters() -> None:
    """Three concurrent first acquires share the one client being created."""
    service = FakeService()
    service.create_delay = 0.02
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with shared_pool(service, max_leases=3) as pool:
        tasks = [asyncio.create_task(hold(pool, release, got)) for _ in range(3)]
        await wait_until(lambda: len(got) == 3)
        release.set()
        await within(asyncio.gather(*tasks))
    assert service.create_calls == 1
    assert len({id(client) for client in got}) == 1


async def test_pool_lease_limit_caps_holders() -> None:
    """A lease_limit of 2 under max_leases=5 gives each client two holders."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    limits: dict[int, int | None] = {1: 2, 2: 2}
    async with shared_pool(service, limits, max_leases=5) as pool:
        tasks = await start_holders(pool, 4, release, got)
        release.set()
        await within(asyncio.gather(*tasks))
    assert sorted(Counter(client.number for client in got).values()) == [2, 2]


async def test_pool_lease_limit_none_uses_max_leases() -> None:
    """A lease_limit of None leaves max_leases as the only limit."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with shared_pool(service, {}, max_leases=4) as pool:
        tasks = await start_holders(pool, 4, release, got)
        release.set()
        await within(asyncio.gather(*tasks))
    assert service.create_calls == 1


@pytest.mark.parametrize("limit", [0, -3])
async def test_pool_lease_limit_at_least_one(limit: int) -> None:
    """A lease_limit below 1 still lets each client serve one holder."""
    service = FakeService()
    release = asyncio.Event()
    got: list[FakeClient] = []
    async with shared_pool(service, {1: limit, 2: limit}, max_leases=3) as pool:
        tasks = await start_holders(pool, 2, release, got)
        release.set()
        await within(asyncio.gather(*tasks))
    assert [client.number for client in got] == [1, 2]


async def test_pool_lease_limit_lowered_while_held() -> None:
    """Holders beyond a lowered limit keep their client; new holders go elsewhere."""
    service = FakeService()
    first_release = asyncio.Event()
    later_release = asyncio.Event()
    got: list[FakeClient] = []
    later: list[FakeClient] = []
    limits: dict[int, int | None] = {}
    async with shared_pool(service, limits, max_leases=3) as pool:
        tasks = await start_holders(pool, 3, first_release, got)
        limits[1] = 1  # the server now allows one session on client #1
        tasks += await start_holders(pool, 1, later_release, later)
        holders_of_first = sum(1 for client in got if client.number == 1)
        first_release.set()
        later_release.set()
        await within(asyncio.gather(*tasks))
    assert holders_of_first == 3
    assert [client.number for client in later] == [2]


async def test_pool_discarded_shared_client() -> None:
    """A discarded shared client gets no new holders and is destroyed after the last."""
    service = FakeService()
    got: list[FakeClient] = []
    first_out = asyncio.Event()
    second_out = asyncio.Event()
    async with shared_pool(service, max_leases=3) as pool:
        first = asyncio.create_task(hold(pool, first_out, got))
        second = asyncio.create_task(hold(pool, second_out, got))
        await wait_until(lambda: len(got) == 2)
        shared = got[0]
        pool.discard(shared)

        async with pool.acquire() as newcomer:
            pass
        first_out.set()
        await within(first)
        destroyed_with_one_holder = shared.destroyed
        second_out.set()
        await within(second)
        destroyed_after_last = shared.destroyed
    assert got[1] is shared
    assert newcomer is not shared
    assert not destroyed_with_one_holder
    assert destroyed_after_last


async def test_pool_shared_cancelled_holder_retires_client() -> None:
    """A shared client whose holder was cancelled serves its other holders to the end."""
    service = FakeService()
    got: list[FakeClient] = []
    stay = asyncio.Event()
    async with shared_pool(service, max_leases=2) as pool:
        cancelled = asyncio.create_task(hold(pool, asyncio.Event(), got))
        other = asyncio.create_task(hold(pool, stay, got))
        await wait_until(lambda: len(got) == 2)
        cancelled.cancel()
        await within(asyncio.gather(cancelled, return_exceptions=True))
        destroyed_while_shared = got[0].destroyed

        async with pool.acquire() as newcomer:
            pass
        stay.set()
        await within(other)
    assert not destroyed_while_shared
    assert newcomer is not got[0]
    assert got[0].destroyed


async def test_pool_shared_body_error_checked() -> None:
    """A shared client whose block raised is checked before its next holder uses it."""
    service = FakeService()
    async with shared_pool(service, max_leases=2, check_interval=60) as pool:
        with pytest.raises(ValueError):
            async with pool.acquire() as first:
                raise ValueError("bad reply")
        async with pool.acquire() as second:
            pass
    assert second is first
    assert service.check_calls == 1
