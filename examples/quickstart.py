"""asyncext in one run: a store, an SFTP server and a few hundred jobs over pooled clients.

With no arguments it needs nothing but this machine. It starts asyncssh's SFTP server on
127.0.0.1 inside this process, registers it next to a local folder in a new store, and moves
files from the folder to the server through pooled clients. Everything lives in a temporary
folder that is removed at the end::

    python examples/quickstart.py

To run the same jobs against a real SSH server, give its address and a private key file that
it accepts. The files go to the login folder, or to --remote-path, and are deleted at the end::

    python examples/quickstart.py --host 127.0.0.1 --port 2222 --username backup \\
        --key-file ~/.ssh/id_ed25519 --fingerprint SHA256:...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import pool_stats, serve_sftp

from asyncext import (
    AsyncextError,
    ExternalSystem,
    PoolOptions,
    PoolStats,
    SystemStore,
    generate_key,
    scan_host_key,
)

JOBS = 300
"""Files moved through pooled clients, all jobs started at once."""
UNPOOLED_JOBS = 30
"""Files moved with a new connection each, for the comparison; fewer, because each is slow."""

# Four connections serve all the jobs: each job holds one only for the length of its upload.
POOL_OPTIONS = PoolOptions(max_size=4)


class QuickstartFailed(Exception):
    """A step of the quick start failed; the message names the step."""


@dataclass
class Server:
    """The SFTP server the jobs write to, as record fields of an ``sftp`` system."""

    fields: dict[str, Any]
    description: str
    expected_fingerprint: str | None = None
    """The fingerprint the server is known to have, when this process runs it."""

    @property
    def in_process(self) -> bool:
        return self.expected_fingerprint is not None


@dataclass
class Results:
    """Counts and timings of the two runs of jobs, for the summary."""

    pooled_jobs: int
    pooled_seconds: float
    unpooled_jobs: int
    unpooled_seconds: float
    arrived: int
    """Files found intact in the drop box after both runs."""
    stats: PoolStats
    """The pool's counters right after the pooled run."""


async def quickstart(args: argparse.Namespace) -> None:
    """Set everything up, run the jobs, print the summary and clean up."""
    print("asyncext quick start")
    with tempfile.TemporaryDirectory(prefix="asyncext-quickstart-") as temp:
        folder = Path(temp)
        outbox_folder, sftp_root = make_folders(folder)
        async with contextlib.AsyncExitStack() as stack:
            server = await start_server(stack, sftp_root, args)
            fingerprint = await pin_host_key(server, args.fingerprint)

            # A store with a new key: every secret is encrypted before it reaches the file.
            # With pool options, each system gets a pool of clients on its first client().
            key = generate_key()
            store_path = folder / "systems.db"
            store = await stack.enter_async_context(
                SystemStore(store_path, key=key, pool=POOL_OPTIONS)
            )
            outbox = await store.add("outbox", "local", remote_path=str(outbox_folder))
            dropbox = await store.add("dropbox", "sftp", fingerprint=fingerprint, **server.fields)
            check_encrypted(store_path, server.fields["private_key"])
            print(f"store     {store_path}, secrets encrypted with a new Fernet key")
            print(
                f"systems   {outbox.name} (local folder) and {dropbox.name} (sftp, private_key "
                f"{dropbox.private_key!r})"
            )

            # One fresh connection, outside the pool, so that a wrong host, key or fingerprint
            # fails here once rather than in every job. A failure is a report, not an error.
            report = await dropbox.test_connection()
            if not report.ok:
                raise QuickstartFailed(report.detail)
            print(f"tested    {report.detail}, in {report.elapsed * 1000:.0f} ms")

            results = await run_jobs(store, key, outbox, dropbox, outbox_folder)
            print_results(results)

        # Leaving the stack closed the store, which closed its pools, then the server.
        closed = "store, pools and server" if server.in_process else "store and pools"
        print(f"closed    {closed}: {pool_stats(store, 'dropbox').size} clients left")
    print(f"removed   {folder}")


async def start_server(
    stack: contextlib.AsyncExitStack, sftp_root: Path, args: argparse.Namespace
) -> Server:
    """Return the real server given on the command line, or start one in this process."""
    if args.host is not None:
        server = server_from_arguments(args)
    else:
        demo = await stack.enter_async_context(serve_sftp(sftp_root))
        server = Server(
            fields=demo.fields(),
            description=f"asyncssh's SFTP server in this process on {demo.host}:{demo.port}",
            expected_fingerprint=demo.host_key_fingerprint,
        )
    print(f"server    {server.description}")
    return server


