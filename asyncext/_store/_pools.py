"""`SystemPools`: one `ClientPool` per system of a store, built on first use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from .._adapters._base import Adapter
from .._errors import ConnectionFailed, InvalidSystem, PoolClosed, SystemNotFound
from .._pool import ClientPool, PoolOptions
from .._system import (
    ExternalSystem,
    adapter_of,
    connection_failure,
    open_client,
    raise_chained,
)

logger = logging.getLogger("asyncext.store")

CLOSE_TIMEOUT = 5.0
"""Seconds a closing pool waits for clients in use before destroying them."""


class SystemPool:
    """A system's pool and the newest record of that system, which creates read."""

    __slots__ = ("pool", "system")

    def __init__(self, system: ExternalSystem, pool: ClientPool[Any]) -> None:
        self.system = system
        self.pool = pool


class SystemPools:
    """The pools of one store's systems, keyed by system name.

    A pool is built on the first ``system.client()`` of a system. It always creates clients
    from the newest record it has seen: `system_changed` hands it the record written by
    `SystemStore.update`, and `lease` adopts a record with a higher revision, which another
    process wrote to the same file. Either way, the pool's clients made from the older
    record are retired.

    Args:
        options: the store's pool options; a system's ``options["pool"]`` dict overrides
            single fields for that system.
    """

    def __init__(self, options: PoolOptions) -> None:
        self._options = options
        self._pools: dict[str, SystemPool] = {}
        self._closed = False
        # The newest record of each system by id, which survives a rename, also for systems
        # that have no pool yet. Removed systems are kept by id with their creation time,
        # because SQLite may give a later system the id of a removed one.
        self._newest: dict[int, ExternalSystem] = {}
        self._removed: dict[int, object] = {}
        # Pools replaced or dropped by synchronous calls, closed in the background.
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pools)} pools"
        return f"<SystemPools {state}>"

    def pool_for(self, name: str) -> ClientPool[Any] | None:
        """Return the pool of the system called ``name``, or None if it has none yet."""
        entry = self._pools.get(name)
        return None if entry is None else entry.pool

    def lease(self, system: ExternalSystem) -> AbstractAsyncContextManager[Any]:
        """Return ``acquire()`` of the system's pool, building the pool on first use.

        Raises:
            PoolClosed: the store is closed.
            InvalidSystem: the system's pool overrides do not fit the store's options.
        """
        if self._closed:
            raise PoolClosed(
                f"the client pools of system {system.name!r} are closed because its store "
                "was closed; open the store again and get the system from it"
            )
        system = self._newest_record(system)
        entry = self._pools.get(system.name)
        if entry is None:
            entry = self._pools[system.name] = self._build(system)
        elif system.revision > entry.system.revision:
            logger.info(
                "system %r: revision %d was written by another process; retiring the "
                "pooled clients of revision %d",
                system.name,
                system.revision,
                entry.system.revision,
            )
            adopted = self._adopt(entry, system)
            if adopted is None:
                adopted = self._build(system)
            entry = self._pools[system.name] = adopted
        return SystemLease(entry.pool.acquire(), system)

    def _newest_record(self, system: ExternalSystem) -> ExternalSystem:
        """Return the newest known record of ``system``, which may be ``system`` itself.

        A record fetched before an update, or under a name changed since, still connects
        with the current fields, because no client may be built from outdated credentials.

        Raises:
            SystemNotFound: the system was removed through this store.
        """
        if system.id is None:
            return system
        if system.id in self._removed and self._removed[system.id] == system.created_at:
            raise SystemNotFound(
                f"system {system.name!r} was removed from the store; add it again, or get "
                "another system from the store",
                system=system.name,
            )
        newest = self._newest.get(system.id)
        if newest is not None and newest.revision >= system.revision:
            return newest
        self._newest[system.id] = system
        return system

    def system_changed(self, old_name: str, system: ExternalSystem) -> None:
        """Use the updated record ``system`` from now on; retire clients of the old one."""
        self._newest_record(system)
        entry = self._pools.pop(old_name, None)
        if entry is None:
            return
        if system.revision < entry.system.revision:
            # A stale record must not replace a newer one, so the entry stays as it was.
            self._pools[old_name] = entry
            return
        replaced = self._pools.pop(system.name, None)
        if replaced is not None:
            self._close_later(replaced.pool)
        adopted = self._adopt(entry, system)
        if adopted is not None:
            self._pools[system.name] = adopted

    async def system_removed(self, system: ExternalSystem) -> None:
        """Close the pool of a removed system; its records no longer open clients."""
        if system.id is not None:
            self._newest.pop(system.id, None)
            self._removed[system.id] = system.created_at
        entry = self._pools.pop(system.name, None)
        if entry is not None:
            await entry.pool.close(timeout=CLOSE_TIMEOUT)

    async def close(self) -> None:
        """Close every pool, each waiting up to `CLOSE_TIMEOUT` for clients in use."""
        self._closed = True
        # The entries stay, so that the store can still report the final counters.
        entries = list(self._pools.values())
        closing = [entry.pool.close(timeout=CLOSE_TIMEOUT) for entry in entries]
        await asyncio.gather(*closing, *self._closing)

    def _build(self, system: ExternalSystem) -> SystemPool:
        adapter = adapter_of(system)
        options = self._options_for(system)
        entry: SystemPool

        # Reads the entry at call time, so every create uses the newest record.
        async def create() -> Any:
            return await open_client(entry.system)

        pool: ClientPool[Any] = ClientPool(
            create,
            adapter.destroy_client,
            adapter.check_client,
            options,
            name=system.name,
            lease_limit=adapter.lease_limit,
            # Skipped when not overridden, because the pool would call it on every acquire.
            is_closed=adapter.is_closed if _replaces(adapter, "is_closed") else None,
        )
        entry = SystemPool(system, pool)
        return entry

    def _adopt(self, entry: SystemPool, system: ExternalSystem) -> SystemPool | None:
        """Switch an entry to a newer record, retiring the clients of the older one.

        Returns None when the entry's pool cannot serve the new record and is closed: the
        system type changed, so destroy and check belong to another adapter, or the new
        overrides do not fit the store's options. The next ``client()`` then builds a new
        pool, or raises `InvalidSystem` with the reason.
        """
        previous = entry.system
        entry.system = system
        entry.pool.name = system.name
        entry.pool.expire()

        new_options: PoolOptions | None = entry.pool.options
        if _overrides(system) != _overrides(previous):
            try:
                new_options = self._options_for(system)
            except InvalidSystem:
                new_options = None
        if system.system_type != previous.system_type or new_options is None:
            self._close_later(entry.pool)
            return None
        if new_options != entry.pool.options:
            entry.pool._reconfigure(new_options)
        return entry

    def _options_for(self, system: ExternalSystem) -> PoolOptions:
        """Return the store's options with the system's ``options["pool"]`` applied.

        Raises:
            InvalidSystem: the overrides are invalid, or do not fit the store's options.
        """
        overrides = _overrides(system)
        if not overrides:
            return self._options
        try:
            return self._options.merged(overrides)
        except (TypeError, ValueError) as exc:
            raise InvalidSystem(
                f"system {system.name!r}: options['pool'] does not fit the store's pool "
                f"options: {exc}; change the system's options['pool'] or the store's "
                "PoolOptions",
                system=system.name,
            ) from exc

    def _close_later(self, pool: ClientPool[Any]) -> None:
        """Close a pool that a synchronous call dropped; `close` waits for it."""
        task = asyncio.get_running_loop().create_task(pool.close(timeout=CLOSE_TIMEOUT))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _replaces(adapter: Adapter[Any], method: str) -> bool:
    """Return whether the adapter's class replaces the base class's ``method``."""
    return getattr(type(adapter), method) is not getattr(Adapter, method)


