"""A small HTTP service whose request handler uses ``async with system.client()``.

It serves the files of one system, with the standard library's asyncio streams only:

    GET /files          the sorted file names, as a JSON list
    GET /files/NAME     the content of a file
    PUT /files/NAME     store the request body as a file

Each request takes a client from the store's pool for as long as it runs, so concurrent requests
share a few SSH connections. The system is asyncssh's SFTP server, started in this process on
127.0.0.1 with a temporary folder as its root.

By default the example starts the service, sends it requests as an HTTP client would, prints
the answers and stops. With --serve it keeps serving until Ctrl-C or SIGTERM::

    python examples/service.py --serve --port 8080
    curl -T notes.txt http://127.0.0.1:8080/files/notes.txt
    curl http://127.0.0.1:8080/files
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from support import pool_stats, serve_sftp

from asyncext import (
    AsyncextError,
    ConnectionFailed,
    PathOutsideRoot,
    PoolOptions,
    PoolTimeout,
    SystemStore,
    generate_key,
    scan_host_key,
)

logger = logging.getLogger("service")

HOST = "127.0.0.1"
SYSTEM = "files"
MAX_BODY = 1024 * 1024
"""Largest request body accepted, in bytes."""
HEADER_TIMEOUT = 10.0
"""Seconds a client may take to send the request line and headers."""

# A request waits at most 5 s for a client. After that the service responds 503, so that
# requests do not pile up behind a slow server.
POOL_OPTIONS = PoolOptions(max_size=4, acquire_timeout=5.0)

REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    body: bytes


class HTTPError(Exception):
    """Raised for a request that gets an error response; ``status`` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FileService:
    """HTTP handler that serves the files of one system of a store."""

    def __init__(self, store: SystemStore, system_name: str) -> None:
        self._store = store
        self._system_name = system_name

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Respond to one request, then close the connection (HTTP/1.1 with Connection: close)."""
        try:
            try:
                request = await asyncio.wait_for(read_request(reader), HEADER_TIMEOUT)
                status, body = await self.respond(request)
            except HTTPError as exc:
                status, body = exc.status, f"{exc}\n".encode()
            except asyncio.TimeoutError:
                status, body = 400, b"the request did not arrive in time\n"
            writer.write(format_response(status, body))
            await writer.drain()
        except ConnectionError:
            pass  # The client disconnected, so no response can be sent.
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def respond(self, request: Request) -> tuple[int, bytes]:
        """Return the status and body for ``request``, using one client of the system."""
        name = file_name(request.path)
        system = await self._store.get(self._system_name)
        try:
            async with system.client() as files:
                if request.method == "GET" and name is None:
                    return 200, json.dumps(await files.listdir()).encode()
                if request.method == "GET" and name is not None:
                    return 200, await files.read_bytes(name)
                if request.method == "PUT" and name is not None:
                    await files.write_bytes(name, request.body)
                    return 201, b""
                raise HTTPError(405, f"{request.method} {request.path} is not supported")

        # The error cases: the path leaves the system's root folder, the file is missing,
        # the pool had no client in time, or the system cannot be reached.
        except PathOutsideRoot:
            raise HTTPError(403, f"{request.path} is outside the served folder") from None
        except FileNotFoundError:
            raise HTTPError(404, f"{request.path} not found") from None
        except PoolTimeout:
            raise HTTPError(503, "all connections are busy; retry later") from None
        except ConnectionFailed as exc:
            logger.warning("request %s %s failed: %s", request.method, request.path, exc)
            raise HTTPError(502, "the file server cannot be reached") from None


def file_name(path: str) -> str | None:
    """Return the file name in ``/files/NAME``, None for ``/files``; raise 404 otherwise."""
    if path == "/files":
        return None
    if path.startswith("/files/") and len(path) > len("/files/"):
        # Decoded, so that a client can send any name. The file client confines it to the
        # root folder: a name such as '../x' raises PathOutsideRoot.
        return unquote(path[len("/files/") :])
    raise HTTPError(404, f"{path} not found; use /files or /files/NAME")


async def read_request(reader: asyncio.StreamReader) -> Request:
    """Read the request line, the headers and a body of Content-Length bytes."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise HTTPError(400, "the request head is incomplete or too long") from None

    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split()
    if len(parts) != 3:
        raise HTTPError(400, f"invalid request line {request_line!r}")
    method, path, _version = parts

    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HTTPError(400, f"invalid Content-Length {length_text!r}")
    length = int(length_text)
    if length > MAX_BODY:
        raise HTTPError(413, f"the body is {length} bytes; at most {MAX_BODY} are accepted")

    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise HTTPError(400, "the body is shorter than its Content-Length") from None
    return Request(method=method, path=path, body=body)