def server_from_arguments(args: argparse.Namespace) -> Server:
    """Return the record fields of the real SSH server given on the command line."""
    try:
        private_key = Path(args.key_file).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"quickstart: cannot read --key-file {args.key_file!r}: {exc}") from None
    fields: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "username": args.username,
        "private_key": private_key,
    }
    if args.remote_path is not None:
        fields["remote_path"] = args.remote_path
    return Server(fields=fields, description=f"{args.username}@{args.host}:{args.port}")


async def pin_host_key(server: Server, fingerprint: str | None) -> str:
    """Return the host key fingerprint that the drop box system will accept, and only that.

    Without ``--fingerprint`` this is trust on first use: the key the server offers now is
    fetched once and pinned. With a real server, compare it with 'ssh-keygen -l' there first.
    """
    if fingerprint is not None:
        print(f"host key  {fingerprint}, pinned from --fingerprint")
        return fingerprint

    fingerprint = await scan_host_key(server.fields["host"], server.fields["port"])
    if server.expected_fingerprint is not None and fingerprint != server.expected_fingerprint:
        raise QuickstartFailed(f"scan_host_key returned {fingerprint}, not the server's own key")
    print(f"host key  {fingerprint}, fetched with scan_host_key and pinned")
    return fingerprint


def make_folders(folder: Path) -> tuple[Path, Path]:
    """Create and return the local outbox and the in-process SFTP server's root."""
    outbox_folder = folder / "outbox"
    sftp_root = folder / "sftp-root"
    outbox_folder.mkdir()
    sftp_root.mkdir()
    return outbox_folder, sftp_root


async def run_jobs(
    store: SystemStore,
    key: str,
    outbox: ExternalSystem,
    dropbox: ExternalSystem,
    outbox_folder: Path,
) -> Results:
    """Move files through pooled clients, then fewer through new connections, and check them."""
    run_id = secrets.token_hex(4)
    names = [f"quickstart-{run_id}-{number:04d}.csv" for number in range(JOBS)]
    unpooled_names = [f"quickstart-{run_id}-u{n:03d}.csv" for n in range(UNPOOLED_JOBS)]
    write_outbox(outbox_folder, [*names, *unpooled_names])

    try:
        pooled_seconds = await move_files(names, outbox, dropbox)
        stats = pool_stats(store, dropbox.name)

        # The same file opened without pool options: every client() opens a new connection.
        async with SystemStore(store.path, key=key) as unpooled_store:
            unpooled_seconds = await move_files(
                unpooled_names,
                await unpooled_store.get(outbox.name),
                await unpooled_store.get(dropbox.name),
            )
    finally:
        arrived = await check_and_delete(dropbox, f"quickstart-{run_id}-")

    expected = len(names) + len(unpooled_names)
    if arrived != expected:
        raise QuickstartFailed(f"{arrived} files arrived in the drop box, not {expected}")
    return Results(
        pooled_jobs=len(names),
        pooled_seconds=pooled_seconds,
        unpooled_jobs=len(unpooled_names),
        unpooled_seconds=unpooled_seconds,
        arrived=arrived,
        stats=stats,
    )


def print_results(results: Results) -> None:
    pooled_ms = results.pooled_seconds / results.pooled_jobs * 1000
    unpooled_ms = results.unpooled_seconds / results.unpooled_jobs * 1000
    stats = results.stats
    print(
        f"jobs      {results.pooled_jobs} files moved at once through pooled clients, "
        f"{results.unpooled_jobs} more with a new connection each"
    )
    print(f"checked   {results.arrived} files arrived intact in the drop box, then deleted there")
    print(
        f"reuse     SSH connections opened: {stats.created}, leases served: {stats.acquired} "
        "(a lease is one system.client() block)"
    )
    print(
        f"time      pooled {results.pooled_jobs} jobs in {results.pooled_seconds:.2f} s "
        f"({pooled_ms:.1f} ms a job), unpooled {results.unpooled_jobs} in "
        f"{results.unpooled_seconds:.2f} s ({unpooled_ms:.1f} ms a job): pooling gives "
        f"{unpooled_ms / pooled_ms:.1f}x the throughput"
    )
    print(f"pool      {describe_stats(stats)}")


