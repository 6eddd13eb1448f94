"""Session channel slots on one SSH connection, learned from the server's refusals.

sshd allows ``MaxSessions`` session channels per connection (10 by default) and refuses the
next one. When pool holders share a connection, more
holders than that may open channels at once. `ChannelSlots` wraps the connection's
``create_session``, through which asyncssh opens every session channel (``run``,
``create_process``, ``start_sftp_client``, ``open_session``). When the server refuses a
channel while others are open, it records how many of them the server had confirmed as the
limit, and the refused call waits for one of them to close before it tries again. The adapter
reports the limit through ``lease_limit``, so the pool sends new holders to another
connection.

asyncssh 2.24 leaves a channel open on the server when the call that opens it is cancelled, so
each open runs in a task of its own. A cancelled caller returns at once, and the channel is
closed once that task has opened it. When the server confirms the channel only after the
cancellation, the exec, shell or subsystem request is never sent. A command that has already
started keeps its slot until it exits, because OpenSSH 9.2 confirms the close only then.
"""

from __future__ import annotations

import asyncio
import collections
import functools
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
"""Seconds to wait, times the stale refusals in a row, before retrying a stale refusal.

A refusal is stale when fewer of the connection's channels are open than the limit, because
the server may still count a channel that the client has just closed.
"""

_STALE_REFUSAL_RETRIES = 5
"""Stale refusals in a row that one call retries after a short wait.

After that, the call raises the refusal if none of the connection's channels is open, and
otherwise lowers the limit to the channels open and waits for one of them to close. A limit
lowered this way never rises again on that connection.
"""


