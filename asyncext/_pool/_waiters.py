"""`WaiterQueue`: the first-come, first-served line of ``acquire()`` calls waiting for a client.

Each waiter is a plain future. The task that frees a client resolves the oldest live future
with it directly, so a newcomer cannot take the client first. A future is resolved with:

- a `PooledClient` whose lease the waiter now holds;
- an exception instance for the waiter to raise (`PoolClosed`, a create error), never
  one that another waiter raises too;
- `TIMED_OUT` when the waiter's deadline passed.

Results are never set with ``set_exception``: a waiter cancelled in the same moment would
leave the exception unretrieved, and asyncio would log it.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import Any

TIMED_OUT: Any = object()
"""The result of a waiter whose deadline passed before it got a client."""


Waiter = tuple["asyncio.Future[Any]", float]
"""A waiting future and its deadline in loop time."""


class WaiterQueue(deque[Waiter]):
    """Waiting futures in arrival order, with one timer for all of their deadlines.

    A timer per waiter would cost a heap insert and a cancellation on every contended
    acquire. One timer armed at the earliest deadline is enough: when it fires, every
    waiter past its deadline is resolved with `TIMED_OUT` and the timer is armed again for
    the earliest remaining deadline.

    The queue is a deque itself, so that the pool's hot path tests and pops it without a
    Python-level method call.
    """

    __slots__ = ("_loop", "_timer", "_timer_at")

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the queue to the loop whose futures and timer it uses."""
        self._loop = loop

    def count_live(self) -> int:
        """Return how many queued waiters have not been resolved or cancelled."""
        return sum(1 for future, _ in self if not future.done())

    def push(self, deadline: float, *, first: bool = False) -> asyncio.Future[Any]:
        """Queue a new waiter that times out at loop time ``deadline`` (inf: never).

        ``first`` puts it at the head, for a waiter that was served but lost its client,
        so that it keeps its place in line.
        """
        assert self._loop is not None, "bind() the queue to a loop first"
        future: asyncio.Future[Any] = self._loop.create_future()
        if first:
            self.appendleft((future, deadline))
        else:
            self.append((future, deadline))
        if deadline < self._timer_at:
            self._arm(deadline)
        return future

    def discard(self, future: asyncio.Future[Any]) -> None:
        """Remove a waiter that gave up, if it is still queued."""
        for index, (queued, _) in enumerate(self):
            if queued is future:
                del self[index]
                return

    def resolve_all(self, make_result: Callable[[], object]) -> None:
        """Resolve every waiting future with a result from ``make_result()``; empty the queue.

        Each waiter gets its own result, so that an exception raised in several tasks does
        not collect all of their tracebacks.
        """
        items = list(self)
        self.clear()
        for future, _ in items:
            if not future.done():
                future.set_result(make_result())

    def fail_uncovered(
        self,
        error: BaseException,
        copy_error: Callable[[BaseException], BaseException],
        covered: int,
    ) -> int:
        """Resolve the waiters that a failed create leaves with nothing to wait for.

        The oldest live waiter gets ``error`` itself. The ``covered`` live waiters after it
        stay queued, because creates still in flight will serve them. Every later waiter
        gets its own ``copy_error(error)``.

        Returns:
            How many waiters were resolved.
        """
        items = list(self)
        self.clear()
        failed = 0
        spared = 0
        for future, deadline in items:
            if future.done():
                continue
            if failed and spared < covered:
                self.append((future, deadline))
                spared += 1
                continue
            future.set_result(copy_error(error) if failed else error)
            failed += 1
        return failed

    def close(self) -> None:
        """Stop the timer; the queue must be empty."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _arm(self, deadline: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Resolve the waiters whose deadline passed; arm the timer for the next one."""
        self._timer = None
        self._timer_at = math.inf
        assert self._loop is not None
        now = self._loop.time()

        items = list(self)
        self.clear()
        earliest = math.inf
        for future, deadline in items:
            if future.done():
                continue
            if deadline <= now:
                future.set_result(TIMED_OUT)
                continue
            self.append((future, deadline))
            earliest = min(earliest, deadline)

        if earliest < math.inf:
            self._arm(earliest)