def describe_stats(stats: PoolStats) -> str:
    """Return the pool's counters as a sentence, with the mean wait of an acquire."""
    mean_wait_ms = stats.wait_time_total / stats.acquired * 1000 if stats.acquired else 0.0
    return (
        f"{stats.size} clients ({stats.idle} idle, {stats.in_use} in use); "
        f"{stats.created} created, {stats.destroyed} destroyed, {stats.acquired} acquires "
        f"waiting {mean_wait_ms:.0f} ms on average, {stats.timeouts} timeouts, "
        f"{stats.failed_checks} failed checks, {stats.create_errors} create errors"
    )


def write_outbox(folder: Path, names: Sequence[str]) -> None:
    for name in names:
        (folder / name).write_bytes(report(name))


def report(name: str) -> bytes:
    """Return the content of the file ``name``: a small CSV that names its own file."""
    rows = "".join(f"{name},{row},{row * row}\n" for row in range(20))
    return ("file,row,square\n" + rows).encode()


async def move_files(
    names: Sequence[str], outbox: ExternalSystem, dropbox: ExternalSystem
) -> float:
    """Run one job per file, all at once, and return the seconds they took together."""
    started = time.perf_counter()
    # return_exceptions: when a job fails, gather still waits for the others to end.
    outcomes = await asyncio.gather(
        *(move_file(name, outbox, dropbox) for name in names), return_exceptions=True
    )
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if failures:
        raise QuickstartFailed(f"{len(failures)} of {len(names)} jobs failed: {failures[0]}")
    return time.perf_counter() - started


async def move_file(name: str, outbox: ExternalSystem, dropbox: ExternalSystem) -> None:
    """Move one file from the local outbox to the SFTP drop box."""
    async with outbox.client() as local:
        data = await local.read_bytes(name)
    async with dropbox.client() as remote:
        await remote.write_bytes(name, data)
    async with outbox.client() as local:
        await local.remove(name)


async def check_and_delete(dropbox: ExternalSystem, prefix: str) -> int:
    """Compare each file of this run in the drop box with what was sent, delete it, count it."""
    async with dropbox.client() as remote:
        names = [name for name in await remote.listdir() if name.startswith(prefix)]

        # One SFTP session runs many requests at once, so the files are checked together.
        async def check(name: str) -> None:
            if await remote.read_bytes(name) != report(name):
                raise QuickstartFailed(f"{name} arrived in the drop box with other content")
            await remote.remove(name)

        await asyncio.gather(*(check(name) for name in names))
    return len(names)


def check_encrypted(store_path: Path, secret_text: str) -> None:
    """Fail if the store's files contain ``secret_text`` unencrypted."""
    needle = secret_text.encode()
    for path in (store_path, store_path.with_name(store_path.name + "-wal")):
        if path.exists() and needle in path.read_bytes():
            raise QuickstartFailed(f"{path} contains a secret in plain text")


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run asyncext end to end: a store, an SFTP server, pooled jobs.",
        epilog="Without --host, an SFTP server is started in this process on 127.0.0.1.",
    )
    real = parser.add_argument_group("a real SSH server instead")
    real.add_argument("--host", help="the server's name or address")
    real.add_argument("--port", type=int, default=22, help="its SSH port (default: 22)")
    real.add_argument(
        "--username", default=getpass.getuser(), help="the account (default: your user name)"
    )
    real.add_argument("--key-file", help="an unencrypted private key file that the account accepts")
    real.add_argument(
        "--fingerprint",
        help="the server's host key as 'ssh-keygen -l' prints it, SHA256:... "
        "(default: fetched with scan_host_key and trusted on first use)",
    )
    real.add_argument("--remote-path", help="the folder to write to (default: the login folder)")
    args = parser.parse_args(argv)

    if args.host is None:
        given = [flag for flag in ("key_file", "fingerprint", "remote_path") if getattr(args, flag)]
        if given:
            parser.error(f"--{given[0].replace('_', '-')} needs --host")
    elif args.key_file is None:
        parser.error("--host needs --key-file: the private key to log in with")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    # asyncext logs on the "asyncext.*" loggers; show their warnings, one line each.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    try:
        asyncio.run(quickstart(args))
    except (AsyncextError, QuickstartFailed) as exc:
        # asyncext's messages name the system and the next step, and never contain a secret.
        print(f"quickstart failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
