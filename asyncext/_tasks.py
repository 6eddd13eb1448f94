"""Task helpers shared by the pool, the system layer and the store.

anyio's ``CancelScope(shield=True)`` only holds against anyio's own cancellation: a plain
``task.cancel()``, as ``asyncio.wait_for`` sends, still reaches a coroutine inside it. Work that
must finish, such as destroying a client or committing a transaction, therefore runs in a
separate task that the caller waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

CLEANUP_TIMEOUT = 10.0
"""Seconds that destroying a client may take before it is abandoned.

Cleanup runs shielded from cancellation, so without a bound a hung server could hold a
cancelled task forever.
"""


async def run_shielded(
    function: Callable[[], Awaitable[T]],
    *,
    timeout: float | None = None,
) -> T:
    """Run ``function()`` to completion even if the calling task is cancelled meanwhile.

    The work runs in its own task, bounded by ``timeout`` seconds (None: no bound), after
    which it is cancelled and `TimeoutError` is raised. A cancellation of the caller is
    delivered once the work has finished, so it is delayed, never swallowed.
    """

    async def bounded() -> T:
        if timeout is None:
            return await function()
        return await asyncio.wait_for(function(), timeout)

    task = asyncio.ensure_future(bounded())
    caller_cancelled: asyncio.CancelledError | None = None

    # asyncio.wait never raises the task's own exception, and a cancellation of the caller
    # interrupts only the wait, so the loop keeps waiting through any number of them.
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError as exc:
            caller_cancelled = exc

    if caller_cancelled is not None:
        if not task.cancelled():
            task.exception()  # marks the outcome as retrieved so asyncio does not log it
        raise caller_cancelled
    return task.result()
