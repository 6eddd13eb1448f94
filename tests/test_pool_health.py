"""ClientPool health: checks on acquire, retirement by idle time, lifetime and uses, and
keeping min_size filled."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest
from test_pool_support import (
    FakeClient,
    FakeService,
    acquire_outcome,
    bounded_test,  # noqa: F401 - an autouse fixture that bounds each test
    hold,
    messages,
    wait_until,
    within,
)

import asyncext._pool._calls
from asyncext import ClientPool, ConnectionFailed, PoolClosed, PoolOptions, PoolTimeout
from asyncext._pool._calls import backoff_delay


async def test_pool_check_when_idle_past_interval() -> None:
    """An idle client unused for check_interval is checked before it is handed out."""
    service = FakeService()
    async with service.pool(check_interval=0) as pool:
        async with pool.acquire():
            pass
        async with pool.acquire():
            pass
    assert service.check_calls == 1


async def test_pool_no_check_within_interval() -> None:
    """A client used within check_interval is handed out unchecked."""
    service = FakeService()
    async with service.pool(check_interval=60) as pool:
        for _ in range(3):
            async with pool.acquire():
                pass
    assert service.check_calls == 0


async def test_pool_check_on_acquire_off() -> None:
    """check_on_acquire=False never checks a client whose block ended normally."""
    service = FakeService()
    async with service.pool(check_interval=0, check_on_acquire=False) as pool:
        for _ in range(3):
            async with pool.acquire():
                pass
    assert service.check_calls == 0


async def test_pool_failed_check_creates_new(caplog: pytest.LogCaptureFixture) -> None:
    """A client that fails its check is destroyed and a new one handed out, with a warning."""
    service = FakeService()
    async with service.pool(check_interval=0) as pool:
        async with pool.acquire() as first:
            pass
        first.alive = False
        async with pool.acquire() as second:
            pass
        stats = pool.stats()
    assert second is not first
    assert first.destroyed
    assert stats.failed_checks == 1
    warnings = messages(caplog.records, logging.WARNING)
    assert any("client #1" in line and "returned false" in line for line in warnings)


async def test_pool_check_exception_is_failure(caplog: pytest.LogCaptureFixture) -> None:
    """A check that raises counts as failed, and the warning names the exception."""

    async def broken_check(client: FakeClient) -> bool:
        raise OSError("connection reset by peer")

    service = FakeService()
    options = PoolOptions(check_interval=0)
    async with ClientPool(service.create, service.destroy, broken_check, options) as pool:
        async with pool.acquire() as first:
            pass
        async with pool.acquire() as second:
            pass
        stats = pool.stats()
    assert second is not first
    assert stats.failed_checks == 1
    assert any(
        "OSError: connection reset by peer" in line
        for line in messages(caplog.records, logging.WARNING)
    )


async def test_pool_all_idle_dead_recover_fast() -> None:
    """With ten dead idle clients and slow checks, a fresh client comes in one check's time."""
    service = FakeService()
    async with service.pool(check_interval=0) as pool:
        async with pool.acquire() as first:  # noqa: SIM117 - ten clients held at once
            async with pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire():
                async with pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire():
                    async with pool.acquire():
                        pass
        dead = list(service.created)
        for client in dead:
            client.alive = False
        service.check_delay = 0.1  # a check of a dead server often ends only by timing out

        loop = asyncio.get_running_loop()
        started = loop.time()
        async with pool.acquire() as fresh:
            elapsed = loop.time() - started
        await wait_until(lambda: all(client.destroyed for client in dead))
        stats = pool.stats()
    assert len(dead) == 10
    assert first in dead
    assert fresh not in dead
    assert elapsed < 0.5  # checking ten clients one after another takes 1 s
    assert service.check_calls == 10
    assert stats.failed_checks == 10


