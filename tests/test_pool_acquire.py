"""ClientPool.acquire: reuse, the max_size bound, first-come first-served order, timeouts
and create errors."""

from __future__ import annotations

import asyncio
import logging
import statistics

import pytest
from test_pool_support import (
    THREAD_SHAPES,
    FakeClient,
    FakeService,
    ThreadService,
    acquire_outcome,
    bounded_test,  # noqa: F401 - an autouse fixture that bounds each test
    hold,
    wait_until,
    within,
)

import asyncext._pool._calls
import asyncext._pool._supply
from asyncext import ClientPool, ConnectionFailed, EncryptionKeyError, PoolOptions, PoolTimeout


async def test_pool_acquire_reuses_client() -> None:
    """Two blocks in a row get the same client, created once."""
    service = FakeService()
    async with service.pool() as pool:
        async with pool.acquire() as first:
            pass
        async with pool.acquire() as second:
            pass
    assert first is second
    assert service.create_calls == 1


async def test_pool_acquire_opens_pool() -> None:
    """acquire() works without open() first."""
    service = FakeService()
    pool = service.pool()
    async with pool.acquire() as client:
        assert isinstance(client, FakeClient)
    await within(pool.close())


async def test_pool_acquire_never_exceeds_max_size() -> None:
    """Twenty holders of a pool of three never make more than three clients exist."""
    service = FakeService()
    service.create_delay = 0.001
    sizes: list[int] = []

    async with service.pool(max_size=3) as pool:

        async def use() -> None:
            async with pool.acquire():
                sizes.append(pool.stats().size)
                await asyncio.sleep(0.001)

        await within(asyncio.gather(*(use() for _ in range(20))))

    assert service.max_alive == 3
    assert max(sizes) == 3


async def test_pool_acquire_first_come_first_served() -> None:
    """Waiters get the client in the order they asked for it."""
    service = FakeService()
    order: list[int] = []
    async with service.pool(max_size=1) as pool:

        async def wait_turn(number: int) -> None:
            async with pool.acquire():
                order.append(number)

        async with pool.acquire():
            tasks = []
            for number in range(5):
                tasks.append(asyncio.create_task(wait_turn(number)))
                await wait_until(lambda: pool.stats().waiting == len(tasks))
        await within(asyncio.gather(*tasks))
    assert order == [0, 1, 2, 3, 4]


async def test_pool_release_goes_to_waiter_not_newcomer() -> None:
    """A released client goes to the waiter, not to a newcomer of the same loop turn."""
    service = FakeService()
    order: list[str] = []
    async with service.pool(max_size=1) as pool:

        async def take(label: str) -> None:
            async with pool.acquire():
                order.append(label)

        async with pool.acquire():
            waiter = asyncio.create_task(take("waiter"))
            await wait_until(lambda: pool.stats().waiting == 1)
        newcomer = asyncio.create_task(take("newcomer"))
        await within(asyncio.gather(waiter, newcomer))
    assert order == ["waiter", "newcomer"]


async def test_pool_no_starvation(caplog: pytest.LogCaptureFixture) -> None:
    """1000 tasks x 100 cycles on ten clients: no acquire waits much longer than typical.

    A wait is counted in acquires granted to others meanwhile, which does not depend on
    the machine's speed: with first-come first-served hand-off, every waiter lets the
    others already in line go first and nobody else.
    """
    # 200,000 debug lines would take most of the test's time.
    caplog.set_level(logging.INFO, logger="asyncext.pool")
    service = FakeService()
    granted = 0
    waits: list[int] = []

    async with service.pool(max_size=10) as pool:

        async def work() -> None:
            nonlocal granted
            for _ in range(100):
                before = granted
                async with pool.acquire():
                    granted += 1
                    waits.append(granted - before - 1)
                    await asyncio.sleep(0)

        await within(asyncio.gather(*(work() for _ in range(1000))), 10)

    typical = statistics.median(waits)
    assert len(waits) == 100_000
    assert typical > 900  # the other tasks ahead in line
    assert max(waits) <= 1.1 * typical


