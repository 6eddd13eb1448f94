"""Conversion between `ExternalSystem` records and rows of the ``systems`` table."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import aiosqlite

from .._crypto import ENCRYPTED_PREFIX, Keyring, SealedText
from .._errors import EncryptionKeyError
from .._secrets import OPTION_SECRETS
from .._system import METADATA_FIELDS, SECRET_FIELDS, SYSTEM_FIELDS, ClientSource, ExternalSystem

COLUMNS = SYSTEM_FIELDS
"""The columns of the ``systems`` table, one per field and in the same order."""
SELECT_COLUMNS = ", ".join(COLUMNS)

# Fields that add() and update() accept as keyword arguments. The rest is kept by the store.
EDITABLE_FIELDS = frozenset(COLUMNS) - set(METADATA_FIELDS)

_NO_TENANTS: frozenset[str] = frozenset()

# The store writes JSON with no surrounding whitespace, so the options column goes straight to
# the scanner that json.loads calls after skipping whitespace. On Python 3.11 that takes about
# a third of the time of json.loads for short objects, and 200 ns less than raw_decode.
# typeshed leaves out scan_once, which JSONDecoder sets in __init__.
_scan_json: Callable[[str, int], tuple[Any, int]]
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_parse_timestamp = datetime.fromisoformat
_new_object = object.__new__
# The dataclass is frozen, so its own __setattr__ refuses every assignment.
_set_attribute = object.__setattr__


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def system_from_row(row: Any, keyring: Keyring, source: ClientSource | None) -> ExternalSystem:
    """Build a record from a row selected with `SELECT_COLUMNS`.

    Rows were validated when they were written, so the constructor (and its validation,
    which needs the adapter installed) is skipped: listing must work even when an adapter
    package has since been uninstalled, and must stay fast for thousands of rows. Secrets
    stay encrypted until revealed.
    """
    name = row[1]
    # A record never updated has equal timestamps, and a datetime is immutable, so one
    # parsed object can serve both fields.
    created_at = _parse_timestamp(row[15])
    system = _new_object(ExternalSystem)
    _set_attribute(
        system,
        "__dict__",
        {
            "id": row[0],
            "name": name,
            "system_type": row[2],
            "host": row[3],
            "port": row[4],
            "username": row[5],
            "password": (
                None if row[6] is None else keyring.unseal(row[6], system=name, field="password")
            ),
            "private_key": (
                None if row[7] is None else keyring.unseal(row[7], system=name, field="private key")
            ),
            "private_key_password": (
                None
                if row[8] is None
                else keyring.unseal(row[8], system=name, field="private key passphrase")
            ),
            "fingerprint": row[9],
            "ignore_fingerprint": row[10] == 1,
            "remote_path": row[11],
            "tenants": _NO_TENANTS if row[12] == "[]" else _parse_tenants(row[12]),
            "options": {} if row[13] == "{}" else _read_options(row[13], keyring, name),
            "revision": row[14],
            "created_at": created_at,
            "updated_at": created_at if row[16] == row[15] else _parse_timestamp(row[16]),
            "_client_source": source,
        },
    )
    return system


def column_value(system: ExternalSystem, column: str, keyring: Keyring) -> Any:
    """Return the value stored in ``column`` for ``system``; secrets are sealed."""
    value = getattr(system, column)
    if column in SECRET_FIELDS:
        return None if value is None else keyring.seal_secret(value, system=system.name)
    if column == "tenants":
        return json.dumps(sorted(value), ensure_ascii=False)
    if column == "options":
        sealed = keyring.seal_options(value, system=system.name)
        text = json.dumps(sealed, ensure_ascii=False, allow_nan=False)
        return SealedText(text) if OPTION_SECRETS in sealed else text
    if column == "ignore_fingerprint":
        return int(value)
    if column in ("created_at", "updated_at"):
        return format_timestamp(value)
    return value


@functools.lru_cache(maxsize=1024)
def _parse_tenants(text: str) -> frozenset[str]:
    """Decode a tenants column into a frozenset, shared by every record with the same text.

    Sharing is safe because a frozenset is immutable, and many systems have the same tenants.
    """
    return frozenset(json.loads(text))


def _read_options(text: str, keyring: Keyring, name: str) -> dict[str, Any]:
    """Decode an options column; secret options become `Secret` objects, still encrypted."""
    try:
        options: dict[str, Any] = _scan_json(text, 0)[0]
    except StopIteration as exc:
        # The scanner reports a missing value this way; raise what json.loads raises.
        raise json.JSONDecodeError("Expecting value", text, exc.value) from None
    if OPTION_SECRETS in options:
        keyring.unseal_options(options, system=name)
    return options


HAS_ENCRYPTED_SECRET = (
    f"SELECT 1 FROM systems WHERE password GLOB '{ENCRYPTED_PREFIX}*' "
    f"OR private_key GLOB '{ENCRYPTED_PREFIX}*' "
    f"OR private_key_password GLOB '{ENCRYPTED_PREFIX}*' "
    f"OR options GLOB '*\"{ENCRYPTED_PREFIX}*' LIMIT 1"
)
"""Finds a row with an encrypted secret, secret options included."""


async def check_unencrypted_write(
    db: aiosqlite.Connection, keyring: Keyring, *, store: str, systems: Sequence[str]
) -> None:
    """Reject secrets sealed without a key when the file already contains encrypted ones.

    Such a store was most likely opened without its key by mistake, and writing would leave
    some secrets readable in the file. Otherwise a keyless write is allowed and logged once.

    Args:
        systems: the names of the systems whose secrets this write stores unencrypted.

    Raises:
        EncryptionKeyError: the write would store a secret unencrypted next to encrypted ones.
    """
    if not systems:
        return
    if await db.execute_fetchall(HAS_ENCRYPTED_SECRET):
        raise EncryptionKeyError(
            f"store {store!r} contains encrypted secrets but was opened without a key, so the "
            f"secrets of system {systems[0]!r} would be stored unencrypted; open the store "
            "with its key (ASYNCEXT_KEY or SystemStore(key=...)) and write them again"
        )
    keyring.warn_unencrypted(systems[0])


def sealed_values(
    system: ExternalSystem, columns: Sequence[str], keyring: Keyring, plain: list[str]
) -> list[Any]:
    """Return the stored values of ``columns``, adding the name to ``plain`` when a secret
    of ``system`` is stored unencrypted."""
    plain_before = keyring.plain_sealed
    values = [column_value(system, column, keyring) for column in columns]
    if keyring.plain_sealed != plain_before:
        plain.append(system.name)
    return values
