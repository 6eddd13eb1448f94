"""SystemStore against real SQLite files: CRUD, schema, bad files, concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import sqlite3
import stat
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asyncext import (
    DuplicateSystem,
    InvalidSystem,
    StoreError,
    SystemNotFound,
    SystemStore,
    UnknownSystemType,
)
from asyncext._store._schema import SCHEMA_VERSION


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SystemStore]:
    async with SystemStore(tmp_path / "systems.db") as opened:
        yield opened


def local_fields(tmp_path: Path) -> dict[str, object]:
    return {"remote_path": str(tmp_path)}


async def test_store_creates_file_with_mode_0600(tmp_path: Path) -> None:
    """A new store file is readable by its owner only, whatever the umask."""
    path = tmp_path / "new.db"
    previous_umask = os.umask(0)
    try:
        async with SystemStore(path):
            pass
    finally:
        os.umask(previous_umask)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_store_sets_schema_version_and_wal(tmp_path: Path) -> None:
    """A new file gets the current schema version and WAL journaling."""
    path = tmp_path / "systems.db"
    async with SystemStore(path):
        pass

    with sqlite3.connect(path) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    assert version == SCHEMA_VERSION
    assert journal_mode == "wal"


async def test_store_reopens_existing_file(tmp_path: Path) -> None:
    """Systems written by one store object are read by the next one."""
    path = tmp_path / "systems.db"
    async with SystemStore(path) as store:
        await store.add("files", "local", **local_fields(tmp_path))

    async with SystemStore(path) as store:
        system = await store.get("files")

    assert system.remote_path == str(tmp_path)


async def test_store_open_close_by_hand(tmp_path: Path) -> None:
    """open() and close() work without async with, and close() twice is harmless."""
    store = SystemStore(tmp_path / "systems.db")
    await store.open()
    await store.add("files", "local", **local_fields(tmp_path))
    await store.close()
    await store.close()

    with pytest.raises(StoreError, match="not open"):
        await store.get("files")


async def test_store_add_returns_stored_record(store: SystemStore, tmp_path: Path) -> None:
    """add() returns the record with its id, revision 1 and equal timestamps."""
    system = await store.add("files", "local", **local_fields(tmp_path), options={"a": 1})

    assert system.id is not None
    assert system.revision == 1
    assert system.created_at == system.updated_at
    assert system.created_at is not None
    assert system.created_at.tzinfo is not None
    assert system.options == {"a": 1}
    assert await store.get("files") == system


async def test_store_keeps_names_verbatim(store: SystemStore, tmp_path: Path) -> None:
    """Quotes, unicode, slashes and SQL fragments in names are stored exactly."""
    names = [
        'O\'Brien "prod"',
        "Zürich/日本/🚀",
        "a/b\\c",
        "x'; DROP TABLE systems; --",
        "  padded  ",
        "%_ like wildcards",
    ]
    for name in names:
        await store.add(name, "local", **local_fields(tmp_path))

    for name in names:
        assert (await store.get(name)).name == name
    assert sorted(s.name for s in await store.list()) == sorted(names)


async def test_store_list_orders_by_name_and_filters(store: SystemStore, tmp_path: Path) -> None:
    """list() is ordered by name and filters by system_type."""
    for name in ["charlie", "alpha", "bravo"]:
        await store.add(name, "local", **local_fields(tmp_path))

    assert [s.name for s in await store.list()] == ["alpha", "bravo", "charlie"]
    assert [s.name for s in await store.list(system_type="local")] == [
        "alpha",
        "bravo",
        "charlie",
    ]
    assert await store.list(system_type="sftp") == []


async def test_store_get_missing_raises_not_found(store: SystemStore) -> None:
    """get() of an unknown name raises SystemNotFound naming it."""
    with pytest.raises(SystemNotFound, match="'nope'") as caught:
        await store.get("nope")
    assert caught.value.system == "nope"


async def test_store_add_duplicate_keeps_original(store: SystemStore, tmp_path: Path) -> None:
    """A second add() under a taken name raises DuplicateSystem and changes nothing."""
    first = await store.add("files", "local", **local_fields(tmp_path))

    with pytest.raises(DuplicateSystem, match="'files'"):
        await store.add("files", "local", remote_path="/elsewhere")

    assert await store.get("files") == first


async def test_store_update_changes_only_given_fields(store: SystemStore, tmp_path: Path) -> None:
    """update() writes the passed fields, bumps the revision and updated_at."""
    added = await store.add(
        "files", "local", **local_fields(tmp_path), username="alice", options={"x": 1}
    )

    updated = await store.update("files", username="bob")

    assert updated.username == "bob"
    assert updated.options == {"x": 1}
    assert updated.remote_path == added.remote_path
    assert updated.revision == 2
    assert updated.created_at == added.created_at
    assert updated.updated_at is not None
    assert added.updated_at is not None
    assert updated.updated_at > added.updated_at


async def test_store_update_renames(store: SystemStore, tmp_path: Path) -> None:
    """update(name=...) renames; the old name is gone."""
    await store.add("old", "local", **local_fields(tmp_path))

    renamed = await store.update("old", name="new")

    assert renamed.name == "new"
    with pytest.raises(SystemNotFound):
        await store.get("old")


async def test_store_update_rename_onto_taken_name_fails(
    store: SystemStore, tmp_path: Path
) -> None:
    """Renaming onto an existing name raises DuplicateSystem and changes neither."""
    first = await store.add("first", "local", **local_fields(tmp_path))
    second = await store.add("second", "local", **local_fields(tmp_path))

    with pytest.raises(DuplicateSystem, match="'second'"):
        await store.update("first", name="second")

    assert await store.get("first") == first
    assert await store.get("second") == second


async def test_store_update_missing_raises_not_found(store: SystemStore) -> None:
    """update() of an unknown name raises SystemNotFound."""
    with pytest.raises(SystemNotFound):
        await store.update("nope", host="x")


async def test_store_update_invalid_keeps_record(store: SystemStore, tmp_path: Path) -> None:
    """An update that fails validation writes nothing."""
    added = await store.add("files", "local", **local_fields(tmp_path))

    with pytest.raises(InvalidSystem, match="port"):
        await store.update("files", port=70000)
    with pytest.raises(InvalidSystem, match="remote_path"):
        await store.update("files", remote_path="relative/path")

    assert await store.get("files") == added


async def test_store_update_rejects_read_only_fields(store: SystemStore, tmp_path: Path) -> None:
    """revision, id and timestamps cannot be set by the caller."""
    await store.add("files", "local", **local_fields(tmp_path))

    for field in ["revision", "id", "created_at", "updated_at"]:
        with pytest.raises(InvalidSystem, match=field):
            await store.update("files", **{field: 5})


async def test_store_remove_deletes(store: SystemStore, tmp_path: Path) -> None:
    """remove() deletes the system; removing it again raises SystemNotFound."""
    await store.add("files", "local", **local_fields(tmp_path))

    await store.remove("files")

    with pytest.raises(SystemNotFound):
        await store.get("files")
    with pytest.raises(SystemNotFound):
        await store.remove("files")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "empty"),
        ({"name": "   "}, "empty"),
        ({"name": "tab\there"}, "control character"),
        ({"name": "x" * 300}, "maximum"),
        ({"port": 0}, "port 0"),
        ({"port": 65536}, "port 65536"),
        ({"port": True}, "port True"),
        ({"port": "22"}, "port '22'"),
        ({"options": {"when": {1, 2}}}, "set"),
        ({"options": {"pair": (1, 2)}}, "tuple"),
        ({"options": {"ratio": float("nan")}}, "nan"),
        ({"options": {1: "one"}}, "key 1"),
        ({"options": ["not", "a", "dict"]}, "must be a dict"),
        ({"tenants": "acme"}, "tenants"),
        ({"tenants": [""]}, "tenant"),
        ({"remote_path": None}, "remote_path"),
        ({"ignore_fingerprint": "yes"}, "ignore_fingerprint"),
    ],
)
async def test_store_add_rejects_invalid_record(
    store: SystemStore, tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    """Invalid fields raise InvalidSystem naming the value, and nothing is stored."""
    record: dict[str, object] = {"name": "files", **local_fields(tmp_path), **fields}
    name = record.pop("name")

    with pytest.raises(InvalidSystem, match=message):
        await store.add(name, "local", **record)  # type: ignore[arg-type]

    assert await store.list() == []


async def test_store_add_unknown_type_lists_installed(store: SystemStore) -> None:
    """An unknown system_type raises UnknownSystemType listing the installed types."""
    with pytest.raises(UnknownSystemType) as caught:
        await store.add("files", "ftp-not-installed")

    assert "local" in caught.value.installed
    assert "local" in str(caught.value)
    assert caught.value.system == "files"
    assert await store.list() == []


async def test_store_add_unknown_field_rejected(store: SystemStore, tmp_path: Path) -> None:
    """A misspelt field name raises InvalidSystem naming it."""
    with pytest.raises(InvalidSystem, match="'hostname'"):
        await store.add("files", "local", **local_fields(tmp_path), hostname="x")


async def test_store_rejects_non_database_file_untouched(tmp_path: Path) -> None:
    """A file that is not SQLite raises StoreError naming the path and stays byte-identical."""
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)

    with pytest.raises(StoreError, match="not an asyncext store") as caught:
        await SystemStore(path).open()

    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


async def test_store_rejects_newer_schema_untouched(tmp_path: Path) -> None:
    """A file with a newer schema version raises StoreError and stays byte-identical."""
    path = tmp_path / "future.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE systems (id INTEGER PRIMARY KEY)")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.commit()
    connection.close()
    content = path.read_bytes()

    with pytest.raises(StoreError, match="newer") as caught:
        await SystemStore(path).open()

    assert str(path) in str(caught.value)
    assert path.read_bytes() == content


async def test_store_rejects_other_application_database(tmp_path: Path) -> None:
    """An SQLite file of another application is refused and left as it was."""
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()
    content = path.read_bytes()

    with pytest.raises(StoreError, match="another application"):
        await SystemStore(path).open()

    assert path.read_bytes() == content


async def test_store_missing_folder_raises_store_error(tmp_path: Path) -> None:
    """A path in a missing folder raises StoreError naming the path."""
    path = tmp_path / "missing" / "systems.db"

    with pytest.raises(StoreError, match="missing"):
        await SystemStore(path).open()


async def test_store_empty_file_gets_mode_0600(tmp_path: Path) -> None:
    """An existing empty file becomes a store readable by its owner only."""
    path = tmp_path / "empty.db"
    path.touch(mode=0o644)
    path.chmod(0o644)

    async with SystemStore(path) as store:
        await store.add("files", "local", remote_path=str(tmp_path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_store_folder_path_names_the_folder(tmp_path: Path) -> None:
    """A folder given as the store path raises StoreError saying that it is a folder."""
    with pytest.raises(StoreError, match="it is a folder") as caught:
        await SystemStore(tmp_path).open()

    assert caught.value.path == str(tmp_path)


async def test_store_warns_when_collected_open(tmp_path: Path) -> None:
    """A store garbage-collected while open emits a ResourceWarning saying how to close it."""
    store = SystemStore(tmp_path / "systems.db")
    await store.open()
    connection = store._db
    assert connection is not None

    with pytest.warns(ResourceWarning, match="store.close"):
        del store
        gc.collect()

    await connection.close()


async def test_store_write_waits_for_other_writer(tmp_path: Path) -> None:
    """A write waits for another process's transaction instead of failing as locked."""
    path = tmp_path / "systems.db"
    async with SystemStore(path) as store:
        holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        released = threading.Event()

        def release_later() -> None:
            released.wait(0.5)
            holder.execute("COMMIT")
            holder.close()

        thread = threading.Thread(target=release_later)
        thread.start()
        try:
            added = await store.add("files", "local", **local_fields(tmp_path))
        finally:
            released.set()
            thread.join()

    assert added.revision == 1