class ChannelSlots:
    """Counter of a connection's open session channels that delays new ones at the learned limit."""

    def __init__(self, connection: asyncssh.SSHClientConnection, system: str) -> None:
        self._system = system
        self._connection = connection
        self._create_session = connection.create_session
        # NOTE: _open counts slots taken, which are confirmed channels, opens in flight and
        # refused opens waiting to retry. Only _confirmed counts channels the server allowed.
        self._open = 0
        self._confirmed = 0
        self._max_confirmed = 0
        self._limit: int | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._watchers: set[asyncio.Task[None]] = set()
        self._abandoned_opens: set[asyncio.Task[Any]] = set()

    @property
    def limit(self) -> int | None:
        """Maximum session channels the server allows at once, or None until it rejects one."""
        return self._limit

    @property
    def open_channels(self) -> int:
        """Session channels open now, counting those being opened or waiting to retry."""
        return self._open

    async def create_session(self, session_factory: Any, *args: Any, **kwargs: Any) -> Any:
        """Open a session channel once a slot is free; retry after a refusal at the limit.

        NOTE: the wait for a free slot has no time limit of its own, because a channel may
        stay open as long as its command runs. Cancel the caller to give up.
        """
        stale_refusals = 0
        await self._acquire(first_in_line=False)
        while True:
            attempt = _OpenAttempt()

            def create_confirmed_session(attempt: _OpenAttempt = attempt) -> Any:
                # asyncssh 2.24 calls the factory in the step that receives the server's
                # confirmation, before it sends the exec, shell or subsystem request.
                attempt.confirmed = True
                self._confirm()
                if attempt.abandoned:
                    return _AbandonedSession(attempt)
                return session_factory()

            opening = asyncio.ensure_future(
                self._create_session(create_confirmed_session, *args, **kwargs)
            )
            try:
                channel, session = await asyncio.shield(opening)
            except asyncssh.ChannelOpenError as exc:
                if attempt.confirmed or not self._is_limit_refusal(exc):
                    self._release(confirmed=attempt.confirmed)
                    raise
                retry = await self._wait_after_refusal(stale_refusals)
                if retry is None:
                    raise
                stale_refusals = retry
                continue
            except asyncio.CancelledError:
                # The open goes on without the caller, because asyncssh 2.24 would leave the
                # channel open on the server if it were cancelled.
                self._close_when_opened(opening, attempt)
                raise
            except BaseException:
                self._release(confirmed=attempt.confirmed)
                raise

            self._watch(channel)
            return channel, session

    def _is_limit_refusal(self, exc: asyncssh.ChannelOpenError) -> bool:
        # asyncssh 2.24 fails opens in flight with OPEN_CONNECT_FAILED when the connection
        # closes, which is no limit.
        return exc.code in _LIMIT_CODES and not self._connection.is_closed()

    async def _wait_after_refusal(self, stale_refusals: int) -> int | None:
        """Wait until a refused open may be retried, holding its slot again.

        Returns the stale refusals in a row so far, or None when the caller should raise the
        refusal. The slot is then already released.
        """
        confirmed = self._confirmed
        if confirmed > 0:
            self._learn_limit(confirmed)
        others = self._open - 1

        # Three cases:
        # - The connection's other channels fill the limit: give the slot back without waking
        #   anyone, and wait until one of the confirmed channels closes.
        # - None is confirmed: the server still counts one that closed a moment ago, or it
        #   allows no sessions at all. Only the first passes with a short wait, and only on
        #   a connection that had channels.
        # - Fewer than the limit are confirmed: the server still counts one that closed a
        #   moment ago. Wait briefly, then treat the channels confirmed now as the limit.
        if confirmed > 0 and self._limit is not None and others >= self._limit:
            self._open -= 1
            await self._acquire(first_in_line=True)
            return 0

        stale_refusals += 1
        if confirmed == 0:
            if self._max_confirmed == 0 or stale_refusals > _STALE_REFUSAL_RETRIES:
                self._release(confirmed=False)
                return None
        elif stale_refusals > _STALE_REFUSAL_RETRIES:
            self._set_limit(confirmed, confirmed)
            self._open -= 1
            await self._acquire(first_in_line=True)
            return 0

        try:
            await asyncio.sleep(_REFUSAL_BACKOFF * stale_refusals)
        except BaseException:
            self._release(confirmed=False)
            raise
        return stale_refusals

    def _learn_limit(self, confirmed: int) -> None:
        # A server may still count a channel that was closed a moment ago, so the limit never
        # drops below the number of channels it has already confirmed at once.
        self._set_limit(max(confirmed, self._max_confirmed), confirmed)

    def _set_limit(self, limit: int, confirmed: int) -> None:
        if self._limit is not None and limit >= self._limit:
            return
        logger.info(
            "system %r: the server rejected a session channel with %d confirmed open; "
            "sharing this connection among at most %d channels",
            self._system,
            confirmed,
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

    def _confirm(self) -> None:
        self._confirmed += 1
        self._max_confirmed = max(self._max_confirmed, self._confirmed)

    def _release(self, *, confirmed: bool) -> None:
        if confirmed:
            self._confirmed -= 1
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

    def _close_when_opened(self, opening: asyncio.Task[Any], attempt: _OpenAttempt) -> None:
        """Close the channel that ``opening`` opens for a cancelled caller, or release its slot."""
        attempt.abandoned = True
        if opening.done():
            self._close_abandoned(attempt, opening)
            return
        self._abandoned_opens.add(opening)
        opening.add_done_callback(functools.partial(self._close_abandoned, attempt))

    def _close_abandoned(self, attempt: _OpenAttempt, opening: asyncio.Task[Any]) -> None:
        self._abandoned_opens.discard(opening)

        # Four cases:
        # - The open succeeded: close the channel, which the caller will never use.
        # - The server confirmed the channel after the caller was cancelled:
        #   `_AbandonedSession` stopped the open before its request, so close the channel.
        # - The open failed: no channel is open, so release the slot.
        # - The open task itself was cancelled, as when the event loop shuts down: asyncssh
        #   may leave a confirmed channel open, and only the slot is released.
        channel = attempt.abandoned_channel
        if opening.cancelled():
            channel = None
        elif opening.exception() is None:
            channel, _ = opening.result()
        elif channel is None:
            logger.debug(
                "system %r: a session channel open failed after its caller was cancelled: %s",
                self._system,
                opening.exception(),
            )

        if channel is None:
            self._release(confirmed=attempt.confirmed)
            return
        self._watch(channel)
        channel.close()

    def _watch(self, channel: asyncssh.SSHClientChannel[Any]) -> None:
        watcher = asyncio.ensure_future(self._release_when_closed(channel))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _release_when_closed(self, channel: asyncssh.SSHClientChannel[Any]) -> None:
        # The slot is freed in the step in which wait_closed returns. Once this task waits, a
        # channel confirmed in a later packet is therefore not counted while this one still is.
        try:
            await channel.wait_closed()
        finally:
            self._release(confirmed=True)


class _OpenAttempt:
    """State of one channel open that runs in its own task, shared with its session factory."""

    def __init__(self) -> None:
        self.confirmed = False
        self.abandoned = False
        """Flag set when the caller is cancelled before the open finishes."""
        self.abandoned_channel: asyncssh.SSHClientChannel[Any] | None = None
        """Channel that the server confirmed after the caller was cancelled."""


class _OpenAbandoned(Exception):
    """Exception that stops asyncssh's open of a channel whose caller was cancelled."""


class _AbandonedSession(asyncssh.SSHClientSession[Any]):
    """Session for a channel confirmed after its caller was cancelled.

    asyncssh 2.24 calls ``connection_made`` right after the factory and before it sends the
    env and exec, shell or subsystem requests. Raising there keeps the command from starting
    and ends the open with the channel confirmed, so that `ChannelSlots` can close it.
    """

    def __init__(self, attempt: _OpenAttempt) -> None:
        self._attempt = attempt

    def connection_made(self, chan: asyncssh.SSHClientChannel[Any]) -> None:
        self._attempt.abandoned_channel = chan
        raise _OpenAbandoned


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
