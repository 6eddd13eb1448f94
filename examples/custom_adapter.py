"""A third-party adapter: the plug-in package asyncext_echo, for line echo servers.

The package lives in examples/echo_adapter. Its pyproject.toml declares the adapter in the
entry-point group "asyncext.adapters", so once it is installed, asyncext finds the "echo"
system type by itself: the application neither imports nor registers anything::

    pip install ./examples/echo_adapter
    python examples/custom_adapter.py

Without the package installed, this example registers the adapter by hand with
`register_adapter` instead, and prints which way it took. It starts an echo server on
127.0.0.1 itself, then shows what the adapter's methods do: ``validate`` rejecting an
incomplete record, ``test_connection``, pooled ``get_client`` calls, and ``check_client``
replacing the connections that the server dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from support import pool_stats

from asyncext import (
    AsyncextError,
    InvalidSystem,
    PoolOptions,
    SystemStore,
    adapter_for,
    generate_key,
    register_adapter,
)

HOST = "127.0.0.1"
PACKAGE_SOURCE = Path(__file__).resolve().parent / "echo_adapter" / "src"

# check_interval=0 checks every idle client before it is handed out, so that the connections
# the server drops below are found at once. The default, 0.5 s, skips the check for a client
# used that recently, which saves a round trip per lease under load.
POOL_OPTIONS = PoolOptions(max_size=4, check_interval=0)


@dataclass
class EchoServer:
    """A line echo server that requires a token first, as asyncext_echo expects."""

    token: str
    port: int = 0
    connections: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        try:
            hello = await reader.readline()
            if hello != f"HELLO {self.token}\n".encode():
                writer.write(b"DENIED\n")
                return
            writer.write(b"OK\n")
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass  # The client went away.
        finally:
            self.writers.discard(writer)
            writer.close()

    def drop_connections(self) -> None:
        """Close every open connection from the server side, as a restart would."""
        for writer in list(self.writers):
            writer.close()


@contextlib.asynccontextmanager
async def serve_echo(token: str) -> AsyncIterator[EchoServer]:
    server = EchoServer(token)
    listener = await asyncio.start_server(server.handle, HOST, 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server
        server.drop_connections()


def load_adapter() -> str:
    """Make the "echo" type available and return how: through its entry point, or by hand."""
    declared = [ep for ep in entry_points(group="asyncext.adapters") if ep.name == "echo"]
    if declared:
        return f"found through the entry point {declared[0].name} = {declared[0].value}"

    sys.path.insert(0, str(PACKAGE_SOURCE))
    from asyncext_echo import EchoAdapter

    register_adapter(EchoAdapter)
    return (
        "registered by hand, because the package is not installed; "
        "install it with: pip install ./examples/echo_adapter"
    )


async def demonstrate(folder: Path) -> None:
    token = secrets.token_urlsafe(16)
    async with (
        serve_echo(token) as server,
        SystemStore(folder / "systems.db", key=generate_key(), pool=POOL_OPTIONS) as store,
    ):
        # asyncext meets the type "echo" here for the first time, in validation.
        try:
            await store.add("greeter", "echo", host=HOST)
        except InvalidSystem as exc:
            print(f"validate  {exc}")
        greeter = await store.add(
            "greeter",
            "echo",
            host=HOST,
            port=server.port,
            options={"timeout": 5, "secrets": {"token": token}},
        )
        adapter = adapter_for("echo")
        print(f"adapter   {type(adapter).__name__} from module {type(adapter).__module__}")
        print(f"options   {greeter.options}")

        report = await greeter.test_connection()
        print(f"test      ok={report.ok}: {report.detail}")

        # A hundred requests at once; the pool lets at most four connections exist.
        async def ask(number: int) -> str:
            async with greeter.client() as echo:
                reply: str = await echo.echo(f"hello {number}")
            return reply

        replies = await asyncio.gather(*(ask(number) for number in range(100)))
        correct = sum(reply == f"hello {n}" for n, reply in enumerate(replies))
        stats = pool_stats(store, "greeter")
        print(
            f"pooled    {correct} of 100 replies correct; connections opened: {stats.created}, "
            f"leases served: {stats.acquired}"
        )

        # The server drops every connection; check_client finds out before reuse, and the
        # pool replaces each one that fails (logged as a WARNING on "asyncext.pool").
        server.drop_connections()
        replies = await asyncio.gather(*(ask(number) for number in range(10)))
        stats = pool_stats(store, "greeter")
        print(
            f"health    {len(replies)} replies after the server dropped its connections; "
            f"failed checks: {stats.failed_checks}, connections opened: {stats.created}"
        )

        intruder = await store.add(
            "intruder",
            "echo",
            host=HOST,
            port=server.port,
            options={"secrets": {"token": "not-the-token"}},
        )
        report = await intruder.test_connection()
        print(f"rejected  ok={report.ok}: {report.detail}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    print(f"echo      {load_adapter()}")
    try:
        with tempfile.TemporaryDirectory(prefix="asyncext-adapter-") as temp:
            asyncio.run(demonstrate(Path(temp)))
    except AsyncextError as exc:
        print(f"custom adapter example failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
