"""An argument parser whose error messages never repeat a value that may be a secret.

argparse quotes what the user typed in several of its messages: every unrecognized argument,
the value of a flag that takes none (``--password-stdin=VALUE``), and values that fail a type
or choice check. Someone who types ``--pass=...`` or ``--password-stdin ...`` by mistake has
just put a secret on the command line, and the error message must not copy it to the terminal,
a log file or a CI transcript as well.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._errors import EXIT_USAGE

HIDDEN = "<value not shown>"
"""Written in place of a value that an error message must not repeat."""

MIN_UNQUOTED_LENGTH = 4
"""Shortest value searched for without quotes; the library masks secrets from this length."""

_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
"""Pattern of a negative number, which argparse reads as a value, not as an option."""


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors end with an ``Error:`` and a ``Hint:`` line.

    The messages name options but never repeat a value given with ``=``, a value glued to a
    short option (``-hVALUE``), or a stray argument that comes after a flag. Any of them may be a
    secret typed in the wrong place.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens: list[str] = []
        self._dash_value_options: set[str] = set()

    def allow_dash_value(self, option: str) -> None:
        """Let the value of ``option`` start with ``-``, as a Fernet key may.

        argparse reads such a value as an unknown option and fails with "expected one
        argument", so the value is joined to its option before parsing.
        """
        self._dash_value_options.add(option)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Each command's parser receives only the arguments after the command name, so
        # every parser keeps its own arguments for error().
        self._tokens = self._join_dash_values(list(sys.argv[1:] if args is None else args))
        self._reject_values_of_flags()
        return super().parse_known_args(self._tokens, namespace)

    def _join_dash_values(self, tokens: list[str]) -> list[str]:
        joined: list[str] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if token == "--":
                return joined + tokens[index:]
            if token in self._dash_value_options and index + 1 < len(tokens):
                joined.append(f"{token}={tokens[index + 1]}")
                index += 2
                continue
            joined.append(token)
            index += 1
        return joined

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # The command's parser left these over; name it in the hint when one was chosen.
            command = getattr(parsed, "command", None)
            help_command = f"{self.prog} {command}" if command else self.prog
            self.fail(
                f"unrecognized arguments: {describe_arguments(extras, self._tokens)}",
                hint=f"'{help_command} --help' lists the options",
                hidden=any(is_hidden(extra, self._tokens) for extra in extras),
            )
        return parsed

    def error(self, message: str) -> NoReturn:
        safe = redact(message, hidden_values(self, self._tokens))
        self.fail(safe, hint=f"'{self.prog} --help' lists the options", hidden=safe != message)

    def _reject_values_of_flags(self) -> None:
        """Fail on ``--flag=VALUE`` for a flag that takes no value, without quoting VALUE.

        argparse's own message for this case quotes the value.
        """
        for token in self._tokens:
            if token == "--":
                return
            if not token.startswith("-") or "=" not in token:
                continue
            option = token.partition("=")[0]
            action = self._option_string_actions.get(option)
            if action is not None and action.nargs == 0:
                self.fail(
                    f"{option} takes no value, but one was given with '='",
                    hint=f"write {option} alone; '{self.prog} --help' lists the options",
                    hidden=True,
                )

    def fail(self, message: str, *, hint: str, hidden: bool = False) -> NoReturn:
        """Print the usage, an ``Error:`` and a ``Hint:`` line, and exit with status 2.

        ``message`` is printed as it is, so it must not contain a value from the command
        line that may be a secret. ``hidden`` means that such a value was left out.
        """
        if hidden:
            hint += (
                ". The value you typed is not shown; if it was a secret, remove the command "
                "from your shell history"
            )
        self.print_usage(sys.stderr)
        sys.stderr.write(f"Error: {message}\nHint: {hint}\n")
        sys.exit(EXIT_USAGE)


def is_option(token: str) -> bool:
    """Return whether ``token`` looks like an option: a dash, more text, not a negative number.

    argparse reads a few more tokens as values, such as ``--x=a b`` with a space. They count
    as options here, so that their text is hidden too.
    """
    return token.startswith("-") and len(token) > 1 and not _NEGATIVE_NUMBER.match(token)


def is_hidden(token: str, tokens: Sequence[str]) -> bool:
    """Return whether an unrecognized ``token`` contains or may be a value not to repeat."""
    if is_option(token):
        return "=" in token or (not token.startswith("--") and len(token) > 2)
    return follows_option(token, tokens)


def follows_option(token: str, tokens: Sequence[str]) -> bool:
    """Return whether ``token`` appears anywhere after an option, where it may be a value.

    A stray word right after a flag may be that flag's value, and one after a flag's value
    may be a second value, such as a passphrase typed after ``--private-key-file PATH``.
    The check is by value, not position, so a token that also appears elsewhere is hidden
    whenever any of its occurrences comes after an option.
    """
    seen_option = False
    for current in tokens:
        if current == token and seen_option:
            return True
        seen_option = seen_option or is_option(current)
    return False


def describe_arguments(extras: Sequence[str], tokens: Sequence[str]) -> str:
    """Return the unrecognized arguments for a message, with every value that may be a secret
    replaced by `HIDDEN`."""
    described = []
    for extra in extras:
        if is_option(extra):
            name, equals, _ = extra.partition("=")
            if not extra.startswith("--") and len(name) > 2:
                # A short option with text glued to it: -pVALUE.
                described.append(f"{name[:2]}{HIDDEN}")
            else:
                described.append(f"{name}={HIDDEN}" if equals else name)
        elif follows_option(extra, tokens):
            described.append(HIDDEN)
        else:
            described.append(repr(extra))
    return " ".join(described)


def hidden_values(parser: argparse.ArgumentParser, tokens: Sequence[str]) -> list[str]:
    """Return the values among ``tokens`` that ``parser``'s messages must not repeat.

    They are values given with ``=``, text glued to a short option, and arguments that
    follow a flag that takes no value or that ``parser`` does not know. The value of a
    known option such as ``--port 22`` may be quoted: no option takes a secret this way.
    """
    values = []
    for index, token in enumerate(tokens):
        if token == "--":
            break
        if is_option(token):
            if token.startswith("--"):
                value = token.partition("=")[2]
            else:
                value = token[2:].removeprefix("=")
        elif index > 0 and _is_stray(parser, tokens[index - 1]):
            value = token
        else:
            continue
        if value:
            values.append(value)
    return values


def _is_stray(parser: argparse.ArgumentParser, previous: str) -> bool:
    """Return whether a token after ``previous`` is a stray argument rather than its value."""
    if not is_option(previous):
        return False
    if "=" in previous:
        # The option already has its value.
        return True
    action = parser._option_string_actions.get(previous)
    return action is None or action.nargs == 0


def redact(message: str, values: Sequence[str]) -> str:
    """Return ``message`` with each of ``values`` replaced by `HIDDEN`.

    argparse quotes values with ``%r``, so the quoted form is replaced. If a value still
    appears unquoted, the whole message is replaced, because cutting it out of the words
    around it could garble them. Values shorter than `MIN_UNQUOTED_LENGTH` are left to the
    quoted check, since "0" or "a" turn up in ordinary words and numbers.
    """
    for value in values:
        message = message.replace(repr(value), HIDDEN)
    if any(len(value) >= MIN_UNQUOTED_LENGTH and value in message for value in values):
        return "the command line is invalid, and the details would repeat a value it contains"
    return message


def positive_seconds(text: str) -> float:
    """Convert a ``--timeout`` argument to seconds; only finite numbers above 0 are accepted.

    Raises:
        argparse.ArgumentTypeError: the text is not such a number. The message does not
            quote it, so that a value given with ``=`` stays unrepeated.
    """
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(
            "expected a number of seconds greater than 0, such as 10 or 2.5"
        )
    return seconds


class RejectSecretArgument(argparse.Action):
    """Reject a secret given as an argument, without repeating its value in the message.

    Flags such as ``--password`` look natural but would put the secret into shell history
    and the process list, so they exist only to point at the safe alternatives.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.pop("nargs", None)
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        safe = {
            "--password": "--password-stdin or --ask-password",
            "--passphrase": "--passphrase-stdin or --ask-passphrase",
            "--private-key": "--private-key-file PATH",
        }[str(option_string)]
        message = (
            f"{option_string} is not accepted because a secret on the command line ends up "
            f"in shell history and the process list; use {safe} instead"
        )
        # The message contains no value, so it skips error(), which would replace a message
        # that happens to contain a short value such as "--password=a".
        assert isinstance(parser, Parser)
        parser.fail(message, hint=f"'{parser.prog} --help' lists the options", hidden=bool(values))
