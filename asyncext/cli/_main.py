"""The entry point: parse the command line, run one command, report errors as exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from .._errors import AsyncextError
from ._context import Context, default_store_path
from ._errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    command_error_from,
)
from ._parser import build_parser

LIBRARY_LOGGER = "asyncext"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asyncext`` command and return its exit status.

    Args:
        argv: the arguments after the program name; None reads ``sys.argv[1:]``.

    Returns:
        0 on success, 1 when the operation failed, 2 for a usage error and 130 when
        interrupted with Ctrl-C. The console script passes it to `sys.exit`.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits for --help, --version and usage errors; main returns instead.
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else EXIT_OK

    stderr = sys.stderr
    _configure_logging(debug=args.debug, stream=stderr)
    context = Context(
        store_path=args.store or default_store_path(),
        stdin=sys.stdin,
        stdout=sys.stdout,
        stderr=stderr,
    )

    try:
        code: int = args.handler(args, context)
    except KeyboardInterrupt:
        stderr.write("\nInterrupted.\n")
        return EXIT_INTERRUPTED
    except CommandError as exc:
        return _report(exc, debug=args.debug, stream=stderr)
    except AsyncextError as exc:
        return _report(command_error_from(exc), debug=args.debug, stream=stderr)
    except BrokenPipeError:
        # The reader of standard output went away, as with 'asyncext list | head -1'. Further
        # writes, including the interpreter's final flush, would raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        error = CommandError(
            f"unexpected {type(exc).__name__}: {exc}",
            hint="run the command again with --debug and report the traceback to the "
            "asyncext developers",
        )
        return _report(error, debug=args.debug, stream=stderr)
    context.stdout.flush()
    return code


def _report(error: CommandError, *, debug: bool, stream: TextIO) -> int:
    """Write the traceback when debugging, then the ``Error:`` and ``Hint:`` lines."""
    if debug:
        traceback.print_exc(file=stream)
    stream.write(f"Error: {error.message}\nHint: {error.hint}\n")
    return error.exit_code


class OneLineFormatter(logging.Formatter):
    """Formats a record on one line: ``asyncext.pool: WARNING: message``.

    An attached exception is summarised as its type and message, because a traceback in the
    middle of command output reads as a crash.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = f"{record.name}: {record.levelname}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message += f" ({type(exc).__name__}: {exc})"
        return message.replace("\n", " ")


def _configure_logging(*, debug: bool, stream: TextIO) -> None:
    """Send the library's WARNING lines, or every line with ``--debug``, to standard error."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "installed_by_cli", False):
            logger.removeHandler(handler)

    handler = logging.StreamHandler(stream)
    handler.installed_by_cli = True  # type: ignore[attr-defined]
    if debug:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(levelname)s: %(message)s"))
        logger.setLevel(logging.DEBUG)
    else:
        handler.setFormatter(OneLineFormatter())
        logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    logger.propagate = False
