"""`PoolState`: what a `ClientPool` holds, and the synchronous decisions about its clients.

A pool is built in layers, each calling only the ones below it: this state, then
`PoolSupply` (creating, checking and destroying clients), then `PoolCheckout` (acquire
and release), then `ClientPool` (the public methods).

Bookkeeping never awaits, so it needs no lock and cannot be cut short by a cancellation.
Handing a client to a waiter means resolving the waiter's future with it.

NOTE: invariants of the bookkeeping:

- ``_size`` counts clients in ``_entries``, creates in flight, creates given up on whose
  task has not ended (``_abandoned``) and destroys in flight. It exceeds ``max_size`` only
  after `ClientPool.resize` lowered it. A client that a create given up on still returns
  is destroyed before its place is freed. Two creates free their place without waiting
  for their end: one that `ClientPool.close` cancels, and one still running
  `CLEANUP_TIMEOUT` seconds after its grace period cancelled it. A client that either
  returns all the same is destroyed outside the count.
- A client in ``_idle`` has the state IDLE and no lease. While waiters are queued,
  ``_idle`` is empty, because every client that comes back goes to the oldest waiter
  first.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, Generic, TypeVar

from .._errors import PoolClosed, PoolTimeout
from ._calls import describe
from ._entry import BUSY, GONE, IDLE, PooledClient
from ._options import PoolOptions
from ._waiters import WaiterQueue

logger = logging.getLogger("asyncext.pool")

ClientT = TypeVar("ClientT")

NEW, OPEN, CLOSING, CLOSED = "new", "open", "closing", "closed"
"""States of a pool: not used yet, open, being closed, closed."""


class PoolState(Generic[ClientT]):
    """The clients, waiters, counters and options of one pool."""

    def __init__(
        self,
        create: Callable[[], Awaitable[ClientT]],
        destroy: Callable[[ClientT], Awaitable[object]] | None,
        check: Callable[[ClientT], Awaitable[bool]] | None,
        options: PoolOptions,
        name: str,
        lease_limit: Callable[[ClientT], int | None] | None,
        is_closed: Callable[[ClientT], bool] | None = None,
    ) -> None:
        self._create = create
        self._destroy_client = destroy
        self._check = check
        self._lease_limit = lease_limit
        self._is_closed = is_closed
        self._name = name
        self._state = NEW
        self._loop: asyncio.AbstractEventLoop | None = None

        self._idle: deque[PooledClient] = deque()
        self._entries: dict[int, PooledClient] = {}
        self._waiters = WaiterQueue()
        self._size = 0
        self._creating = 0
        self._abandoned = 0
        self._destroying = 0
        self._generation = 0
        self._numbers = 0

        self._created = 0
        self._destroyed = 0
        self._acquired = 0
        self._timeouts = 0
        self._failed_checks = 0
        self._create_errors = 0
        self._wait_time_total = 0.0
        self._last_create_error: str | None = None
        # When the last create failed, in monotonic time, and its error, which a waiter
        # that was waiting then raises at its deadline instead of a timeout.
        self._last_create_failure: tuple[float, BaseException] | None = None

        # Creates, which close() lets finish until its timeout. Rechecks, which close()
        # cancels at once. Destroys, which close() waits for, because each is bounded by
        # CLEANUP_TIMEOUT.
        self._creates: set[asyncio.Task[Any]] = set()
        self._rechecks: set[asyncio.Task[Any]] = set()
        self._cleanups: set[asyncio.Task[Any]] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._fill_failures = 0
        self._fill_blocked_until = 0.0
        self._fill_timer: asyncio.TimerHandle | None = None
        self._fill_signal: asyncio.Future[BaseException | None] | None = None
        self._drained: asyncio.Future[None] | None = None

        self._options = options
        self._apply_options()

    def _apply_options(self) -> None:
        """Copy the options read on the hot path into attributes."""
        options = self._options
        self._min_size = options.min_size
        self._max_size = options.max_size
        self._max_uses = options.max_uses
        self._max_leases = options.max_leases
        self._exclusive = options.max_leases == 1

        # How long after its last use an idle client may be handed out on the fast path:
        # until it is due for a health check, or may have to retire for being idle.
        trust = math.inf
        if options.check_on_acquire and self._check is not None:
            trust = options.check_interval
        if options.max_idle:
            trust = min(trust, options.max_idle)
        self._trust = trust

    def _refresh(self, entry: PooledClient, now: float) -> None:
        """Record that a client was just used or checked."""
        entry.last_used = now
        until = now + self._trust
        entry.fast_until = until if until < entry.expires_at else entry.expires_at

    def _oversized(self) -> bool:
        """Return whether more clients exist than ``max_size`` allows, not counting those
        being destroyed."""
        return self._size - self._destroying > self._max_size

    def _stale_reason(self, entry: PooledClient, now: float) -> str | None:
        """Return why an idle client must retire instead of being handed out, or None."""
        if entry.retired is not None:
            return entry.retired
        if self._is_closed is not None and self._reports_closed(entry):
            return "it reports its connection closed"
        if now >= entry.expires_at:
            return "it reached max_lifetime"
        max_idle = self._options.max_idle
        if (
            max_idle
            and now - entry.last_used >= max_idle
            and self._size - self._destroying > self._min_size
        ):
            return "it was idle longer than max_idle"
        return None

    def _reports_closed(self, entry: PooledClient) -> bool:
        """Return the result of ``is_closed`` for the client; an error in it counts as closed."""
        assert self._is_closed is not None
        try:
            return bool(self._is_closed(entry.client))
        except Exception as exc:
            logger.warning(
                "pool %r: is_closed failed for client #%d (%s); retiring it",
                self._name,
                entry.number,
                describe(exc),
            )
            return True

    def _room(self, entry: PooledClient) -> int:
        """Return how many more holders a client may take now."""
        limit = self._max_leases
        if self._lease_limit is not None and limit > 1:
            try:
                own = self._lease_limit(entry.client)
            except Exception as exc:
                logger.warning(
                    "pool %r: lease_limit failed for client #%d (%s); serving one holder",
                    self._name,
                    entry.number,
                    describe(exc),
                )
                own = 1
            if own is not None:
                limit = max(1, min(limit, own))
        return limit - entry.leases

    def _pick_shared(self) -> PooledClient | None:
        """Return the least loaded shared client in use that can take one more holder."""
        best: PooledClient | None = None
        now = monotonic()
        for entry in self._entries.values():
            if (
                entry.state is not BUSY
                or entry.retired is not None
                or entry.needs_check
                or now >= entry.expires_at
                or (self._is_closed is not None and self._reports_closed(entry))
            ):
                continue
            if self._room(entry) > 0 and (best is None or entry.leases < best.leases):
                best = entry
        return best

    def _offer(self, entry: PooledClient) -> None:
        """Give a client's free places to the oldest waiters, or make it idle if unheld."""
        if entry.state is GONE:
            # Destroyed while other holders still had it; their release must not revive it.
            return

        waiters = self._waiters
        if self._exclusive:
            while waiters:
                future = waiters.popleft()[0]
                if not future.done():
                    entry.leases = 1
                    entry.state = BUSY
                    future.set_result(entry)
                    return
            entry.state = IDLE
            self._idle.append(entry)
            return

        # A shared client that must be checked goes to one holder, who checks it and then
        # offers the remaining places. While other holders still use it, it is not offered.
        if entry.retired is None and not (entry.needs_check and entry.leases > 0):
            room = 1 if entry.needs_check else self._room(entry)
            while room > 0 and waiters:
                future = waiters.popleft()[0]
                if not future.done():
                    entry.leases += 1
                    entry.state = BUSY
                    room -= 1
                    future.set_result(entry)
        if entry.leases == 0:
            entry.state = IDLE
            self._idle.append(entry)

    def _closed_error(self) -> PoolClosed:
        return PoolClosed(
            f"the pool {self._name!r} is closed; create a new pool, or keep this one open "
            "while clients are acquired from it"
        )

    def _timeout_error(self) -> PoolTimeout:
        timeout = self._options.acquire_timeout
        creating = self._creating + self._abandoned
        message = (
            f"no client from pool {self._name!r} within acquire_timeout={timeout:g} s "
            f"({len(self._entries)} of max_size={self._max_size} clients exist, "
            f"{creating} being created, {len(self._waiters)} waiting); "
        )
        if creating and not self._entries:
            message += "the server may be slow to accept connections or unreachable"
        elif self._fill_failures:
            message += (
                "new clients are created again after a back-off, because creating one failed, "
                "and meanwhile only the clients in use could serve this caller"
            )
        else:
            message += (
                "raise max_size, or look for code that keeps clients too long or leaks them "
                "outside 'async with pool.acquire()'"
            )
        if self._last_create_error is not None:
            message += f". The last attempt to create a client failed: {self._last_create_error}"
        return PoolTimeout(message)

    def _signal_fill(self, error: BaseException | None) -> None:
        """Wake an ``open(wait=True)`` that waits for ``min_size`` clients."""
        signal = self._fill_signal
        if signal is not None and not signal.done():
            signal.set_result(error)

    def _check_drained(self) -> None:
        """Wake a `close` that waits for the last client to be gone."""
        drained = self._drained
        if drained is not None and self._size == 0 and not drained.done():
            drained.set_result(None)
