"""`ClientPool`: a bounded, first-come first-served pool of clients for any async create and
destroy functions."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._errors import PoolTimeout
from ._checkout import PoolCheckout
from ._entry import GONE, IDLE, NEVER
from ._lease import Lease
from ._options import PoolOptions, PoolStats
from ._state import CLOSED, CLOSING, NEW, OPEN

logger = logging.getLogger("asyncext.pool")

ClientT = TypeVar("ClientT")

CLOSE_TIMEOUT = 5.0
"""Default seconds `ClientPool.close` waits for clients in use before destroying them."""


class ClientPool(PoolCheckout[ClientT]):
    """Keeps clients open between uses and hands each to one holder (or a few) at a time.

    Opening a connection costs round trips and often a key exchange, and a pool pays that
    once per client instead of once per use. At most ``max_size`` clients exist at once,
    counting those being created and destroyed. Waiters are served first come, first
    served, because a returned client goes straight to the oldest waiter.

    A create keeps its place in ``max_size`` from its start until its task has ended, also
    after the pool gave up on it, and a client it returns after that is destroyed. The
    pool gives up on a create slower than ``create_timeout``, whose waiter then gets the
    error at once, and on every create in flight when `close` or `expire` is called. A
    create that hangs cannot keep its place forever, though. The pool cancels a create
    that timed out after a grace period of ``create_timeout`` seconds, 10 s at least, and
    `close` cancels the creates still running at the end of its timeout.

    NOTE: cancelling a create whose work runs in a worker thread (``asyncio.to_thread``,
    ``loop.run_in_executor`` even under ``asyncio.shield``, ``anyio.to_thread.run_sync``)
    does not stop the thread, and asyncio drops the client that the thread returns. Such a
    create must end within the bounds above, or its client is never destroyed.

    The pool belongs to the event loop it is opened in, and is not thread-safe.

    Args:
        create: coroutine function that returns a new client. Its errors reach the waiter
            as `ConnectionFailed` with the original chained; asyncext errors pass unchanged.
        destroy: coroutine function that releases a client. It runs shielded from
            cancellation and bounded by ``CLEANUP_TIMEOUT`` seconds.
        check: coroutine function that returns whether a client still works. A false
            result, an exception, or a check that does not finish within 5 s (or
            ``create_timeout`` if that is shorter) destroys the client.
        options: sizes, timeouts and retirement rules.
        name: names the pool in log lines, messages and ``repr``.
        lease_limit: for shared clients (``max_leases > 1``), returns how many holders a
            client may serve now, or None for no limit of its own. The pool takes the
            smaller of it and ``max_leases``, and at least 1. Holders beyond a lowered
            limit keep their lease; new holders go to other clients.
        is_closed: returns whether a client already knows that it cannot work, such as a
            connection whose peer has closed it. Unlike ``check`` it runs on every hand-out
            of an idle or shared client, also within ``check_interval``, so it must be a
            cheap local test. A true result, or an exception, destroys the client.

    Example::

        async with ClientPool(connect, disconnect, options=PoolOptions(max_size=4)) as pool:
            async with pool.acquire() as client:
                await client.ping()
    """

    def __init__(
        self,
        create: Callable[[], Awaitable[ClientT]],
        destroy: Callable[[ClientT], Awaitable[object]] | None = None,
        check: Callable[[ClientT], Awaitable[bool]] | None = None,
        options: PoolOptions = PoolOptions(),  # noqa: B008 - frozen, so sharing it is safe
        name: str = "",
        *,
        lease_limit: Callable[[ClientT], int | None] | None = None,
        is_closed: Callable[[ClientT], bool] | None = None,
    ) -> None:
        if not callable(create):
            raise TypeError(f"pool {name!r}: create must be a coroutine function, not {create!r}")
        if not isinstance(options, PoolOptions):
            raise TypeError(
                f"pool {name!r}: options must be a PoolOptions, not {type(options).__name__}"
            )
        super().__init__(create, destroy, check, options, name, lease_limit, is_closed)
        self._closed: asyncio.Future[None] | None = None

    @property
    def name(self) -> str:
        """The pool's name in log lines, messages and ``repr``."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def options(self) -> PoolOptions:
        return self._options

    def acquire(self) -> Lease[ClientT]:
        """Return an async context manager that leases a client for the length of its block.

        ``async with pool.acquire() as client:`` takes an idle client, creates one when there
        is room, or waits for one. When the block ends, the client goes back to the pool. An
        idle client unused for ``check_interval`` seconds is checked first. One that fails
        its check, or whose check does not finish within the check's bound, is destroyed
        and another idle or new client tried, all within ``acquire_timeout``.

        Raises:
            PoolTimeout: no client within ``acquire_timeout``, or ``max_waiting`` acquires
                already wait.
            PoolClosed: the pool is closed, or closes while this call waits.
            ConnectionFailed: a create failed while this caller waited, and no other
                create in flight could serve it. Every caller failed by one create gets
                its own exception, chained to the same cause, so that a server that
                rejects the credentials receives one attempt per create, not one per
                caller.
                A caller left waiting for another create that hangs gets the error at its
                deadline instead of `PoolTimeout`.
        """
        return Lease(self)

    async def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        """Start the pool's background work and begin creating ``min_size`` clients.

        The first `acquire` opens the pool too, so calling this is only needed to have
        ``min_size`` clients ready before then.

        Args:
            wait: return only once ``min_size`` clients exist. If a create fails first,
                or ``timeout`` passes, the pool closes again with `close`, so that nothing
                keeps running, and the error is raised.
            timeout: seconds to wait for ``min_size`` clients when ``wait`` is true.

        Raises:
            PoolClosed: the pool was closed.
            ConnectionFailed: with ``wait``, creating a client failed.
            PoolTimeout: with ``wait``, ``min_size`` clients were not ready in time.
        """
        if self._state in (CLOSING, CLOSED):
            raise self._closed_error()
        if self._state is NEW:
            self._start()
        if wait:
            await self._wait_filled(timeout)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop the pool: fail waiting and new acquires with `PoolClosed`, destroy clients.

        Idle clients are destroyed at once, clients in use when they come back or, if
        still in use after ``timeout`` seconds, then. Creates in flight may run until then,
        and the clients they return are destroyed. Creates still running after
        ``timeout`` are cancelled, and a client that one returns all the same is destroyed
        too. Closing a closed pool does nothing.
        """
        if self._state is CLOSED:
            return
        if self._state is CLOSING:
            assert self._closed is not None
            await asyncio.shield(self._closed)
            return
        if self._state is NEW:
            self._state = CLOSED
            return
        await self._close(timeout)

    async def __aenter__(self) -> ClientPool[ClientT]:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def expire(self) -> None:
        """Retire every current client: idle ones now, those in use when they come back.

        Clients still being created are destroyed when ready, so no client that existed
        or was being made before this call is handed out again. Use it after the
        credentials that ``create`` uses have changed.
        """
        self._generation += 1
        for entry in self._entries.values():
            entry.retired = "the pool was expired"
            entry.fast_until = NEVER
        idle = list(self._idle)
        self._idle.clear()
        for entry in idle:
            self._discard_nowait(entry)
        if self._state is OPEN:
            logger.info(
                "pool %r expired: %d idle clients destroyed, %d more retire when released",
                self._name,
                len(idle),
                len(self._entries),
            )

    def discard(self, client: ClientT) -> None:
        """Mark a client you hold as broken, so that it is destroyed once released.

        A shared client is no longer handed to new holders, and is destroyed after its
        last holder releases it.

        Raises:
            ValueError: ``client`` is not checked out from this pool.
        """
        entry = self._entries.get(id(client))
        if entry is None or entry.client is not client or entry.leases == 0:
            raise ValueError(
                f"cannot discard the {type(client).__name__} object: it is not checked out "
                f"from pool {self._name!r}; discard only a client held in 'async with "
                "pool.acquire()'"
            )
        if entry.retired is None:
            entry.retired = "its holder discarded it"
            entry.fast_until = NEVER
            logger.warning(
                "pool %r: client #%d discarded by its holder; it is destroyed when released",
                self._name,
                entry.number,
            )

    def resize(self, min_size: int | None = None, max_size: int | None = None) -> None:
        """Change ``min_size`` and ``max_size``; None keeps the current value.

        Idle clients beyond a lowered ``max_size`` are destroyed now, clients in use when
        they come back.

        Raises:
            ValueError: a size is invalid, or ``min_size`` exceeds ``max_size``.
        """
        self._reconfigure(
            self._options.merged(
                {
                    "min_size": self._min_size if min_size is None else min_size,
                    "max_size": self._max_size if max_size is None else max_size,
                }
            )
        )
        logger.info(
            "pool %r resized to min_size=%d, max_size=%d",
            self._name,
            self._min_size,
            self._max_size,
        )

    def _reconfigure(self, options: PoolOptions) -> None:
        """Switch to new options, destroying idle clients beyond a lowered ``max_size``.

        Existing clients keep the lifetime they were created with. The store calls this
        when a system's pool options change.
        """
        self._options = options
        self._apply_options()
        while self._oversized() and self._idle:
            self._discard_nowait(self._idle.popleft(), reason="max_size was lowered")
        self._grow()

    def stats(self) -> PoolStats:
        """Return a snapshot of the pool's state and of its counters."""
        in_use = sum(1 for entry in self._entries.values() if entry.state is not IDLE)
        return PoolStats(
            size=self._size,
            idle=len(self._idle),
            in_use=in_use,
            waiting=self._waiters.count_live(),
            created=self._created,
            destroyed=self._destroyed,
            acquired=self._acquired,
            timeouts=self._timeouts,
            failed_checks=self._failed_checks,
            create_errors=self._create_errors,
            wait_time_total=self._wait_time_total,
        )

    def __repr__(self) -> str:
        stats = self.stats()
        return (
            f"<ClientPool {self._name!r} {self._state}: {stats.size} "
            f"client{'' if stats.size == 1 else 's'} "
            f"({stats.idle} idle, {stats.in_use} in use), {stats.waiting} waiting, "
            f"max_size={self._max_size}>"
        )

    def __del__(self) -> None:
        if getattr(self, "_state", None) is not OPEN:
            return
        if self._maintenance is not None:
            self._maintenance.cancel()
        warnings.warn(
            f"ClientPool {self._name!r} was not closed; use 'async with pool:' or call "
            "'await pool.close()' when done with it",
            ResourceWarning,
            source=self,
            stacklevel=1,
        )

    # --- opening and closing -------------------------------------------------------------

    async def _wait_filled(self, timeout: float) -> None:
        """Wait until ``min_size`` clients exist; close the pool and raise if that fails."""
        assert self._loop is not None
        deadline = self._loop.time() + timeout
        while len(self._entries) < self._min_size:
            if self._state is not OPEN:
                raise self._closed_error()
            signal = self._fill_signal
            if signal is None or signal.done():
                signal = self._fill_signal = self._loop.create_future()
            remaining = deadline - self._loop.time()
            done, _ = await asyncio.wait((signal,), timeout=max(remaining, 0))
            if not done:
                await self.close()
                raise PoolTimeout(
                    f"pool {self._name!r} did not reach min_size={self._min_size} within "
                    f"{timeout:g} s ({len(self._entries)} clients ready); check that the "
                    "server is reachable, or lower min_size"
                )
            error = signal.result()
            if error is not None:
                await self.close()
                raise error

    async def _close(self, timeout: float) -> None:
        assert self._loop is not None
        loop = self._loop
        self._state = CLOSING
        self._closed = loop.create_future()
        logger.info("pool %r closing (%s)", self._name, self._describe_counts())
        try:
            # Stop background work, and fail every waiting acquire.
            if self._maintenance is not None:
                self._maintenance.cancel()
            if self._fill_timer is not None:
                self._fill_timer.cancel()
            self._waiters.resolve_all(self._closed_error)
            self._waiters.close()
            self._signal_fill(self._closed_error())

            # Stop rechecks at once, because their clients are destroyed anyway.
            for task in self._rechecks:
                task.cancel()

            # Retire every client: idle ones now, the others when they come back.
            for entry in self._entries.values():
                entry.retired = "the pool closed"
                entry.fast_until = NEVER
            idle = list(self._idle)
            self._idle.clear()
            for entry in idle:
                self._discard_nowait(entry)

            # Wait, up to the timeout, for clients in use to come back and for creates in
            # flight to end. Cancelling a create whose work runs in a worker thread would
            # drop the client the thread still makes, so a create that ends in time has
            # its client destroyed instead.
            if self._size > 0:
                self._drained = loop.create_future()
                await asyncio.wait((self._drained,), timeout=timeout)

            # Past the timeout: destroy the clients still in use, and cancel the creates
            # still running. A client that one of them returns all the same is destroyed.
            in_use = [entry for entry in self._entries.values() if entry.state is not GONE]
            if in_use:
                logger.warning(
                    "pool %r: destroying %d clients still in use %g s after close() began",
                    self._name,
                    len(in_use),
                    timeout,
                )
            for entry in in_use:
                self._discard_nowait(entry)
            if self._creates:
                logger.warning(
                    "pool %r: cancelling %d creates still running %g s after close() began",
                    self._name,
                    len(self._creates),
                    timeout,
                )
            for task in self._creates:
                task.cancel()
            pending = self._creates | self._rechecks | self._cleanups
            if pending:
                await asyncio.wait(pending)
        finally:
            self._state = CLOSED
            self._closed.set_result(None)
        logger.info("pool %r closed (%s)", self._name, self._describe_counts())

    def _describe_counts(self) -> str:
        return (
            f"{self._size} clients, {self._created} created, {self._destroyed} destroyed, "
            f"{self._acquired} acquires"
        )
