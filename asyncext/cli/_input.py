"""Reading what the user supplies besides flags: secrets, key files, options and confirmations.

Secrets never come from the command line, because arguments end up in shell history and are
visible to every local user in ``ps``. They come from standard input, from a file, or from a
terminal prompt that does not echo.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import sys
from typing import Any, TextIO

from ._errors import UsageError

MAX_INPUT_BYTES = 1024 * 1024
"""Largest secret or key file read, in bytes; a real key is a few kilobytes."""


def strip_newline(text: str) -> str:
    """Remove one trailing line break (``\\n`` or ``\\r\\n``), which ``echo`` and editors add.

    Only one is removed, so a secret that really ends in whitespace survives.
    """
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def read_secret_from_stdin(what: str, flag: str, stdin: TextIO) -> str:
    """Read a secret from standard input, or prompt for it without echo on a terminal.

    Raises:
        UsageError: standard input is empty or too large.
    """
    if stdin.isatty():
        return prompt_secret(what, flag)

    text = stdin.read(MAX_INPUT_BYTES + 1)
    if len(text) > MAX_INPUT_BYTES:
        raise UsageError(
            f"{flag} read more than {MAX_INPUT_BYTES} characters from standard input",
            hint=f"pipe only the {what} into the command, for example from a file",
        )
    value = strip_newline(text)
    if not value:
        raise UsageError(
            f"{flag} read an empty {what} from standard input",
            hint=f"pipe the {what} into the command, for example: "
            f"asyncext ... {flag} < {what.replace(' ', '-')}.txt",
        )
    return value


def prompt_secret(what: str, flag: str) -> str:
    """Ask for a secret on the terminal without echoing it.

    Raises:
        UsageError: there is no terminal to ask on, or the answer is empty.
    """
    # Without a terminal, getpass would read standard input with a warning instead.
    controlling_terminal = has_controlling_terminal()
    if not (sys.stdin.isatty() or controlling_terminal):
        raise UsageError(
            f"{flag} found no terminal to ask for the {what} on",
            hint=f"pipe the {what} into the command with the matching --...-stdin option",
        )
    try:
        value = getpass.getpass(f"{what.capitalize()}: ")
    except EOFError:
        # getpass ends the prompt's line only when a line was entered. It prompts on the
        # controlling terminal when there is one, and on standard error otherwise.
        end_prompt_line(on_terminal=controlling_terminal)
        raise UsageError(
            f"{flag} read end of input instead of the {what}",
            hint=f"run the command again and type the {what}",
        ) from None
    if not value:
        raise UsageError(
            f"the {what} entered at the prompt is empty",
            hint=f"run the command again and type the {what}",
        )
    return value


def end_prompt_line(*, on_terminal: bool) -> None:
    """Write the line break that an answer would have ended the prompt with."""
    if on_terminal:
        try:
            with open("/dev/tty", "w") as terminal:
                terminal.write("\n")
            return
        except OSError:
            pass
    sys.stderr.write("\n")
    sys.stderr.flush()


def has_controlling_terminal() -> bool:
    """Return whether this process has a controlling terminal that ``getpass`` can use."""
    try:
        descriptor = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(descriptor)
    return True


def read_key_file(path: str) -> str:
    """Return the text of a private key file; errors name the path and never the content.

    Raises:
        UsageError: the file is missing, unreadable, too large or not text.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(
            f"private key file {path!r} not found",
            hint="check the path given to --private-key-file",
        ) from None
    except IsADirectoryError:
        raise UsageError(
            f"private key file {path!r} is a folder",
            hint="give the path of the key file itself, such as ~/.ssh/id_ed25519",
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read private key file {path!r}: {exc.strerror or exc}",
            hint="check the file's permissions; it must be readable by this user",
        ) from None

    if len(data) > MAX_INPUT_BYTES:
        raise UsageError(
            f"private key file {path!r} is larger than {MAX_INPUT_BYTES} bytes",
            hint="give the path of an OpenSSH or PEM private key file",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            f"private key file {path!r} is not a text file",
            hint="give an OpenSSH or PEM private key; convert other formats with "
            "'ssh-keygen -p -m PEM -f FILE'",
        ) from None
    if not text.strip():
        raise UsageError(
            f"private key file {path!r} is empty",
            hint="give the path of an OpenSSH or PEM private key file",
        )
    return text


def parse_option(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` into a pair; VALUE is JSON when it parses, else the plain string.

    ``retries=3`` gives the integer 3, ``pool={"max_size": 2}`` a dict and ``mode=fast`` the
    string ``"fast"``.

    Raises:
        UsageError: there is no ``=`` or the key is empty.
    """
    key, separator, raw_value = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise UsageError(
            f"--option {text!r} is not of the form KEY=VALUE",
            hint="write it as --option retries=3 or --option 'pool={\"max_size\": 2}'",
        )
    try:
        value: Any = json.loads(
            raw_value, parse_constant=_reject_constant, parse_float=_parse_finite_float
        )
    except ValueError:
        value = raw_value
    return key, value


def _reject_constant(text: str) -> Any:
    # Python's json module reads NaN and Infinity, but JSON has no such values, and a
    # system's options must be JSON.
    raise ValueError(f"{text} is not JSON")


def _parse_finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the range of a float")
    return value


def confirm(question: str, *, stdin: TextIO, stderr: TextIO) -> bool:
    """Ask a yes/no question on the terminal; only ``y`` or ``yes`` counts as yes.

    Raises:
        UsageError: standard input is not a terminal, so nobody can answer.
    """
    if not stdin.isatty():
        raise UsageError(
            "cannot ask for confirmation because standard input is not a terminal",
            hint="check the value shown above and pass --yes to accept it without asking",
        )
    stderr.write(f"{question} [y/N] ")
    stderr.flush()
    answer = stdin.readline()
    if not answer:
        # End of input (Ctrl-D) leaves the prompt's line open.
        stderr.write("\n")
    return answer.strip().lower() in ("y", "yes")
