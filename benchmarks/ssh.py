"""SFTP speed: ``async with system.client()`` plus one stat, pooled and unpooled, against the floor.

Starts its own OpenSSH sshd on 127.0.0.1 with the launcher the tests use (tests/sshd.py),
then measures in one process and one event loop:

- pooled: a `SystemStore` with pooling on; each operation enters ``system.client()`` and
  stats one file in the root (``FileClient.stat``), then leaves;
- unpooled: the same with a store that has pooling off, so every operation opens an SSH
  connection and an SFTP session and closes them;
- floor: one raw asyncssh SFTP client opened beforehand, calling ``stat`` directly;
- pooled, nested: as pooled, for a file two folders deep, which costs one more round trip
  (the server-side symlink check of the parent folders).

Each round measures every variant in turn; the figures are the median over the rounds.
Goals: pooled at least 100 times unpooled, and at least 0.8 times the floor.

    python benchmarks/ssh.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import asyncssh
from sshd import SSHServer, generate_key_files, start_server

from asyncext import ExternalSystem, PoolOptions, SystemStore

POOLED_OVER_UNPOOLED_GOAL = 100.0
POOLED_OVER_FLOOR_GOAL = 0.8

Operation = Callable[[], Awaitable[object]]


async def rate(operation: Operation, seconds: float) -> float:
    """Return operations per second, running ``operation`` repeatedly for about ``seconds``."""
    gc.collect()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        await operation()
        count += 1
        if count % 16 == 0 and time.perf_counter() >= deadline:
            break
    return count / (time.perf_counter() - started)


async def measure(server: SSHServer, folder: Path, rounds: int, seconds: float) -> None:
    (server.data_folder / "bench.txt").write_text("x" * 1024)
    (server.data_folder / "a" / "b").mkdir(parents=True, exist_ok=True)
    (server.data_folder / "a" / "b" / "bench.txt").write_text("x" * 1024)
    fields = server.fields("sftp")

    pooled_store = SystemStore(folder / "pooled.db", key=None, pool=PoolOptions(max_size=4))
    unpooled_store = SystemStore(folder / "unpooled.db", key=None)
    async with pooled_store, unpooled_store:
        pooled: ExternalSystem = await pooled_store.add("bench", "sftp", **fields)
        unpooled: ExternalSystem = await unpooled_store.add("bench", "sftp", **fields)

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
                "floor (raw asyncssh SFTP stat)": (floor_stat, seconds),
                "pooled client() + stat": (pooled_stat, seconds),
                "pooled client() + nested stat": (pooled_nested_stat, seconds),
                "unpooled client() + stat": (unpooled_stat, seconds * 2),
            }
            results: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, (operation, duration) in variants.items():
                    results[name].append(await rate(operation, duration))

    medians = {name: statistics.median(values) for name, values in results.items()}
    width = max(len(name) for name in medians)
    print(f"{'variant':<{width}}  {'ops/s (median)':>14}")
    for name, value in medians.items():
        print(f"{name:<{width}}  {value:>14,.1f}")

    pooled_rate = medians["pooled client() + stat"]
    over_unpooled = pooled_rate / medians["unpooled client() + stat"]
    over_floor = pooled_rate / medians["floor (raw asyncssh SFTP stat)"]
    print()
    print(
        f"pooled / unpooled: {over_unpooled:,.0f}x "
        f"(goal >= {POOLED_OVER_UNPOOLED_GOAL:g}x): "
        f"{'met' if over_unpooled >= POOLED_OVER_UNPOOLED_GOAL else 'MISSED'}"
    )
    print(
        f"pooled / floor:    {over_floor:.2f}x (goal >= {POOLED_OVER_FLOOR_GOAL:g}x): "
        f"{'met' if over_floor >= POOLED_OVER_FLOOR_GOAL else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="1 round of 0.5 s per variant instead of 5 of 2 s"
    )
    arguments = parser.parse_args()
    rounds, seconds = (1, 0.5) if arguments.quick else (5, 2.0)

    print(
        f"Python {platform.python_version()}, asyncssh {asyncssh.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {rounds} round(s) of {seconds:g} s"
    )
    with tempfile.TemporaryDirectory(prefix="asyncext-bench-") as temporary:
        folder = Path(temporary)
        server = start_server(generate_key_files(folder / "keys"), folder / "sshd")
        try:
            print(f"sshd on {server.host}:{server.port}\n")
            asyncio.run(measure(server, folder, rounds, seconds))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
