"""Key rotation: every stored secret re-encrypted under a new key in one transaction.

Rotation also removes what a replaced secret leaves behind in the file. The store runs with
``PRAGMA secure_delete``, so SQLite zeroes the space a replaced value frees. After a rotation
that changed anything, the file is vacuumed and the write-ahead log is checkpointed and
truncated. Neither old ciphertext nor plaintext from before the store had a key then remains
in the .db or -wal file.
"""

from __future__ import annotations

import builtins
import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiosqlite
import anyio.to_thread

from .._crypto import Keyring, SealedText
from .._errors import EncryptionKeyError
from .._secrets import OPTION_SECRETS
from .._tasks import run_shielded

if TYPE_CHECKING:
    from ._store import SystemStore

logger = logging.getLogger("asyncext.store")

_FIELD_LABELS = ("password", "private key", "private key passphrase")


@dataclass(frozen=True)
class RotationReport:
    """Counts of the secrets that one `SystemStore.rotate_key` call handled.

    A secret is one of the fields ``password``, ``private_key`` and ``private_key_password``
    of one system, or one entry of its ``options["secrets"]``.
    """

    re_encrypted: int
    """Secrets written again under the new key: those encrypted with an older key and those
    stored unencrypted because the store had no key."""
    skipped: int
    """Secrets already encrypted with the new key, left as they were."""
    empty: int
    """Secret fields (``password``, ``private_key``, ``private_key_password``) that hold no
    value, summed over all systems. Together with the two other counts they add up to three
    per system plus the number of secret options."""


async def rotate_key(store: SystemStore, new_key: str) -> RotationReport:
    """Re-encrypt every secret of ``store`` with ``new_key``; see `SystemStore.rotate_key`."""
    keyring = store._keyring.with_new_key(new_key)

    async def rotate(db: aiosqlite.Connection) -> RotationReport:
        rows = await db.execute_fetchall(
            "SELECT id, name, password, private_key, private_key_password, options "
            "FROM systems ORDER BY name"
        )
        # Decryption is CPU work, so thousands of secrets run in a worker thread.
        updates, report = await anyio.to_thread.run_sync(plan_rotation, rows, keyring)
        if updates:
            await db.executemany(
                "UPDATE systems SET password = ?, private_key = ?, private_key_password = ?, "
                "options = ? WHERE id = ?",
                updates,
            )
        return report

    async def rotate_and_switch() -> RotationReport:
        report = await store._write(rotate)
        # Only a committed rotation switches keys, so after a failure the store keeps
        # writing with its old key and every row stays readable with the old keys alone.
        store._keyring = keyring
        return report

    try:
        report = await run_shielded(rotate_and_switch)
    except EncryptionKeyError as exc:
        raise EncryptionKeyError(
            f"cannot rotate the key of store {store.path!r}, nothing was changed: {exc}",
            system=exc.system,
        ) from None

    logger.info(
        "rotated the key of store %r: %d secrets re-encrypted, %d already current, "
        "%d empty secret fields",
        store.path,
        report.re_encrypted,
        report.skipped,
        report.empty,
    )
    if report.re_encrypted:
        await purge_free_space(store)
    return report


def plan_rotation(
    rows: Iterable[Any], keyring: Keyring
) -> tuple[list[tuple[Any, ...]], RotationReport]:
    """Return the row updates that put every secret under ``keyring``'s first key.

    Raises:
        EncryptionKeyError: a secret cannot be decrypted with any key of ``keyring``.
    """
    updates: list[tuple[Any, ...]] = []
    re_encrypted = skipped = empty = 0
    for row_id, name, *stored_fields, options_text in rows:
        changed = False

        # The three secret columns.
        new_fields: list[str | None] = []
        for label, stored in zip(_FIELD_LABELS, stored_fields, strict=True):
            if stored is None:
                empty += 1
                new_fields.append(None)
            elif keyring.is_current(stored):
                skipped += 1
                new_fields.append(SealedText(stored))
            else:
                new_fields.append(_reseal(keyring, stored, system=name, field=label))
                re_encrypted += 1
                changed = True

        # Secret options, inside the options JSON.
        options: dict[str, Any] = json.loads(options_text)
        secrets = options.get(OPTION_SECRETS)
        if isinstance(secrets, dict):
            for option, stored in secrets.items():
                if keyring.is_current(stored):
                    skipped += 1
                    continue
                label = f"secret option {option!r}"
                secrets[option] = _reseal(keyring, stored, system=name, field=label)
                re_encrypted += 1
                changed = True
            options_text = SealedText(json.dumps(options, ensure_ascii=False, allow_nan=False))

        if changed:
            updates.append((*new_fields, options_text, row_id))
    return updates, RotationReport(re_encrypted=re_encrypted, skipped=skipped, empty=empty)


def _reseal(keyring: Keyring, stored: str, *, system: str, field: str) -> str:
    return keyring.seal(keyring.decrypt(stored, system=system, field=field), system=system)


async def purge_free_space(store: SystemStore) -> None:
    """Vacuum the file and truncate the write-ahead log, so replaced secrets leave no trace.

    The data is already committed, so a failure here is logged, not raised: the store works,
    only old bytes may remain until the next successful vacuum.
    """
    db = store._require_open()

    async def purge() -> builtins.list[Any]:
        async with store._lock:
            await db.execute("VACUUM")
            return builtins.list(await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)"))

    try:
        busy = (await run_shielded(purge))[0][0]
    except sqlite3.Error as exc:
        logger.warning(
            "store %r: could not vacuum after rotating the key (%s), so replaced secrets may "
            "remain in free pages; run 'sqlite3 FILE VACUUM' when no other process uses it",
            store.path,
            exc,
        )
        return
    if busy:
        logger.warning(
            "store %r: another connection was reading during the checkpoint, so the -wal file "
            "may keep replaced secrets until the next checkpoint; close the other connections",
            store.path,
        )
