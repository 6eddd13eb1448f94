"""Errors of the command line and how library errors are turned into exit codes and hints."""

from __future__ import annotations

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
    """Translate a library error into a `CommandError` with a hint in command-line terms.

    Library messages state what failed, then ``"; "`` and what to do next, and that advice is
    often for Python callers, such as ``pass SystemStore(key=...)``. It is replaced by the
    matching command-line advice where one exists, and kept as the hint otherwise.
    """
    what, _, library_hint = str(exc).partition("; ")

    # The order matters because the classes form a tree: the most specific comes first.
    if isinstance(exc, SystemNotFound):
        hint = "'asyncext list' shows the systems in the store"
    elif isinstance(exc, DuplicateSystem):
        hint = "choose another name, or change the existing system with 'asyncext update'"
    elif isinstance(exc, UnknownSystemType):
        # The library's own text lists the installed types, which is the useful part.
        what = str(exc).split(". ", 1)[0]
        hint = "'asyncext types' lists the installed system types and what they need"
    elif isinstance(exc, InvalidSystem) and "has no fingerprint" in what:
        # The library's advice names the Python API; the first sentence states what is wrong.
        what = what.split(". ", 1)[0]
        hint = (
            "pass --fingerprint with the server's host key fingerprint (on the server: "
            "ssh-keygen -l -f <host key>.pub), or add the system with --ignore-fingerprint "
            "and then run 'asyncext trust NAME', which fetches the key and asks you to "
            "confirm it"
        )
    elif isinstance(exc, InvalidSystem):
        hint = library_hint or (
            "correct the value with the matching option; 'asyncext add --help' lists them"
        )
    elif isinstance(exc, EncryptionKeyError):
        hint = (
            "set ASYNCEXT_KEY to the key the secrets were encrypted with (during a key "
            "rotation, a comma-separated list of keys, newest first)"
        )
        if "not a valid Fernet key" in what:
            hint = "generate a valid key with 'asyncext keygen' and put it in ASYNCEXT_KEY"
    elif isinstance(exc, HostKeyMismatch):
        hint = (
            "if the server's key was changed on purpose, run 'asyncext trust NAME' to pin "
            "the new key; otherwise do not connect and find out why it changed"
        )
    elif isinstance(exc, ConnectionFailed):
        hint = library_hint or "check the host, port and credentials with 'asyncext show NAME'"
    elif isinstance(exc, StoreError):
        hint = library_hint or "check the --store path or ASYNCEXT_STORE"
    else:
        hint = library_hint or "run the command again with --debug to see where it failed"
    return CommandError(what, hint=hint)