async def test_pool_acquire_timeout_during_slow_create() -> None:
    """A timeout while the only create hangs blames the server, not leaked clients."""
    service = FakeService()
    service.create_gate = asyncio.Event()
    async with service.pool(max_size=1, acquire_timeout=0.05, create_timeout=5) as pool:
        with pytest.raises(PoolTimeout) as caught:
            async with pool.acquire():
                pass
        service.create_gate.set()
    message = str(caught.value)
    assert "1 being created" in message
    assert "slow to accept connections" in message
    assert "leaks" not in message


async def test_pool_acquire_timeout() -> None:
    """A full pool raises PoolTimeout after acquire_timeout, naming the pool and limit."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=1, acquire_timeout=0.05) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)
        with pytest.raises(PoolTimeout) as caught:
            async with pool.acquire():
                pass
        release.set()
        await within(holder)
        stats = pool.stats()
    message = str(caught.value)
    assert isinstance(caught.value, TimeoutError)
    assert "'fake'" in message
    assert "acquire_timeout=0.05 s" in message
    assert "raise max_size" in message
    assert stats.timeouts == 1
    assert stats.waiting == 0


async def test_pool_acquire_timeout_covers_checks() -> None:
    """acquire_timeout bounds the whole acquire, a hanging health check included."""
    service = FakeService()
    async with service.pool(max_size=1, acquire_timeout=0.1, check_interval=0) as pool:
        async with pool.acquire():
            pass
        service.check_delay = 60
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(PoolTimeout):
            async with pool.acquire():
                pass
        elapsed = loop.time() - started
    assert elapsed < 1.0


async def test_pool_max_waiting() -> None:
    """Beyond max_waiting waiters, acquire fails at once instead of queueing."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=1, max_waiting=2) as pool:
        tasks = [asyncio.create_task(hold(pool, release, []))]
        await wait_until(lambda: pool.stats().in_use == 1)
        tasks += [asyncio.create_task(hold(pool, release, [])) for _ in range(2)]
        await wait_until(lambda: pool.stats().waiting == 2)
        with pytest.raises(PoolTimeout, match="max_waiting=2"):
            async with pool.acquire():
                pass
        release.set()
        await within(asyncio.gather(*tasks))


async def test_pool_create_error_reaches_waiter() -> None:
    """A failing create reaches the waiter as ConnectionFailed with the cause chained."""
    service = FakeService()
    service.create_error = OSError("authentication failed: wrong password")
    async with service.pool(acquire_timeout=5) as pool:
        error = await within(acquire_outcome(pool))
        stats = pool.stats()
    assert isinstance(error, ConnectionFailed)
    assert not isinstance(error, PoolTimeout)
    assert "wrong password" in str(error)
    assert "'fake'" in str(error)
    assert error.__cause__ is service.create_error
    assert stats.create_errors == 1


async def test_pool_create_error_passes_asyncext_errors() -> None:
    """An asyncext error from create reaches the waiter unchanged."""
    service = FakeService()
    service.create_error = EncryptionKeyError("the key of system 'x' is wrong")
    async with service.pool() as pool:
        error = await within(acquire_outcome(pool))
    assert error is service.create_error


async def test_pool_create_error_each_waiter() -> None:
    """Every waiter of a failing server gets the create error, none a timeout."""
    service = FakeService()
    service.create_error = ConnectionRefusedError("connection refused")
    async with service.pool(max_concurrent_creates=2, acquire_timeout=5) as pool:

        async def attempt() -> BaseException | None:
            try:
                async with pool.acquire():
                    return None
            except Exception as exc:
                return exc

        results = await within(asyncio.gather(*(attempt() for _ in range(6))))
    assert all(isinstance(result, ConnectionFailed) for result in results)
    assert not any(isinstance(result, PoolTimeout) for result in results)
    assert service.create_calls <= 2