def format_response(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def send(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send one request to the service as an HTTP client and return the status and body."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, content = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), content


async def demonstrate(port: int) -> int:
    """Send the requests of a typical client, print the responses and return their count."""
    uploads = [
        send(port, "PUT", f"/files/note-{number:02d}.txt", f"note {number}\n".encode())
        for number in range(40)
    ]
    statuses = [status for status, _ in await asyncio.gather(*uploads)]
    print(f"{'PUT':<6} {'/files/note-NN.txt':<30} {statuses.count(201)} x 201, concurrently")

    checks = [
        ("GET", "/files"),
        ("GET", "/files/note-07.txt"),
        ("GET", "/files/missing.txt"),
        ("GET", "/files/..%2F..%2Fetc%2Fpasswd"),
        ("DELETE", "/files/note-07.txt"),
    ]
    for method, path in checks:
        status, content = await send(port, method, path)
        text = content.decode(errors="replace").strip()
        shown = text if len(text) <= 60 else f"{text[:57]}..."
        print(f"{method:<6} {path:<30} {status} {shown}")
    return len(uploads) + len(checks)


async def run(folder: Path, port: int, serve: bool) -> None:
    async with serve_sftp(folder / "sftp-root") as server:
        fingerprint = await scan_host_key(server.host, server.port)
        store = SystemStore(folder / "systems.db", key=generate_key(), pool=POOL_OPTIONS)
        async with store:
            # The system's root is /shared on the server, so '..' from there leaves it.
            await store.add(
                SYSTEM, "sftp", fingerprint=fingerprint, remote_path="/shared", **server.fields()
            )
            service = FileService(store, SYSTEM)
            listener = await asyncio.start_server(service.handle_connection, HOST, port)
            port = listener.sockets[0].getsockname()[1]
            print(f"listening on http://{HOST}:{port}/files", flush=True)

            requests: int | None = None
            async with listener:
                if serve:
                    await wait_for_stop_signal()
                else:
                    requests = await demonstrate(port)
            # Leaving the block stopped the listener: no new requests arrive from here on.

            stats = pool_stats(store, SYSTEM)
        closed = pool_stats(store, SYSTEM)

    if requests is not None:
        print(f"served    {requests} requests")
    print(f"reuse     SSH connections opened: {stats.created}, leases served: {stats.acquired}")
    print(f"stopped   listener, store and pool: {closed.size} connections left")


async def wait_for_stop_signal() -> None:
    """Return on the first SIGINT or SIGTERM; a second one then has its usual effect."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        await stop.wait()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


def main() -> int:
    parser = argparse.ArgumentParser(description="Serve a system's files over HTTP.")
    parser.add_argument("--serve", action="store_true", help="serve until Ctrl-C or SIGTERM")
    parser.add_argument(
        "--port", type=int, default=0, help="the port on 127.0.0.1 (default: a free one)"
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    try:
        with tempfile.TemporaryDirectory(prefix="asyncext-service-") as temp:
            folder = Path(temp)
            (folder / "sftp-root" / "shared").mkdir(parents=True)
            asyncio.run(run(folder, args.port, args.serve))
    except AsyncextError as exc:
        print(f"service example failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
