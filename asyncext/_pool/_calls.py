"""Running a pool's ``create`` and ``check`` functions, and the pool's background sweep.

Each user function runs in its own task that the caller waits for with `asyncio.wait`,
which returns on a timeout without cancelling the caller. Cancelling the caller itself
(``task.cancel()`` or an outer timeout) for a timeout would race with the function's
result: a client created in the same loop turn as the cancellation would be lost.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .._errors import AsyncextError, ConnectionFailed

FILL_BACKOFF_INITIAL = 0.1
"""Seconds before the first retry after a failed create for ``min_size``."""

FILL_BACKOFF_MAX = 30.0
"""Maximum delay between retries of creates for ``min_size``, in seconds."""

SWEEP_INTERVAL_MAX = 60.0
"""Maximum pause between two sweeps of idle clients, in seconds."""

SWEEP_INTERVAL_MIN = 0.005
"""Minimum pause between two sweeps, so that a tiny ``max_idle`` cannot spin the loop."""

CREATE_GRACE_MIN = 10.0
"""Minimum seconds a create that timed out may go on running before it is cancelled."""

CHECK_TIMEOUT = 5.0
"""Maximum seconds a health check may take before it counts as failed.

A check is one round trip on an open connection, so a check that takes seconds means a
dead or stalled server, and a new client serves the caller sooner. `check_timeout` lowers
the bound to ``create_timeout`` when that is shorter.
"""


def describe(exc: BaseException) -> str:
    """Return ``Type: message`` for a foreign exception, the message alone for ours."""
    if isinstance(exc, AsyncextError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_cause(error: BaseException) -> str:
    """Return what went wrong, without the wrapping message of a translated error."""
    return describe(error.__cause__ if error.__cause__ is not None else error)


def check_timeout(create_timeout: float) -> float:
    """Return the bound of one health check, in seconds, for a pool's ``create_timeout``.

    A check may take no longer than creating a client may, because a client whose check
    takes that long is worth less than a new one.
    """
    if create_timeout:
        return min(CHECK_TIMEOUT, create_timeout)
    return CHECK_TIMEOUT


def backoff_delay(failures: int) -> float:
    """Return the delay before the next create for ``min_size`` after ``failures`` failures.

    The delay doubles with each failure up to `FILL_BACKOFF_MAX`, and is drawn from its
    upper half at random, so that pools that failed together do not retry together.
    """
    ceiling = min(FILL_BACKOFF_MAX, FILL_BACKOFF_INITIAL * 2.0 ** min(failures - 1, 30))
    return ceiling * (0.5 + random.random() / 2)


def start_create(create: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
    """Start ``create()`` in a task of its own, which the pool can stop waiting for without
    cancelling it.

    The call happens inside the task, so that an exception raised by ``create`` before its
    first await ends the task like any other create error.
    """

    async def call() -> Any:
        return await create()

    return asyncio.ensure_future(call())


def create_result(task: asyncio.Task[Any], pool_name: str) -> Any:
    """Return the client of a finished create task.

    Raises:
        ConnectionFailed: ``create`` raised or was cancelled on its own; the original
            exception is chained.
        AsyncextError: raised by ``create`` itself, passed through unchanged.
    """
    if task.cancelled():
        raise ConnectionFailed(
            f"creating a client for pool {pool_name!r} failed: the create function was "
            "cancelled from inside"
        )
    error = task.exception()
    if error is None:
        return task.result()
    if isinstance(error, AsyncextError):
        raise error
    raise ConnectionFailed(
        f"creating a client for pool {pool_name!r} failed: {describe(error)}"
    ) from error


def duplicate_client(pool_name: str, number: int) -> ConnectionFailed:
    """Return the error for a create that returned a client the pool already holds."""
    return ConnectionFailed(
        f"creating a client for pool {pool_name!r} failed: create returned the object that "
        f"the pool already holds as client #{number}; create must return a new client on "
        "every call"
    )


def create_timed_out(pool_name: str, timeout: float) -> ConnectionFailed:
    """Return the error for a create that did not finish within ``create_timeout``."""
    error = ConnectionFailed(
        f"creating a client for pool {pool_name!r} timed out after {timeout:g} s "
        "(create_timeout); check that the server is reachable, or raise create_timeout"
    )
    error.__cause__ = TimeoutError(f"create() did not return within {timeout:g} s")
    return error


def copy_error(error: BaseException) -> BaseException:
    """Return a new exception with the type, message, attributes and cause of ``error``.

    Each waiter that fails for one create error raises its own copy, so that the
    tracebacks of several tasks do not pile up on one object. The copy is made without
    calling ``__init__``, whose arguments may differ from ``args``.
    """
    cls = type(error)
    try:
        copy = cls.__new__(cls, *error.args)
    except Exception:
        # NOTE: an exception type whose __new__ rejects its own args is shared instead.
        return error
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = error.__cause__
    copy.__suppress_context__ = True
    return copy


def create_grace(create_timeout: float) -> float:
    """Return how long a create that timed out may go on running before it is cancelled.

    Cancelling a create whose work runs in a worker thread does not stop the thread, and
    asyncio then drops the client the thread returns. The grace lets such a create
    finish, so that its client can be destroyed, and still ends a create that hangs.
    """
    return max(create_timeout, CREATE_GRACE_MIN)


def abandon(task: asyncio.Future[Any], on_late_client: Callable[[Any], None]) -> None:
    """Cancel a task; if it returns a client all the same, pass it to ``on_late_client``."""

    def collect(finished: asyncio.Future[Any]) -> None:
        if finished.cancelled():
            return
        if finished.exception() is None:  # also marks an exception as retrieved
            on_late_client(finished.result())

    task.cancel()
    task.add_done_callback(collect)


async def run_check(
    check: Callable[[Any], Awaitable[bool]], client: Any, timeout: float
) -> str | None:
    """Run ``check(client)`` for at most ``timeout`` seconds.

    Returns:
        None when the client is healthy, else why it is not, as a clause for a log line.
    """
    task = asyncio.ensure_future(check(client))
    try:
        done, _ = await asyncio.wait((task,), timeout=timeout)
    except asyncio.CancelledError:
        abandon(task, _ignore)
        raise

    if not done:
        abandon(task, _ignore)
        return f"its health check did not finish within {timeout:g} s"
    if task.cancelled():
        return "its health check was cancelled"
    error = task.exception()
    if error is not None:
        return f"its health check raised {describe(error)}"
    if not task.result():
        return "its health check returned false"
    return None


def _ignore(client: Any) -> None:
    """Keep a client that a cancelled check returned: the check does not own it."""


class Sweepable(Protocol):
    def _sweep(self) -> float: ...


async def maintain(pool_ref: weakref.ref[Sweepable]) -> None:
    """Sweep a pool's idle clients until the pool is gone; the pool cancels it on close.

    The task holds the pool only through a weak reference between sweeps, so that an
    unclosed pool can still be garbage-collected and warn about it.
    """
    while True:
        pool = pool_ref()
        if pool is None:
            return
        delay = pool._sweep()
        del pool
        await asyncio.sleep(delay)
