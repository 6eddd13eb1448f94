"""Pool at scale: 1,000 and 10,000 concurrent tasks over pools of 10 no-op clients.

Every task acquires and releases a client a few times, holding it for one
``await asyncio.sleep(0)``, and records how long each acquire waited. The figures are the
throughput in acquire/release pairs per second (median over the rounds), the median and the
worst acquire wait (over all rounds), and the peak memory.

Each pair of pool and task count runs in a child process of its own, for two reasons:

- peak memory belongs to that pool alone. It is the growth of the resident set size: the
  peak (``VmHWM`` in /proc/self/status, reset through /proc/self/clear_refs just before the
  load) minus the resident size just before the load. That counts the tasks and coroutines
  as well as the pool's own waiters, and is the same for every pool;
- a pool that does not finish within the time limit is stopped and reported as such.

The pools are those of ``benchmarks/pool.py``: the asyncio.Queue floor, asyncext and the four
peers, built by ``benchmarks/_pool_peers.py``.

    python benchmarks/pool_scale.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import Comparison, Goal, Report, Table, check_size, main_for
from _pool_peers import FLOOR, MAKERS, MAX_SIZE, OURS, missing_peer

Acquire = Callable[[], AbstractAsyncContextManager[Any]]

WAIT_RATIO_GOAL = 5.0


@dataclass(frozen=True)
class Settings:
    task_counts: tuple[int, ...]
    cycles: int
    rounds: int
    time_limit: float
    """Seconds one child process may take, start-up included, before it is stopped."""


SETTINGS = {
    "smoke": Settings(task_counts=(100,), cycles=2, rounds=1, time_limit=30.0),
    "quick": Settings(task_counts=(1_000, 10_000), cycles=3, rounds=2, time_limit=20.0),
    "full": Settings(task_counts=(1_000, 10_000), cycles=5, rounds=5, time_limit=120.0),
}


# --- the child process -------------------------------------------------------------------


def memory_kib(field: str) -> int | None:
    """Return a ``kB`` field of /proc/self/status, or None where there is no such file."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_memory() -> bool:
    """Reset VmHWM to the current resident size; return False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


async def load(acquire: Acquire, tasks: int, cycles: int) -> tuple[float, list[float]]:
    """Run ``tasks`` tasks of ``cycles`` acquires each; return the seconds and every wait."""
    waits: list[float] = []

    async def work() -> None:
        for _ in range(cycles):
            started = time.perf_counter()
            async with acquire():
                waits.append(time.perf_counter() - started)
                await asyncio.sleep(0)

    started = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(tasks)))
    return time.perf_counter() - started, waits


async def measure_one(pool: str, tasks: int, cycles: int, rounds: int) -> dict[str, Any]:
    """Measure one pool under ``tasks`` concurrent tasks, in this process."""
    try:
        driver = await MAKERS[pool]()
    except ImportError as error:
        return {"finished": False, "installed": False, "reason": missing_peer(error)}
    try:
        # A small warm-up creates the clients and runs each code path once.
        await load(driver.acquire, min(tasks, 100), 2)
        gc.collect()

        resident_before = memory_kib("VmRSS")
        peak_reset = reset_peak_memory()
        rates: list[float] = []
        waits: list[float] = []
        for _ in range(rounds):
            gc.collect()
            seconds, round_waits = await load(driver.acquire, tasks, cycles)
            rates.append(tasks * cycles / seconds)
            waits.extend(round_waits)
        peak = memory_kib("VmHWM")
    finally:
        await driver.close()

    peak_growth = None
    if peak_reset and peak is not None and resident_before is not None:
        peak_growth = (peak - resident_before) / 1024
    return {
        "finished": True,
        "pairs_per_second": statistics.median(rates),
        "wait_median_seconds": statistics.median(waits),
        "wait_worst_seconds": max(waits),
        "peak_memory_growth_mib": peak_growth,
    }


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="measure one pool; used by pool_scale.py")
    parser.add_argument("pool", choices=list(MAKERS))
    parser.add_argument("tasks", type=int)
    parser.add_argument("cycles", type=int)
    parser.add_argument("rounds", type=int)
    arguments = parser.parse_args(argv)
    result = asyncio.run(
        measure_one(arguments.pool, arguments.tasks, arguments.cycles, arguments.rounds)
    )
    print(json.dumps(result))
    return 0


# --- the parent --------------------------------------------------------------------------


def measure_in_child(pool: str, tasks: int, settings: Settings) -> dict[str, Any]:
    """Run `measure_one` in a child process; report a time-out or a failure as such."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        pool,
        str(tasks),
        str(settings.cycles),
        str(settings.rounds),
    ]
    try:
        finished = subprocess.run(
            command, capture_output=True, text=True, timeout=settings.time_limit, check=False
        )
    except subprocess.TimeoutExpired:
        return {"finished": False, "reason": f"did not finish within {settings.time_limit:g} s"}
    if finished.returncode != 0:
        last_line = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        return {"finished": False, "reason": f"failed: {last_line}"}
    # The figures are the last line, after anything a pool library itself printed.
    lines = finished.stdout.strip().splitlines()
    if not lines:
        return {"finished": False, "reason": "failed: the child process printed no figures"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run(size: str) -> Report:
    """Measure every pool at each task count, each in a child process."""
    check_size(size)
    settings = SETTINGS[size]
    results: dict[str, dict[str, dict[str, Any]]] = {
        str(tasks): {pool: measure_in_child(pool, tasks, settings) for pool in MAKERS}
        for tasks in settings.task_counts
    }

    report = Report(
        name="pool_scale",
        size=size,
        parameters={
            "max_size": MAX_SIZE,
            "tasks": list(settings.task_counts),
            "cycles per task": settings.cycles,
            "rounds": settings.rounds,
            "time limit per pool seconds": settings.time_limit,
            "peak memory": "growth of the resident set size during the load (VmHWM - VmRSS)",
        },
        figures=results,
    )

    for tasks, by_pool in results.items():
        rows = []
        for pool, figures in by_pool.items():
            if not figures["finished"]:
                rows.append([pool, figures["reason"], "", "", "", ""])
                continue
            memory = figures["peak_memory_growth_mib"]
            rows.append(
                [
                    pool,
                    f"{figures['pairs_per_second']:,.0f}",
                    f"{figures['wait_median_seconds'] * 1e3:,.2f}",
                    f"{figures['wait_worst_seconds'] * 1e3:,.2f}",
                    f"{figures['wait_worst_seconds'] / figures['wait_median_seconds']:,.1f}",
                    "n/a" if memory is None else f"{memory:,.1f}",
                ]
            )
        report.tables.append(
            Table(
                title=(
                    f"{int(tasks):,} concurrent tasks x {settings.cycles} cycles over "
                    f"max_size={MAX_SIZE}; throughput median of {settings.rounds} rounds"
                ),
                headers=[
                    "pool",
                    "pairs/s",
                    "wait median ms",
                    "wait worst ms",
                    "worst/median",
                    "peak memory MiB",
                ],
                rows=rows,
            )
        )

        ours = by_pool[OURS]
        if not ours["finished"]:
            report.notes.append(f"asyncext at {int(tasks):,} tasks: {ours['reason']}")
            continue
        for baseline, figures in by_pool.items():
            if baseline == OURS or not figures["finished"]:
                continue
            report.comparisons.append(
                Comparison(
                    measure=f"throughput at {tasks} tasks",
                    ours=OURS,
                    baseline=baseline,
                    ours_value=ours["pairs_per_second"],
                    baseline_value=figures["pairs_per_second"],
                    unit="acquire/release pairs per second",
                    higher_is_better=True,
                )
            )
        report.goals.append(
            Goal(
                f"{int(tasks):,} tasks, asyncext worst acquire wait / median wait",
                ours["wait_worst_seconds"] / ours["wait_median_seconds"],
                WAIT_RATIO_GOAL,
                at_least=False,
            )
        )

    for by_pool in results.values():
        for pool, figures in by_pool.items():
            if figures.get("installed") is False:
                report.unavailable[pool] = figures["reason"]
    unfinished = [
        f"{pool} at {int(tasks):,} tasks ({figures['reason']})"
        for tasks, by_pool in results.items()
        for pool, figures in by_pool.items()
        if not figures["finished"] and pool != OURS and pool not in report.unavailable
    ]
    if unfinished:
        report.notes.append("not measured: " + "; ".join(unfinished))
    if FLOOR in results[str(settings.task_counts[0])]:
        report.notes.append(
            f"{FLOOR}.get() returns at once while the queue holds a client, so a task that "
            "releases and acquires again takes the client before the waiter woken for it "
            "runs, and that waiter queues again at the back. Most waits are near zero and a "
            "few are long: its worst/median measures no fairness."
        )
    return report


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["--child"]:
        return child_main(arguments[1:])
    return main_for(run, __doc__.splitlines()[0], arguments)


if __name__ == "__main__":
    sys.exit(main())
