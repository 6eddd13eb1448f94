"""Commands that move records and keys in bulk: ``export``, ``import`` and ``rotate-key``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .._crypto import KEY_ENVIRONMENT_VARIABLE, Keyring
from .._errors import DuplicateSystem, EncryptionKeyError, InvalidSystem, UnknownSystemType
from .._store._export import ImportReport
from .._store._rotation import RotationReport
from .._store._store import SystemStore
from ._context import Context
from ._errors import CommandError, UsageError, command_error_from
from ._input import MAX_INPUT_BYTES, read_secret_from_stdin

MAX_IMPORT_BYTES = 256 * 1024 * 1024
"""Largest import file read, in bytes; a record takes well under 10 kB."""


def export(args: argparse.Namespace, context: Context) -> int:
    """Write every system as a JSON list, to standard output or to ``--output``."""

    async def read(store: SystemStore) -> list[dict[str, Any]]:
        return await store.export_systems(include_secrets=args.include_secrets)

    records = context.run(read)
    text = json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        context.stdout.write(text)
        return 0

    _write_file(args.output, text, private=args.include_secrets)
    secrets = "with secrets" if args.include_secrets else "without secrets"
    context.stderr.write(
        f"Exported {len(records)} system{_plural(len(records))} {secrets} to {args.output!r}.\n"
    )
    return 0


def _write_file(path: str, text: str, *, private: bool) -> None:
    """Write ``text`` to ``path``; a ``private`` file gets mode 0600 before any byte is written.

    Raises:
        CommandError: the file cannot be written.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        descriptor = os.open(path, flags, 0o600 if private else 0o666)
        with open(descriptor, "w", encoding="utf-8") as file:
            # An existing file keeps its mode on open, so tighten it before writing secrets.
            if private:
                os.fchmod(file.fileno(), 0o600)
            file.write(text)
    except OSError as exc:
        raise CommandError(
            f"cannot write the export file {path!r}: {exc.strerror or exc}",
            hint="check that the folder exists and is writable",
        ) from None


def import_systems(args: argparse.Namespace, context: Context) -> int:
    """Add the systems of an export file, handling existing names as ``--on-conflict`` selects."""
    records = _read_records(args.file, context)

    async def write(store: SystemStore) -> ImportReport:
        return await store.import_systems(records, on_conflict=args.on_conflict)

    try:
        report = context.run(write)
    except DuplicateSystem as exc:
        raise CommandError(
            command_error_from(exc).message,
            hint="pass --on-conflict skip to keep the existing systems, or --on-conflict "
            "overwrite to replace them",
        ) from exc
    except InvalidSystem as exc:
        if isinstance(exc, UnknownSystemType):
            raise
        raise CommandError(
            str(exc), hint="correct that record in the file and import it again"
        ) from exc
    source = "standard input" if args.file == "-" else repr(args.file)
    context.write(
        f"Imported {len(records)} record{_plural(len(records))} from {source}: "
        f"{report.added} added, {report.overwritten} overwritten, {report.skipped} skipped."
    )
    return 0


def _read_records(path: str, context: Context) -> list[dict[str, Any]]:
    """Read and decode the JSON list of records in ``path``, or on standard input for ``-``.

    Raises:
        UsageError: the file is missing or unreadable.
        CommandError: the content is not a JSON list of objects.
    """
    source = "standard input" if path == "-" else repr(path)
    try:
        if path == "-":
            text = context.stdin.read(MAX_IMPORT_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read(MAX_IMPORT_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"import file {path!r} not found", hint="check the path, or pass - for standard input"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise UsageError(
            f"cannot read import file {path!r}: {reason}",
            hint="give a file written by 'asyncext export'",
        ) from None
    if len(text) > MAX_IMPORT_BYTES:
        raise CommandError(
            f"the import from {source} is larger than {MAX_IMPORT_BYTES} characters",
            hint="split the systems over several files",
        )

    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position is safe to show; the text around it might be a secret.
        raise CommandError(
            f"the import from {source} is not valid JSON (line {exc.lineno}, column {exc.colno})",
            hint="give a file written by 'asyncext export'",
        ) from None
    except RecursionError:
        raise CommandError(
            f"the import from {source} is nested too deeply to be an export file",
            hint="give a file written by 'asyncext export'",
        ) from None
    if not isinstance(records, list) or not all(isinstance(item, dict) for item in records):
        raise CommandError(
            f"the import from {source} is not a JSON list of system records",
            hint="give a file written by 'asyncext export'",
        )
    return records


def rotate_key(args: argparse.Namespace, context: Context) -> int:
    """Re-encrypt every stored secret with a new key; the old keys come from ASYNCEXT_KEY."""
    if args.new_key_stdin:
        flag = "--new-key-stdin"
        new_key = read_secret_from_stdin("new key", flag, context.stdin).strip()
    else:
        flag = "--new-key"
        new_key = args.new_key.strip()
    if len(new_key) > MAX_INPUT_BYTES:
        raise UsageError("the new key is too long", hint="generate one with 'asyncext keygen'")
    _check_new_key(new_key, flag)

    async def rotate(store: SystemStore) -> RotationReport:
        return await store.rotate_key(new_key)

    report = context.run(rotate)
    context.write(
        f"Rotated the key of store {context.store_path!r}: {report.re_encrypted} secret"
        f"{_plural(report.re_encrypted)} re-encrypted, {report.skipped} already used the new "
        f"key, {report.empty} empty secret field{_plural(report.empty)}."
    )

    # After the first run, and after any later run until ASYNCEXT_KEY is switched, the
    # stored secrets need the new key while the environment does not lead with it.
    uses_new_key = report.re_encrypted + report.skipped > 0
    if uses_new_key and _current_keys()[:1] != [new_key]:
        context.warn(
            f"set {KEY_ENVIRONMENT_VARIABLE} to the new key now: every secret is encrypted with "
            "it, and commands run with only the old key can no longer decrypt them"
        )
    return 0


def _check_new_key(new_key: str, flag: str) -> None:
    """Raise `CommandError` naming ``flag`` unless ``new_key`` is one valid Fernet key.

    Checked here, before the store is opened, so that the error cannot be mistaken for a
    problem with ASYNCEXT_KEY. The key is never quoted.
    """
    try:
        Keyring.from_setting(new_key)
    except EncryptionKeyError:
        raise CommandError(
            f"the new key given with {flag} is not a valid Fernet key (32 bytes of URL-safe "
            "base64); nothing was changed",
            hint=f"generate the new key with 'asyncext keygen' and pass it with {flag}",
        ) from None


def _current_keys() -> list[str]:
    """Return the keys in ASYNCEXT_KEY, newest first, as the store reads them."""
    setting = os.environ.get(KEY_ENVIRONMENT_VARIABLE, "")
    return [part.strip() for part in setting.split(",") if part.strip()]


def _plural(count: int) -> str:
    return "" if count == 1 else "s"