async def test_pool_create_error_spares_waiters_of_live_client() -> None:
    """While a client lives, a failed create fails only the oldest waiter; the client
    serves the others."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=2, acquire_timeout=5) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)
        service.create_error = ConnectionRefusedError("connection refused")
        service.create_gate = asyncio.Event()

        # The gate holds the one create until all ten wait; then it fails, and later
        # creates succeed.
        attempts = [asyncio.create_task(acquire_outcome(pool)) for _ in range(10)]
        await wait_until(lambda: pool.stats().waiting == 10)
        service.create_gate.set()
        await wait_until(lambda: pool.stats().create_errors == 1)
        service.create_error = None
        release.set()
        results = await within(asyncio.gather(*attempts))
        await within(holder)

    failures = [result for result in results if isinstance(result, BaseException)]
    assert len(failures) == 1
    assert isinstance(failures[0], ConnectionFailed)
    assert results[0] is failures[0]
    assert pool.stats().create_errors == 1
    assert service.create_calls <= 2


async def test_pool_create_error_retired_client_serves_nobody() -> None:
    """A live client that is retired does not hold waiters back: all get the create error."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=2, acquire_timeout=3) as pool:

        async def discarding_holder() -> None:
            async with pool.acquire() as client:
                pool.discard(client)
                await release.wait()

        holder = asyncio.create_task(discarding_holder())
        await wait_until(lambda: pool.stats().in_use == 1)
        service.create_error = ConnectionRefusedError("connection refused")

        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await within(asyncio.gather(*(acquire_outcome(pool) for _ in range(5))))
        elapsed = loop.time() - started
        release.set()
        await within(holder)

    assert all(isinstance(result, ConnectionFailed) for result in results)
    assert elapsed < 1.0


