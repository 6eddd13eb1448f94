"""The store's SQLite schema and its ordered migrations.

``PRAGMA user_version`` contains the number of migrations applied. Each migration runs in the
same transaction that bumps the version, so a file is never left half-migrated.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: systems, with tenants and options as JSON text so that listing needs no join.
    """
    CREATE TABLE systems (
        id                   INTEGER PRIMARY KEY,
        name                 TEXT    NOT NULL UNIQUE,
        system_type          TEXT    NOT NULL,
        host                 TEXT,
        port                 INTEGER,
        username             TEXT,
        password             TEXT,
        private_key          TEXT,
        private_key_password TEXT,
        fingerprint          TEXT,
        ignore_fingerprint   INTEGER NOT NULL DEFAULT 0,
        remote_path          TEXT,
        tenants              TEXT    NOT NULL DEFAULT '[]',
        options              TEXT    NOT NULL DEFAULT '{}',
        revision             INTEGER NOT NULL DEFAULT 1,
        created_at           TEXT    NOT NULL,
        updated_at           TEXT    NOT NULL
    );
    CREATE INDEX systems_by_type ON systems (system_type, name);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
