"""Pool speed: asyncext's ClientPool against a bare asyncio.Queue and four published pools.

All pools hold the same no-op client, at most 10 of them, and run in one process and one
event loop. Each round measures every pool in turn, and the table shows the median over
the rounds:

- sequential: one task enters and leaves ``async with pool.acquire()`` N times;
- concurrent: T tasks each do C cycles of acquire, one ``await asyncio.sleep(0)``, release;
- FIFO load: the concurrent load again, recording how long each acquire waited.

The floor is an `asyncio.Queue` of clients behind a class-based async context manager:
the least a pool can do. The peers are asyncio-connection-pool, generic-connection-pool,
psycopg_pool (with a stand-in connection class) and connpool, driven as described in
``benchmarks/_pool_peers.py``. Install them with ``pip install -e '.[bench]'``.

    python benchmarks/pool.py [--quick] [--json FILE]
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from _common import Comparison, Goal, Report, Table, check_size, main_for, run_async
from _pool_peers import FLOOR, MAKERS, MAX_SIZE, OURS, Driver, missing_peer

Acquire = Callable[[], AbstractAsyncContextManager[Any]]

WAIT_RATIO_GOAL = 5.0
SEQUENTIAL_FLOOR_GOAL = 0.5
CONCURRENT_FLOOR_GOAL = 0.7
PEER_GOAL = 1.2


@dataclass(frozen=True)
class Settings:
    rounds: int
    pairs: int
    tasks: int
    cycles: int


SETTINGS = {
    "smoke": Settings(rounds=1, pairs=200, tasks=20, cycles=2),
    "quick": Settings(rounds=3, pairs=5_000, tasks=500, cycles=10),
    "full": Settings(rounds=7, pairs=20_000, tasks=1000, cycles=20),
}


async def sequential(acquire: Acquire, pairs: int) -> float:
    """Return acquire/release pairs per second for one task."""
    started = time.perf_counter()
    for _ in range(pairs):
        async with acquire():
            pass
    return pairs / (time.perf_counter() - started)


async def concurrent(acquire: Acquire, tasks: int, cycles: int) -> float:
    """Return acquire/release pairs per second for ``tasks`` tasks competing for clients."""

    async def work() -> None:
        for _ in range(cycles):
            async with acquire():
                await asyncio.sleep(0)

    started = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(tasks)))
    return tasks * cycles / (time.perf_counter() - started)


async def acquire_waits(acquire: Acquire, tasks: int, cycles: int) -> list[float]:
    """Return how long each acquire waited, in seconds, under the concurrent load."""
    waits: list[float] = []

    async def work() -> None:
        for _ in range(cycles):
            started = time.perf_counter()
            async with acquire():
                waits.append(time.perf_counter() - started)
                await asyncio.sleep(0)

    await asyncio.gather(*(work() for _ in range(tasks)))
    return waits


async def measure(
    settings: Settings,
) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Return each pool's median rates and acquire waits, and the pools that are missing."""
    drivers: list[Driver] = []
    unavailable: dict[str, str] = {}
    for name, make in MAKERS.items():
        try:
            drivers.append(await make())
        except ImportError as error:
            unavailable[name] = missing_peer(error)
    samples: dict[str, dict[str, list[float]]] = {
        driver.name: {"sequential": [], "concurrent": []} for driver in drivers
    }
    waits: dict[str, list[float]] = {driver.name: [] for driver in drivers}
    try:
        # A warm-up round creates every pool's clients, outside the measurement.
        for driver in drivers:
            await concurrent(driver.acquire, settings.tasks, 2)

        for _ in range(settings.rounds):
            for driver in drivers:
                gc.collect()
                samples[driver.name]["sequential"].append(
                    await sequential(driver.acquire, settings.pairs)
                )
                gc.collect()
                samples[driver.name]["concurrent"].append(
                    await concurrent(driver.acquire, settings.tasks, settings.cycles)
                )
        for driver in drivers:
            gc.collect()
            waits[driver.name] = await acquire_waits(
                driver.acquire, settings.tasks, settings.cycles
            )
    finally:
        for driver in drivers:
            await driver.close()

    results: dict[str, dict[str, float]] = {}
    for driver in drivers:
        driver_waits = waits[driver.name]
        results[driver.name] = {
            "sequential_per_second": statistics.median(samples[driver.name]["sequential"]),
            "concurrent_per_second": statistics.median(samples[driver.name]["concurrent"]),
            "wait_median_seconds": statistics.median(driver_waits),
            "wait_worst_seconds": max(driver_waits),
        }
    return results, unavailable


