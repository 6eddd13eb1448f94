"""Store at scale: SystemStore against raw aiosqlite on the same file, in one run.

Fills one file with 10,000 systems, each with an encrypted password, options and (for half
of them) a tenant. Then it times ``get`` by name, ``list`` and ``update`` through
SystemStore, and the same SQL statements sent through aiosqlite on the same file. Each round
runs the raw statements and SystemStore in turn, and the figures are medians over the rounds.
Opening and closing is timed on files of several sizes, to show whether it depends on the
number of systems.

The process runs on one CPU while it measures, so that both connections' worker threads
share the event loop's core (see ``_common.one_core``). The raw connection keeps SQLite's
defaults, while the store also sets ``secure_delete``, which makes its writes do more work:
the baseline is the faster side on purpose.

    python benchmarks/store.py [--quick] [--json FILE]
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from _common import (
    Comparison,
    Goal,
    Report,
    Table,
    check_size,
    interleaved_seconds,
    main_for,
    milliseconds,
    one_core,
    run_async,
    times,
)

from asyncext import SystemStore, generate_key
from asyncext._store._rows import SELECT_COLUMNS

OURS = "asyncext SystemStore"
BASELINE = "raw aiosqlite"
GET_GOAL = 0.5
LIST_GOAL = 0.5
OPEN_GROWTH_GOAL = 1.5
"""Maximum open+close time of the largest file over that of an empty one."""


@dataclass(frozen=True)
class Settings:
    systems: int
    rounds: int
    get_repeats: int
    list_repeats: int
    update_repeats: int
    open_sizes: tuple[int, ...]
    open_repeats: int


SETTINGS = {
    "smoke": Settings(200, 1, 20, 1, 5, (0, 200), 2),
    "quick": Settings(10_000, 5, 300, 2, 50, (0, 10_000), 10),
    "full": Settings(10_000, 11, 1000, 3, 100, (0, 1_000, 10_000, 100_000), 20),
}


async def fill(path: Path, count: int, key: str) -> None:
    """Write ``count`` systems straight into a new store file.

    Each has an encrypted password, two options and, for every other one, a tenant. The rows
    go in through one executemany, because ``store.add`` commits once per system, which
    would make filling the 100,000-system file the longest part of the run.
    """
    async with SystemStore(path, key=key) as store:
        seed = await store.add("seed", "local", remote_path="/srv/seed")
        sealed = store._keyring.seal("benchmark-password")
    assert seed.created_at is not None
    created = seed.created_at.isoformat()

    rows = [
        (
            f"system-{index:06d}",
            "local",
            f"host-{index}.example",
            22,
            "svc",
            sealed,
            f"/srv/data/{index}",
            '["acme"]' if index % 2 else "[]",
            json.dumps({"retries": 3, "label": f"n{index}"}),
            created,
        )
        for index in range(count)
    ]
    async with aiosqlite.connect(path) as db:
        await db.executemany(
            "INSERT INTO systems (name, system_type, host, port, username, password, "
            "remote_path, tenants, options, revision, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?10, ?10)",
            rows,
        )
        await db.execute("DELETE FROM systems WHERE name = 'seed'")
        await db.commit()


def name_cycle(systems: int) -> Callable[[], str]:
    """Return a function that yields about 100 names spread over the table, in turn."""
    names = [f"system-{index:06d}" for index in range(0, systems, max(1, systems // 97))]
    position = 0

    def next_name() -> str:
        nonlocal position
        position = (position + 1) % len(names)
        return names[position]

    return next_name


async def measure_operations(path: Path, key: str, settings: Settings) -> dict[str, Any]:
    """Return the median seconds per call of each operation, raw and through the store."""
    next_name = name_cycle(settings.systems)
    get_sql = f"SELECT {SELECT_COLUMNS} FROM systems WHERE name = ?"
    get_by_id_sql = f"SELECT {SELECT_COLUMNS} FROM systems WHERE id = ?"
    list_sql = f"SELECT {SELECT_COLUMNS} FROM systems ORDER BY name"
    update_sql = "UPDATE systems SET username = ?, revision = ?, updated_at = ? WHERE id = ?"
    counter = 0

    async with (
        SystemStore(path, key=key) as store,
        aiosqlite.connect(path, isolation_level=None) as raw,
    ):

        async def raw_get() -> Any:
            return await raw.execute_fetchall(get_sql, (next_name(),))

        async def store_get() -> Any:
            return await store.get(next_name())

        async def raw_list() -> Any:
            return await raw.execute_fetchall(list_sql)

        async def store_list() -> Any:
            return await store.list()

        # The statements SystemStore.update sends for a change that keeps the name.
        async def raw_update() -> Any:
            nonlocal counter
            counter += 1
            await raw.execute("BEGIN IMMEDIATE")
            rows = list(await raw.execute_fetchall(get_sql, (next_name(),)))
            system_id, revision = rows[0][0], rows[0][14]
            await raw.execute(
                update_sql,
                (f"user-{counter}", revision + 1, "2026-01-01T00:00:00.000000+00:00", system_id),
            )
            row = await raw.execute_fetchall(get_by_id_sql, (system_id,))
            await raw.execute("COMMIT")
            return row

        async def store_update() -> Any:
            nonlocal counter
            counter += 1
            return await store.update(next_name(), username=f"user-{counter}")

        results: dict[str, Any] = {}
        for label, ours, baseline, repeats in [
            ("get", store_get, raw_get, settings.get_repeats),
            ("list", store_list, raw_list, settings.list_repeats),
            ("update", store_update, raw_update, settings.update_repeats),
        ]:
            medians = await interleaved_seconds(
                {BASELINE: baseline, OURS: ours}, repeats, settings.rounds
            )
            results[label] = medians
        return results


async def measure_open(key: str, folder: Path, settings: Settings) -> dict[int, float]:
    """Return the median open+close seconds of stores holding each of the sizes."""
    paths = {}
    for size in settings.open_sizes:
        path = folder / f"open-{size}.db"
        await fill(path, size, key)
        paths[size] = path

    def open_close(path: Path) -> Callable[[], Any]:
        async def operation() -> None:
            async with SystemStore(path, key=key):
                pass

        return operation

    medians = await interleaved_seconds(
        {str(size): open_close(path) for size, path in paths.items()},
        settings.open_repeats,
        settings.rounds,
    )
    return {int(size): seconds for size, seconds in medians.items()}


async def measure(settings: Settings) -> tuple[dict[str, Any], dict[int, float]]:
    key = generate_key()
    with tempfile.TemporaryDirectory(prefix="asyncext-bench-") as temporary:
        folder = Path(temporary)
        path = folder / "store.db"
        await fill(path, settings.systems, key)
        operations = await measure_operations(path, key, settings)
        opens = await measure_open(key, folder, settings)
    return operations, opens


def run(size: str) -> Report:
    """Measure the store at scale and compare it with raw aiosqlite."""
    check_size(size)
    settings = SETTINGS[size]
    with one_core() as core:
        operations, opens = run_async(measure(settings))

    report = Report(
        name="store",
        size=size,
        parameters={
            "systems": settings.systems,
            "rounds": settings.rounds,
            "pinned to CPU": core,
            "calls per round": {
                "get": settings.get_repeats,
                "list": settings.list_repeats,
                "update": settings.update_repeats,
                "open": settings.open_repeats,
            },
        },
    )
    for label, medians in operations.items():
        report.comparisons.append(
            Comparison(
                measure=label,
                ours=OURS,
                baseline=BASELINE,
                ours_value=medians[OURS] * 1000,
                baseline_value=medians[BASELINE] * 1000,
                unit="ms per call",
                higher_is_better=False,
            )
        )
    report.tables.append(
        Table(
            title=(
                f"Store with {settings.systems:,} systems: ms per call, median of "
                f"{settings.rounds} rounds; ratio = raw time / asyncext time"
            ),
            headers=["operation", "asyncext ms", "raw aiosqlite ms", "ratio"],
            rows=[
                [
                    comparison.measure,
                    f"{comparison.ours_value:,.3f}",
                    f"{comparison.baseline_value:,.3f}",
                    times(comparison.ratio),
                ]
                for comparison in report.comparisons
            ],
        )
    )

    smallest, largest = min(opens), max(opens)
    growth = opens[largest] / opens[smallest]
    report.tables.append(
        Table(
            title="Opening and closing a store, by number of systems in the file",
            headers=["systems", "open+close ms"],
            rows=[[f"{size:,}", milliseconds(seconds)] for size, seconds in opens.items()],
        )
    )
    report.figures = {
        "operations_seconds": operations,
        "open_close_seconds": {str(size): seconds for size, seconds in opens.items()},
    }

    ratios = {comparison.measure: comparison.ratio for comparison in report.comparisons}
    report.goals = [
        Goal(f"get, asyncext / {BASELINE}", ratios["get"], GET_GOAL),
        Goal(f"list, asyncext / {BASELINE}", ratios["list"], LIST_GOAL),
        Goal(
            f"open+close at {largest:,} systems / at {smallest:,}",
            growth,
            OPEN_GROWTH_GOAL,
            at_least=False,
        ),
    ]
    return report


def main(argv: list[str] | None = None) -> int:
    return main_for(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
