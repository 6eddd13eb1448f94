"""`PoolCheckout`: acquiring and releasing clients, first come, first served.

The uncontended path (`PoolCheckout._acquire_nowait` and `PoolCheckout._release_nowait`)
is plain bookkeeping: no await, no task, no lock. Everything else goes through
`PoolCheckout._acquire_slow`, which waits on a future in the pool's `WaiterQueue`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from time import monotonic
from typing import Any, TypeVar

from .._errors import PoolTimeout
from ._calls import copy_error
from ._entry import BUSY, NEVER, PooledClient
from ._state import NEW, OPEN
from ._supply import PoolSupply
from ._waiters import TIMED_OUT

logger = logging.getLogger("asyncext.pool")

ClientT = TypeVar("ClientT")


class PoolCheckout(PoolSupply[ClientT]):
    """Hands clients to holders and takes them back."""

    # --- acquiring -----------------------------------------------------------------------

    def _acquire_nowait(self) -> PooledClient | None:
        """Lease the newest idle client unless waiters are queued, it is due for a check, or
        it reports its connection closed."""
        idle = self._idle
        if idle and self._exclusive and not self._waiters:
            entry = idle[-1]
            if monotonic() < entry.fast_until and (
                self._is_closed is None or not self._reports_closed(entry)
            ):
                idle.pop()
                entry.leases = 1
                entry.state = BUSY
                self._acquired += 1
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("pool %r: acquired client #%d", self._name, entry.number)
                return entry
        return None

    async def _acquire_slow(self) -> PooledClient:
        """Take, wait for or create a client, and check it if due, within one deadline.

        The wait is written out here rather than in a helper coroutine, because a nested
        coroutine on every contended acquire costs a tenth of the floor's time.
        """
        if self._state is NEW:
            self._start()
        assert self._loop is not None
        timeout = self._options.acquire_timeout
        deadline = self._loop.time() + timeout if timeout else math.inf
        lost_turn = False

        while True:
            if self._state is not OPEN:
                raise self._closed_error()

            entry = None if self._waiters else self._take_nowait()
            handed_over = entry is None
            if entry is None:
                # Queue up, start a create if there is room, and wait for a hand-over.
                max_waiting = self._options.max_waiting
                if max_waiting and len(self._waiters) >= max_waiting:
                    raise self._too_many_waiting(max_waiting)
                future = self._waiters.push(deadline, first=lost_turn)
                if self._size < self._max_size:
                    self._grow()
                started = monotonic()
                try:
                    result = await future
                except asyncio.CancelledError:
                    self._abandon(future)
                    raise
                finally:
                    self._wait_time_total += monotonic() - started
                if type(result) is not PooledClient:
                    raise self._wait_failure(result, started)
                entry = result

            # A client handed over comes fresh from a release, a create or a check. It
            # needs a check only if its last holder's block raised.
            # A client that other holders are inside is never checked here, because a failed
            # check destroys it under them; it is checked once it is idle.
            if (
                entry.leases == 1
                and (
                    entry.needs_check
                    or (
                        not handed_over
                        and monotonic() >= entry.fast_until
                        and self._check_due(entry)
                    )
                )
                and not await self._verify(entry, deadline)
            ):
                # That client failed its check and is gone, so this caller goes to the head
                # of the line for the next one.
                lost_turn = True
                continue

            self._acquired += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("pool %r: acquired client #%d", self._name, entry.number)
            return entry

    def _too_many_waiting(self, max_waiting: int) -> PoolTimeout:
        self._timeouts += 1
        return PoolTimeout(
            f"pool {self._name!r} already has {len(self._waiters)} acquires waiting "
            f"(max_waiting={max_waiting}); retry later, or raise max_size or max_waiting"
        )

    def _wait_failure(self, result: object, started: float) -> BaseException:
        """Return the exception for a waiter resolved with something other than a client.

        ``started`` is when the waiter began to wait, in monotonic time.
        """
        if result is TIMED_OUT:
            # A create that failed while this caller waited tells it more than a timeout.
            # Such a caller was left waiting only for another create, which hung.
            failure = self._last_create_failure
            if failure is not None and failure[0] >= started:
                return copy_error(failure[1])
            self._timeouts += 1
            return self._timeout_error()
        assert isinstance(result, BaseException)
        return result

    def _check_due(self, entry: PooledClient) -> bool:
        """Return whether the first holder of an idle client must check it first."""
        options = self._options
        return (
            entry.leases == 1
            and options.check_on_acquire
            and self._check is not None
            and monotonic() - entry.last_used > options.check_interval
        )

    def _take_nowait(self) -> PooledClient | None:
        """Lease a client without waiting, retiring stale idle ones on the way, or return None.

        Returns None while others wait, so that a newcomer cannot pass them in line.
        """
        if self._waiters:
            return None
        if not self._exclusive:
            shared = self._pick_shared()
            if shared is not None:
                shared.leases += 1
                return shared

        now = monotonic()
        while self._idle:
            # Popped only after the probe in _stale_reason returns, so that a probe that
            # raises leaves the client idle instead of losing it.
            entry = self._idle[-1]
            reason = self._stale_reason(entry, now)
            self._idle.pop()
            if reason is None:
                entry.leases = 1
                entry.state = BUSY
                return entry
            self._discard_nowait(entry, reason=reason)
        return None

    def _abandon(self, future: asyncio.Future[Any]) -> None:
        """Clean up after a waiter cancelled while queued, or just after being served.

        A future resolved with a client in the loop turn of the cancellation carries a
        lease that no task will use, so the client goes to the next waiter, or back to idle. This is
        why the queue resolves futures instead of notifying a condition: a notification
        to a task cancelled in the same moment is lost, and the client with it.
        """
        if not future.done() or future.cancelled():
            self._waiters.discard(future)
            return
        result = future.result()
        if type(result) is PooledClient:
            result.leases -= 1
            if result.retired is not None and result.leases == 0:
                self._discard_nowait(result)
            else:
                self._pass_on(result)
        # A create error meant for this waiter is dropped with it. The remaining waiters
        # may need a create of their own.
        self._grow()

    # --- releasing -----------------------------------------------------------------------

    def _release_nowait(self, entry: PooledClient) -> bool:
        """Take back a client whose block ended normally.

        Returns False when the client must be destroyed, which the caller then awaits.
        """
        entry.uses += 1
        entry.leases -= 1
        now = monotonic()
        if (
            entry.retired is not None
            or now >= entry.expires_at
            or (self._max_uses and entry.uses >= self._max_uses)
            or self._size - self._destroying > self._max_size
        ):
            return self._retire_released(entry, now)

        if entry.leases == 0:
            entry.last_used = now
            until = now + self._trust
            entry.fast_until = until if until < entry.expires_at else entry.expires_at
            if entry.needs_check:
                entry.fast_until = NEVER
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("pool %r: released client #%d", self._name, entry.number)
        # The probe is looked up here to keep a method call off the path of most pools.
        if self._is_closed is None:
            self._offer(entry)
        else:
            self._pass_on(entry)
        return True

    def _retire_released(self, entry: PooledClient, now: float) -> bool:
        """Mark a released client retired; return whether other holders still use it."""
        if entry.retired is None:
            if now >= entry.expires_at:
                entry.retired = "it reached max_lifetime"
            elif self._max_uses and entry.uses >= self._max_uses:
                entry.retired = "it reached max_uses"
            else:
                entry.retired = "max_size was lowered"
        entry.fast_until = NEVER
        return entry.leases > 0

    async def _release_after_error(
        self, entry: PooledClient, exc_type: type[BaseException]
    ) -> None:
        """Take back a client whose block raised: check it before reuse, or destroy it."""
        if issubclass(exc_type, Exception):
            if self._check is not None:
                entry.needs_check = True
                entry.fast_until = NEVER
            if not self._release_nowait(entry):
                await self._destroy(entry)
            return

        # Cancelled or interrupted: the client may be half-way through a request.
        entry.leases -= 1
        if entry.retired is None:
            entry.retired = f"its holder's block was interrupted by {exc_type.__name__}"
            entry.fast_until = NEVER
            if entry.leases > 0:
                logger.warning(
                    "pool %r: client #%d retires when its other holders release it, because %s",
                    self._name,
                    entry.number,
                    entry.retired,
                )
            else:
                await self._destroy(entry, warn=True)
                return
        if entry.leases == 0:
            await self._destroy(entry)
