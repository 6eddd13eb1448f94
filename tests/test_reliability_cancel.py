"""Cancellation storms: thousands of ``system.client()`` calls cancelled at random points.

Each storm runs waves of concurrent ``client()`` calls, cancels most of them after a random
delay, and then checks that no client leaked: the pool's counts balance, nothing is in use or
waiting, and the server side has exactly the pool's clients (none once the store is closed).
The random choices come from a seeded generator; set ``ASYNCEXT_STORM_SEED`` to replay one,
and every failure message names the seed.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from faults import established_connections, wait_until
from sshd import SSHServer

from asyncext import (
    Adapter,
    ClientPool,
    ExternalSystem,
    PoolOptions,
    PoolStats,
    PoolTimeout,
    SystemStore,
    register_adapter,
)

SEEDS = (
    [int(os.environ["ASYNCEXT_STORM_SEED"])] if "ASYNCEXT_STORM_SEED" in os.environ else [1, 2, 3]
)

SOON = 10.0
PHASES = ("waiting", "creating", "body", "releasing")


class BodyFailed(Exception):
    """Raised inside some client() blocks, so that their clients are checked before reuse."""


# --- an in-process service and its adapter -------------------------------------------------


@dataclass(eq=False)
class StormClient:
    service: StormService
    closed: bool = False


@dataclass
class StormService:
    """The other end of the storm adapter's clients: the open ones and the creates running."""

    rng: random.Random
    live: set[StormClient] = field(default_factory=set)
    creating: int = 0

    async def pause(self) -> None:
        """Wait zero to a few loop turns or up to 2 ms, as a network round trip would."""
        choice = self.rng.random()
        if choice < 0.3:
            return
        if choice < 0.7:
            for _ in range(self.rng.randint(1, 4)):
                await asyncio.sleep(0)
            return
        await asyncio.sleep(self.rng.random() * 0.002)


SERVICES: dict[str, StormService] = {}
"""The service of each storm system, by the system's host."""


@register_adapter
class StormAdapter(Adapter[StormClient]):
    """Clients of an in-process `StormService`, which takes a moment for every call."""

    system_type: ClassVar[str] = "storm-test"
    description: ClassVar[str] = "test adapter whose calls take random short pauses"

    async def get_client(self, system: ExternalSystem) -> StormClient:
        assert system.host is not None
        service = SERVICES[system.host]
        service.creating += 1
        try:
            await service.pause()
        finally:
            service.creating -= 1
        client = StormClient(service)
        service.live.add(client)
        return client

    async def destroy_client(self, client: StormClient) -> None:
        await client.service.pause()
        client.closed = True
        client.service.live.discard(client)

    async def check_client(self, client: StormClient) -> bool:
        await client.service.pause()
        return not client.closed


# --- the storm -----------------------------------------------------------------------------


@dataclass
class Storm:
    """Waves of client() calls, most cancelled after a random delay; counts where they were."""

    system: ExternalSystem
    rng: random.Random
    is_creating: Callable[[], bool] = lambda: False
    use: Callable[[Any], Any] | None = None
    hits: Counter[str] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)

    async def run(self, *, waves: int, size: int, max_delay: float) -> None:
        for _ in range(waves):
            tasks = [asyncio.ensure_future(self._attempt()) for _ in range(size)]
            for task in tasks:
                if self.rng.random() < 0.8:
                    delay = self.rng.random() * max_delay
                    asyncio.get_running_loop().call_later(delay, task.cancel)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*tasks, return_exceptions=True), SOON + max_delay
            )
            for outcome in outcomes:
                self.results[type(outcome).__name__] += 1

    async def _attempt(self) -> None:
        phase = "waiting"
        try:
            async with self.system.client() as client:
                phase = "body"
                if self.use is not None:
                    await self.use(client)
                else:
                    await client.service.pause()
                if self.rng.random() < 0.1:
                    raise BodyFailed
                phase = "releasing"
        except asyncio.CancelledError:
            if phase == "waiting" and self.is_creating():
                phase = "creating"
            self.hits[phase] += 1
            raise
        except BodyFailed:
            pass


