"""`PoolSupply`: creating, checking and destroying the clients of a pool.

Creates run in tasks the pool owns, so that a waiter that gives up does not waste a
connection half made: the client goes to the next waiter, or idle. Destroys run shielded
from cancellation and bounded by `CLEANUP_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import weakref
from collections.abc import Coroutine
from time import monotonic
from typing import Any, TypeVar

from .._errors import AsyncextError
from .._tasks import CLEANUP_TIMEOUT, run_shielded
from ._calls import (
    SWEEP_INTERVAL_MAX,
    SWEEP_INTERVAL_MIN,
    abandon,
    backoff_delay,
    check_timeout,
    copy_error,
    create_grace,
    create_result,
    create_timed_out,
    describe,
    describe_cause,
    duplicate_client,
    maintain,
    run_check,
    start_create,
)
from ._entry import BUSY, CHECKING, GONE, NEVER, PooledClient
from ._state import OPEN, PoolState

logger = logging.getLogger("asyncext.pool")

ClientT = TypeVar("ClientT")

LIFETIME_JITTER = 0.1
"""Largest fraction by which a client's ``max_lifetime`` is shortened at random."""


class PoolSupply(PoolState[ClientT]):
    """Keeps a pool supplied with working clients and retires the others."""

    def _start(self) -> None:
        """Bind the pool to the running loop, start its sweeps and begin filling it."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._waiters.bind(loop)
        self._state = OPEN
        self._maintenance = loop.create_task(maintain(weakref.ref(self)))
        logger.info(
            "pool %r opened (min_size=%d, max_size=%d, max_leases=%d)",
            self._name,
            self._min_size,
            self._max_size,
            self._max_leases,
        )
        self._grow()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], tasks: set[asyncio.Task[Any]]) -> None:
        """Run ``coroutine`` in a task that the pool keeps in ``tasks`` until it ends."""
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # --- creating ------------------------------------------------------------------------

    def _grow(self) -> None:
        """Start the creates that waiters and ``min_size`` call for, within the limits.

        Called whenever a waiter arrives or a client leaves. Returns at once when the pool
        is full.
        """
        if self._state is not OPEN:
            return
        room = self._max_size - self._size
        if room <= 0:
            return
        limit = self._options.max_concurrent_creates
        if limit:
            room = min(room, limit - self._creating - self._abandoned)
            if room <= 0:
                return

        # Waiters with no create in flight for them, where a shared client serves several.
        # After a failed create, the waiters of a pool with a live client wait for that
        # client instead of starting creates that could fail one by one at once.
        needed = -(-len(self._waiters) // self._max_leases) - self._creating
        fill = self._min_size - self._size
        if self._fill_failures and monotonic() < self._fill_blocked_until:
            fill = 0
            if self._has_live_client():
                needed = 0
        for _ in range(min(room, max(needed, fill))):
            self._size += 1
            self._creating += 1
            self._spawn(self._create_one(self._generation), self._creates)

    async def _create_one(self, generation: int) -> None:
        """Create a client and hand it to the oldest waiter, or the create error to the
        waiters it leaves unserved."""
        task = start_create(self._create)
        timeout = self._options.create_timeout
        try:
            done, _ = await asyncio.wait((task,), timeout=timeout or None)
        except asyncio.CancelledError:
            # close() stopped waiting for this create at the end of its timeout.
            abandon(task, self._destroy_late_client)
            self._creating -= 1
            self._size -= 1
            self._check_drained()
            raise

        self._creating -= 1
        if not done:
            # The waiters get the error now, but the create keeps its place in max_size
            # until it ends, because it may still make a client.
            self._abandoned += 1
            self._create_failed(create_timed_out(self._name, timeout))
            await self._outlast(task, create_grace(timeout))
            return
        try:
            client = create_result(task, self._name)
            if id(client) in self._entries:
                raise duplicate_client(self._name, self._entries[id(client)].number)
        except AsyncextError as error:
            # A duplicate is not destroyed: it is the client of another entry.
            self._size -= 1
            self._create_failed(error)
            self._check_drained()
            return

        self._created += 1
        entry = self._new_entry(client, generation)
        if self._state is not OPEN:
            await self._destroy(entry, reason="the pool closed while it was being created")
            return
        if generation != self._generation:
            await self._destroy(entry, reason="the pool was expired while it was being created")
            return

        logger.debug("pool %r: created client #%d", self._name, entry.number)
        self._fill_failures = 0
        self._pass_on(entry)
        self._signal_fill(None)
        self._grow()

    async def _outlast(self, task: asyncio.Task[Any], grace: float) -> None:
        """Wait for a create that timed out to end, destroy a client it returns, and only
        then free its place in ``max_size``.

        The create is cancelled after ``grace`` seconds, or when `ClientPool.close` stops
        waiting for it. If it does not end within `CLEANUP_TIMEOUT` of its cancellation,
        its place is freed anyway, and a client it returns later is still destroyed.
        """
        finished = False
        try:
            done, _ = await asyncio.wait((task,), timeout=grace)
            if not done:
                logger.warning(
                    "pool %r: cancelling a create still running %g s after it timed out",
                    self._name,
                    grace,
                )
                task.cancel()
                done, _ = await asyncio.wait((task,), timeout=CLEANUP_TIMEOUT)
            if done:
                finished = True
                await self._destroy_late_outcome(task)
        finally:
            if not finished:
                abandon(task, self._destroy_late_client)
            self._abandoned -= 1
            self._size -= 1
            self._check_drained()
            self._grow()

    async def _destroy_late_outcome(self, task: asyncio.Task[Any]) -> None:
        """Destroy the client of a create task that the pool gave up on, if it made one."""
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.debug(
                "pool %r: a create that timed out failed later: %s", self._name, describe(error)
            )
            return
        await self._destroy_late(task.result())

    def _new_entry(self, client: Any, generation: int) -> PooledClient:
        now = monotonic()
        lifetime = self._options.max_lifetime
        expires_at = math.inf
        if lifetime:
            expires_at = now + lifetime * (1 - LIFETIME_JITTER * random.random())
        self._numbers += 1
        entry = PooledClient(
            client, number=self._numbers, now=now, expires_at=expires_at, generation=generation
        )
        self._refresh(entry, now)
        self._entries[id(client)] = entry
        return entry

    def _create_failed(self, error: AsyncextError) -> None:
        """Give a create error to the waiters that nothing else can serve, and delay
        creates for ``min_size``."""
        self._create_errors += 1
        reason = describe_cause(error)
        self._last_create_error = reason
        self._last_create_failure = (monotonic(), error)

        # Each waiter would otherwise start a create of its own, and a server that rejects
        # the credentials would see one login attempt per waiter. While a client lives, the
        # failure may be passing, and that client will serve the other waiters, so only the
        # oldest waiter gets the error. The waiters raise the error themselves, so it is
        # logged here only when none gets it.
        if self._has_live_client():
            covered = len(self._waiters)
        else:
            covered = self._creating * self._max_leases
        failed = self._waiters.fail_uncovered(error, copy_error, covered)
        if failed:
            logger.debug(
                "pool %r: creating a client failed, which %d waiters raise: %s",
                self._name,
                failed,
                reason,
            )
        else:
            logger.warning("pool %r: creating a client failed: %s", self._name, reason)

        self._signal_fill(error)
        if self._state is OPEN:
            self._schedule_fill_retry()
            self._grow()

    def _has_live_client(self) -> bool:
        """Return whether a client exists that may serve waiters later."""
        return any(
            entry.state is not GONE and entry.retired is None for entry in self._entries.values()
        )

    def _pass_on(self, entry: PooledClient) -> None:
        """Offer a client to waiters, or keep it idle, unless it reports its connection
        closed: then it retires, and is destroyed once no holder has it."""
        if self._is_closed is not None and entry.retired is None and self._reports_closed(entry):
            entry.retired = "it reports its connection closed"
            entry.fast_until = NEVER
            if entry.leases == 0:
                self._discard_nowait(entry)
            return
        self._offer(entry)

    def _schedule_fill_retry(self) -> None:
        """Hold off creates for ``min_size`` for a jittered, growing delay after a failure.

        Creates for waiters are held off only while a live client can serve them: without
        one, each waiter should get the real error soon.
        """
        assert self._loop is not None
        self._fill_failures += 1
        delay = backoff_delay(self._fill_failures)
        self._fill_blocked_until = monotonic() + delay
        if self._fill_timer is not None:
            self._fill_timer.cancel()
        self._fill_timer = self._loop.call_later(delay, self._grow)
        if self._size < self._min_size:
            logger.info(
                "pool %r: next attempt to reach min_size=%d in %.2f s",
                self._name,
                self._min_size,
                delay,
            )

    def _destroy_late_client(self, client: Any) -> None:
        """Destroy, in the background, a client that a cancelled create returned."""
        if self._loop is not None and not self._loop.is_closed():
            self._spawn(self._destroy_late(client), self._cleanups)

    async def _destroy_late(self, client: Any) -> None:
        """Destroy a client that ``create`` returned after the pool gave up on it."""
        self._created += 1
        logger.debug("pool %r: destroying a client that was created too late", self._name)
        destroy = self._destroy_client
        if destroy is not None:
            await self._run_destroy_function(destroy, client)
        self._destroyed += 1

    # --- destroying ----------------------------------------------------------------------

    def _forget(self, entry: PooledClient, reason: str | None, warn: bool) -> bool:
        """Take a client out of service; return False if it already was.

        The client keeps its place in ``_size`` until `_run_destroy` finishes, because it
        exists until then.
        """
        if entry.state is GONE:
            return False
        entry.state = GONE
        entry.fast_until = NEVER
        del self._entries[id(entry.client)]
        self._destroying += 1
        reason = reason or entry.retired or "it was retired"
        level = logging.WARNING if warn else logging.DEBUG
        logger.log(
            level, "pool %r: destroying client #%d because %s", self._name, entry.number, reason
        )
        return True

    async def _destroy(
        self, entry: PooledClient, *, reason: str | None = None, warn: bool = False
    ) -> None:
        """Destroy a client in this task, shielded from the task's cancellation."""
        if self._forget(entry, reason, warn):
            await self._run_destroy(entry)

    def _discard_nowait(
        self, entry: PooledClient, *, reason: str | None = None, warn: bool = False
    ) -> None:
        """Destroy a client in a background task that `ClientPool.close` waits for."""
        if self._forget(entry, reason, warn):
            self._spawn(self._run_destroy(entry), self._cleanups)

    async def _run_destroy(self, entry: PooledClient) -> None:
        try:
            if self._destroy_client is not None:
                await self._run_destroy_function(self._destroy_client, entry.client)
        finally:
            self._destroying -= 1
            self._size -= 1
            self._destroyed += 1
            self._check_drained()
            self._grow()

    async def _run_destroy_function(self, destroy: Any, client: Any) -> None:
        try:
            await run_shielded(lambda: destroy(client), timeout=CLEANUP_TIMEOUT)
        except Exception as exc:
            logger.warning("pool %r: destroying a client failed: %s", self._name, describe(exc))

    # --- checking ------------------------------------------------------------------------

    async def _verify(self, entry: PooledClient, deadline: float) -> bool:
        """Check a client leased to this caller, and destroy it if the check fails.

        Returns:
            Whether the client passed and may be handed out.

        Raises:
            PoolTimeout: the acquire deadline passed during the check.
        """
        assert self._loop is not None and self._check is not None
        entry.state = CHECKING
        # A check that hangs counts as failed after its own bound, so that the caller moves
        # on to another client within its deadline instead of waiting for this one.
        remaining = deadline - self._loop.time()
        timeout = min(check_timeout(self._options.create_timeout), max(remaining, 0))
        try:
            failure = await run_check(self._check, entry.client, timeout)
        except asyncio.CancelledError:
            entry.leases -= 1
            self._discard_nowait(entry, reason="its acquire was cancelled during its check")
            raise

        if failure is None and entry.retired is None:
            entry.needs_check = False
            entry.state = BUSY
            self._refresh(entry, monotonic())
            if not self._exclusive:
                self._pass_on(entry)
            return True

        entry.leases -= 1
        if failure is None:
            self._discard_nowait(entry)
            return False
        self._failed_checks += 1
        self._discard_nowait(entry, reason=failure, warn=True)
        self._recheck_peers(entry)
        if self._loop.time() >= deadline:
            self._timeouts += 1
            raise self._timeout_error()
        return False

    def _recheck_peers(self, failed: PooledClient) -> None:
        """Take every idle client as old as ``failed`` out of service and check them all.

        When a server drops its connections, all those idle since the same moment are
        usually dead. Checking them one by one on the acquire path would make a caller wait
        for each. Checking them together in the background lets the caller create a fresh
        client meanwhile.
        """
        suspects = [entry for entry in self._idle if entry.last_used <= failed.last_used]
        if not suspects:
            return
        trusted = [entry for entry in self._idle if entry.last_used > failed.last_used]
        self._idle.clear()
        self._idle.extend(trusted)
        for entry in suspects:
            entry.state = CHECKING
        logger.info(
            "pool %r: checking %d idle clients as old as the one that failed its check",
            self._name,
            len(suspects),
        )
        self._spawn(self._recheck(suspects), self._rechecks)

    async def _recheck(self, suspects: list[PooledClient]) -> None:
        assert self._check is not None
        check = self._check
        timeout = check_timeout(self._options.create_timeout)
        try:
            failures = await asyncio.gather(
                *(run_check(check, entry.client, timeout) for entry in suspects)
            )
        except asyncio.CancelledError:  # the pool is closing
            for entry in suspects:
                self._discard_nowait(entry)
            raise
        for entry, failure in zip(suspects, failures, strict=True):
            if entry.state is not CHECKING:
                continue  # close() destroyed it meanwhile
            if failure is None and entry.retired is None:
                self._refresh(entry, monotonic())
                self._pass_on(entry)
                continue
            if failure is not None:
                self._failed_checks += 1
            self._discard_nowait(entry, reason=failure, warn=failure is not None)

    # --- sweeping ------------------------------------------------------------------------

    def _sweep(self) -> float:
        """Retire idle clients past their limits, refill ``min_size``; return the pause
        until the next sweep, in seconds."""
        now = monotonic()
        idle = list(self._idle)
        self._idle.clear()
        for entry in idle:  # oldest first, so that max_idle retires the longest unused
            reason = self._stale_reason(entry, now)
            if reason is None:
                self._idle.append(entry)
            else:
                self._discard_nowait(entry, reason=reason)
        self._grow()

        max_idle = self._options.max_idle
        pause = SWEEP_INTERVAL_MAX
        for limit in (max_idle, self._options.max_lifetime):
            if limit:
                pause = min(pause, limit / 2)
        for entry in self._idle:
            pause = min(pause, entry.expires_at - now)
            idle_due = entry.last_used + max_idle
            if max_idle and idle_due > now:  # an overdue client stays while min_size needs it
                pause = min(pause, idle_due - now)
        return max(SWEEP_INTERVAL_MIN, pause)