async def test_store_concurrent_updates_add_up(store: SystemStore, tmp_path: Path) -> None:
    """Concurrent updates from many tasks each bump the revision exactly once."""
    await store.add("files", "local", **local_fields(tmp_path))

    await asyncio.gather(*(store.update("files", options={"n": n}) for n in range(50)))

    assert (await store.get("files")).revision == 51


async def test_store_cancelled_writes_leave_whole_records(
    store: SystemStore, tmp_path: Path
) -> None:
    """Updates cancelled at random moments commit whole or not at all, seen by another reader."""
    rng = random.Random(7)
    await store.add(
        "files", "local", **local_fields(tmp_path), username="u-0", host="h-0", password="p-0"
    )
    outcomes: Counter[str] = Counter()

    async with SystemStore(store.path) as observer:
        for step in range(1, 61):
            before = await observer.get("files")
            task = asyncio.create_task(
                store.update(
                    "files",
                    username=f"u-{step}",
                    host=f"h-{step}",
                    password=f"p-{step}",
                    options={"step": step},
                )
            )
            # Cancel before the task starts, or at a random moment of its write.
            if rng.random() < 0.8:
                await asyncio.sleep(rng.random() * 0.004)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

            after = await observer.get("files")
            assert after.password is not None and before.password is not None
            values = (after.username, after.host, after.password.reveal(), after.options)
            old = (before.username, before.host, before.password.reveal(), before.options)
            new = (f"u-{step}", f"h-{step}", f"p-{step}", {"step": step})
            assert values in (old, new), f"step {step}: a partial record {values}"
            assert after.revision == before.revision + (values == new), f"step {step}"
            outcomes["written" if values == new else "kept"] += 1

        # Neither connection was left inside a transaction: both can still write.
        await asyncio.wait_for(observer.add("other", "local", **local_fields(tmp_path)), 5)
        await asyncio.wait_for(store.update("files", username="last"), 5)

    assert outcomes["written"] > 0, outcomes
    assert outcomes["kept"] > 0, outcomes

    added = asyncio.create_task(store.add("third", "local", **local_fields(tmp_path)))
    await asyncio.sleep(0)
    added.cancel()
    with pytest.raises(asyncio.CancelledError):
        await added
    names = [s.name for s in await store.list()]
    assert names in (["files", "other"], ["files", "other", "third"])