async def test_pool_hanging_check_moves_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """An acquire whose check hangs gets a new client after the check's bound."""
    monkeypatch.setattr(asyncext._pool._calls, "CHECK_TIMEOUT", 0.05)
    service = FakeService()
    async with service.pool(check_interval=0, acquire_timeout=30) as pool:
        async with pool.acquire() as first:
            pass
        service.check_delay = 60

        loop = asyncio.get_running_loop()
        started = loop.time()
        second = await within(acquire_outcome(pool))
        elapsed = loop.time() - started
        stats = pool.stats()
    assert isinstance(second, FakeClient)
    assert second is not first
    assert first.destroyed
    assert elapsed < 1.0
    assert stats.failed_checks == 1


async def test_pool_check_bounded_by_create_timeout() -> None:
    """A create_timeout shorter than the check bound lowers the bound to it."""
    service = FakeService()
    options = {"check_interval": 0, "acquire_timeout": 30, "create_timeout": 0.05}
    async with service.pool(**options) as pool:
        async with pool.acquire() as first:
            pass
        service.check_delay = 60

        loop = asyncio.get_running_loop()
        started = loop.time()
        second = await within(acquire_outcome(pool))
        elapsed = loop.time() - started
    assert isinstance(second, FakeClient)
    assert second is not first
    assert elapsed < 1.0


