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

    python benchmarks/pool.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from _pool_peers import MAKERS, Driver

Acquire = Callable[[], AbstractAsyncContextManager[Any]]

WAIT_RATIO_GOAL = 5.0
SEQUENTIAL_FLOOR_GOAL = 0.5
CONCURRENT_FLOOR_GOAL = 0.7
PEER_GOAL = 1.2


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


async def run(rounds: int, pairs: int, tasks: int, cycles: int) -> dict[str, dict[str, Any]]:
    drivers: list[Driver] = [await make() for make in MAKERS]
    samples: dict[str, dict[str, list[float]]] = {
        driver.name: {"sequential": [], "concurrent": []} for driver in drivers
    }
    waits: dict[str, list[float]] = {driver.name: [] for driver in drivers}
    try:
        # A warm-up round creates every pool's clients, outside the measurement.
        for driver in drivers:
            await concurrent(driver.acquire, tasks, 2)

        for _ in range(rounds):
            for driver in drivers:
                gc.collect()
                samples[driver.name]["sequential"].append(await sequential(driver.acquire, pairs))
                gc.collect()
                samples[driver.name]["concurrent"].append(
                    await concurrent(driver.acquire, tasks, cycles)
                )
        for driver in drivers:
            gc.collect()
            waits[driver.name] = await acquire_waits(driver.acquire, tasks, cycles)
    finally:
        for driver in drivers:
            await driver.close()

    results: dict[str, dict[str, Any]] = {}
    for driver in drivers:
        driver_waits = waits[driver.name]
        results[driver.name] = {
            "sequential": statistics.median(samples[driver.name]["sequential"]),
            "concurrent": statistics.median(samples[driver.name]["concurrent"]),
            "wait_median": statistics.median(driver_waits),
            "wait_worst": max(driver_waits),
        }
    return results


def report(results: dict[str, dict[str, Any]], arguments: argparse.Namespace) -> bool:
    """Print the table and the ratios; return whether asyncext met every goal."""
    names = list(results)
    floor, ours, peers = names[0], names[1], names[2:]
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{arguments.rounds} rounds, median shown; sequential {arguments.pairs} pairs, "
        f"concurrent {arguments.tasks} tasks x {arguments.cycles} cycles, max_size 10"
    )
    print()
    header = (
        f"{'pool':<26}{'sequential/s':>14}{'x floor':>9}{'concurrent/s':>14}{'x floor':>9}"
        f"{'wait median':>13}{'wait worst':>12}{'worst/med':>11}"
    )
    print(header)
    print("-" * len(header))
    for name in names:
        row = results[name]
        print(
            f"{name:<26}{row['sequential']:>14,.0f}"
            f"{row['sequential'] / results[floor]['sequential']:>9.2f}"
            f"{row['concurrent']:>14,.0f}"
            f"{row['concurrent'] / results[floor]['concurrent']:>9.2f}"
            f"{row['wait_median'] * 1e3:>11.3f}ms{row['wait_worst'] * 1e3:>10.3f}ms"
            f"{row['wait_worst'] / row['wait_median']:>11.1f}"
        )
    print()

    mine = results[ours]
    checks: list[tuple[str, float, float]] = [
        (
            "sequential, asyncext / floor",
            mine["sequential"] / results[floor]["sequential"],
            SEQUENTIAL_FLOOR_GOAL,
        ),
        (
            "concurrent, asyncext / floor",
            mine["concurrent"] / results[floor]["concurrent"],
            CONCURRENT_FLOOR_GOAL,
        ),
    ]
    for kind in ("sequential", "concurrent"):
        fastest = max(peers, key=lambda name: results[name][kind])
        for peer in peers:
            checks.append(
                (
                    f"{kind}, asyncext / {peer}" + (" (fastest peer)" if peer == fastest else ""),
                    mine[kind] / results[peer][kind],
                    PEER_GOAL if peer == fastest else 0.0,
                )
            )
    wait_ratio = mine["wait_worst"] / mine["wait_median"]

    met = True
    for label, ratio, goal in checks:
        verdict = ""
        if goal:
            verdict = "  goal >= {:.1f}: {}".format(goal, "met" if ratio >= goal else "NOT MET")
            met = met and ratio >= goal
        print(f"{label:<66}{ratio:>7.2f}{verdict}")
    verdict = "met" if wait_ratio <= WAIT_RATIO_GOAL else "NOT MET"
    print(
        f"{'FIFO load, asyncext worst wait / median wait':<66}{wait_ratio:>7.2f}"
        f"  goal <= {WAIT_RATIO_GOAL:.1f}: {verdict}"
    )
    return met and wait_ratio <= WAIT_RATIO_GOAL


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and operations")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.rounds, arguments.pairs, arguments.tasks, arguments.cycles = 3, 5_000, 500, 10
    else:
        arguments.rounds, arguments.pairs, arguments.tasks, arguments.cycles = 7, 20_000, 1000, 20

    results = asyncio.run(run(arguments.rounds, arguments.pairs, arguments.tasks, arguments.cycles))
    met = report(results, arguments)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