def _overrides(system: ExternalSystem) -> Mapping[str, Any]:
    overrides = system.options.get("pool") if isinstance(system.options, dict) else None
    return overrides if isinstance(overrides, Mapping) else {}


class SystemLease:
    """``acquire()`` of a system's pool, with the system named on every connection error.

    The pool is generic, so an error it raises itself, such as a create that outlasted
    ``create_timeout``, carries no system name until this adds it. An error of the block
    that the adapter reports as a failed connection leaves as `ConnectionFailed`.
    """

    __slots__ = ("_acquire", "_client", "_system")

    def __init__(self, acquire: AbstractAsyncContextManager[Any], system: ExternalSystem) -> None:
        self._acquire = acquire
        self._system = system
        self._client: Any = None

    async def __aenter__(self) -> Any:
        try:
            self._client = await self._acquire.__aenter__()
            return self._client
        except ConnectionFailed as exc:
            if exc.system is None:
                exc.system = self._system.name
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        failure = None if exc is None else connection_failure(self._system, self._client, exc)

        # The pool gets the original error first, so it checks the client before reuse.
        suppressed = await self._acquire.__aexit__(exc_type, exc, traceback)
        if failure is not None and not suppressed:
            assert exc is not None
            raise_chained(failure, exc, self._system)
        return suppressed