async def test_pool_all_idle_checks_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ten idle clients whose checks hang, a fresh client comes after one bound."""
    monkeypatch.setattr(asyncext._pool._calls, "CHECK_TIMEOUT", 0.1)
    service = FakeService()
    async with service.pool(check_interval=0, acquire_timeout=30) as pool:
        async with pool.acquire():  # noqa: SIM117 - ten clients held at once
            async with pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire():
                async with pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire():
                    async with pool.acquire():
                        pass
        stale = list(service.created)
        service.check_delay = 60

        loop = asyncio.get_running_loop()
        started = loop.time()
        fresh = await within(acquire_outcome(pool))
        elapsed = loop.time() - started
        await wait_until(lambda: all(client.destroyed for client in stale))
        stats = pool.stats()
    assert len(stale) == 10
    assert fresh not in stale
    assert elapsed < 0.5  # the ten checks one after another take 1 s
    assert stats.failed_checks == 10


async def test_pool_failed_check_keeps_healthy_peers() -> None:
    """Idle clients rechecked after a peer failed return to service when they pass."""
    service = FakeService()
    async with service.pool(check_interval=0) as pool:
        async with pool.acquire() as newer, pool.acquire() as older:
            pass
        newer.alive = False  # released last, so it is handed out first
        async with pool.acquire() as client:
            pass
        await wait_until(lambda: service.check_calls == 2 and pool.stats().in_use == 0)
        stats = pool.stats()
        older_destroyed = older.destroyed
    assert client is not newer
    assert newer.destroyed
    assert not older_destroyed
    assert stats.failed_checks == 1


async def test_pool_body_error_checks_before_reuse() -> None:
    """A client whose block raised is checked before its next use, whatever the interval."""
    service = FakeService()
    async with service.pool(check_interval=60) as pool:
        with pytest.raises(ValueError):
            async with pool.acquire() as first:
                raise ValueError("bad reply")
        async with pool.acquire() as second:
            pass
    assert second is first
    assert service.check_calls == 1


async def test_pool_body_error_failed_check_destroys() -> None:
    """A client whose block raised and whose check fails is replaced."""
    service = FakeService()
    async with service.pool(check_interval=60) as pool:
        with pytest.raises(ValueError):
            async with pool.acquire() as first:
                first.alive = False
                raise ValueError("connection lost")
        async with pool.acquire() as second:
            pass
    assert second is not first
    assert first.destroyed


async def test_pool_body_error_without_check() -> None:
    """Without a check function, a client whose block raised is reused."""
    service = FakeService()
    async with service.pool(check=False) as pool:
        with pytest.raises(ValueError):
            async with pool.acquire() as first:
                raise ValueError("bad reply")
        async with pool.acquire() as second:
            pass
    assert second is first


async def test_pool_max_idle_retires() -> None:
    """An idle client unused for max_idle is destroyed in the background."""
    service = FakeService()
    async with service.pool(max_idle=0.05) as pool:
        async with pool.acquire() as client:
            pass
        await wait_until(lambda: pool.stats().size == 0)
    assert client.destroyed


async def test_pool_max_idle_keeps_min_size() -> None:
    """max_idle does not shrink the pool below min_size."""
    service = FakeService()
    async with service.pool(min_size=1, max_idle=0.02) as pool:
        await within(pool.open(wait=True))
        await asyncio.sleep(0.2)  # ten times max_idle
        stats = pool.stats()
    assert (stats.size, stats.destroyed) == (1, 0)


async def test_pool_max_lifetime_retires_on_release() -> None:
    """A client past max_lifetime is destroyed when it comes back."""
    service = FakeService()
    async with service.pool(max_lifetime=0.05) as pool:
        async with pool.acquire() as first:
            await asyncio.sleep(0.1)
        destroyed = first.destroyed
        async with pool.acquire() as second:
            pass
    assert destroyed
    assert second is not first


async def test_pool_max_lifetime_retires_idle() -> None:
    """An idle client past max_lifetime is destroyed in the background."""
    service = FakeService()
    async with service.pool(max_lifetime=0.05) as pool:
        async with pool.acquire() as client:
            pass
        await wait_until(lambda: client.destroyed)


async def test_pool_lifetime_jitter() -> None:
    """Clients created together get lifetimes up to 10 % shorter, not all the same."""
    service = FakeService()
    async with service.pool(max_size=20, max_lifetime=100) as pool:
        got: list[FakeClient] = []
        release = asyncio.Event()

        async def hold_one() -> None:
            async with pool.acquire() as client:
                got.append(client)
                await release.wait()

        tasks = [asyncio.create_task(hold_one()) for _ in range(20)]
        await wait_until(lambda: len(got) == 20)
        lifetimes = [entry.expires_at - entry.last_used for entry in pool._entries.values()]
        release.set()
        await within(asyncio.gather(*tasks))
    assert len(lifetimes) == 20
    assert all(90 <= lifetime <= 100 for lifetime in lifetimes)
    assert len({round(lifetime, 6) for lifetime in lifetimes}) > 1


async def test_pool_max_uses() -> None:
    """A client is destroyed after max_uses leases."""
    service = FakeService()
    async with service.pool(max_uses=2) as pool:
        clients = []
        for _ in range(3):
            async with pool.acquire() as client:
                clients.append(client)
    assert clients[0] is clients[1]
    assert clients[2] is not clients[0]
    assert clients[0].destroyed


async def test_pool_open_wait_fills_min_size() -> None:
    """open(wait=True) returns once min_size clients are idle."""
    service = FakeService()
    pool = service.pool(min_size=3)
    await within(pool.open(wait=True))
    stats = pool.stats()
    await within(pool.close())
    assert (stats.size, stats.idle) == (3, 3)


async def test_pool_min_size_refilled() -> None:
    """A retired client of the min_size set is replaced in the background."""
    service = FakeService()
    async with service.pool(min_size=2) as pool:
        await within(pool.open(wait=True))
        async with pool.acquire() as client:
            pool.discard(client)
        await wait_until(lambda: service.create_calls == 3 and pool.stats().idle == 2)


async def test_pool_min_size_backoff(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failing creates for min_size are retried after growing delays, each one logged."""
    monkeypatch.setattr(asyncext._pool._calls, "FILL_BACKOFF_INITIAL", 0.05)
    loop = asyncio.get_running_loop()
    attempts: list[float] = []

    async def flaky_create() -> FakeClient:
        attempts.append(loop.time())
        if len(attempts) <= 3:
            raise ConnectionRefusedError("connection refused")
        return FakeClient(len(attempts))

    async with ClientPool(flaky_create, options=PoolOptions(min_size=1)) as pool:
        await wait_until(lambda: pool.stats().idle == 1)
        stats = pool.stats()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(attempts) == 4
    assert stats.create_errors == 3
    assert gaps[0] >= 0.025
    assert gaps[2] > gaps[0]
    failures = [
        line
        for line in messages(caplog.records, logging.WARNING)
        if "creating a client failed: ConnectionRefusedError" in line
    ]
    assert len(failures) == 3


