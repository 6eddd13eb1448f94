"""Errors of the command line and how library errors are turned into exit codes and hints."""

from __future__ import annotations

import shlex

from .._adapters._registry import closest_type
from .._crypto import KEY_ENVIRONMENT_VARIABLE
from .._errors import (
    AsyncextError,
    ConnectionFailed,
    DuplicateSystem,
    EncryptionKeyError,
    HostKeyMismatch,
    InvalidSystem,
    StoreError,
    SystemNotFound,
    UnknownSystemType,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""128 + SIGINT, the status shells report for a program stopped with Ctrl-C."""


class CommandError(Exception):
    """An error that the command line reports as an ``Error:`` line and a ``Hint:`` line.

    Args:
        message: what failed, naming the system and the value.
        hint: what the user can do next.
        exit_code: `EXIT_FAILED` when the operation failed, `EXIT_USAGE` when the command
            line itself was wrong.
    """

    def __init__(self, message: str, *, hint: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


class UsageError(CommandError):
    """A command line that cannot run as given: a bad flag combination or an unreadable input."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(message, hint=hint, exit_code=EXIT_USAGE)


def command_error_from(exc: AsyncextError) -> CommandError:
    """Translate a library error into a `CommandError` whose hint is in command-line terms.

    The hint depends only on the error's class and attributes, never on its wording. Commands
    that know more, such as which flags were given, catch the error themselves and give a
    more specific hint.
    """
    # The order matters because the classes form a tree: the most specific comes first.
    if isinstance(exc, SystemNotFound):
        return CommandError(
            without_advice(exc), hint="'asyncext list' shows the systems in the store"
        )
    if isinstance(exc, DuplicateSystem):
        return CommandError(
            without_advice(exc),
            hint="choose another name, or change the existing system with "
            f"'asyncext update {shlex.quote(exc.system)}'",
        )
    if isinstance(exc, UnknownSystemType):
        return CommandError(unknown_type_message(exc), hint=unknown_type_hint(exc))
    if isinstance(exc, InvalidSystem):
        return CommandError(
            str(exc), hint="correct the field named above and run the command again"
        )
    if isinstance(exc, EncryptionKeyError):
        return CommandError(without_advice(exc), hint=key_hint(exc))
    if isinstance(exc, HostKeyMismatch):
        return CommandError(str(exc), hint=trust_hint(exc.system))
    if isinstance(exc, ConnectionFailed):
        return CommandError(str(exc), hint=fields_hint(exc.system))
    if isinstance(exc, StoreError):
        return CommandError(
            str(exc),
            hint=f"the store file is {exc.path!r}; pass --store or set "
            "ASYNCEXT_STORE to use another",
        )
    return CommandError(str(exc), hint="run the command again with --debug to see where it failed")


def without_advice(exc: AsyncextError) -> str:
    """Return the library's message up to the advice that follows ``"; "``.

    Used only for errors whose library advice is written for Python callers (such as
    ``pass SystemStore(key=...)``) and whose hint the command line replaces completely.
    """
    return str(exc).partition("; ")[0]


def unknown_type_message(exc: UnknownSystemType) -> str:
    """Return what failed, built from the error's attributes."""
    where = f"system {exc.system!r}: " if exc.system else ""
    installed = ", ".join(exc.installed) or "none"
    return f"{where}unknown system type {exc.system_type!r}; installed types: {installed}"


def unknown_type_hint(exc: UnknownSystemType) -> str:
    suggestion = closest_type(exc.system_type, exc.installed)
    if suggestion is not None:
        return f"did you mean {suggestion!r}? 'asyncext types' lists the installed types"
    return (
        f"install the Python package that provides the type {exc.system_type!r} into the "
        "environment of this command, or correct the type; 'asyncext types' lists the "
        "installed types"
    )


def key_hint(exc: EncryptionKeyError) -> str:
    """Return the hint for a key problem: a secret that cannot be decrypted, or a bad key."""
    if exc.system is not None:
        return (
            f"set {KEY_ENVIRONMENT_VARIABLE} to the key that the secrets of system "
            f"{exc.system!r} were encrypted with (during a key rotation, a comma-separated "
            "list of keys, newest first)"
        )
    return (
        f"set {KEY_ENVIRONMENT_VARIABLE} to the store's key, made by 'asyncext keygen' "
        "(during a key rotation, a comma-separated list of keys, newest first)"
    )


def trust_hint(name: str | None) -> str:
    """Return the hint for a server whose host key does not match the pinned fingerprint."""
    command = f"'asyncext trust {shlex.quote(name)}'" if name else "'asyncext trust NAME'"
    return (
        f"if the server's host key was changed on purpose, pin the new one with {command}; "
        "otherwise find out why it changed before connecting"
    )


def fields_hint(name: str | None) -> str:
    """Return the hint for a connection that failed because of the system's fields."""
    if name is None:
        return "check the host, port and credentials of the system with 'asyncext show NAME'"
    quoted = shlex.quote(name)
    return (
        f"check the system's fields with 'asyncext show {quoted}' and correct them with "
        f"'asyncext update {quoted}'"
    )