def run(size: str) -> Report:
    """Measure every pool and compare asyncext with the floor and each peer."""
    check_size(size)
    settings = SETTINGS[size]
    results, unavailable = run_async(measure(settings))
    peers = [name for name in results if name not in (FLOOR, OURS)]

    report = Report(
        name="pool",
        size=size,
        parameters={
            "max_size": MAX_SIZE,
            "rounds": settings.rounds,
            "sequential pairs": settings.pairs,
            "concurrent tasks": settings.tasks,
            "cycles per task": settings.cycles,
        },
        figures=results,
        unavailable=unavailable,
    )

    # Rates in pairs per second, ours against every other pool.
    for kind in ("sequential", "concurrent"):
        key = f"{kind}_per_second"
        for baseline in [FLOOR, *peers]:
            report.comparisons.append(
                Comparison(
                    measure=kind,
                    ours=OURS,
                    baseline=baseline,
                    ours_value=results[OURS][key],
                    baseline_value=results[baseline][key],
                    unit="acquire/release pairs per second",
                    higher_is_better=True,
                )
            )

    floor = results[FLOOR]
    rows = []
    for name, row in results.items():
        rows.append(
            [
                name,
                f"{row['sequential_per_second']:,.0f}",
                f"{row['sequential_per_second'] / floor['sequential_per_second']:.2f}",
                f"{row['concurrent_per_second']:,.0f}",
                f"{row['concurrent_per_second'] / floor['concurrent_per_second']:.2f}",
                f"{row['wait_median_seconds'] * 1e3:.3f}",
                f"{row['wait_worst_seconds'] * 1e3:.3f}",
                f"{row['wait_worst_seconds'] / row['wait_median_seconds']:,.1f}",
            ]
        )
    report.tables.append(
        Table(
            title=(
                f"Pools of {MAX_SIZE} no-op clients, median of {settings.rounds} rounds: "
                f"sequential {settings.pairs:,} pairs; concurrent {settings.tasks:,} tasks x "
                f"{settings.cycles} cycles; waits from one more concurrent run"
            ),
            headers=[
                "pool",
                "sequential/s",
                "x floor",
                "concurrent/s",
                "x floor",
                "wait median ms",
                "wait worst ms",
                "worst/median",
            ],
            rows=rows,
        )
    )

    # The goals: a fraction of the floor, and faster than the fastest peer.
    ours = results[OURS]
    report.goals = [
        Goal(
            f"sequential, asyncext / {FLOOR}",
            ours["sequential_per_second"] / floor["sequential_per_second"],
            SEQUENTIAL_FLOOR_GOAL,
        ),
        Goal(
            f"concurrent, asyncext / {FLOOR}",
            ours["concurrent_per_second"] / floor["concurrent_per_second"],
            CONCURRENT_FLOOR_GOAL,
        ),
    ]
    for kind in ("sequential", "concurrent"):
        if not peers:
            report.notes.append(
                f"no peer is installed, so the {kind} goal against the fastest peer was not checked"
            )
            continue
        key = f"{kind}_per_second"
        fastest = max(peers, key=lambda name: results[name][key])
        report.goals.append(
            Goal(
                f"{kind}, asyncext / fastest peer ({fastest})",
                ours[key] / results[fastest][key],
                PEER_GOAL,
            )
        )
    report.goals.append(
        Goal(
            "concurrent load, asyncext worst acquire wait / median wait",
            ours["wait_worst_seconds"] / ours["wait_median_seconds"],
            WAIT_RATIO_GOAL,
            at_least=False,
        )
    )
    return report


def main(argv: list[str] | None = None) -> int:
    return main_for(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