def test_backoff_delay_doubles_with_jitter() -> None:
    """Each delay lies in the upper half of a ceiling that doubles up to the maximum."""
    initial = asyncext._pool._calls.FILL_BACKOFF_INITIAL
    maximum = asyncext._pool._calls.FILL_BACKOFF_MAX
    for failures in range(1, 40):
        ceiling = min(maximum, initial * 2 ** (failures - 1))
        delay = backoff_delay(failures)
        assert ceiling / 2 <= delay <= ceiling
    assert len({backoff_delay(5) for _ in range(20)}) > 1


async def test_pool_open_wait_fails_early() -> None:
    """open(wait=True) raises the first create error at once, and leaves the pool closed."""
    service = FakeService()
    service.create_error = OSError("host unreachable")
    pool = service.pool(min_size=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionFailed, match="host unreachable"):
        await within(pool.open(wait=True, timeout=30))
    elapsed = loop.time() - started
    with pytest.raises(PoolClosed):
        async with pool.acquire():
            pass
    assert elapsed < 1.0


async def test_pool_open_wait_timeout() -> None:
    """open(wait=True) raises PoolTimeout when min_size is not reached in time, and the
    pool it closes destroys the client whose create ends during the close."""
    service = FakeService()
    service.create_gate = asyncio.Event()
    pool = service.pool(min_size=1)
    opening = asyncio.create_task(pool.open(wait=True, timeout=0.05))
    await wait_until(lambda: " closing:" in repr(pool))
    service.create_gate.set()
    with pytest.raises(PoolTimeout, match="min_size=1"):
        await within(opening)
    assert len(service.created) == 1
    assert service.alive == 0


def closed_probe_pool(
    service: FakeService, is_closed: Callable[[FakeClient], bool], **options: Any
) -> ClientPool[FakeClient]:
    """Return a pool over ``service`` whose checks are never due, with ``is_closed``."""
    return ClientPool(
        service.create,
        service.destroy,
        service.check,
        PoolOptions(check_interval=3600, acquire_timeout=5, **options),
        name="fake",
        is_closed=is_closed,
    )


async def test_pool_is_closed_retires_before_check_due() -> None:
    """A client that reports itself closed is replaced even within check_interval."""
    service = FakeService()
    async with closed_probe_pool(service, lambda client: not client.alive) as pool:
        async with pool.acquire() as first:
            pass
        first.alive = False
        async with pool.acquire() as second:
            pass
    stats = pool.stats()

    assert second is not first
    assert first.destroyed
    assert service.check_calls == 0
    assert (stats.created, stats.destroyed) == (2, 2)


async def test_pool_is_closed_error_retires(caplog: pytest.LogCaptureFixture) -> None:
    """An is_closed that raises retires the client before any holder gets it, with a
    WARNING naming the pool."""

    def broken(client: FakeClient) -> bool:
        if client.number == 1:
            raise RuntimeError("probe failed")
        return False

    service = FakeService()
    async with closed_probe_pool(service, broken) as pool:
        async with pool.acquire() as first:
            pass
        async with pool.acquire() as second:
            pass

    assert (first.number, second.number) == (2, 2)
    assert service.created[0].destroyed
    assert any(
        "is_closed failed for client #1" in text
        for text in messages(caplog.records, logging.WARNING)
    )


