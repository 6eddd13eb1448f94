"""Turning the field and secret flags of ``add`` and ``update`` into record fields."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from .._secrets import OPTION_SECRETS
from ._errors import UsageError
from ._input import parse_option, prompt_secret, read_key_file, read_secret_from_stdin

PLAIN_FLAGS = {
    "system_type": "--type",
    "host": "--host",
    "port": "--port",
    "username": "--username",
    "remote_path": "--remote-path",
    "fingerprint": "--fingerprint",
    "ignore_fingerprint": "--ignore-fingerprint",
}
"""Record fields set one-to-one by a flag, with the flag that sets each."""

SECRET_FLAGS = {
    "password": ("--password-stdin", "--ask-password"),
    "private_key": ("--private-key-file",),
    "private_key_password": ("--passphrase-stdin", "--ask-passphrase"),
}
"""Secret fields with the flags that supply each."""


def plain_fields(args: argparse.Namespace) -> dict[str, Any]:
    """Return the non-secret fields given as flags, tenants included; options are separate."""
    fields = {
        field: getattr(args, field) for field in PLAIN_FLAGS if getattr(args, field) is not None
    }
    if args.tenant is not None:
        fields["tenants"] = frozenset(args.tenant)
    return fields


def options_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``--option KEY=VALUE`` pairs as a dict; a later KEY replaces an earlier one.

    Raises:
        UsageError: an option is malformed, or is the reserved option of secret options,
            whose values must not be given on the command line.
    """
    options = dict(parse_option(text) for text in args.option)
    if OPTION_SECRETS in options:
        raise UsageError(
            f"--option {OPTION_SECRETS}=... would put secret options on the command line, "
            "where shell history and the process list keep them",
            hint=f"set secret options with the Python API (options['{OPTION_SECRETS}']) or "
            "by importing a file with 'asyncext import'",
        )
    return options


def check_secret_flags(args: argparse.Namespace) -> None:
    """Reject combinations that need standard input twice.

    Raises:
        UsageError: two flags read standard input.
    """
    readers = [
        flag
        for flag, given in (
            ("--password-stdin", args.password_stdin),
            ("--passphrase-stdin", args.passphrase_stdin),
        )
        if given
    ]
    if len(readers) > 1:
        raise UsageError(
            f"{' and '.join(readers)} cannot both read standard input",
            hint="pipe one secret in and prompt for the other, for example "
            "--password-stdin with --ask-passphrase",
        )


def check_fingerprint_flags(args: argparse.Namespace) -> None:
    """Reject ``--fingerprint`` together with ``--ignore-fingerprint``.

    A record with both would look pinned while no host key is checked.

    Raises:
        UsageError: both flags were given.
    """
    if args.fingerprint is not None and args.ignore_fingerprint:
        raise UsageError(
            "--fingerprint and --ignore-fingerprint were both given, but a pinned host key is "
            "checked only when host keys are not ignored",
            hint="pass --fingerprint to check the server's host key, or --ignore-fingerprint "
            "to accept any key (unsafe outside tests), not both",
        )


def read_secrets(args: argparse.Namespace, stdin: TextIO) -> dict[str, str]:
    """Read every secret that a flag asks for: from standard input, a prompt or a key file.

    Call `check_secret_flags` first. Errors name the flag or file, never a secret.

    Raises:
        UsageError: an input is empty, missing or unreadable.
    """
    secrets: dict[str, str] = {}
    if args.password_stdin:
        secrets["password"] = read_secret_from_stdin("password", "--password-stdin", stdin)
    elif args.ask_password:
        secrets["password"] = prompt_secret("password", "--ask-password")

    if args.private_key_file is not None:
        secrets["private_key"] = read_key_file(args.private_key_file)

    if args.passphrase_stdin:
        secrets["private_key_password"] = read_secret_from_stdin(
            "passphrase", "--passphrase-stdin", stdin
        )
    elif args.ask_passphrase:
        secrets["private_key_password"] = prompt_secret("passphrase", "--ask-passphrase")
    return secrets


def names_secret_flags(args: argparse.Namespace) -> bool:
    """Return whether any flag that supplies a secret was given."""
    return bool(
        args.password_stdin
        or args.ask_password
        or args.private_key_file is not None
        or args.passphrase_stdin
        or args.ask_passphrase
    )