def pool_stats(store: SystemStore) -> PoolStats:
    stats = store.pool_stats("storm")
    assert stats is not None, "system 'storm' has no pool yet"
    return stats


def pool_of(store: SystemStore) -> ClientPool[Any]:
    # NOTE: the store offers no public way to discard or expire one client of a system's
    # pool, so the sequential test reaches the pool through the store's private pools.
    assert store._pools is not None
    pool = store._pools.pool_for("storm")
    assert pool is not None, "system 'storm' has no pool yet"
    return pool


def is_settled(store: SystemStore) -> Callable[[], bool]:
    def check() -> bool:
        stats = pool_stats(store)
        return (
            stats.in_use == 0
            and stats.waiting == 0
            and stats.created - stats.destroyed == stats.size
            and stats.idle == stats.size
        )

    return check


# --- in-process storms ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
async def test_storm_pooled_clients_leak_nothing(tmp_path: Path, seed: int) -> None:
    """3000 pooled client() calls cancelled at random points leave every client accounted for."""
    rng = random.Random(seed)
    service = SERVICES[f"pooled-{seed}"] = StormService(rng)
    options = PoolOptions(max_size=8, max_uses=5, check_interval=0, acquire_timeout=SOON)
    async with SystemStore(tmp_path / "storm.db", pool=options) as store:
        system = await store.add("storm", "storm-test", host=f"pooled-{seed}")
        storm = Storm(system, rng, is_creating=lambda: service.creating > 0)
        await storm.run(waves=30, size=100, max_delay=0.01)

        await wait_until(is_settled(store), SOON, f"pool settling (seed {seed})")
        stats = pool_stats(store)
        async with system.client() as client:
            usable = not client.closed
        live_before_close = len(service.live)
        size_before_close = pool_stats(store).size
    live_after_close = len(service.live)

    assert stats.in_use == 0, f"seed {seed}: {stats}"
    assert stats.waiting == 0, f"seed {seed}: {stats}"
    assert stats.created - stats.destroyed == stats.size, f"seed {seed}: {stats}"
    assert live_before_close == size_before_close, f"seed {seed}: a client leaked"
    assert usable, f"seed {seed}: the pool handed out a closed client"
    assert live_after_close == 0, f"seed {seed}: clients left open after close"
    assert storm.results["PoolTimeout"] == 0, f"seed {seed}: {storm.results}"
    for phase in PHASES:
        assert storm.hits[phase] > 0, f"seed {seed}: no cancellation while {phase}: {storm.hits}"


@pytest.mark.parametrize("seed", SEEDS)
async def test_storm_unpooled_clients_leak_nothing(tmp_path: Path, seed: int) -> None:
    """3000 unpooled client() calls cancelled at random points close every client they open."""
    rng = random.Random(seed)
    service = SERVICES[f"unpooled-{seed}"] = StormService(rng)
    async with SystemStore(tmp_path / "storm.db") as store:
        system = await store.add("storm", "storm-test", host=f"unpooled-{seed}")
        storm = Storm(system, rng, is_creating=lambda: service.creating > 0)
        await storm.run(waves=30, size=100, max_delay=0.01)

    assert service.live == set(), f"seed {seed}: {len(service.live)} clients left open"
    # Without a pool nothing waits: a call is creating its own client until it has one.
    for phase in ("creating", "body", "releasing"):
        assert storm.hits[phase] > 0, f"seed {seed}: no cancellation while {phase}: {storm.hits}"