async def test_pool_is_closed_skips_shared_client() -> None:
    """A shared client that reports itself closed takes no new holders."""
    service = FakeService()
    release = asyncio.Event()
    async with closed_probe_pool(service, lambda client: not client.alive, max_leases=4) as pool:
        got: list[FakeClient] = []
        holder = asyncio.create_task(hold(pool, release, got))
        await wait_until(lambda: len(got) == 1)
        got[0].alive = False
        async with pool.acquire() as other:
            pass
        release.set()
        await within(holder)

    assert other is not got[0]


@pytest.mark.parametrize("max_leases", [1, 3])
async def test_pool_is_closed_at_release_not_handed_over(max_leases: int) -> None:
    """A client that reports itself closed when its holders release it goes to no waiter."""
    service = FakeService()
    release = asyncio.Event()
    pool = closed_probe_pool(
        service, lambda client: not client.alive, max_size=1, max_leases=max_leases
    )
    async with pool:
        got: list[FakeClient] = []
        holders = [asyncio.create_task(hold(pool, release, got)) for _ in range(min(max_leases, 2))]
        await wait_until(lambda: len(got) == len(holders))
        got[0].alive = False
        waiter = asyncio.create_task(acquire_outcome(pool))
        await wait_until(lambda: pool.stats().waiting == 1 or waiter.done())
        release.set()
        await within(asyncio.gather(*holders))
        handed = await within(waiter)

    assert isinstance(handed, FakeClient)
    assert handed is not got[0]
    assert got[0].destroyed


async def test_pool_is_closed_raising_base_exception_keeps_client() -> None:
    """A probe that raises a BaseException loses no client: it stays idle and counted."""

    class Interrupt(BaseException):
        pass

    calls: list[FakeClient] = []

    def interrupting(client: FakeClient) -> bool:
        calls.append(client)
        if len(calls) == 3:
            raise Interrupt
        return False

    service = FakeService()
    async with closed_probe_pool(service, interrupting) as pool:
        async with pool.acquire():
            pass
        with pytest.raises(Interrupt):
            async with pool.acquire():
                pass
        stats = pool.stats()
        async with pool.acquire() as again:
            pass

    assert (stats.size, stats.idle) == (1, 1)
    assert again is service.created[0]


async def test_pool_shared_check_waits_for_other_holders() -> None:
    """A shared client whose holder raised is not checked, nor destroyed, while another
    holder is inside it; it is checked once idle."""
    service = FakeService()
    inside: list[FakeClient] = []
    destroyed_while_held: list[FakeClient] = []

    async def destroy(client: FakeClient) -> None:
        if client in inside:
            destroyed_while_held.append(client)
        await service.destroy(client)

    pool = ClientPool(
        service.create,
        destroy,
        service.check,
        PoolOptions(max_size=1, max_leases=3, acquire_timeout=5),
        name="fake",
    )
    async with pool:
        first_done, keep = asyncio.Event(), asyncio.Event()

        async def holder(raises: bool, until: asyncio.Event) -> None:
            async with pool.acquire() as client:
                inside.append(client)
                try:
                    await until.wait()
                    if raises:
                        raise ValueError("the holder's own error")
                finally:
                    inside.remove(client)

        quiet = asyncio.create_task(holder(False, first_done))
        failing = asyncio.create_task(holder(True, first_done))
        staying = asyncio.create_task(holder(False, keep))
        await wait_until(lambda: len(inside) == 3)
        waiter = asyncio.create_task(acquire_outcome(pool))
        await wait_until(lambda: pool.stats().waiting == 1)

        service.created[0].alive = False
        first_done.set()
        await asyncio.gather(quiet, failing, return_exceptions=True)
        handed = await within(waiter)
        keep.set()
        await within(staying)
        async with pool.acquire() as after:
            pass

    assert destroyed_while_held == []
    assert handed is service.created[0]
    assert after is not service.created[0]
    assert service.created[0].destroyed
