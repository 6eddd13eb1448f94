"""Session channel slots on one SSH connection, learned from the server's refusals.

sshd allows ``MaxSessions`` session channels per connection (10 by default) and refuses the
next one. When pool holders share a connection, more
holders than that may open channels at once. `ChannelSlots` wraps the connection's
``create_session``, through which asyncssh opens every session channel (``run``,
``create_process``, ``start_sftp_client``, ``open_session``). When the server refuses a
channel while others are open, it records the limit, and the refused call waits for a channel
to close and tries again instead of failing. The adapter reports the limit through
``lease_limit``, so the pool sends new holders to another connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import asyncssh

logger = logging.getLogger("asyncext.ssh")

# Refusal codes that servers send for a session channel beyond their limit. OpenSSH 9.2
# sends "connect failed" with the text "open failed"; others use the two other codes.
_LIMIT_CODES = frozenset(
    {
        asyncssh.OPEN_CONNECT_FAILED,
        asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
        asyncssh.OPEN_RESOURCE_SHORTAGE,
    }
)

_REFUSAL_BACKOFF = 0.01
"""Seconds to wait before retrying a refused channel when a slot already looks free.

A server may still count a channel that the client has just closed, so the retry waits a
moment rather than spinning.
"""


_IDLE_REFUSAL_RETRIES = 5
"""Retries of a channel refused while none of ours is open, before the refusal is raised."""


class ChannelSlots:
    """Counter of a connection's open session channels that delays new ones at the learned limit."""

    def __init__(self, connection: asyncssh.SSHClientConnection, system: str) -> None:
        self._system = system
        self._create_session = connection.create_session
        self._open = 0
        self._max_open = 0
        self._limit: int | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._watchers: set[asyncio.Task[None]] = set()

    @property
    def limit(self) -> int | None:
        """Maximum session channels the server allows at once, or None until it rejects one."""
        return self._limit

    @property
    def open_channels(self) -> int:
        """Session channels open now, counting those being opened."""
        return self._open

    async def create_session(self, *args: Any, **kwargs: Any) -> Any:
        """Open a session channel once a slot is free; retry after a refusal at the limit.

        NOTE: the wait for a free slot has no time limit of its own, because a channel may
        stay open as long as its command runs. Cancel the caller to give up.
        """
        refusals = 0
        while True:
            await self._acquire(first_in_line=refusals > 0)
            try:
                channel, session = await self._create_session(*args, **kwargs)
            except asyncssh.ChannelOpenError as exc:
                others = self._open - 1
                self._release()
                if exc.code not in _LIMIT_CODES:
                    raise
                refusals += 1
                if others == 0:
                    # With no channel of ours open, the server still counts one that closed a
                    # moment ago, or it refuses sessions altogether. Only the first case
                    # passes with a short wait, and only on a connection that had channels.
                    if self._max_open == 0 or refusals > _IDLE_REFUSAL_RETRIES:
                        raise
                    await asyncio.sleep(_REFUSAL_BACKOFF * refusals)
                    continue
                self._learn_limit(others)
                if self._has_free_slot():
                    await asyncio.sleep(_REFUSAL_BACKOFF * min(refusals, 10))
                continue
            except BaseException:
                self._release()
                raise

            self._max_open = max(self._max_open, self._open)
            self._watch(channel)
            return channel, session

    def _learn_limit(self, others: int) -> None:
        # A server may still count a channel that was closed a moment ago, so the limit never
        # drops below the number of channels it has already allowed at once.
        limit = max(others, self._max_open)
        if self._limit is None or limit < self._limit:
            logger.info(
                "system %r: the server rejected a session channel with %d open; "
                "sharing this connection among at most %d channels",
                self._system,
                others,
                limit,
            )
            self._limit = limit

    def _has_free_slot(self) -> bool:
        return self._limit is None or self._open < self._limit

    async def _acquire(self, *, first_in_line: bool) -> None:
        if self._has_free_slot() and not self._waiters:
            self._open += 1
            return

        waiter = asyncio.get_running_loop().create_future()
        if first_in_line:
            self._waiters.appendleft(waiter)
        else:
            self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over as this task was cancelled: pass it on.
                self._open -= 1
                self._wake_next()
            else:
                self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        self._open -= 1
        self._wake_next()

    def _wake_next(self) -> None:
        # NOTE: the slot is counted as taken before the woken task runs, so a newcomer
        # cannot take it in between.
        while self._waiters and self._has_free_slot():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)

    def _watch(self, channel: asyncssh.SSHClientChannel[Any]) -> None:
        """Free the channel's slot when it closes."""
        watcher = asyncio.ensure_future(channel.wait_closed())
        self._watchers.add(watcher)

        def closed(task: asyncio.Task[None]) -> None:
            self._watchers.discard(task)
            self._release()

        watcher.add_done_callback(closed)


def install_channel_slots(connection: asyncssh.SSHClientConnection, system: str) -> ChannelSlots:
    """Route the connection's session channels through a new `ChannelSlots`."""
    slots = ChannelSlots(connection, system)
    # The connection object stays the caller's SSHClientConnection; only this instance's
    # create_session is replaced, and every other session helper calls it.
    setattr(connection, "create_session", slots.create_session)  # noqa: B010
    return slots


def channel_slots(connection: asyncssh.SSHClientConnection) -> ChannelSlots | None:
    """Return the slots installed on ``connection``, if any."""
    owner = getattr(connection.create_session, "__self__", None)
    return owner if isinstance(owner, ChannelSlots) else None
