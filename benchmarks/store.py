"""Store at scale: SystemStore against raw aiosqlite on the same file, in one run.

Fills one file with N systems (default 10,000, each with an encrypted password), then times
``get`` by name, ``list`` and ``update`` through SystemStore, and the same SQL statements
issued directly through aiosqlite on the same file. Opening is timed on stores of several sizes
to show whether it depends on the number of systems.

    python benchmarks/store.py [--quick] [--systems N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite

from asyncext import SystemStore, generate_key
from asyncext._store._rows import SELECT_COLUMNS


async def fill(path: Path, count: int, key: str) -> None:
    """Add ``count`` sftp-like local systems with a password, in one transaction per 1,000."""
    async with SystemStore(path, key=key) as store:
        await store.add("seed", "local", remote_path="/srv/seed")
    async with aiosqlite.connect(path) as db:
        async with SystemStore(path, key=key) as store:
            template = await store.get("seed")
        rows = []
        sealed = store._keyring.seal("benchmark-password")
        for index in range(count):
            rows.append(
                (
                    f"system-{index:05d}",
                    "local",
                    f"host-{index}.example",
                    22,
                    "svc",
                    sealed,
                    f"/srv/data/{index}",
                    '["acme"]' if index % 2 else "[]",
                    json.dumps({"retries": 3, "label": f"n{index}"}),
                    template.created_at.isoformat() if template.created_at else "",
                )
            )
        await db.executemany(
            "INSERT INTO systems (name, system_type, host, port, username, password, "
            "remote_path, tenants, options, revision, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?10, ?10)",
            rows,
        )
        await db.execute("DELETE FROM systems WHERE name = 'seed'")
        await db.commit()


async def median_seconds(
    operation: Callable[[], Awaitable[Any]], repeats: int, rounds: int
) -> float:
    """Return the median over ``rounds`` of the mean time of one call, in seconds."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeats):
            await operation()
        samples.append((time.perf_counter() - started) / repeats)
    return statistics.median(samples)


async def run(systems: int, rounds: int) -> dict[str, Any]:
    key = generate_key()
    results: dict[str, Any] = {"systems": systems}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "store.db"
        await fill(path, systems, key)

        names = [f"system-{index:05d}" for index in range(0, systems, max(1, systems // 97))]
        cursor = 0

        def next_name() -> str:
            nonlocal cursor
            cursor = (cursor + 1) % len(names)
            return names[cursor]

        async with (
            SystemStore(path, key=key) as store,
            aiosqlite.connect(path, isolation_level=None) as raw,
        ):
            get_sql = f"SELECT {SELECT_COLUMNS} FROM systems WHERE name = ?"
            list_sql = f"SELECT {SELECT_COLUMNS} FROM systems ORDER BY name"

            async def raw_get() -> Any:
                return await raw.execute_fetchall(get_sql, (next_name(),))

            async def store_get() -> Any:
                return await store.get(next_name())

            async def raw_list() -> Any:
                return await raw.execute_fetchall(list_sql)

            async def store_list() -> Any:
                return await store.list()

            counter = 0

            async def raw_update() -> None:
                nonlocal counter
                counter += 1
                await raw.execute("BEGIN IMMEDIATE")
                await raw.execute_fetchall(get_sql, (next_name(),))
                await raw.execute(
                    "UPDATE systems SET username = ?, revision = revision + 1, "
                    "updated_at = ? WHERE name = ?",
                    (f"user-{counter}", "2026-01-01T00:00:00+00:00", next_name()),
                )
                await raw.execute_fetchall(get_sql, (next_name(),))
                await raw.execute("COMMIT")

            async def store_update() -> Any:
                nonlocal counter
                counter += 1
                return await store.update(next_name(), username=f"user-{counter}")

            get_repeats = 200 if rounds < 5 else 1000
            for label, ours, baseline, repeats in [
                ("get", store_get, raw_get, get_repeats),
                ("list", store_list, raw_list, 3),
                ("update", store_update, raw_update, get_repeats // 10),
            ]:
                baseline_time = await median_seconds(baseline, repeats, rounds)
                our_time = await median_seconds(ours, repeats, rounds)
                results[label] = {
                    "asyncext_ms": our_time * 1000,
                    "raw_aiosqlite_ms": baseline_time * 1000,
                    "ratio": baseline_time / our_time,
                }

    results["open"] = await time_open(key, rounds)
    return results


async def time_open(key: str, rounds: int) -> dict[str, float]:
    """Return the median open+close time in ms for stores of several sizes."""
    timings = {}
    for size in (0, 1000, 10000):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "store.db"
            await fill(path, size, key)

            async def open_close(path: Path = path) -> None:
                async with SystemStore(path, key=key):
                    pass

            timings[str(size)] = await median_seconds(open_close, 5, rounds) * 1000
    return timings


def print_table(results: dict[str, Any]) -> None:
    print(f"store with {results['systems']:,} systems (medians; ratio = raw time / asyncext time)")
    print(f"{'operation':<10}{'asyncext ms':>14}{'raw aiosqlite ms':>19}{'ratio':>8}")
    for label in ("get", "list", "update"):
        row = results[label]
        print(
            f"{label:<10}{row['asyncext_ms']:>14.3f}{row['raw_aiosqlite_ms']:>19.3f}"
            f"{row['ratio']:>8.2f}"
        )
    opens = ", ".join(f"{size} systems: {ms:.2f} ms" for size, ms in results["open"].items())
    print(f"open+close: {opens}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and systems")
    parser.add_argument("--systems", type=int, default=None, help="systems in the file")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    arguments = parser.parse_args(argv)

    systems = arguments.systems or (2000 if arguments.quick else 10000)
    rounds = 3 if arguments.quick else 7
    results = asyncio.run(run(systems, rounds))
    print_table(results)
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
