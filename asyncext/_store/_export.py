"""Export of systems as plain JSON-compatible records, and their import in one transaction.

A record is a dict with a ``format_version`` and every field of a system except the store's
``id``: timestamps as ISO 8601 text, tenants as a sorted list, options as they are. Secrets
(``password``, ``private_key``, ``private_key_password`` and ``options["secrets"]``) are left
out of the record entirely unless they are asked for. They are never masked, so no placeholder
can be imported as a real password.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import aiosqlite
import anyio.to_thread

from .._errors import DuplicateSystem, InvalidSystem, UnknownSystemType
from .._secrets import OPTION_SECRETS, split_option_secrets
from .._system import SECRET_FIELDS, ExternalSystem
from ._rows import (
    COLUMNS,
    SELECT_COLUMNS,
    check_unencrypted_write,
    sealed_values,
    system_from_row,
    utc_now,
)

if TYPE_CHECKING:
    from ._store import SystemStore

logger = logging.getLogger("asyncext.store")

EXPORT_FORMAT_VERSION = 1
"""The version written in every exported record; import rejects newer versions."""

# An exported record has the stored fields except the file's own row id.
RECORD_FIELDS = ("format_version", *(column for column in COLUMNS if column != "id"))
_PLAIN_FIELDS = ("host", "port", "username", "fingerprint", "ignore_fingerprint", "remote_path")

OnConflict = Literal["fail", "skip", "overwrite"]
ON_CONFLICT_CHOICES = ("fail", "skip", "overwrite")


@dataclass(frozen=True)
class ImportReport:
    """Counts of the systems that one `SystemStore.import_systems` call handled."""

    added: int
    """Records stored as new systems."""
    overwritten: int
    """Existing systems replaced by a record (``on_conflict="overwrite"``)."""
    skipped: int
    """Records not imported because a system of that name exists (``on_conflict="skip"``)."""


# --- export --------------------------------------------------------------------------------


async def export_systems(
    store: SystemStore, *, include_secrets: bool, tenant: str | None
) -> list[dict[str, Any]]:
    """Return the systems visible to ``tenant`` as records; see `SystemStore.export_systems`."""
    systems = await store._list(system_type=None, tenant=tenant)
    if include_secrets:
        # Decrypting thousands of secrets is CPU work, so it runs in a worker thread.
        records = await anyio.to_thread.run_sync(
            lambda: [export_record(system, include_secrets=True) for system in systems]
        )
    else:
        records = [export_record(system, include_secrets=False) for system in systems]
    logger.info(
        "exported %d systems from store %r (%s)",
        len(records),
        store.path,
        "with secrets" if include_secrets else "without secrets",
    )
    return records


def export_record(system: ExternalSystem, *, include_secrets: bool) -> dict[str, Any]:
    """Return one system as a JSON-compatible record.

    Raises:
        EncryptionKeyError: ``include_secrets`` is true and a secret cannot be decrypted.
    """
    record: dict[str, Any] = {
        "format_version": EXPORT_FORMAT_VERSION,
        "name": system.name,
        "system_type": system.system_type,
        "host": system.host,
        "port": system.port,
        "username": system.username,
    }
    if include_secrets:
        for secret_field in SECRET_FIELDS:
            secret = getattr(system, secret_field)
            record[secret_field] = None if secret is None else secret.reveal()

    options, secret_options = split_option_secrets(system.options)
    if include_secrets and secret_options:
        options[OPTION_SECRETS] = {name: value.reveal() for name, value in secret_options.items()}
    record.update(
        fingerprint=system.fingerprint,
        ignore_fingerprint=system.ignore_fingerprint,
        remote_path=system.remote_path,
        tenants=sorted(system.tenants),
        options=options,
        revision=system.revision,
        created_at=None if system.created_at is None else system.created_at.isoformat(),
        updated_at=None if system.updated_at is None else system.updated_at.isoformat(),
    )
    return record


# --- import --------------------------------------------------------------------------------


@dataclass
class _Draft:
    """One import record, checked for shape but not yet validated as a system."""

    number: int
    name: str
    fields: dict[str, Any]
    secret_fields: set[str] = field(default_factory=set)
    has_option_secrets: bool = False
    revision: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


async def import_systems(
    store: SystemStore,
    records: Iterable[Mapping[str, Any]],
    *,
    on_conflict: OnConflict,
    tenant: str | None,
) -> ImportReport:
    """Validate every record, then write them all in one transaction; see `SystemStore`."""
    if on_conflict not in ON_CONFLICT_CHOICES:
        raise ValueError(
            f"on_conflict must be one of {', '.join(map(repr, ON_CONFLICT_CHOICES))}, "
            f"not {on_conflict!r}"
        )
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise InvalidSystem(
            f"import into store {store.path!r} rejected: records must be a list of dicts as "
            f"returned by export_systems(), not {type(records).__name__}"
        )
    drafts = _read_drafts(store, builtins.list(records), tenant)
    keyring, prefix = store._keyring, _rejected(store)

    async def write(db: aiosqlite.Connection) -> tuple[ImportReport, builtins.list[Any]]:
        # Existing systems with the names being imported, as records with unrevealed secrets.
        existing = {
            row[1]: system_from_row(row, keyring, None)
            for row in await db.execute_fetchall(f"SELECT {SELECT_COLUMNS} FROM systems")
            if row[1] in drafts
        }

        # Cases per record: new; taken outside the tenant's view; taken (fail, skip,
        # overwrite). Every record is validated before anything is written.
        now = utc_now()
        added: builtins.list[ExternalSystem] = []
        replaced: builtins.list[ExternalSystem] = []
        taken: builtins.list[str] = []
        skipped = 0
        for name, draft in drafts.items():
            current = existing.get(name)
            if current is not None and tenant is not None and not _is_visible(current, tenant):
                if on_conflict == "skip":
                    skipped += 1
                    continue
                raise DuplicateSystem(
                    f"{prefix}: a system named {name!r} exists outside the view of tenant "
                    f"{tenant!r}; rename the record",
                    system=name,
                )
            candidate = _build(prefix, draft, current, now)
            if current is None:
                added.append(candidate)
            elif on_conflict == "fail":
                taken.append(name)
            elif on_conflict == "skip":
                skipped += 1
            else:
                replaced.append(candidate)
        if taken:
            shown = ", ".join(map(repr, taken[:5])) + (", ..." if len(taken) > 5 else "")
            raise DuplicateSystem(
                f"{prefix}: {len(taken)} of the systems already exist ({shown}); pass "
                "on_conflict='skip' to keep them or on_conflict='overwrite' to replace them",
                system=taken[0],
            )

        # Write: one INSERT per new system, one UPDATE of every column per replaced one.
        columns = [column for column in COLUMNS if column != "id"]
        plain: builtins.list[str] = []
        inserted_rows = [sealed_values(system, columns, keyring, plain) for system in added]
        replaced_rows = [
            [*sealed_values(system, columns, keyring, plain), system.name] for system in replaced
        ]
        await check_unencrypted_write(db, keyring, store=store._path, systems=plain)

        placeholders = ", ".join("?" for _ in columns)
        await db.executemany(
            f"INSERT INTO systems ({', '.join(columns)}) VALUES ({placeholders})", inserted_rows
        )
        assignments = ", ".join(f"{column} = ?" for column in columns)
        await db.executemany(f"UPDATE systems SET {assignments} WHERE name = ?", replaced_rows)

        # Pools retire the clients of replaced systems, so they need the rows as stored.
        rows: builtins.list[Any] = []
        if replaced and store._pools is not None:
            names = {system.name for system in replaced}
            everything = await db.execute_fetchall(f"SELECT {SELECT_COLUMNS} FROM systems")
            rows = [row for row in everything if row[1] in names]
        report = ImportReport(added=len(added), overwritten=len(replaced), skipped=skipped)
        return report, rows

    async def retire_clients(result: tuple[ImportReport, builtins.list[Any]]) -> None:
        if store._pools is not None:
            for row in result[1]:
                system = system_from_row(row, store._keyring, store._pools)
                store._pools.system_changed(system.name, system)

    report, _ = await store._write(write, after_commit=retire_clients)
    logger.info(
        "imported into store %r: %d systems added, %d overwritten, %d skipped",
        store.path,
        report.added,
        report.overwritten,
        report.skipped,
    )
    return report


def _rejected(store: SystemStore) -> str:
    return f"import into store {store.path!r} rejected, nothing was written"


def _is_visible(system: ExternalSystem, tenant: str) -> bool:
    return not system.tenants or tenant in system.tenants


def _read_drafts(
    store: SystemStore, records: builtins.list[Any], tenant: str | None
) -> dict[str, _Draft]:
    """Check the shape of every record; return the drafts by name, in record order."""
    prefix = _rejected(store)
    drafts: dict[str, _Draft] = {}
    for number, record in enumerate(records, start=1):
        draft = _read_draft(prefix, number, record, tenant)
        earlier = drafts.get(draft.name)
        if earlier is not None:
            raise InvalidSystem(
                f"{prefix}: records #{earlier.number} and #{number} both name the system "
                f"{draft.name!r}; remove one of them",
                system=draft.name,
            )
        drafts[draft.name] = draft
    return drafts


def _read_draft(prefix: str, number: int, record: Any, tenant: str | None) -> _Draft:
    where = f"{prefix}: record #{number}"
    if not isinstance(record, Mapping):
        raise InvalidSystem(f"{where} is a {type(record).__name__}, not a dict")
    unknown = sorted(str(key) for key in set(record) - set(RECORD_FIELDS))
    if unknown:
        raise InvalidSystem(
            f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; the fields are "
            f"{', '.join(RECORD_FIELDS)}"
        )
    version = record.get("format_version", EXPORT_FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidSystem(f"{where}: format_version {version!r} is not a positive integer")
    if version > EXPORT_FORMAT_VERSION:
        raise InvalidSystem(
            f"{where} has format version {version}, written by a newer asyncext than this one "
            f"(format version {EXPORT_FORMAT_VERSION}); upgrade asyncext to import it"
        )
    name = record.get("name")
    if not isinstance(name, str):
        raise InvalidSystem(f"{where} has no name; every record needs a 'name' string")
    where = f"{where} (system {name!r})"

    fields: dict[str, Any] = {"name": name, "system_type": record.get("system_type")}
    fields.update((key, record[key]) for key in _PLAIN_FIELDS if key in record)
    tenants = record.get("tenants", [])
    if tenant is not None and isinstance(tenants, builtins.list):
        tenants = [*tenants, tenant]
    fields["tenants"] = tenants
    options = record.get("options", {})
    fields["options"] = options
    draft = _Draft(number=number, name=name, fields=fields)

    # A secret missing from the record is unknown, not empty: an overwrite keeps it.
    for secret_field in SECRET_FIELDS:
        if secret_field in record:
            fields[secret_field] = record[secret_field]
            draft.secret_fields.add(secret_field)
    draft.has_option_secrets = isinstance(options, Mapping) and OPTION_SECRETS in options

    revision = record.get("revision")
    if revision is not None and (
        isinstance(revision, bool) or not isinstance(revision, int) or revision < 1
    ):
        raise InvalidSystem(f"{where}: revision {revision!r} is not a positive integer")
    draft.revision = revision
    draft.created_at = _read_timestamp(where, "created_at", record.get("created_at"))
    draft.updated_at = _read_timestamp(where, "updated_at", record.get("updated_at"))
    return draft


def _read_timestamp(where: str, key: str, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidSystem(
            f"{where}: {key} {value!r} is not an ISO 8601 timestamp such as "
            "'2024-05-01T12:00:00.000000+00:00'"
        ) from None
    if moment.tzinfo is None:
        raise InvalidSystem(f"{where}: {key} {value!r} has no UTC offset; add one, e.g. +00:00")
    return moment


def _build(
    prefix: str, draft: _Draft, current: ExternalSystem | None, now: datetime
) -> ExternalSystem:
    """Validate a draft as `add` does and return the record to store.

    Raises:
        InvalidSystem: the record is invalid; the message names its number and the system.
    """
    fields = dict(draft.fields)
    metadata: dict[str, Any]
    if current is None:
        created_at = draft.created_at or now
        metadata = {
            "revision": draft.revision or 1,
            "created_at": created_at,
            "updated_at": draft.updated_at or max(created_at, now),
        }
    else:
        # An overwrite is a change of the existing system, so its history continues.
        metadata = {
            "revision": current.revision + 1,
            "created_at": current.created_at,
            "updated_at": now,
        }
        # Secrets the record leaves out are kept, still encrypted and never decrypted.
        for secret_field in SECRET_FIELDS:
            if secret_field not in draft.secret_fields:
                fields[secret_field] = getattr(current, secret_field)
        kept = current.options.get(OPTION_SECRETS)
        if kept and not draft.has_option_secrets and isinstance(fields["options"], Mapping):
            fields["options"] = {**fields["options"], OPTION_SECRETS: kept}
    try:
        return ExternalSystem(**fields, **metadata)
    except UnknownSystemType as exc:
        # The same class as add() raises, so callers catch one type for both.
        raise exc.about(draft.name, f"{prefix}: record #{draft.number}") from exc
    except InvalidSystem as exc:
        raise InvalidSystem(f"{prefix}: record #{draft.number}: {exc}", system=draft.name) from exc
    except TypeError as exc:
        # The constructor rejects a wrong argument type before validation can name it.
        raise InvalidSystem(
            f"{prefix}: record #{draft.number} (system {draft.name!r}) is invalid: {exc}",
            system=draft.name,
        ) from exc
