"""A store with pooling on: one pool per system, kept in step with the stored record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from test_pool_support import wait_until

from asyncext import (
    Adapter,
    ConnectionFailed,
    ExternalSystem,
    InvalidSystem,
    LocalFileClient,
    PoolClosed,
    PoolOptions,
    SystemNotFound,
    SystemStore,
    register_adapter,
)

COUNTING = "pooltest-counting"


class CountingClient:
    """Remembers the record it was made from."""

    def __init__(self, system: ExternalSystem, number: int) -> None:
        self.host = system.host
        self.revision = system.revision
        self.number = number
        self.destroyed = False

    def __repr__(self) -> str:
        return f"<CountingClient #{self.number} host={self.host!r}>"


@register_adapter
class CountingAdapter(Adapter[CountingClient]):
    """Counts the clients that the store's pools create and destroy."""

    system_type = COUNTING
    description = "counts pooled clients (asyncext's pool tests)"

    created: ClassVar[list[CountingClient]] = []
    destroyed: ClassVar[list[CountingClient]] = []
    healthy: ClassVar[bool] = True
    limit: ClassVar[int | None] = None

    async def get_client(self, system: ExternalSystem) -> CountingClient:
        client = CountingClient(system, len(self.created) + 1)
        self.created.append(client)
        return client

    async def destroy_client(self, client: CountingClient) -> None:
        client.destroyed = True
        self.destroyed.append(client)

    async def check_client(self, client: CountingClient) -> bool:
        return CountingAdapter.healthy

    def lease_limit(self, client: CountingClient) -> int | None:
        return CountingAdapter.limit


@pytest.fixture(autouse=True)
def reset_counts() -> Iterator[None]:
    CountingAdapter.created.clear()
    CountingAdapter.destroyed.clear()
    CountingAdapter.healthy = True
    CountingAdapter.limit = None
    yield


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SystemStore]:
    async with SystemStore(tmp_path / "systems.db", pool=PoolOptions(max_size=4)) as opened:
        yield opened


async def use(system: ExternalSystem) -> Any:
    """Enter and leave one client block; return the client."""
    async with system.client() as client:
        return client


def pools_of(store: SystemStore) -> Any:
    assert store._pools is not None
    return store._pools


async def test_store_pools_local_client_reused(store: SystemStore, tmp_path: Path) -> None:
    """Two blocks on a local system get the same pooled client, which works."""
    system = await store.add("docs", "local", remote_path=str(tmp_path))
    async with system.client() as first:
        await first.write_text("note.txt", "kept")
    async with system.client() as second:
        text = await second.read_text("note.txt")
    assert isinstance(first, LocalFileClient)
    assert second is first
    assert text == "kept"


async def test_store_pools_one_per_system(store: SystemStore) -> None:
    """Each system gets its own pool, named after it, built on first use."""
    alpha = await store.add("alpha", COUNTING, host="a.example")
    beta = await store.add("beta", COUNTING, host="b.example")
    before = pools_of(store).pool_for("alpha")
    await use(alpha)
    await use(beta)
    assert before is None
    assert pools_of(store).pool_for("alpha").name == "alpha"
    assert pools_of(store).pool_for("beta").name == "beta"
    assert len(CountingAdapter.created) == 2


async def test_store_pools_override_options(store: SystemStore) -> None:
    """options['pool'] overrides single fields of the store's options for one system."""
    tuned = await store.add(
        "tuned", COUNTING, host="t.example", options={"pool": {"max_size": 1, "max_leases": 2}}
    )
    plain = await store.add("plain", COUNTING, host="p.example")
    await use(tuned)
    await use(plain)
    tuned_options = pools_of(store).pool_for("tuned").options
    plain_options = pools_of(store).pool_for("plain").options
    assert (tuned_options.max_size, tuned_options.max_leases) == (1, 2)
    assert (plain_options.max_size, plain_options.max_leases) == (4, 1)


async def test_store_pools_update_retires_idle(store: SystemStore) -> None:
    """After update(), the idle client of the old record is destroyed and not reused."""
    system = await store.add("api", COUNTING, host="old.example")
    old = await use(system)
    updated = await store.update("api", host="new.example")
    new = await use(updated)
    assert old.destroyed
    assert (new.host, new.revision) == ("new.example", 2)


async def test_store_pools_update_retires_busy_on_release(store: SystemStore) -> None:
    """A client in use during update() serves its holder, then is destroyed."""
    system = await store.add("api", COUNTING, host="old.example")
    async with system.client() as old:
        updated = await store.update("api", host="new.example")
        destroyed_while_held = old.destroyed
    new = await use(system)  # even through the stale record
    assert not destroyed_while_held
    assert old.destroyed
    assert new.host == "new.example"
    assert updated.revision == 2


