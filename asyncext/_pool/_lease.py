"""`Lease`, the async context manager returned by `ClientPool.acquire`."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._entry import PooledClient

if TYPE_CHECKING:
    from ._pool import ClientPool

ClientT = TypeVar("ClientT")


class Lease(Generic[ClientT]):
    """Holds one client of a pool for the duration of an ``async with`` block.

    A class rather than ``@asynccontextmanager``, because a generator-based manager costs
    a generator and several extra calls on every acquire.

    On exit the client goes back to the pool. When the block raised an exception, the
    client is checked before its next use. When the block was cancelled, or interrupted by
    another `BaseException`, the client is destroyed, because it may have been left in the
    middle of a request.
    """

    __slots__ = ("_entry", "_pool")

    def __init__(self, pool: ClientPool[ClientT]) -> None:
        self._pool = pool
        self._entry: PooledClient | None = None

    async def __aenter__(self) -> ClientT:
        if self._entry is not None:
            raise RuntimeError(
                f"this lease of pool {self._pool.name!r} is already in use; "
                "call pool.acquire() again for each 'async with' block"
            )
        pool = self._pool
        entry = pool._acquire_nowait() if pool._idle else None
        if entry is None:
            entry = await pool._acquire_slow()
        self._entry = entry
        client: ClientT = entry.client
        return client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entry = self._entry
        if entry is None:
            return
        self._entry = None
        if exc_type is None:
            if not self._pool._release_nowait(entry):
                await self._pool._destroy(entry)
        else:
            await self._pool._release_after_error(entry, exc_type)

    def __repr__(self) -> str:
        holding: Any = self._entry.number if self._entry is not None else None
        return f"<Lease of pool {self._pool.name!r} client=#{holding}>"
