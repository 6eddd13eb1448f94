"""Opening a store file: creating it, checking what it contains, WAL mode and migrations."""

from __future__ import annotations

import logging
import os
import sqlite3
from typing import Any

import aiosqlite
import anyio

from .._errors import StoreError
from ._schema import MIGRATIONS, SCHEMA_VERSION

logger = logging.getLogger("asyncext.store")

BUSY_TIMEOUT = 30.0
"""Seconds a write waits for another process's transaction on the same file to finish."""

CONNECT_STOP_TIMEOUT = 5.0
"""Seconds to wait for aiosqlite's worker thread to stop after a failed connect."""


def create_file(path: str) -> None:
    """Create the file with mode 0600 unless it exists, because SQLite would use the umask.

    An existing empty file holds nothing yet and becomes a new store, so it gets the same
    mode. A folder is rejected here: SQLite's own error for it names no cause.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _prepare_existing_file(path)
        return
    except OSError as exc:
        raise store_error(path, "cannot create", exc) from exc
    os.close(fd)
    logger.info("created store file %r", path)


def _prepare_existing_file(path: str) -> None:
    if os.path.isdir(path):
        raise StoreError(
            f"cannot open the store {path!r}: it is a folder; "
            "pass the path of a store file, such as a name ending in '.db' inside it",
            path=path,
        )

    try:
        if os.path.getsize(path) == 0:
            os.chmod(path, 0o600)
    except OSError as exc:
        raise store_error(path, "cannot open", exc) from exc


async def connect(path: str) -> aiosqlite.Connection:
    """Open an aiosqlite connection in autocommit mode, waiting for the busy timeout.

    Raises:
        StoreError: SQLite cannot open the file.
    """
    connection = aiosqlite.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        return await connection
    except sqlite3.Error as exc:
        # aiosqlite stops its worker thread after a failed connect without waiting, and
        # that thread then resolves a future on this loop. Joining it first keeps a caller
        # that closes the loop at once (the CLI) from getting "Event loop is closed"
        # tracebacks. NOTE: `_thread` is private to aiosqlite (seen in 0.22).
        thread = getattr(connection, "_thread", None)
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join, CONNECT_STOP_TIMEOUT)
        raise store_error(path, "cannot open", exc) from exc


async def prepare(db: aiosqlite.Connection, path: str) -> int:
    """Check the file, switch it to WAL and apply pending migrations; return the version.

    The checks only read, so a file that fails them is not modified.

    Raises:
        StoreError: the file is not an asyncext store, or its schema is newer than this
            library's.
    """
    # One statement reads both values from one snapshot. Two separate reads could see the
    # tables of another process's migration but the version from before it committed.
    try:
        version, table_count = await fetch_one(
            db,
            "SELECT (SELECT user_version FROM pragma_user_version), "
            "(SELECT count(*) FROM sqlite_master)",
        )
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"the file {path!r} is not an asyncext store (SQLite reports: {exc}); "
            "check the path, or choose a new file name to create a store",
            path=path,
        ) from exc

    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path!r} has schema version {version}, newer than the "
            f"version {SCHEMA_VERSION} this asyncext knows; upgrade asyncext to open it",
            path=path,
        )
    if version == 0 and table_count > 0:
        raise StoreError(
            f"the file {path!r} is an SQLite database of another application "
            "(it has tables but no asyncext schema); choose another path",
            path=path,
        )

    try:
        await db.execute("PRAGMA journal_mode = WAL")
        # Zero the space that replaced and deleted values free, so an old secret does not
        # linger in free pages of the file.
        await db.execute("PRAGMA secure_delete = ON")
        if version < SCHEMA_VERSION:
            version = await _migrate(db, path)
    except sqlite3.Error as exc:
        raise store_error(path, "cannot prepare", exc) from exc
    return int(version)


async def _migrate(db: aiosqlite.Connection, path: str) -> int:
    # BEGIN IMMEDIATE takes the write lock, so two processes opening a new file at once
    # apply each migration exactly once: the second one rereads the version below.
    await db.execute("BEGIN IMMEDIATE")
    try:
        version: int = (await fetch_one(db, "PRAGMA user_version"))[0]
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _split_statements(MIGRATIONS[number - 1]):
                await db.execute(statement)
            logger.info("store %r: applied migration %d", path, number)
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    await db.execute("COMMIT")
    return SCHEMA_VERSION


def store_error(path: str, action: str, exc: BaseException) -> StoreError:
    """Return a `StoreError` for a failed file or SQLite operation, with a hint."""
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        hint = (
            f"another process held the file locked for more than {BUSY_TIMEOUT:g} s; "
            "retry, or find the process that keeps a transaction open"
        )
    elif isinstance(exc, PermissionError) or "readonly" in str(exc):
        hint = "check the permissions of the file and of its folder"
    elif isinstance(exc, FileNotFoundError):
        hint = "create the folder first"
    else:
        hint = "check that the path is an asyncext store and the disk is healthy"
    return StoreError(f"{action} the store {path!r}: {exc}; {hint}", path=path)


async def fetch_one(db: aiosqlite.Connection, sql: str, parameters: Any = ()) -> Any:
    """Return the first row of a query that always returns one."""
    rows = await db.execute_fetchall(sql, parameters)
    return next(iter(rows))


def _split_statements(script: str) -> list[str]:
    """Split a migration into statements, because sqlite3 executes one at a time.

    ``executescript`` would commit the open transaction first, breaking the rule that a
    migration and its version bump commit together. Migrations contain no ``;`` in literals.
    """
    return [statement.strip() for statement in script.split(";") if statement.strip()]
