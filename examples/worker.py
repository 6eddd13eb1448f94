"""Async workers that drain a job queue, each job with its own ``system.client()``.

The store has pooling on, so a job's ``client()`` gets a connection that an earlier job opened,
and a few SSH connections serve every job. On SIGINT or SIGTERM the producer stops, the workers
finish the jobs already queued, and closing the store closes the pools and their connections.

The jobs upload small reports to asyncssh's SFTP server, started in this process on 127.0.0.1
with a temporary folder as its root::

    python examples/worker.py --workers 8 --jobs 200
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support import pool_stats, serve_sftp

from asyncext import AsyncextError, PoolOptions, SystemStore, generate_key, scan_host_key

logger = logging.getLogger("worker")

SYSTEM = "reports"

# Fewer connections than workers: a worker holds a client only while it uploads, so the
# connections pass from worker to worker. acquire_timeout bounds a job's wait for one.
POOL_OPTIONS = PoolOptions(max_size=3, acquire_timeout=10.0)


@dataclass(frozen=True)
class Job:
    number: int

    @property
    def file_name(self) -> str:
        return f"report-{self.number:06d}.txt"

    def render(self) -> str:
        return f"report {self.number}\n" + "".join(f"{n},{n * self.number}\n" for n in range(10))


async def worker(
    number: int,
    store: SystemStore,
    queue: asyncio.Queue[Job | None],
    done: collections.Counter[int],
) -> None:
    """Run jobs from ``queue`` until it yields None, counting them in ``done[number]``."""
    while True:
        job = await queue.get()
        if job is None:
            return
        try:
            await run_job(store, job)
        except (AsyncextError, OSError) as exc:
            # One failed job must not stop the worker; the next job may well succeed.
            logger.warning("worker %d: job %d failed: %s", number, job.number, exc)
        else:
            done[number] += 1


async def run_job(store: SystemStore, job: Job) -> None:
    # Reading the record for each job picks up a change that another process wrote, such as
    # a new password: the pool then retires the connections made with the old record.
    system = await store.get(SYSTEM)
    async with system.client() as files:
        await files.write_text(job.file_name, job.render())


async def produce(queue: asyncio.Queue[Job | None], jobs: int, stop: asyncio.Event) -> int:
    """Queue up to ``jobs`` jobs, or fewer once ``stop`` is set; return how many were queued."""
    for number in range(jobs):
        if stop.is_set():
            return number
        # Waits while the queue is full, so jobs are made only as fast as workers take them.
        await queue.put(Job(number))
    return jobs


async def run(folder: Path, workers: int, jobs: int) -> None:
    """Start the SFTP server and the store, run the workers, and print what they did."""
    async with serve_sftp(folder / "sftp-root") as server:
        fingerprint = await scan_host_key(server.host, server.port)
        async with SystemStore(
            folder / "systems.db", key=generate_key(), pool=POOL_OPTIONS
        ) as store:
            system = await store.add(SYSTEM, "sftp", fingerprint=fingerprint, **server.fields())
            stop = asyncio.Event()
            received = install_stop_signals(stop)

            # The queue is short, so that a stop leaves little queued work to finish.
            queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=2 * workers)
            done: collections.Counter[int] = collections.Counter()
            tasks = [asyncio.create_task(worker(n, store, queue, done)) for n in range(workers)]
            print(f"started   {workers} workers on system {SYSTEM!r}", flush=True)

            queued = await produce(queue, jobs, stop)

            # One None per worker, behind every job: each worker ends once the jobs ahead of
            # its None are done.
            for _ in tasks:
                await queue.put(None)
            await asyncio.gather(*tasks)

            stats = pool_stats(store, SYSTEM)
            async with system.client() as files:
                uploaded = len(await files.listdir())

        # Closing the store closed the pool and every connection in it.
        closed = pool_stats(store, SYSTEM)

    if received:
        print(f"stopped   by {received[0]} after {queued} of {jobs} jobs were queued")
    counts = ", ".join(str(done[n]) for n in range(workers))
    print(f"done      {sum(done.values())} jobs, per worker: {counts}")
    print(f"reuse     SSH connections opened: {stats.created}, leases served: {stats.acquired}")
    print(f"files     {uploaded} reports on the SFTP server")
    print(
        f"shutdown  store closed, pool closed: {closed.destroyed} of {closed.created} "
        f"connections closed, {closed.size} left"
    )


def install_stop_signals(stop: asyncio.Event) -> list[str]:
    """Set ``stop`` on the first SIGINT or SIGTERM; return the list where its name goes.

    The handlers remove themselves, so a second Ctrl-C interrupts at once, as usual.
    """
    received: list[str] = []
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(name: str) -> None:
        received.append(name)
        stop.set()
        for number in signals:
            loop.remove_signal_handler(number)

    for number in signals:
        # add_signal_handler exists on Unix event loops only.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(number, on_signal, number.name)
    return received


def main() -> int:
    parser = argparse.ArgumentParser(description="Run async workers over pooled SFTP clients.")
    parser.add_argument("--workers", type=int, default=8, help="concurrent workers (default: 8)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs to queue (default: 200)")
    args = parser.parse_args()
    if args.workers < 1 or args.jobs < 0:
        parser.error("--workers must be at least 1 and --jobs at least 0")

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    try:
        with tempfile.TemporaryDirectory(prefix="asyncext-worker-") as temp:
            folder = Path(temp)
            (folder / "sftp-root").mkdir()
            asyncio.run(run(folder, args.workers, args.jobs))
    except AsyncextError as exc:
        print(f"worker example failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
