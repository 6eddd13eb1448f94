"""Fault injection for the reliability tests: a TCP proxy that cuts the network, frozen
processes, server-side connection counts, and a load of pooled file operations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from asyncext import ConnectionFailed, ExternalSystem, PoolTimeout

HOST = "127.0.0.1"


class TCPProxy:
    """A TCP proxy on 127.0.0.1 in front of a server, whose network the test can cut.

    `cut` closes the listening socket, so that new connections are refused, and stops
    forwarding on the open ones without closing them, so that their peers see silence as
    on a dead network. `restore` listens on the same port again and closes the connections
    that were cut, whose clients have given up on them by then.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on a free port, or on the same port again after `cut`."""
        self._server = await asyncio.start_server(self._accept, HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and silence the open ones."""
        self._flowing.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def restore(self) -> None:
        """Drop the silenced connections and accept new ones on the same port."""
        await self._close_connections()
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self.start()

    async def close(self) -> None:
        await self.cut()
        await self._close_connections()

    async def _close_connections(self) -> None:
        for task in self._pumps:
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        self._pumps.clear()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flowing = self._flowing
        try:
            target_reader, target_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, target_writer))
        for source, sink in ((reader, target_writer), (target_reader, writer)):
            task = asyncio.ensure_future(self._pump(source, sink, flowing))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event
    ) -> None:
        try:
            while data := await source.read(65536):
                # A cut connection keeps its sockets open and drops nothing: it only stalls.
                await flowing.wait()
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[list[int]]:
    """Stop the given processes with SIGSTOP for the block, and continue them after it."""
    stopped = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield stopped
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def established_connections(port: int) -> int:
    """Return how many established TCP connections on 127.0.0.1 have ``port`` as local port.

    Counting the server's side of each connection shows the sessions it still serves.
    """
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # 01 is TCP_ESTABLISHED
                    count += 1
    return count


async def wait_until(condition: Callable[[], bool], timeout: float, description: str) -> None:
    """Return once ``condition()`` is true; fail naming ``description`` after ``timeout`` s.

    For state that changes on replies from another process, with no event to wait on.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{description}: not reached within {timeout:g} s"
        await asyncio.sleep(0.02)


# --- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one operation of a `FileLoad` ended."""

    worker: int
    started: float
    ended: float
    kind: str
    """``ok``, ``failed`` (ConnectionFailed), ``hung`` (bound exceeded) or ``other``."""
    error: BaseException | None = None


class FileLoad:
    """Tasks that write and read files through ``system.client()`` until stopped.

    Every operation runs under ``asyncio.wait_for`` with ``bound`` seconds, so that one that
    would hang is recorded as ``hung`` instead of stalling the test.
    """

    def __init__(self, system: ExternalSystem, *, workers: int, bound: float) -> None:
        self.system = system
        self.workers = workers
        self.bound = bound
        self.outcomes: list[Outcome] = []
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._progress = asyncio.Event()

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._work(number)) for number in range(self.workers)]

    async def stop(self) -> None:
        """Let every worker finish its current operation; fail if one takes past its bound."""
        self._stopping.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), self.bound + 5.0)

    async def wait_for_successes(self, after: float, timeout: float) -> None:
        """Wait until every worker completed an operation that started after ``after``."""
        deadline = time.monotonic() + timeout
        while self.workers_succeeded_since(after) < self.workers:
            remaining = deadline - time.monotonic()
            assert remaining > 0, (
                f"only {self.workers_succeeded_since(after)} of {self.workers} workers "
                f"succeeded within {timeout:g} s; outcomes since: {self.summary(after)}"
            )
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    def workers_succeeded_since(self, moment: float) -> int:
        return len({o.worker for o in self.outcomes if o.kind == "ok" and o.started > moment})

    def summary(self, after: float = 0.0) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            if outcome.started > after:
                counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        return counts

    def in_flight_at(self, moment: float) -> list[Outcome]:
        """Return the operations that had started and not ended at ``moment``."""
        return [o for o in self.outcomes if o.started <= moment < o.ended]

    async def _work(self, number: int) -> None:
        payload = bytes([number]) * 4096
        while not self._stopping.is_set():
            await self._run_one(number, lambda: self._round_trip(number, payload))

    async def _round_trip(self, number: int, payload: bytes) -> None:
        async with self.system.client() as files:
            await files.write_bytes(f"load-{number}.bin", payload)
            data = await files.read_bytes(f"load-{number}.bin")
        assert data == payload

    async def _run_one(self, number: int, operation: Callable[[], Awaitable[Any]]) -> None:
        started = time.monotonic()
        error: BaseException | None = None
        try:
            await asyncio.wait_for(operation(), self.bound)
            kind = "ok"
        except ConnectionFailed as exc:
            kind, error = "failed", exc
        except PoolTimeout as exc:  # a TimeoutError too, so it is caught first
            kind, error = "other", exc
        except asyncio.TimeoutError as exc:
            kind, error = "hung", exc
        except Exception as exc:
            kind, error = "other", exc
        self.outcomes.append(Outcome(number, started, time.monotonic(), kind, error))
        self._progress.set()
        if kind != "ok":
            # A failed operation returns at once, so the worker waits a moment rather than
            # spinning against a dead server.
            await asyncio.sleep(0.05)


class CommandLoad(FileLoad):
    """Tasks that run a command through an ``ssh`` system's ``client()`` until stopped."""

    async def _round_trip(self, number: int, payload: bytes) -> None:
        async with self.system.client() as connection:
            result = await connection.run(f"echo {number}", check=True)
            if result.exit_status is None:
                # asyncssh returns without an exit status when the connection drops while
                # the command runs; a caller that checks raises the lost connection.
                raise asyncssh.ConnectionLost("the connection dropped during the command")
        assert result.stdout == f"{number}\n"
