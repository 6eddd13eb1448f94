"""`PooledClient`, the pool's record of one client, and the states it moves through."""

from __future__ import annotations

import math
from typing import Any

IDLE = 0
"""In the idle deque, ready to be handed out."""
BUSY = 1
"""Held by at least one ``acquire()`` block."""
CHECKING = 2
"""Out of the idle deque while its health check runs."""
GONE = 3
"""Being destroyed or destroyed; never handed out again."""

NEVER = -math.inf
"""A ``fast_until`` value that sends every acquire of the client through the slow path."""


class PooledClient:
    """One client of a pool, with the times and counts that decide when it retires.

    NOTE: ``fast_until`` folds the lifetime, idle and check-interval limits into one moment,
    so that handing out an idle client takes one comparison. Code that sets ``retired`` or
    ``needs_check``, or changes one of those limits, must lower it to `NEVER` or recompute it.
    """

    __slots__ = (
        "client",
        "expires_at",
        "fast_until",
        "generation",
        "last_used",
        "leases",
        "needs_check",
        "number",
        "retired",
        "state",
        "uses",
    )

    def __init__(
        self, client: Any, *, number: int, now: float, expires_at: float, generation: int
    ) -> None:
        self.client = client
        self.number = number
        """Sequence number within the pool; log lines name clients by it, never by repr."""
        self.expires_at = expires_at
        self.generation = generation
        """The pool's generation when creation started; `ClientPool.expire` raises it."""
        self.last_used = now
        """Loop time of the last release or passed check."""
        self.fast_until = NEVER
        self.leases = 0
        self.uses = 0
        self.needs_check = False
        """Set when a holder's block raised: the next holder checks it first."""
        self.retired: str | None = None
        """Why the client must not be handed to new holders, or None."""
        self.state = IDLE

    def __repr__(self) -> str:
        return f"<PooledClient #{self.number} leases={self.leases} state={self.state}>"