async def test_store_cancelled_import_is_all_or_nothing(store: SystemStore, tmp_path: Path) -> None:
    """An import of twenty records cancelled at a random moment stores all of them or none."""
    rng = random.Random(11)
    outcomes: Counter[int] = Counter()
    async with SystemStore(store.path) as observer:
        for round_number in range(20):
            records = [
                {
                    "name": f"r{round_number}-{index}",
                    "system_type": "local",
                    "remote_path": str(tmp_path),
                }
                for index in range(20)
            ]
            task = asyncio.create_task(store.import_systems(records))
            if rng.random() < 0.8:
                await asyncio.sleep(rng.random() * 0.004)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

            stored = [
                system.name
                for system in await observer.list()
                if system.name.startswith(f"r{round_number}-")
            ]
            assert len(stored) in (0, 20), f"round {round_number}: {len(stored)} of 20 stored"
            outcomes[len(stored)] += 1

    assert outcomes[0] > 0, outcomes
    assert outcomes[20] > 0, outcomes


async def test_store_logs_changes_with_system_name(
    store: SystemStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """add, update and remove log one INFO line each naming the system."""
    caplog.set_level(logging.INFO, logger="asyncext.store")

    await store.add("files", "local", **local_fields(tmp_path))
    await store.update("files", username="bob")
    await store.remove("files")

    messages = [r.getMessage() for r in caplog.records if r.name == "asyncext.store"]
    assert any("added system 'files'" in m for m in messages)
    assert any("updated system 'files' to revision 2" in m for m in messages)
    assert any("removed system 'files'" in m for m in messages)
