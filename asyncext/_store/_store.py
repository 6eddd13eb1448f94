"""`SystemStore`: the registry of external systems in one SQLite file."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import gc
import json
import logging
import os
import sqlite3
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import aiosqlite
import anyio.to_thread

from .._crypto import Keyring
from .._errors import DuplicateSystem, InvalidSystem, StoreError, SystemNotFound
from .._system import ExternalSystem
from .._tasks import run_shielded
from ._export import ImportReport, OnConflict, export_systems, import_systems
from ._opening import connect, create_file, fetch_one, prepare, store_error
from ._rotation import RotationReport, rotate_key
from ._rows import (
    COLUMNS,
    EDITABLE_FIELDS,
    SELECT_COLUMNS,
    check_unencrypted_write,
    sealed_values,
    system_from_row,
    utc_now,
)

if TYPE_CHECKING:
    from .._pool import PoolOptions, PoolStats
    from ._pools import SystemPools
    from ._tenants import TenantView

logger = logging.getLogger("asyncext.store")

T = TypeVar("T")


class SystemStore:
    """The registry of external systems, kept in one SQLite file.

    Use it as ``async with SystemStore(path) as store:``, or call `open` and `close`. Several
    processes may share one file: it runs in WAL mode, and writes wait up to
    `BUSY_TIMEOUT` seconds for each other.

    Args:
        path: the SQLite file; created with mode 0600 when missing.
        key: a Fernet key, or a list of keys (the first encrypts, all decrypt). None reads
            ``ASYNCEXT_KEY`` from the environment.
        pool: `PoolOptions` to give each system its own client pool, or None for a fresh
            client per ``system.client()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: str | Sequence[str] | None = None,
        pool: PoolOptions | None = None,
    ) -> None:
        self._path = os.fspath(path)
        self._keyring = Keyring.from_setting(key, owner=self._path)
        self._pool_options = pool
        self._pools: SystemPools | None = None
        self._db: aiosqlite.Connection | None = None

        # One connection serves every task, so statements of concurrent operations must not
        # interleave inside another operation's transaction.
        self._lock = asyncio.Lock()

    @property
    def path(self) -> str:
        return self._path

    def __repr__(self) -> str:
        state = "open" if self._db is not None else "closed"
        pooling = "pooled" if self._pool_options is not None else "unpooled"
        return f"<SystemStore {self._path!r} {state} {pooling}>"

    # --- opening and closing -------------------------------------------------------------

    async def __aenter__(self) -> SystemStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the file, creating it with mode 0600 and migrating its schema as needed.

        Raises:
            StoreError: the file cannot be opened, is not an asyncext store, or was written
                by a newer asyncext. The file is left untouched.
        """
        if self._db is not None:
            raise StoreError(f"the store {self._path!r} is already open", path=self._path)

        await anyio.to_thread.run_sync(create_file, self._path)
        db = await connect(self._path)

        try:
            version = await prepare(db, self._path)
        except BaseException:
            await db.close()
            raise

        self._db = db
        if self._pool_options is not None:
            from ._pools import SystemPools

            self._pools = SystemPools(self._pool_options)
        logger.info("opened store %r (schema version %d)", self._path, version)

    async def close(self) -> None:
        """Close every pool of this store, then the file. Closing twice does nothing."""
        db, self._db = self._db, None
        if db is None:
            return

        # The closed pools stay referenced so that pool_stats() still reports their final
        # counters; open() builds new ones.
        pools = self._pools

        try:
            if pools is not None:
                await pools.close()
        finally:
            await db.close()
            logger.info("closed store %r", self._path)

    def __del__(self) -> None:
        if getattr(self, "_db", None) is not None:
            warnings.warn(
                f"SystemStore {self._path!r} was not closed; use 'async with "
                "SystemStore(...)' or call 'await store.close()'",
                ResourceWarning,
                source=self,
                stacklevel=1,
            )

    # --- reading -------------------------------------------------------------------------

    async def get(self, name: str) -> ExternalSystem:
        """Return the system called ``name``.

        Raises:
            SystemNotFound: no system has that name.
        """
        return await self._get(name, tenant=None)

    async def list(self, *, system_type: str | None = None) -> builtins.list[ExternalSystem]:
        """Return every system, ordered by name, optionally only those of ``system_type``.

        Secrets are not decrypted, so listing works with a missing or wrong key.
        """
        return await self._list(system_type=system_type, tenant=None)

    async def _get(self, name: str, *, tenant: str | None) -> ExternalSystem:
        rows = await self._read(f"SELECT {SELECT_COLUMNS} FROM systems WHERE name = ?", (name,))
        if not rows or not _visible(rows[0], tenant):
            raise self._not_found(name, tenant)
        return system_from_row(rows[0], self._keyring, self._pools)

    async def _list(
        self, *, system_type: str | None, tenant: str | None
    ) -> builtins.list[ExternalSystem]:
        if system_type is None:
            rows = await self._read(f"SELECT {SELECT_COLUMNS} FROM systems ORDER BY name", ())
        else:
            rows = await self._read(
                f"SELECT {SELECT_COLUMNS} FROM systems WHERE system_type = ? ORDER BY name",
                (system_type,),
            )
        keyring, pools = self._keyring, self._pools
        with _collection_paused():
            if tenant is None:
                return [system_from_row(row, keyring, pools) for row in rows]
            return [system_from_row(row, keyring, pools) for row in rows if _visible(row, tenant)]

    # --- writing -------------------------------------------------------------------------

    async def add(self, name: str, system_type: str, **fields: Any) -> ExternalSystem:
        """Validate and store a new system, and return it as stored.

        Args:
            name: unique name, stored exactly as given.
            system_type: an installed type such as ``"sftp"``, ``"ssh"`` or ``"local"``.
            **fields: any other field of `ExternalSystem` except ``id``, ``revision`` and the
                timestamps. Secrets may be given as plain strings.

        Raises:
            DuplicateSystem: a system with that name exists.
            InvalidSystem: a field is invalid; nothing is stored.
            UnknownSystemType: no installed adapter handles ``system_type``.
        """
        return await self._add(name, system_type, fields, tenant=None)

    async def _add(
        self, name: str, system_type: str, fields: Mapping[str, Any], *, tenant: str | None
    ) -> ExternalSystem:
        _check_field_names(name, fields)
        fields = dict(fields)
        if tenant is not None:
            fields["tenants"] = frozenset(fields.get("tenants") or ()) | {tenant}

        now = utc_now()
        candidate = ExternalSystem(
            name=name,
            system_type=system_type,
            revision=1,
            created_at=now,
            updated_at=now,
            **fields,
        )
        columns = [column for column in COLUMNS if column != "id"]
        plain: builtins.list[str] = []
        values = sealed_values(candidate, columns, self._keyring, plain)

        async def insert(db: aiosqlite.Connection) -> Any:
            if await db.execute_fetchall("SELECT 1 FROM systems WHERE name = ?", (name,)):
                raise DuplicateSystem(
                    f"a system named {name!r} already exists in store {self._path!r}; "
                    "choose another name, or change it with update()",
                    system=name,
                )
            await check_unencrypted_write(db, self._keyring, store=self._path, systems=plain)
            placeholders = ", ".join("?" for _ in columns)
            await db.execute(
                f"INSERT INTO systems ({', '.join(columns)}) VALUES ({placeholders})", values
            )
            return await fetch_one(
                db, f"SELECT {SELECT_COLUMNS} FROM systems WHERE name = ?", (name,)
            )

        row = await self._write(insert)
        logger.info("added system %r (type %s)", name, system_type)
        return system_from_row(row, self._keyring, self._pools)

    async def update(self, name: str, /, **changes: Any) -> ExternalSystem:
        """Change the given fields of a system and return it as stored.

        Only the fields passed change; ``revision`` goes up by one and ``updated_at`` is set.
        Pooled clients of the system are retired: idle ones now, busy ones when they come
        back. A new ``name`` renames the system, which is why the current name is
        positional-only: ``update("old", name="new")``.

        Raises:
            SystemNotFound: no system has that name.
            DuplicateSystem: a new ``name`` is taken.
            InvalidSystem: the changed record is invalid; nothing is stored.
        """
        return await self._update(name, changes, tenant=None)

    async def _update(
        self, name: str, changes: Mapping[str, Any], *, tenant: str | None
    ) -> ExternalSystem:
        _check_field_names(name, changes)
        changes = dict(changes)

        async def rewrite(db: aiosqlite.Connection) -> tuple[Any, ExternalSystem]:
            rows = builtins.list(
                await db.execute_fetchall(
                    f"SELECT {SELECT_COLUMNS} FROM systems WHERE name = ?", (name,)
                )
            )
            if not rows or not _visible(rows[0], tenant):
                raise self._not_found(name, tenant)
            current = system_from_row(rows[0], self._keyring, None)

            # replace() runs the constructor, so the whole changed record is validated.
            now = utc_now()
            changed = dataclasses.replace(
                current, revision=current.revision + 1, updated_at=now, **changes
            )
            new_name = changed.name
            if new_name != name and await db.execute_fetchall(
                "SELECT 1 FROM systems WHERE name = ?", (new_name,)
            ):
                raise DuplicateSystem(
                    f"cannot rename system {name!r}: a system named {new_name!r} already "
                    "exists; choose another name",
                    system=new_name,
                )

            # Only the columns passed are written: untouched secrets keep their stored
            # ciphertext and are never decrypted.
            columns = [*changes, "revision", "updated_at"]
            assignments = ", ".join(f"{column} = ?" for column in columns)
            plain: builtins.list[str] = []
            values = sealed_values(changed, columns, self._keyring, plain)
            await check_unencrypted_write(db, self._keyring, store=self._path, systems=plain)
            await db.execute(
                f"UPDATE systems SET {assignments} WHERE id = ?", [*values, current.id]
            )
            row = await fetch_one(
                db, f"SELECT {SELECT_COLUMNS} FROM systems WHERE id = ?", (current.id,)
            )
            return row, current

        async def retire_clients(result: tuple[Any, ExternalSystem]) -> None:
            row, previous = result
            if self._pools is not None:
                system = system_from_row(row, self._keyring, self._pools)
                self._pools.system_changed(previous.name, system)

        row, _ = await self._write(rewrite, after_commit=retire_clients)
        system = system_from_row(row, self._keyring, self._pools)
        logger.info(
            "updated system %r to revision %d (changed: %s)",
            system.name,
            system.revision,
            ", ".join(sorted(changes)) or "nothing",
        )
        return system

    async def remove(self, name: str) -> None:
        """Delete a system and close its pool.

        Raises:
            SystemNotFound: no system has that name.
        """
        await self._remove(name, tenant=None)

    async def _remove(self, name: str, *, tenant: str | None) -> None:
        async def delete(db: aiosqlite.Connection) -> ExternalSystem:
            rows = builtins.list(
                await db.execute_fetchall(
                    f"SELECT {SELECT_COLUMNS} FROM systems WHERE name = ?", (name,)
                )
            )
            if not rows or not _visible(rows[0], tenant):
                raise self._not_found(name, tenant)
            await db.execute("DELETE FROM systems WHERE name = ?", (name,))
            return system_from_row(rows[0], self._keyring, None)

        async def close_pool(removed: ExternalSystem) -> None:
            if self._pools is not None:
                await self._pools.system_removed(removed)

        await self._write(delete, after_commit=close_pool)
        logger.info("removed system %r", name)

    # --- secrets: rotation, export and import --------------------------------------------

    async def rotate_key(self, new_key: str) -> RotationReport:
        """Re-encrypt every stored secret with ``new_key`` in one transaction.

        Afterwards the store encrypts with ``new_key`` and still decrypts with its old keys;
        open it with ``key=new_key`` alone once every process has switched. Secrets stored
        unencrypted are encrypted too, and the file is vacuumed so that neither old
        ciphertext nor old plaintext remains in it. Running it again re-encrypts nothing.
        A failure rolls everything back, leaving every secret readable with the old keys.

        Raises:
            EncryptionKeyError: ``new_key`` is not a valid Fernet key, or a stored secret
                cannot be decrypted with any key of the store; nothing is changed.
        """
        return await rotate_key(self, new_key)

    async def export_systems(
        self, *, include_secrets: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """Return every system as a JSON-compatible dict, ordered by name.

        Each record has a ``format_version`` and every field but ``id``, with timestamps as
        ISO 8601 text. Secrets (the three secret fields and ``options["secrets"]``) are
        left out unless ``include_secrets`` is true; they are never masked.

        Raises:
            EncryptionKeyError: ``include_secrets`` is true and a secret cannot be decrypted.
        """
        return await export_systems(self, include_secrets=include_secrets, tenant=None)

    async def import_systems(
        self, records: Iterable[Mapping[str, Any]], *, on_conflict: OnConflict = "fail"
    ) -> ImportReport:
        """Validate records from `export_systems` like `add` does, then store them together.

        All records are written in one transaction, so an invalid record or a conflict
        rejects the whole import and writes nothing. A record keeps its revision and
        timestamps when it is added. An overwrite replaces every field the record has, counts
        as a change (revision + 1) and keeps each secret the record leaves out.

        Args:
            records: dicts as returned by `export_systems`; ``format_version`` may be left
                out, and so may any field but ``name`` and ``system_type``.
            on_conflict: what to do when a system of the same name exists: ``"fail"``
                raises `DuplicateSystem`, ``"skip"`` keeps it, ``"overwrite"`` replaces it.

        Raises:
            InvalidSystem: a record is malformed or invalid; the message names its number.
            DuplicateSystem: ``on_conflict="fail"`` and some of the systems exist.
            ValueError: ``on_conflict`` is not one of the three choices.
        """
        return await import_systems(self, records, on_conflict=on_conflict, tenant=None)

    # --- pools ---------------------------------------------------------------------------

    def pool_stats(self, name: str) -> PoolStats | None:
        """Return the statistics of the pool serving system ``name``, or None if it has none.

        A system gets its pool on its first pooled ``client()``, and a store opened without
        ``pool=`` never has one. Renaming a system moves its pool to the new name. After
        `close`, the final counters of the closed pools stay readable until the next `open`.
        """
        if self._pools is None:
            return None
        pool = self._pools.pool_for(name)
        return None if pool is None else pool.stats()

    # --- tenants -------------------------------------------------------------------------

    def for_tenant(self, tenant: str) -> TenantView:
        """Return a view that sees only systems shared by all tenants or assigned to ``tenant``.

        Systems added through the view are assigned to ``tenant``. A system outside the view
        reads as `SystemNotFound`. The view filters reads and writes of well-behaved code; it
        is not a security boundary between tenants that share one process.
        """
        from ._tenants import TenantView

        if not isinstance(tenant, str) or not tenant.strip():
            raise InvalidSystem(f"tenant {tenant!r} is invalid; tenants are non-empty strings")
        return TenantView(self, tenant)

    # --- plumbing ------------------------------------------------------------------------

    def _require_open(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(
                f"the store {self._path!r} is not open; use 'async with SystemStore(...)' "
                "or call 'await store.open()' first",
                path=self._path,
            )
        return self._db

    async def _read(self, sql: str, parameters: Sequence[Any]) -> builtins.list[Any]:
        db = self._require_open()
        try:
            async with self._lock:
                return builtins.list(await db.execute_fetchall(sql, parameters))
        except sqlite3.Error as exc:
            raise store_error(self._path, "cannot read", exc) from exc

    async def _write(
        self,
        operation: Callable[[aiosqlite.Connection], Awaitable[T]],
        *,
        after_commit: Callable[[T], Awaitable[None]] | None = None,
    ) -> T:
        """Run ``operation`` in one write transaction, then ``after_commit`` on its result.

        Both run shielded from cancellation, so a cancelled caller leaves either the old or
        the new record, never a partial one, and a committed change always reaches the
        pools. BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that
        reads first can fail at once with "database is locked" when another process commits
        in between, without waiting for the busy timeout.
        """
        db = self._require_open()

        async def transaction() -> T:
            async with self._lock:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    result = await operation(db)
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            if after_commit is not None:
                await after_commit(result)
            return result

        try:
            return await run_shielded(transaction)
        except sqlite3.Error as exc:
            raise store_error(self._path, "cannot write to", exc) from exc

    def _not_found(self, name: str, tenant: str | None) -> SystemNotFound:
        where = f"store {self._path!r}"
        if tenant is not None:
            where = f"the view of tenant {tenant!r} on {where}"
        return SystemNotFound(
            f"system {name!r} not found in {where}; check the name against the store's list()",
            system=name,
        )


@contextlib.contextmanager
def _collection_paused() -> Iterator[None]:
    """Pause automatic garbage collection while a batch of records is built.

    Each record allocates several container objects, so building thousands of them triggers
    collection passes that scan every object of the process, none of which can be garbage at
    that point. The block contains no await, so no other task runs while collection is off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _check_field_names(name: str, fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - EDITABLE_FIELDS)
    if unknown:
        raise InvalidSystem(
            f"system {name!r}: unknown or read-only field(s) {', '.join(map(repr, unknown))}; "
            f"valid fields are {', '.join(sorted(EDITABLE_FIELDS))}",
            system=name,
        )


_TENANTS_INDEX = COLUMNS.index("tenants")


def _visible(row: Any, tenant: str | None) -> bool:
    return tenant is None or _visible_tenants(row[_TENANTS_INDEX], tenant)


def _visible_tenants(tenants_json: str, tenant: str | None) -> bool:
    if tenant is None or tenants_json == "[]":
        return True
    return tenant in json.loads(tenants_json)
