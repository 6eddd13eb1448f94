"""How systems and reports are shown: aligned tables for people, JSON for scripts.

Both forms hide every secret, secret options included, unless the caller asks for secrets
explicitly. In the table form a set secret reads as ``**********``. In JSON it is left out,
so that no script can mistake a mask for a value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .._secrets import MASK, OPTION_SECRETS, split_option_secrets
from .._store._export import export_record
from .._system import (
    METADATA_FIELDS,
    SECRET_FIELDS,
    SYSTEM_FIELDS,
    ConnectionReport,
    ExternalSystem,
)

EMPTY = "-"
"""Shown in tables for a field that is not set."""

# The fields the user sets come first, then those the store sets.
SHOWN_FIELDS = (
    *(name for name in SYSTEM_FIELDS if name not in METADATA_FIELDS),
    "revision",
    "id",
    "created_at",
    "updated_at",
)
"""Fields in the order ``show`` prints them."""


def system_to_json(system: ExternalSystem, *, include_secrets: bool = False) -> dict[str, Any]:
    """Return the system as its export record plus its ``id``; see `SystemStore.export_systems`.

    Raises:
        EncryptionKeyError: ``include_secrets`` is true and a secret cannot be decrypted.
    """
    return {**export_record(system, include_secrets=include_secrets), "id": system.id}


def report_to_json(report: ConnectionReport) -> dict[str, Any]:
    """Return a connection report as a JSON-ready dict with the elapsed time in milliseconds."""
    return {
        "system": report.system,
        "ok": report.ok,
        "elapsed_ms": round(report.elapsed * 1000, 1),
        "detail": report.detail,
    }


def format_address(host: str | None, port: int | None) -> str:
    """Return ``host:port`` for a table cell, with an IPv6 host in brackets."""
    if not host:
        return EMPTY
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return the lines of a table whose columns are as wide as their widest cell.

    The last column is not padded, so lines carry no trailing spaces.
    """
    widths = [len(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return lines


def system_rows(systems: Sequence[ExternalSystem]) -> list[list[str]]:
    """Return the ``list`` table rows: name, type, address, username, tenants, revision."""
    return [
        [
            system.name,
            system.system_type,
            format_address(system.host, system.port),
            system.username or EMPTY,
            ",".join(sorted(system.tenants)) or EMPTY,
            str(system.revision),
        ]
        for system in systems
    ]


LIST_HEADERS = ("NAME", "TYPE", "HOST:PORT", "USERNAME", "TENANTS", "REVISION")


def format_system(system: ExternalSystem, *, show_secrets: bool = False) -> list[str]:
    """Return ``show``'s lines: one ``field  value`` line per field, values aligned.

    A multi-line value such as a revealed private key continues on the following lines,
    indented to the value column.

    Raises:
        EncryptionKeyError: ``show_secrets`` is true and a secret cannot be decrypted.
    """
    width = max(len(name) for name in SHOWN_FIELDS)
    lines = []
    for name in SHOWN_FIELDS:
        text = _field_text(system, name, show_secrets=show_secrets)
        first, *rest = text.rstrip("\n").split("\n")
        lines.append(f"{name.ljust(width)}  {first}")
        lines.extend(" " * (width + 2) + line for line in rest)
    return lines


def _field_text(system: ExternalSystem, name: str, *, show_secrets: bool) -> str:
    value = getattr(system, name)
    if value is None:
        return EMPTY
    if name in SECRET_FIELDS:
        return value.reveal() if show_secrets else MASK
    if name == "ignore_fingerprint":
        return "yes" if value else "no"
    if name == "tenants":
        return ", ".join(sorted(value)) or EMPTY
    if name == "options":
        options = _shown_options(value, show_secrets=show_secrets)
        return json.dumps(options, ensure_ascii=False, sort_keys=True) if options else EMPTY
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def _shown_options(options: dict[str, Any], *, show_secrets: bool) -> dict[str, Any]:
    """Return ``options`` with its secret options revealed or masked.

    Raises:
        EncryptionKeyError: ``show_secrets`` is true and a secret cannot be decrypted.
    """
    shown, secrets = split_option_secrets(options)
    if secrets:
        shown[OPTION_SECRETS] = {
            name: secret.reveal() if show_secrets else MASK for name, secret in secrets.items()
        }
    return shown


def format_report(report: ConnectionReport) -> list[str]:
    """Return ``test``'s lines: the system, ok or failed, the time in ms and the detail."""
    return format_table(
        ("SYSTEM", "RESULT", "ELAPSED", "DETAIL"),
        [
            [
                report.system,
                "ok" if report.ok else "failed",
                f"{report.elapsed * 1000:.0f} ms",
                report.detail,
            ]
        ],
    )
