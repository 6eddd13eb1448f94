"""asyncext_echo: the asyncext adapter of line echo servers, as an example of a plug-in package.

The protocol is line-based over TCP. The client sends ``HELLO <token>``, and the server
replies ``OK``, or ``DENIED`` and closes. From then on the server sends every line back
unchanged.

A system of type ``echo`` needs ``host`` and ``port``, and the token as the secret option
``options["secrets"]["token"]``, which the store encrypts like a password. The option
``timeout`` sets the seconds allowed for connecting and for each reply (default 5).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from asyncext import Adapter, ConnectionFailed, InvalidSystem, Secret

if TYPE_CHECKING:
    from asyncext import ExternalSystem

__all__ = ["EchoAdapter", "EchoClient"]

DEFAULT_TIMEOUT = 5.0
HEALTH_CHECK_LINE = "ping"


class EchoClient:
    """One logged-in connection to an echo server; `echo` sends a line and returns the reply."""

    def __init__(
        self,
        system: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float,
    ) -> None:
        self.system = system
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        # One request at a time, so that each reply is read by the call that sent its line.
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<EchoClient system={self.system!r}>"

    async def echo(self, text: str) -> str:
        """Send ``text`` as one line and return the line the server sends back.

        Raises:
            ValueError: ``text`` contains a line break.
            ConnectionError: the server closed the connection.
            TimeoutError: the server did not reply within the system's ``timeout``.
        """
        if "\n" in text or "\r" in text:
            raise ValueError("an echo line cannot contain a line break")
        async with self._lock:
            self._writer.write(text.encode() + b"\n")
            await self._writer.drain()
            line = await asyncio.wait_for(self._reader.readline(), self._timeout)
        if not line:
            raise ConnectionError(f"system {self.system!r}: the echo server closed the connection")
        return line.decode().rstrip("\n")

    def is_closed(self) -> bool:
        """Return whether this side has closed the connection or seen the server close it."""
        return self._writer.is_closing() or self._reader.at_eof()

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class EchoAdapter(Adapter[EchoClient]):
    """Connects to line echo servers; the client is an `EchoClient`."""

    system_type = "echo"
    description = "a line echo server over TCP (secret option: token)"

    def validate(self, system: ExternalSystem) -> None:
        # Runs on add, update and import, so an incomplete record is never stored.
        name = system.name
        if not system.host:
            raise InvalidSystem(f"system {name!r} of type 'echo' needs host", system=name)
        if system.port is None:
            raise InvalidSystem(
                f"system {name!r} of type 'echo' needs port: the echo server's TCP port",
                system=name,
            )
        timeout = system.options.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidSystem(
                f"system {name!r}: options['timeout'] is {timeout!r}; give a number of "
                "seconds greater than 0",
                system=name,
            )
        if not isinstance(system.options.get("secrets", {}).get("token"), Secret):
            raise InvalidSystem(
                f"system {name!r} of type 'echo' needs its token as the secret option "
                "options['secrets']['token']",
                system=name,
            )

    async def get_client(self, system: ExternalSystem) -> EchoClient:
        assert system.host is not None and system.port is not None  # checked by validate
        timeout = float(system.options.get("timeout", DEFAULT_TIMEOUT))
        token = system.options["secrets"]["token"].reveal()

        # OSError and TimeoutError from here reach the caller as ConnectionFailed, which
        # asyncext builds with the system's name.
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(system.host, system.port), timeout
        )
        try:
            writer.write(f"HELLO {token}\n".encode())
            await writer.drain()
            reply = await asyncio.wait_for(reader.readline(), timeout)
        except BaseException:
            writer.close()
            raise
        if reply != b"OK\n":
            writer.close()
            # The token is a secret: the message names where to set it, never its value.
            raise ConnectionFailed(
                f"system {system.name!r}: the echo server at {system.host}:{system.port} "
                "rejected the token; set the right one in options['secrets']['token']",
                system=system.name,
            )
        return EchoClient(system.name, reader, writer, timeout)

    async def destroy_client(self, client: EchoClient) -> None:
        await client.aclose()

    async def check_client(self, client: EchoClient) -> bool:
        # The pool runs this before it hands out a client that has been idle for a while;
        # False makes it destroy the client and take or create another.
        if client.is_closed():
            return False
        try:
            return await client.echo(HEALTH_CHECK_LINE) == HEALTH_CHECK_LINE
        except (OSError, asyncio.TimeoutError):
            return False

    async def test_connection(self, system: ExternalSystem) -> str:
        client = await self.get_client(system)
        try:
            if await client.echo(HEALTH_CHECK_LINE) != HEALTH_CHECK_LINE:
                raise ConnectionFailed(
                    f"system {system.name!r}: the server at {system.host}:{system.port} "
                    "replied, but not with the line it was sent; check that it is an echo server",
                    system=system.name,
                )
        finally:
            await client.aclose()
        return f"echo server at {system.host}:{system.port} replied"
