"""Several processes sharing one store file at the same time."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

from leakcheck import register_secret

from asyncext import SystemStore, generate_key

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from asyncext import SystemStore

    async def main(path, worker, root, updates, key):
        async with SystemStore(path, key=key) as store:
            # Start together: announce readiness, then wait for the test's go signal.
            open(os.path.join(root, f"ready-{worker}"), "w").close()
            while not os.path.exists(os.path.join(root, "go")):
                await asyncio.sleep(0.005)
            print(time.time(), flush=True)
            for index in range(10):
                await store.add(f"w{worker}-{index}", "local", remote_path=root)
            batch = [
                {"name": f"batch-{index}", "system_type": "local", "remote_path": root}
                for index in range(5)
            ]
            for step in range(updates):
                await store.update(
                    "shared",
                    options={"writer": worker, "step": step},
                    password=f"pw-{worker}-{step}",
                )
                await store.update(f"w{worker}-{step % 10}", username=f"u{step}")
                if step % 6 == 0:
                    await store.import_systems(batch, on_conflict="overwrite")
                await store.list()
            for index in range(0, 10, 2):
                await store.remove(f"w{worker}-{index}")
            print(time.time(), flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]))
    """
)


async def test_store_processes_lose_no_update(tmp_path: Path) -> None:
    """Concurrent writers in several processes never see 'locked' and lose no update."""
    path = tmp_path / "shared.db"
    workers, updates = 4, 60
    key = generate_key()
    register_secret(key)
    async with SystemStore(path, key=key) as store:
        await store.add("shared", "local", remote_path=str(tmp_path))

    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            str(path),
            str(worker),
            str(tmp_path),
            str(updates),
            key,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for worker in range(workers)
    ]
    ready = [tmp_path / f"ready-{worker}" for worker in range(workers)]

    async def wait_until_ready() -> None:
        # The markers come from other processes, so there is no event to wait on.
        while not all(marker.exists() for marker in ready):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait_until_ready(), timeout=60)
    (tmp_path / "go").touch()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), timeout=120
    )

    for process, (_, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert b"locked" not in stderr

    # The writers must really have overlapped, or the test would prove nothing.
    spans = [tuple(map(float, stdout.split())) for stdout, _ in outcomes]
    latest_start = max(start for start, _ in spans)
    earliest_end = min(end for _, end in spans)
    assert latest_start < earliest_end

    async with SystemStore(path, key=key) as store:
        shared = await store.get("shared")
        names = [system.name for system in await store.list()]
        kept = [await store.get(f"w{worker}-1") for worker in range(workers)]
        batch = [await store.get(f"batch-{index}") for index in range(5)]

    assert shared.revision == 1 + workers * updates
    expected = ["shared"] + [
        f"w{worker}-{index}" for worker in range(workers) for index in range(1, 10, 2)
    ]
    expected += [f"batch-{index}" for index in range(5)]
    assert sorted(names) == sorted(expected)
    # Each kept system w*-1 was updated at steps 1, 11, 21, 31, 41 and 51.
    assert [system.revision for system in kept] == [1 + 6] * workers
    # Every import of the batch, at steps 0, 6, ..., 54 of each worker, added the systems
    # (revision 1) or overwrote them (one more).
    imports = workers * len(range(0, updates, 6))
    assert [system.revision for system in batch] == [imports] * 5

    # The last update's fields were written together, by one writer.
    writer = shared.options["writer"]
    assert shared.options["step"] == updates - 1
    assert shared.password is not None
    assert shared.password.reveal() == f"pw-{writer}-{updates - 1}"


OPENER = textwrap.dedent(
    """
    import asyncio, os, sys
    from asyncext import SystemStore

    async def main(path, folder, worker):
        open(os.path.join(folder, f"ready-{worker}"), "w").close()
        while not os.path.exists(os.path.join(folder, "go")):
            await asyncio.sleep(0.001)
        async with SystemStore(path) as store:
            await store.add(f"opener-{worker}", "local", remote_path=folder)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
    """
)


async def test_store_processes_create_one_file(tmp_path: Path) -> None:
    """Processes that open a new file at the same moment migrate it once and all succeed."""
    path = tmp_path / "new.db"
    workers = 4
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            OPENER,
            str(path),
            str(tmp_path),
            str(worker),
            stderr=asyncio.subprocess.PIPE,
        )
        for worker in range(workers)
    ]
    ready = [tmp_path / f"ready-{worker}" for worker in range(workers)]

    async def wait_until_ready() -> None:
        # The markers come from other processes, so there is no event to wait on.
        while not all(marker.exists() for marker in ready):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait_until_ready(), timeout=60)
    (tmp_path / "go").touch()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(process.communicate() for process in processes)), timeout=120
    )

    for process, (_, stderr) in zip(processes, outcomes, strict=True):
        assert process.returncode == 0, stderr.decode()
    async with SystemStore(path) as store:
        names = [system.name for system in await store.list()]
    assert names == [f"opener-{worker}" for worker in range(workers)]
