"""The argument parser of the ``asyncext`` command: global options, commands and their flags."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import _connect, _setup, _systems, _transfer
from ._arguments import Parser, RejectSecretArgument, positive_seconds
from ._context import DEFAULT_STORE, STORE_ENVIRONMENT_VARIABLE

CLEARABLE_FIELDS = (
    "host",
    "port",
    "username",
    "password",
    "private_key",
    "private_key_password",
    "fingerprint",
    "remote_path",
    "tenants",
    "options",
)

EPILOG = f"""\
environment:
  {STORE_ENVIRONMENT_VARIABLE}   store file used when --store is not given
  ASYNCEXT_KEY     Fernet key that encrypts secrets; a comma-separated list (newest
                   first) also decrypts secrets written with the older keys

exit status: 0 success, 1 the operation failed, 2 usage error, 130 interrupted
"""


def build_parser() -> Parser:
    """Return the parser for the whole command line; each command sets ``handler``."""
    parser = Parser(
        prog="asyncext",
        description="Manage a registry of external systems (SFTP, SSH, local folders, plug-ins).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_global_options(parser, suppress_defaults=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")

    # Global options are also accepted after the command. Their copies there default to
    # SUPPRESS, so that they do not overwrite a value given before the command.
    common = Parser(add_help=False, allow_abbrev=False)
    _add_global_options(common, suppress_defaults=True)

    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, handler: Callable[..., int]) -> Parser:
        sub: Parser = commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=[common],
            allow_abbrev=False,
        )
        sub.set_defaults(handler=handler, command=name)
        return sub

    command("keygen", "print a new random encryption key for ASYNCEXT_KEY", _setup.keygen)
    command("init", "create the store file, or upgrade its schema", _setup.init)

    types = command("types", "list the installed system types", _setup.types)
    _add_json(types)

    add = command("add", "add a system to the store", _systems.add)
    add.add_argument("name", metavar="NAME", help="unique name of the new system")
    add.add_argument(
        "--uri",
        help="take the fields from a URI such as sftp://user@host:2222/srv/data, which must "
        "not contain a secret. --fingerprint, --ignore-fingerprint, --tenant, --option and "
        "the secret flags complete it",
    )
    _add_field_flags(add)
    _add_secret_flags(add)

    update = command("update", "change fields of a system", _systems.update)
    update.add_argument("name", metavar="NAME", help="name of the system to change")
    update.add_argument("--rename", metavar="NEW_NAME", help="give the system a new name")
    _add_field_flags(update)
    _add_secret_flags(update)
    update.add_argument(
        "--remove-option",
        metavar="KEY",
        action="append",
        default=[],
        help="delete one adapter option; repeat for several",
    )
    update.add_argument(
        "--clear",
        metavar="FIELD",
        action="append",
        default=[],
        choices=CLEARABLE_FIELDS,
        help=f"unset a field; repeat for several. One of: {', '.join(CLEARABLE_FIELDS)}. "
        "'--clear options' together with --option replaces all options",
    )

    listing = command("list", "list the systems in the store", _systems.list_systems)
    listing.add_argument(
        "--type", dest="system_type", metavar="TYPE", help="list only systems of this type"
    )
    listing.add_argument(
        "--tenant",
        help="list only the systems this tenant sees: its own and those without tenants",
    )
    _add_json(listing)

    show = command("show", "show every field of one system", _systems.show)
    show.add_argument("name", metavar="NAME", help="name of the system")
    show.add_argument(
        "--show-secrets",
        action="store_true",
        help="print passwords, private keys and passphrases instead of masking them",
    )
    _add_json(show)

    remove = command("remove", "delete a system from the store", _systems.remove)
    remove.add_argument("name", metavar="NAME", help="name of the system")

    test = command("test", "connect to a system, check it and disconnect", _connect.test)
    test.add_argument("name", metavar="NAME", help="name of the system")
    _add_timeout(test, "the whole test, connection and cleanup included")
    _add_json(test)

    trust = command(
        "trust", "fetch a system's SSH host key and pin its fingerprint", _connect.trust
    )
    trust.add_argument("name", metavar="NAME", help="name of the system")
    trust.add_argument(
        "--yes", action="store_true", help="store the fingerprint without asking for confirmation"
    )
    _add_timeout(trust, "fetching the host key")

    export = command(
        "export", "write every system as JSON, for backups and 'import'", _transfer.export
    )
    export.add_argument(
        "--json",
        action="store_true",
        help="accepted like on the other reading commands; export always writes JSON",
    )
    export.add_argument(
        "--include-secrets",
        action="store_true",
        help="include passwords, private keys and passphrases in plain text",
    )
    export.add_argument(
        "--output",
        metavar="FILE",
        help="write to FILE instead of standard output; with --include-secrets the file is "
        "created readable by its owner only (mode 0600)",
    )

    load = command("import", "add the systems of an 'export' file", _transfer.import_systems)
    load.add_argument("file", metavar="FILE", help="the JSON file, or - for standard input")
    load.add_argument(
        "--on-conflict",
        choices=("fail", "skip", "overwrite"),
        default="fail",
        help="what to do when a system's name already exists: fail and import nothing "
        "(default), skip that system, or overwrite it",
    )

    rotate = command(
        "rotate-key",
        "re-encrypt every secret with a new key; the old keys come from ASYNCEXT_KEY",
        _transfer.rotate_key,
    )
    new_key = rotate.add_mutually_exclusive_group(required=True)
    new_key.add_argument(
        "--new-key-stdin",
        action="store_true",
        help="read the new key from standard input (preferred: it stays out of shell history)",
    )
    new_key.add_argument(
        "--new-key",
        metavar="KEY",
        help="the new key; visible in shell history and the process list, so prefer "
        "--new-key-stdin",
    )
    rotate.allow_dash_value("--new-key")
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, suppress_defaults: bool) -> None:
    parser.add_argument(
        "--store",
        metavar="PATH",
        default=argparse.SUPPRESS if suppress_defaults else None,
        help=f"the store file (default: ${STORE_ENVIRONMENT_VARIABLE}, else ./{DEFAULT_STORE})",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress_defaults else False,
        help="show tracebacks and the library's debug log on standard error",
    )


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON for scripts instead of a table"
    )


def _add_timeout(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=10.0,
        help=f"maximum time in seconds for {what} (default: 10)",
    )


def _add_field_flags(parser: argparse.ArgumentParser) -> None:
    fields = parser.add_argument_group("fields")
    fields.add_argument(
        "--type",
        dest="system_type",
        metavar="TYPE",
        help="system type, such as sftp, ssh or local ('asyncext types' lists them)",
    )
    fields.add_argument("--host", help="host name or IP address of the server")
    fields.add_argument("--port", type=int, help="TCP port of the server (default: the type's)")
    fields.add_argument("--username", help="user name to log in with")
    fields.add_argument(
        "--remote-path",
        metavar="PATH",
        help="root folder of the file client: on the server for sftp, on this machine for local",
    )
    fields.add_argument(
        "--fingerprint",
        help="expected SSH host key: SHA256:..., MD5:... or a public key line "
        "('asyncext trust' fetches it)",
    )
    fields.add_argument(
        "--ignore-fingerprint",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accept any host key without checking it (unsafe outside tests)",
    )
    fields.add_argument(
        "--tenant",
        action="append",
        metavar="TENANT",
        help="tenant that may use the system; repeat for several. Without any, every "
        "tenant sees it. On update the given tenants replace the current ones",
    )
    fields.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        default=[],
        help="adapter option; VALUE is read as JSON when it parses (retries=3 is the number "
        "3) and as text otherwise. Repeat for several",
    )


def _add_secret_flags(parser: argparse.ArgumentParser) -> None:
    secrets = parser.add_argument_group(
        "secrets (never accepted as arguments; standard input can supply only one of them)"
    )
    password = secrets.add_mutually_exclusive_group()
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input; one trailing newline is removed",
    )
    password.add_argument(
        "--ask-password",
        action="store_true",
        help="prompt for the password on the terminal without echo",
    )
    secrets.add_argument(
        "--private-key-file",
        metavar="PATH",
        help="read the SSH private key (OpenSSH or PEM text) from this file",
    )
    passphrase = secrets.add_mutually_exclusive_group()
    passphrase.add_argument(
        "--passphrase-stdin",
        action="store_true",
        help="read the private key's passphrase from standard input",
    )
    passphrase.add_argument(
        "--ask-passphrase",
        action="store_true",
        help="prompt for the private key's passphrase on the terminal without echo",
    )
    for flag in ("--password", "--passphrase", "--private-key"):
        parser.add_argument(flag, action=RejectSecretArgument, dest="rejected_secret")


def _version() -> str:
    from .. import __version__

    return __version__