async def test_store_pools_update_renames(store: SystemStore) -> None:
    """A renamed system keeps its pool under the new name."""
    system = await store.add("old-name", COUNTING, host="h.example")
    await use(system)
    pool = pools_of(store).pool_for("old-name")
    renamed = await store.update("old-name", name="new-name")
    client = await use(renamed)
    assert pools_of(store).pool_for("old-name") is None
    assert pools_of(store).pool_for("new-name") is pool
    assert pool.name == "new-name"
    assert client.revision == 2


async def test_store_pools_update_applies_overrides(store: SystemStore) -> None:
    """Changed pool overrides apply to the system's existing pool."""
    system = await store.add("api", COUNTING, host="h.example", options={"pool": {"max_size": 3}})
    await use(system)
    pool = pools_of(store).pool_for("api")
    await store.update("api", options={"pool": {"max_size": 1}})
    assert pools_of(store).pool_for("api") is pool
    assert pool.options.max_size == 1


async def test_store_pools_update_changes_type(store: SystemStore, tmp_path: Path) -> None:
    """A system that changes type gets a new pool with the new adapter."""
    system = await store.add("files", COUNTING, host="h.example")
    old = await use(system)
    changed = await store.update("files", system_type="local", remote_path=str(tmp_path))
    client = await use(changed)
    await wait_until(lambda: old.destroyed)  # the old pool closes in the background
    assert isinstance(client, LocalFileClient)


async def test_store_pools_newer_revision_elsewhere(store: SystemStore, tmp_path: Path) -> None:
    """A record updated by another store on the same file retires the older clients."""
    system = await store.add("api", COUNTING, host="old.example")
    old = await use(system)
    async with SystemStore(tmp_path / "systems.db") as other:
        await other.update("api", host="new.example")
    newer = await store.get("api")
    new = await use(newer)
    stale = await use(system)  # an older record no longer goes back
    assert old.destroyed
    assert (new.host, new.revision) == ("new.example", 2)
    assert stale is new


async def test_store_pools_remove_closes_pool(store: SystemStore) -> None:
    """remove() closes the system's pool and destroys its clients."""
    system = await store.add("api", COUNTING, host="h.example")
    client = await use(system)
    pool = pools_of(store).pool_for("api")
    await store.remove("api")
    assert client.destroyed
    assert pools_of(store).pool_for("api") is None
    assert " closed:" in repr(pool)


async def test_store_pools_close_closes_pools(tmp_path: Path) -> None:
    """Closing the store destroys pooled clients; its records then refuse client()."""
    async with SystemStore(tmp_path / "systems.db", pool=PoolOptions()) as store:
        system = await store.add("api", COUNTING, host="h.example")
        client = await use(system)
    assert client.destroyed
    with pytest.raises(PoolClosed, match="'api'"):
        await use(system)


async def test_store_pools_invalid_override_rejected(store: SystemStore) -> None:
    """add() rejects a pool override with a bad value or key, naming system and key."""
    with pytest.raises(InvalidSystem, match=r"'api'.*'max_size'") as bad_value:
        await store.add("api", COUNTING, options={"pool": {"max_size": 0}})
    with pytest.raises(InvalidSystem, match=r"'api'.*'max_sizes'"):
        await store.add("api", COUNTING, options={"pool": {"max_sizes": 3}})
    with pytest.raises(InvalidSystem, match=r"options\['pool'\]"):
        await store.add("api", COUNTING, options={"pool": 5})
    assert bad_value.value.system == "api"


async def test_store_pools_override_conflict(store: SystemStore) -> None:
    """An override that conflicts with the store's options fails at client(), naming both."""
    system = await store.add("api", COUNTING, options={"pool": {"min_size": 9}})
    with pytest.raises(InvalidSystem, match=r"'api'.*min_size"):
        await use(system)


async def test_store_pools_adapter_lease_limit(tmp_path: Path) -> None:
    """The adapter's lease_limit caps how many holders share one client."""
    options = PoolOptions(max_leases=3)
    async with SystemStore(tmp_path / "systems.db", pool=options) as store:
        system = await store.add("ssh-like", COUNTING, host="h.example")
        async with system.client() as first, system.client() as second:
            pass
        CountingAdapter.limit = 1
        async with system.client() as third, system.client() as fourth:
            pass
    assert second is first
    assert third is not fourth


async def test_store_pools_adapter_check(tmp_path: Path) -> None:
    """The adapter's check_client retires a client that no longer works."""
    async with SystemStore(tmp_path / "systems.db", pool=PoolOptions(check_interval=0)) as store:
        system = await store.add("api", COUNTING, host="h.example")
        first = await use(system)
        CountingAdapter.healthy = False
        second = await use(system)
    assert second is not first
    assert first.destroyed


