"""SFTP speed: ``async with system.client()`` plus one stat, pooled and unpooled, against the floor.

Starts its own OpenSSH sshd on 127.0.0.1 with the launcher the tests use (tests/sshd.py),
with sshd's default limits (MaxStartups 10:30:100, MaxSessions 10, read back with
``sshd -T``), then measures in one process and one event loop:

- pooled: a `SystemStore` with ``pool=PoolOptions()`` (the defaults: at most 10 clients);
  each operation enters ``system.client()`` and stats one file in the root
  (``FileClient.stat``), then leaves;
- unpooled: the same with a store that has pooling off, so every operation opens an SSH
  connection and an SFTP session and closes them;
- floor (raw asyncssh): one asyncssh SFTP client opened beforehand, calling ``stat`` directly;
- pooled, nested: as pooled, for a file two folders deep, which costs one more round trip
  (the server-side symlink check of the parent folders).

Each round measures every variant in turn; the figures are the median over the rounds.
Goals: pooled at least 100 times unpooled, and at least 0.8 times the floor.

Then 200 tasks at once each do a few pooled ``client()`` + stat operations through the same
system: the figures are the failures (the goal is none), the SSH connections the pool opened
(``created`` in its stats) and the time they all took.

    python benchmarks/ssh.py [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import Comparison, Goal, Operation, Report, Table, check_size, main_for, rate
from sshd import SSHServer, find_sshd, generate_key_files, start_server

from asyncext import ExternalSystem, PoolOptions, PoolStats, SystemStore, generate_key

POOLED_OVER_UNPOOLED_GOAL = 100.0
POOLED_OVER_FLOOR_GOAL = 0.8

FLOOR = "raw asyncssh"
POOLED = "asyncext pooled"
NESTED = "asyncext pooled, nested path"
UNPOOLED = "unpooled"


@dataclass(frozen=True)
class Settings:
    rounds: int
    seconds: float
    """How long each variant runs per round; the unpooled one runs twice as long."""
    workers: int
    operations_per_worker: int


SETTINGS = {
    "smoke": Settings(rounds=1, seconds=0.1, workers=200, operations_per_worker=1),
    "quick": Settings(rounds=3, seconds=0.3, workers=200, operations_per_worker=3),
    # Many short rounds rather than a few long ones, because sshd shares the two cores with
    # everything else on the machine: a burst of other work then lands on every variant.
    "full": Settings(rounds=15, seconds=0.6, workers=200, operations_per_worker=10),
}


def server_limits(server: SSHServer) -> dict[str, str]:
    """Return sshd's effective connection limits for this server, as ``sshd -T`` prints them."""
    sshd = find_sshd()
    if sshd is None:
        return {}
    printed = subprocess.run(
        [sshd, "-T", "-f", str(server.folder / "sshd_config")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    limits = {}
    for line in printed.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name in ("maxstartups", "maxsessions"):
            limits[name] = value
    return limits


async def measure_rates(
    pooled: ExternalSystem, unpooled: ExternalSystem, server: SSHServer, settings: Settings
) -> dict[str, float]:
    """Return the median operations per second of each variant."""
    async with unpooled.client() as files:
        floor_sftp = files.sftp
        floor_path = str(server.data_folder / "bench.txt")

        async def pooled_stat() -> None:
            async with pooled.client() as client:
                await client.stat("bench.txt")

        async def pooled_nested_stat() -> None:
            async with pooled.client() as client:
                await client.stat("a/b/bench.txt")

        async def unpooled_stat() -> None:
            async with unpooled.client() as client:
                await client.stat("bench.txt")

        async def floor_stat() -> None:
            await floor_sftp.stat(floor_path)

        variants: dict[str, tuple[Operation, float]] = {
            FLOOR: (floor_stat, settings.seconds),
            POOLED: (pooled_stat, settings.seconds),
            NESTED: (pooled_nested_stat, settings.seconds),
            UNPOOLED: (unpooled_stat, settings.seconds * 2),
        }
        samples: dict[str, list[float]] = {name: [] for name in variants}

        # The floor's connection is open already; the pool opens its first one here.
        await pooled_stat()
        for _ in range(settings.rounds):
            for name, (operation, duration) in variants.items():
                samples[name].append(await rate(operation, duration))
    return {name: statistics.median(values) for name, values in samples.items()}


async def measure_workers(
    store: SystemStore, system: ExternalSystem, settings: Settings
) -> dict[str, Any]:
    """Run the workers at once through one pooled system; return failures and connections."""
    failures: Counter[str] = Counter()
    start = asyncio.Event()

    async def worker() -> None:
        await start.wait()
        for _ in range(settings.operations_per_worker):
            try:
                async with system.client() as client:
                    await client.stat("bench.txt")
            except Exception as exc:
                # Counted by type and message, so that one cause repeated 200 times stays
                # one line in the report.
                failures[f"{type(exc).__name__}: {exc}"] += 1

    tasks = [asyncio.create_task(worker()) for _ in range(settings.workers)]
    # Every task is waiting on the event before any of them asks for a client.
    await asyncio.sleep(0)
    started = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started

    def pool_stats() -> PoolStats:
        stats = store.pool_stats(system.name)
        assert stats is not None, "the workers' store has pooling on, so the system has a pool"
        return stats

    at_end = pool_stats()

    # Creates started for the first waiters can finish after the last worker: wait for
    # them, so that every connection the load opened is counted.
    settled = at_end
    deadline = time.monotonic() + 30.0
    while settled.size != settled.idle and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        settled = pool_stats()

    operations = settings.workers * settings.operations_per_worker
    return {
        "workers": settings.workers,
        "operations": operations,
        "failures": sum(failures.values()),
        "failure_reasons": dict(failures),
        "connections_created_during_load": at_end.created,
        "connections_created": settled.created,
        "seconds": seconds,
        "operations_per_second": operations / seconds,
        "wait_time_total_seconds": at_end.wait_time_total,
    }


async def measure(server: SSHServer, folder: Path, settings: Settings) -> dict[str, Any]:
    (server.data_folder / "bench.txt").write_text("x" * 1024)
    (server.data_folder / "a" / "b").mkdir(parents=True, exist_ok=True)
    (server.data_folder / "a" / "b" / "bench.txt").write_text("x" * 1024)
    fields = server.fields("sftp")
    key = generate_key()

    pooled_store = SystemStore(folder / "pooled.db", key=key, pool=PoolOptions())
    unpooled_store = SystemStore(folder / "unpooled.db", key=key)
    workers_store = SystemStore(folder / "workers.db", key=key, pool=PoolOptions())
    async with pooled_store, unpooled_store, workers_store:
        pooled = await pooled_store.add("bench", "sftp", **fields)
        unpooled = await unpooled_store.add("bench", "sftp", **fields)
        rates = await measure_rates(pooled, unpooled, server, settings)

        # A store of its own, so that the connections counted are those the workers opened.
        shared = await workers_store.add("bench", "sftp", **fields)
        workers = await measure_workers(workers_store, shared, settings)
    return {"rates_per_second": rates, "workers": workers}


def run(size: str) -> Report:
    """Start sshd, measure the SFTP variants and the concurrent workers, stop sshd."""
    check_size(size)
    settings = SETTINGS[size]
    with tempfile.TemporaryDirectory(prefix="asyncext-bench-") as temporary:
        folder = Path(temporary)
        server = start_server(generate_key_files(folder / "keys"), folder / "sshd")
        try:
            limits = server_limits(server)
            figures = asyncio.run(measure(server, folder, settings))
        finally:
            server.stop()

    rates = figures["rates_per_second"]
    workers = figures["workers"]
    report = Report(
        name="ssh",
        size=size,
        parameters={
            "rounds": settings.rounds,
            "seconds per variant and round": settings.seconds,
            "pool options": "PoolOptions() defaults (max_size 10, max_concurrent_creates 4)",
            "sshd limits": limits,
            "workers": settings.workers,
            "operations per worker": settings.operations_per_worker,
        },
        figures=figures,
    )
    report.comparisons = [
        Comparison("client() + stat", POOLED, UNPOOLED, rates[POOLED], rates[UNPOOLED],
                   "operations per second", higher_is_better=True),
        Comparison("client() + stat", POOLED, FLOOR, rates[POOLED], rates[FLOOR],
                   "operations per second", higher_is_better=True),
    ]  # fmt: skip
    report.tables.append(
        Table(
            title=(
                f"client() + SFTP stat against a local sshd, median of {settings.rounds} "
                f"round(s) of {settings.seconds:g} s; the raw asyncssh floor calls stat only"
            ),
            headers=["variant", "ops/s", "x floor"],
            rows=[
                [name, f"{value:,.1f}", f"{value / rates[FLOOR]:.2f}"]
                for name, value in rates.items()
            ],
        )
    )
    report.tables.append(
        Table(
            title=(
                f"{settings.workers} concurrent workers x {settings.operations_per_worker} "
                "pooled client() + stat through one sftp system"
            ),
            headers=[
                "failures",
                "connections opened",
                "of them during the load",
                "seconds",
                "ops/s",
            ],
            rows=[
                [
                    str(workers["failures"]),
                    str(workers["connections_created"]),
                    str(workers["connections_created_during_load"]),
                    f"{workers['seconds']:.2f}",
                    f"{workers['operations_per_second']:,.0f}",
                ]
            ],
            text_columns=0,
        )
    )
    for reason, count in workers["failure_reasons"].items():
        report.notes.append(f"{count} failure(s): {reason}")
    report.goals = [
        Goal(f"pooled / {UNPOOLED}", report.comparisons[0].ratio, POOLED_OVER_UNPOOLED_GOAL),
        Goal(f"pooled / {FLOOR}", report.comparisons[1].ratio, POOLED_OVER_FLOOR_GOAL),
        Goal(
            f"failures among {settings.workers} concurrent workers",
            workers["failures"],
            0,
            at_least=False,
        ),
    ]
    return report


def main(argv: list[str] | None = None) -> int:
    return main_for(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
