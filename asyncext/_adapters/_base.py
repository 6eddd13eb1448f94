"""`Adapter`, the base class that turns a system record into a ready client."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from .._tasks import CLEANUP_TIMEOUT, run_shielded

if TYPE_CHECKING:
    from .._system import ExternalSystem

ClientT = TypeVar("ClientT")


class Adapter(abc.ABC, Generic[ClientT]):
    """Connects to one kind of external system.

    A subclass sets `system_type` and `description` and implements `get_client`; the other
    methods have working defaults. Register it with `register_adapter` or through the
    entry-point group ``asyncext.adapters``. One instance serves every system of its type, so
    keep per-connection state in the client, not on the adapter.

    Errors raised by `get_client` that are not asyncext errors reach the caller as
    `ConnectionFailed` naming the system, with the original exception chained.
    """

    system_type: ClassVar[str]
    """The name stored in ``ExternalSystem.system_type``, for example ``"sftp"``."""

    description: ClassVar[str]
    """One line shown by ``asyncext types``."""

    def validate(self, system: ExternalSystem) -> None:
        """Check the fields that this adapter needs; raise `InvalidSystem` naming the field.

        Called by every path that stores a record (`add`, `update`, import) after the
        generic checks, so a rejected record is never written.
        """

    @abc.abstractmethod
    async def get_client(self, system: ExternalSystem) -> ClientT:
        """Connect to the system and return a ready client."""

    async def destroy_client(self, client: ClientT) -> None:
        """Release the client's resources.

        Runs shielded from cancellation and bounded in time, so it must not wait on the
        remote side longer than needed.
        """

    async def check_client(self, client: ClientT) -> bool:
        """Return whether a pooled client still works; a false result retires it."""
        return True

    def is_closed(self, client: ClientT) -> bool:
        """Return whether the client already knows that it cannot work, without any I/O.

        The pool calls it on every hand-out, also of a client used too recently for
        `check_client`, so that a connection the server has closed is replaced at once.
        Override it only with a cheap local test, such as a closed socket; the default
        returns False.
        """
        return False

    def is_connection_error(self, client: ClientT, error: BaseException) -> bool:
        """Return whether an error raised inside a ``client()`` block means that the
        client's connection failed, rather than the operation.

        Such an error leaves the block as `ConnectionFailed` naming the system, with the
        error chained, so that callers handle a lost server the same way for every type.
        The default returns False: errors pass unchanged.
        """
        return False

    def lease_limit(self, client: ClientT) -> int | None:
        """Return how many pool holders may share this client now, or None for no own limit.

        The pool never exceeds its ``max_leases`` option. An adapter that learns a lower
        limit from the server, such as a channel limit per SSH connection, reports it here
        so that the pool sends new holders to other clients.
        """
        return None

    async def test_connection(self, system: ExternalSystem) -> str:
        """Connect, check and close a client, and return a one-line detail for the report.

        Raises whatever `get_client` raises when the system cannot be reached.
        """
        client = await self.get_client(system)
        try:
            healthy = await self.check_client(client)
        finally:
            await run_shielded(lambda: self.destroy_client(client), timeout=CLEANUP_TIMEOUT)
        if not healthy:
            raise RuntimeError("the client connected but failed its health check")
        return "connected"