async def test_storm_sequential_faults_leak_no_slot(tmp_path: Path) -> None:
    """One task acquiring in turn through failures, discards and expiries never times out."""
    rng = random.Random(SEEDS[0])
    service = SERVICES["sequential"] = StormService(rng)
    options = PoolOptions(max_size=4, acquire_timeout=2.0, check_interval=0.0, max_idle=0.05)
    async with SystemStore(tmp_path / "storm.db", pool=options) as store:
        system = await store.add("storm", "storm-test", host="sequential")
        actions: Counter[str] = Counter()
        for _ in range(1500):
            action = rng.choice(["use", "fail", "cancel", "discard", "expire", "drop", "update"])
            actions[action] += 1
            if action == "update":
                system = await store.update("storm", options={"n": actions[action]})
            elif action == "expire":
                pool_of(store).expire()
            elif action == "drop":
                # The server ends some connections while they sit idle in the pool.
                for client in list(service.live):
                    if rng.random() < 0.5:
                        client.closed = True
            else:
                await run_one(system, store, rng, action)

        await wait_until(is_settled(store), SOON, f"pool settling (seed {SEEDS[0]})")
        stats = pool_stats(store)
    assert stats.timeouts == 0, f"seed {SEEDS[0]}: {stats}"
    assert service.live == set(), f"seed {SEEDS[0]}: {len(service.live)} clients left open"


async def run_one(
    system: ExternalSystem, store: SystemStore, rng: random.Random, action: str
) -> None:
    """Run one client() block that ends as ``action`` names: use, fail, cancel or discard."""

    async def block() -> None:
        async with system.client() as client:
            await client.service.pause()
            if action == "fail":
                raise BodyFailed
            if action == "discard":
                pool_of(store).discard(client)
            if action == "cancel":
                await asyncio.sleep(1)

    try:
        await asyncio.wait_for(block(), rng.random() * 0.003 if action == "cancel" else SOON)
    except (BodyFailed, asyncio.TimeoutError) as exc:
        assert not isinstance(exc, PoolTimeout), f"seed {SEEDS[0]}: {exc}"


# --- against sshd --------------------------------------------------------------------------


async def sftp_use(files: Any) -> None:
    await files.stat(".")


@pytest.mark.parametrize("seed", SEEDS[:1])
async def test_storm_sftp_pool_leaves_no_session(
    tmp_path: Path, start_sshd: Callable[..., SSHServer], seed: int
) -> None:
    """300 pooled SFTP client() calls cancelled at random leave sshd exactly the pool's sessions."""
    server = start_sshd()
    rng = random.Random(seed)
    options = PoolOptions(max_size=4, acquire_timeout=SOON)
    async with SystemStore(tmp_path / "storm.db", pool=options) as store:
        system = await store.add("storm", "sftp", **server.fields("sftp"))
        storm = Storm(system, rng, use=sftp_use)
        await storm.run(waves=10, size=30, max_delay=0.05)

        await wait_until(is_settled(store), SOON, f"pool settling (seed {seed})")
        await wait_until(
            lambda: established_connections(server.port) == pool_stats(store).size,
            SOON,
            f"sshd sessions matching the pool (seed {seed})",
        )
        async with system.client() as files:
            listing = await files.listdir()
    assert isinstance(listing, list)
    assert storm.hits["body"] > 0, f"seed {seed}: {storm.hits}"
    assert storm.results["PoolTimeout"] == 0, f"seed {seed}: {storm.results}"
    await wait_until(
        lambda: established_connections(server.port) == 0, SOON, f"sshd sessions (seed {seed})"
    )


async def test_storm_sftp_unpooled_leaves_no_session(
    tmp_path: Path, start_sshd: Callable[..., SSHServer]
) -> None:
    """Unpooled SFTP client() calls cancelled at random close every connection they opened."""
    server = start_sshd()
    rng = random.Random(SEEDS[0])
    system = server.system("sftp", name="storm")
    # Without a pool, a call is opening its own connection until it has one.
    storm = Storm(system, rng, is_creating=lambda: True, use=sftp_use)
    await storm.run(waves=4, size=15, max_delay=0.1)
    await wait_until(
        lambda: established_connections(server.port) == 0,
        SOON,
        f"sshd sessions (seed {SEEDS[0]})",
    )
    assert storm.hits["creating"] > 0, f"seed {SEEDS[0]}: {storm.hits}"