async def test_pool_timeout_during_backoff_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller that times out while creates are held off is told why, with the error."""
    # A back-off longer than the acquire timeout, so that no create runs for the caller.
    monkeypatch.setattr(asyncext._pool._supply, "backoff_delay", lambda failures: 10.0)
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=2, acquire_timeout=0.2) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)
        service.create_error = OSError("login refused")
        first = await within(acquire_outcome(pool))
        late = await within(acquire_outcome(pool))
        release.set()
        await within(holder)

    assert isinstance(first, ConnectionFailed)
    assert isinstance(late, PoolTimeout)
    assert "created again after a back-off" in str(late)
    assert "login refused" in str(late)


async def test_pool_create_error_shared_by_waiters() -> None:
    """One failed create fails every waiter it leaves with nothing to wait for, each with
    its own exception chained to the same cause."""
    service = FakeService()
    service.create_gate = asyncio.Event()
    service.create_error = PermissionError("wrong password")
    async with service.pool(max_concurrent_creates=1, acquire_timeout=5) as pool:
        attempts = [asyncio.create_task(acquire_outcome(pool)) for _ in range(10)]
        await wait_until(lambda: pool.stats().waiting == 10)
        service.create_gate.set()
        results = await within(asyncio.gather(*attempts))
    assert all(isinstance(result, ConnectionFailed) for result in results)
    assert all(result.__cause__ is service.create_error for result in results)
    assert all("wrong password" in str(result) for result in results)
    assert len({id(result) for result in results}) == 10
    assert service.create_calls == 1


async def test_pool_create_error_one_attempt_per_create() -> None:
    """Twenty callers of a server that rejects the password make one attempt per create
    that max_concurrent_creates lets run, not one each."""
    service = FakeService()
    service.create_gate = asyncio.Event()
    service.create_error = PermissionError("wrong password")
    async with service.pool(max_size=4, max_concurrent_creates=4, acquire_timeout=5) as pool:
        attempts = [asyncio.create_task(acquire_outcome(pool)) for _ in range(20)]
        await wait_until(lambda: pool.stats().waiting == 20)
        service.create_gate.set()
        results = await within(asyncio.gather(*attempts))
    assert all(isinstance(result, ConnectionFailed) for result in results)
    assert service.create_calls == 4


async def test_pool_create_error_spares_covered_waiters() -> None:
    """A failed create leaves queued the waiters that the creates still in flight serve."""
    loop = asyncio.get_running_loop()
    outcomes: list[asyncio.Future[FakeClient]] = []

    async def create() -> FakeClient:
        outcome: asyncio.Future[FakeClient] = loop.create_future()
        outcomes.append(outcome)
        return await outcome

    options = PoolOptions(max_concurrent_creates=2, acquire_timeout=5)
    async with ClientPool(create, options=options, name="spared") as pool:
        attempts = [asyncio.create_task(acquire_outcome(pool)) for _ in range(3)]
        await wait_until(lambda: len(outcomes) == 2 and pool.stats().waiting == 3)
        outcomes[0].set_exception(PermissionError("wrong password"))
        await wait_until(lambda: attempts[0].done() and attempts[2].done())
        second_waiting = not attempts[1].done()
        client = FakeClient(2)
        outcomes[1].set_result(client)
        results = await within(asyncio.gather(*attempts))
    assert second_waiting
    assert isinstance(results[0], ConnectionFailed)
    assert results[1] is client
    assert isinstance(results[2], ConnectionFailed)
    assert len(outcomes) == 2


async def test_pool_create_error_not_timeout_later() -> None:
    """A waiter left queued for a create that then hangs gets, at its deadline, the error
    of the create that failed while it waited, not a timeout."""
    loop = asyncio.get_running_loop()
    outcomes: list[asyncio.Future[FakeClient]] = []

    async def create() -> FakeClient:
        outcome: asyncio.Future[FakeClient] = loop.create_future()
        outcomes.append(outcome)
        return await outcome

    cause = PermissionError("wrong password")
    options = PoolOptions(max_concurrent_creates=2, acquire_timeout=0.2)
    async with ClientPool(create, options=options, name="hung") as pool:
        attempts = [asyncio.create_task(acquire_outcome(pool)) for _ in range(2)]
        await wait_until(lambda: len(outcomes) == 2)
        outcomes[0].set_exception(cause)
        results = await within(asyncio.gather(*attempts))
        outcomes[1].set_exception(ConnectionResetError("the hung create ends"))
        stats = pool.stats()
    assert isinstance(results[1], ConnectionFailed)
    assert not isinstance(results[1], PoolTimeout)
    assert results[1].__cause__ is cause
    assert stats.timeouts == 0


async def test_pool_create_error_later_arrival_retries() -> None:
    """A caller that arrives after a create failed starts a create of its own."""
    service = FakeService()
    service.create_error = PermissionError("wrong password")
    async with service.pool() as pool:
        first = await within(acquire_outcome(pool))
        service.create_error = None
        second = await within(acquire_outcome(pool))
    assert isinstance(first, ConnectionFailed)
    assert isinstance(second, FakeClient)
    assert service.create_calls == 2


async def test_pool_slow_create_errors_not_timeouts() -> None:
    """Waiters behind one slow failing create get its error before their deadline."""
    service = FakeService()
    service.create_delay = 0.1
    service.create_error = PermissionError("wrong password")
    async with service.pool(max_size=2, max_concurrent_creates=1, acquire_timeout=0.5) as pool:
        results = await within(asyncio.gather(*(acquire_outcome(pool) for _ in range(10))))
    assert all(isinstance(result, ConnectionFailed) for result in results)
    assert not any(isinstance(result, PoolTimeout) for result in results)


async def test_pool_create_timeout() -> None:
    """A create slower than create_timeout fails as ConnectionFailed naming the option."""
    service = FakeService()
    service.create_delay = 60
    pool = service.pool(create_timeout=0.05, acquire_timeout=5)
    error = await within(acquire_outcome(pool))
    during = pool.stats()
    await within(pool.close(timeout=0.05))
    after = pool.stats()
    assert isinstance(error, ConnectionFailed)
    assert "create_timeout" in str(error)
    assert during.size == 1  # the slow create keeps its place until it ends
    assert during.create_errors == 1
    assert after.size == 0


@pytest.mark.parametrize("shape", THREAD_SHAPES)
async def test_pool_create_timeout_thread_keeps_place(shape: str) -> None:
    """Creates in worker threads that time out keep their place until their client is
    destroyed, so no more than max_size clients ever exist."""
    service = ThreadService(shape)
    async with service.pool(max_size=2, create_timeout=0.05, acquire_timeout=0.3) as pool:

        async def attempt() -> BaseException | None:
            try:
                async with pool.acquire():
                    return None
            except Exception as exc:
                return exc

        results = await within(asyncio.gather(*(attempt() for _ in range(20))))
        calls_while_stuck = service.calls
        service.finish()
        await wait_until(lambda: len(service.destroyed) == service.calls)
        async with pool.acquire() as client:
            pass
    assert all(isinstance(result, ConnectionFailed) for result in results)
    assert calls_while_stuck == 2
    assert service.peak <= 2
    assert client == 3  # made after the two late clients were destroyed
    assert service.alive == set()


async def test_pool_late_client_destroyed() -> None:
    """A client that create returns after its timeout is destroyed, not handed out."""
    service = FakeService()
    service.create_gate = asyncio.Event()
    async with service.pool(create_timeout=0.01, acquire_timeout=5) as pool:
        with pytest.raises(ConnectionFailed):
            async with pool.acquire():
                pass
        size_while_creating = pool.stats().size
        service.create_gate.set()
        await wait_until(lambda: len(service.destroyed) == 1)
        stats = pool.stats()
    assert size_while_creating == 1
    assert service.destroyed == service.created
    assert (stats.size, stats.created, stats.destroyed) == (0, 1, 1)


async def test_pool_hung_create_cancelled_after_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A create that hangs past create_timeout is cancelled after the grace period, which
    frees its place for a new create."""
    monkeypatch.setattr(asyncext._pool._calls, "CREATE_GRACE_MIN", 0.1)
    service = FakeService()
    service.create_gate = asyncio.Event()
    async with service.pool(max_size=1, create_timeout=0.05, acquire_timeout=5) as pool:
        with pytest.raises(ConnectionFailed):
            async with pool.acquire():
                pass
        size_while_creating = pool.stats().size
        await wait_until(lambda: pool.stats().size == 0)
        service.create_gate.set()
        async with pool.acquire() as client:
            pass
    assert size_while_creating == 1
    assert service.created == [client]
    assert service.create_calls == 2


async def test_pool_timeout_names_last_create_error() -> None:
    """A timeout while creates fail includes the last create error."""
    service = FakeService()
    release = asyncio.Event()
    async with service.pool(max_size=2, acquire_timeout=0.1) as pool:
        holder = asyncio.create_task(hold(pool, release, []))
        await wait_until(lambda: pool.stats().in_use == 1)
        service.create_error = OSError("no route to host")
        with pytest.raises(ConnectionFailed):
            async with pool.acquire():
                pass
        service.create_gate = asyncio.Event()  # the next create hangs
        with pytest.raises(PoolTimeout, match="no route to host"):
            async with pool.acquire():
                pass
        service.create_gate.set()
        release.set()
        await within(holder)


async def test_pool_lease_entered_twice() -> None:
    """One acquire() context manager cannot hold two clients at once."""
    service = FakeService()
    async with service.pool() as pool:
        lease = pool.acquire()
        async with lease:
            with pytest.raises(RuntimeError, match=r"call pool\.acquire"):
                await lease.__aenter__()