async def test_store_pools_create_error(store: SystemStore, tmp_path: Path) -> None:
    """A system that cannot connect raises ConnectionFailed naming it, not a timeout."""
    system = await store.add("gone", "local", remote_path=str(tmp_path / "missing"))
    with pytest.raises(ConnectionFailed, match="'gone'"):
        await use(system)


async def test_store_pool_stats_reports_one_system(tmp_path: Path) -> None:
    """pool_stats() is None before first use, counts leases, and keeps final counters."""
    async with SystemStore(tmp_path / "systems.db", pool=PoolOptions(max_size=4)) as store:
        system = await store.add("counted", COUNTING)
        assert store.pool_stats("counted") is None

        for _ in range(3):
            await use(system)
        stats = store.pool_stats("counted")
        assert stats is not None
        assert stats.created == 1
        assert stats.acquired == 3

    closed = store.pool_stats("counted")
    assert closed is not None
    assert closed.size == 0
    assert closed.destroyed == 1


async def test_store_pool_stats_none_without_pooling(tmp_path: Path) -> None:
    """A store opened without pool options has no pool statistics."""
    async with SystemStore(tmp_path / "systems.db") as store:
        system = await store.add("counted", COUNTING)
        await use(system)

        assert store.pool_stats("counted") is None


@register_adapter
class HangingAdapter(Adapter[object]):
    """Never finishes connecting, so only the pool's create_timeout ends the attempt."""

    system_type = "pooltest-hanging"
    description = "connects forever (asyncext's pool tests)"

    async def get_client(self, system: ExternalSystem) -> object:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_store_pools_create_timeout_names_system(tmp_path: Path) -> None:
    """A create that outlasts create_timeout fails with ConnectionFailed naming the system."""
    options = PoolOptions(create_timeout=0.05, acquire_timeout=5)
    async with SystemStore(tmp_path / "systems.db", pool=options) as store:
        system = await store.add("stuck", "pooltest-hanging")

        with pytest.raises(ConnectionFailed, match="create_timeout") as caught:
            await use(system)

    assert caught.value.system == "stuck"


async def test_store_pools_old_record_uses_update(store: SystemStore) -> None:
    """A record fetched before an update connects with the updated fields, pool or not."""
    old = await store.add("api", COUNTING, host="old.example")
    await store.update("api", host="new.example")

    client = await use(old)

    assert client.host == "new.example"


async def test_store_pools_old_record_follows_rename(store: SystemStore) -> None:
    """A record fetched before a rename uses the renamed system's pool and fields."""
    old = await store.add("api", COUNTING, host="old.example")
    await use(old)
    await store.update("api", name="renamed", host="new.example")

    client = await use(old)

    assert client.host == "new.example"
    assert store.pool_stats("api") is None
    stats = store.pool_stats("renamed")
    assert stats is not None
    assert stats.acquired == 2


async def test_store_pools_old_record_follows_type_change(
    store: SystemStore, tmp_path: Path
) -> None:
    """A record fetched before a type change gets a client of the new type."""
    old = await store.add("files", COUNTING, host="old.example")
    await store.update("files", system_type="local", remote_path=str(tmp_path))

    client = await use(old)

    assert isinstance(client, LocalFileClient)


async def test_store_pools_removed_record_not_found(store: SystemStore) -> None:
    """A removed system's record opens no client; a system added again under its name does."""
    old = await store.add("api", COUNTING, host="old.example")
    await store.remove("api")

    with pytest.raises(SystemNotFound, match="removed"):
        await use(old)

    again = await store.add("api", COUNTING, host="again.example")
    client = await use(again)
    assert client.host == "again.example"


async def cancel_soon(operation: Any) -> None:
    """Run ``operation`` in a task, cancel it once it has started, and wait for it to end."""
    task = asyncio.ensure_future(operation)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_store_pools_cancelled_update_retires(store: SystemStore) -> None:
    """An update cancelled while it commits still retires the clients of the old record."""
    system = await store.add("api", COUNTING, host="old.example")
    old = await use(system)

    await cancel_soon(store.update("api", host="new.example"))
    stored = await store.get("api")
    client = await use(system)

    assert stored.host == "new.example"
    assert old.destroyed
    assert client.host == "new.example"


async def test_store_pools_cancelled_remove_closes(store: SystemStore) -> None:
    """A remove cancelled while it commits still closes the pool of the removed system."""
    system = await store.add("api", COUNTING, host="h.example")
    client = await use(system)
    pool = pools_of(store).pool_for("api")

    await cancel_soon(store.remove("api"))

    assert client.destroyed
    assert " closed:" in repr(pool)
    with pytest.raises(SystemNotFound):
        await use(system)
