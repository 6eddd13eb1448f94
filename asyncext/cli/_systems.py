"""Commands that read and edit records: ``add``, ``update``, ``list``, ``show`` and ``remove``."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import Any
from urllib.parse import urlsplit

from .._errors import InvalidSystem, UnknownSystemType
from .._store._store import SystemStore
from .._system import SECRET_FIELDS, ExternalSystem
from ._context import Context
from ._diagnosis import PROBED_FIELDS, invalid_record_error
from ._errors import CommandError, UsageError
from ._flags import (
    PLAIN_FLAGS,
    SECRET_FLAGS,
    check_fingerprint_flags,
    check_secret_flags,
    names_secret_flags,
    options_from_flags,
    plain_fields,
    read_secrets,
)
from ._output import LIST_HEADERS, format_system, format_table, system_rows, system_to_json
from ._uri_input import (
    check_uri_fingerprint,
    check_uri_flags,
    check_uri_has_no_secret,
    system_from_uri,
    uri_record,
)

# --- add -----------------------------------------------------------------------------------


def add(args: argparse.Namespace, context: Context) -> int:
    """Add a system from flags or from a URI, reading its secrets from stdin, a prompt or a file."""
    name: str = args.name

    # Usage checks come first, so that nothing is prompted for when the command cannot run.
    check_secret_flags(args)
    check_fingerprint_flags(args)
    if args.private_key_file is None and (args.passphrase_stdin or args.ask_passphrase):
        raise UsageError(
            f"a passphrase was given for system {name!r} but no private key",
            hint="pass --private-key-file with the encrypted key, or drop the passphrase flag",
        )
    if args.uri is not None:
        check_uri_flags(args)
        check_uri_has_no_secret(args.uri, name)
        check_uri_fingerprint(args)
    elif args.system_type is None:
        raise UsageError(
            f"system {name!r} needs --type or --uri",
            hint="'asyncext types' lists the types; for example: "
            f"asyncext add {shlex.quote(name)} --type local --remote-path /srv/data",
        )
    fields = plain_fields(args)
    options = options_from_flags(args)

    context.require_store()
    secrets = read_secrets(args, context.stdin)

    # A URI is completed by the flags; without one, the flags are the whole record.
    system_type: str
    if args.uri is not None:
        system_type, fields = _read_uri(args, fields, options, secrets)
    else:
        system_type = fields.pop("system_type")
        fields.update(secrets)
        if options:
            fields["options"] = options

    async def add_system(store: SystemStore) -> ExternalSystem:
        return await store.add(name, system_type, **fields)

    try:
        system = context.run(add_system)
    except InvalidSystem as exc:
        if isinstance(exc, UnknownSystemType):
            raise

        def build(fix: dict[str, Any]) -> ExternalSystem:
            return ExternalSystem(name=name, system_type=system_type, **{**fields, **fix})

        record = {field: fields.get(field) for field in PROBED_FIELDS}
        raise invalid_record_error(
            exc, name=name, build=build, record=record, system_type=system_type, command="add"
        ) from exc
    context.write(f"Added system {system.name!r} ({system.system_type}, revision 1).")
    return 0


def _read_uri(
    args: argparse.Namespace,
    flag_fields: dict[str, Any],
    options: dict[str, Any],
    secrets: dict[str, str],
) -> tuple[str, dict[str, Any]]:
    """Return the system type and fields of ``--uri`` completed by the flags.

    Raises:
        CommandError: the completed record is invalid; the hint names the flag to add.
        UnknownSystemType: no installed adapter handles the URI's scheme.
    """
    try:
        return system_from_uri(args, flag_fields, options, secrets)
    except InvalidSystem as exc:
        if isinstance(exc, UnknownSystemType):
            raise

        def build(fix: dict[str, Any]) -> object:
            plain = {key: value for key, value in fix.items() if key not in SECRET_FIELDS}
            secret = {key: value for key, value in fix.items() if key in SECRET_FIELDS}
            return system_from_uri(args, {**flag_fields, **plain}, options, {**secrets, **secret})

        raise invalid_record_error(
            exc,
            name=args.name,
            build=build,
            record=uri_record(args.uri, flag_fields, secrets),
            system_type=urlsplit(args.uri).scheme,
            command="add",
            fallback_hint="correct the URI, or the flag that completes it; 'asyncext add "
            "--help' lists the flags",
        ) from exc


# --- update --------------------------------------------------------------------------------


def update(args: argparse.Namespace, context: Context) -> int:
    """Change the fields given as flags; every other field keeps its value."""
    name: str = args.name
    check_secret_flags(args)
    check_fingerprint_flags(args)

    changes = plain_fields(args)
    if "fingerprint" in changes:
        # A pinned fingerprint is checked only with ignore_fingerprint off, as 'trust' sets it.
        changes["ignore_fingerprint"] = False
    if args.rename is not None:
        changes["name"] = args.rename
    new_options = options_from_flags(args)
    removed_options: list[str] = args.remove_option
    cleared: list[str] = args.clear

    if not (changes or new_options or removed_options or cleared or names_secret_flags(args)):
        raise UsageError(
            f"no changes given for system {name!r}",
            hint="pass the fields to change, such as --host or --clear FIELD; "
            "'asyncext update --help' lists them",
        )
    _check_cleared_fields(args, cleared, changes)

    context.require_store()
    secrets = read_secrets(args, context.stdin)
    changes.update(secrets)
    for field in cleared:
        changes[field] = _empty_value(field)

    async def update_system(store: SystemStore) -> tuple[ExternalSystem, ExternalSystem]:
        current = await store.get(name)
        if new_options or removed_options:
            # NOTE: the options are read and written in two steps, so an option that another
            # process changes in between is overwritten with the value read here.
            changes["options"] = _edited_options(
                current, new_options, removed_options, keep="options" not in cleared
            )
        try:
            return current, await store.update(name, **changes)
        except InvalidSystem as exc:
            if isinstance(exc, UnknownSystemType):
                raise
            raise _invalid_update(exc, current, changes) from exc

    before, system = context.run(update_system)
    renamed = f" (renamed from {name!r})" if system.name != name else ""
    context.write(f"Updated system {system.name!r}{renamed} to revision {system.revision}.")
    if before.ignore_fingerprint and not system.ignore_fingerprint and system.fingerprint:
        context.write(
            f"Host keys of system {system.name!r} are checked again: only {system.fingerprint} "
            "is accepted."
        )
    return 0


def _invalid_update(
    exc: InvalidSystem, current: ExternalSystem, changes: dict[str, Any]
) -> CommandError:
    """Return the error for changes that leave the record invalid, with a hint naming a flag."""

    def build(fix: dict[str, Any]) -> ExternalSystem:
        return dataclasses.replace(current, **{**changes, **fix})

    record = {field: changes.get(field, getattr(current, field)) for field in PROBED_FIELDS}
    return invalid_record_error(
        exc,
        name=changes.get("name", current.name),
        build=build,
        record=record,
        system_type=changes.get("system_type", current.system_type),
        command="update",
    )


def _check_cleared_fields(
    args: argparse.Namespace, cleared: list[str], changes: dict[str, Any]
) -> None:
    """Reject ``--clear FIELD`` next to a flag that sets the same field.

    ``--clear options`` with ``--option`` is allowed: it replaces all options.
    """
    for field in cleared:
        setting_flag = None
        if field in changes:
            setting_flag = PLAIN_FLAGS.get(field, "--tenant")
        elif field in SECRET_FIELDS:
            setting_flag = next(
                (flag for flag in SECRET_FLAGS[field] if _flag_given(args, flag)), None
            )
        elif field == "options" and args.remove_option:
            setting_flag = "--remove-option"
        if setting_flag is not None:
            raise UsageError(
                f"--clear {field} and {setting_flag} both change {field} of system {args.name!r}",
                hint="pass only one of them",
            )


def _flag_given(args: argparse.Namespace, flag: str) -> bool:
    value = getattr(args, flag.lstrip("-").replace("-", "_"))
    return value is not None and value is not False


def _empty_value(field: str) -> Any:
    if field == "tenants":
        return frozenset()
    if field == "options":
        return {}
    return None


def _edited_options(
    current: ExternalSystem,
    new_options: dict[str, Any],
    removed: list[str],
    *,
    keep: bool,
) -> dict[str, Any]:
    """Return the system's options with ``removed`` deleted and ``new_options`` set.

    Raises:
        CommandError: an option to remove is not set.
    """
    options = dict(current.options) if keep else {}
    for key in removed:
        if key not in options:
            present = ", ".join(sorted(current.options)) or "none"
            raise CommandError(
                f"system {current.name!r} has no option {key!r} to remove (its options: {present})",
                hint=f"'asyncext show {shlex.quote(current.name)}' lists the options",
            )
        del options[key]
    options.update(new_options)
    return options


# --- list, show, remove --------------------------------------------------------------------


def list_systems(args: argparse.Namespace, context: Context) -> int:
    """List the systems, optionally of one type or as one tenant sees them."""

    async def read(store: SystemStore) -> list[ExternalSystem]:
        if args.tenant is not None:
            return await store.for_tenant(args.tenant).list(system_type=args.system_type)
        return await store.list(system_type=args.system_type)

    systems = context.run(read)
    if args.json:
        context.write_json([system_to_json(system) for system in systems])
        return 0

    if not systems:
        context.write(f"No systems found in store {context.store_path!r}.")
        return 0
    for line in format_table(LIST_HEADERS, system_rows(systems)):
        context.write(line)
    return 0


def show(args: argparse.Namespace, context: Context) -> int:
    """Show every field of one system, with secrets masked unless ``--show-secrets``."""

    async def read(store: SystemStore) -> ExternalSystem:
        return await store.get(args.name)

    system = context.run(read)

    # Everything is formatted before anything is written, so that a secret that cannot be
    # decrypted fails the command without leaving half a record on the screen.
    if args.json:
        context.write_json(system_to_json(system, include_secrets=args.show_secrets))
        return 0
    for line in format_system(system, show_secrets=args.show_secrets):
        context.write(line)
    return 0


def remove(args: argparse.Namespace, context: Context) -> int:
    """Delete a system from the store."""

    async def delete(store: SystemStore) -> None:
        await store.remove(args.name)

    context.run(delete)
    context.write(f"Removed system {args.name!r}.")
    return 0
