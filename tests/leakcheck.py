"""A suite-wide check that no test secret reaches a log line, an error message or CLI output.

Loaded as a pytest plugin by ``tests/conftest.py``. For the whole run it records:

- every log line of every logger, with ``asyncext``, ``aiosqlite`` and ``asyncssh`` set to
  DEBUG, tracebacks of logged exceptions included;
- the message of every `AsyncextError` created, and at the end of the test the messages of
  the exceptions chained to it (``raise ... from``), which a traceback shows;
- the message of every exception that ``pytest.raises`` catches, with its chain;
- text that tests hand to `record_output`, such as the output of CLI commands.

After each test the recorded text is searched for Fernet tokens and for every registered
secret in the forms it can leak in: as is, percent-encoded, and JSON- or repr-escaped. A hit
fails that test at teardown, naming where the text came from.

Test modules declare the secrets they use, at import time or inside the test::

    from leakcheck import register_secret

    PASSWORD = "!Weird!Password^123$"
    register_secret(PASSWORD)

Secrets shorter than `MIN_LENGTH` characters are not searched for, because they occur by
chance in ordinary text; tests of short secrets check their own output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from _pytest.raises import RaisesExc

from asyncext import AsyncextError

MIN_LENGTH = 6

CAPTURED_LOGGERS = ("asyncext", "aiosqlite", "asyncssh")
"""Loggers set to DEBUG for the run: asyncext's own, aiosqlite's, which logs every SQL statement
with its parameters, and asyncssh's. Other loggers are recorded at the level they have."""

FERNET_TOKEN_START = "gAAAAA"
"""How every Fernet token starts in base64 (version byte 0x80, then the timestamp's high bytes)."""

_patterns: dict[str, str] = {}  # form searched for -> description, never the secret itself
# (where the text came from, the text) for log lines, error messages and output since the
# last check. Reports name only the first part, because the second contains the secret.
_recorded: list[tuple[str, str]] = []
_errors: list[BaseException] = []  # asyncext errors created since the last check


def register_secret(*values: str) -> None:
    """Declare secrets that must never appear in logs or asyncext error messages."""
    for number, value in enumerate(values, start=1):
        for form in leak_forms(value):
            if len(form) >= MIN_LENGTH:
                _patterns.setdefault(form, f"registered secret of length {len(value)} (#{number})")


def leak_forms(value: str) -> set[str]:
    """Return the forms in which ``value`` can appear in text: raw, encoded or escaped."""
    return {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }


def find_leaks(text: str) -> list[str]:
    """Return a description of each registered secret form (or Fernet token) in ``text``."""
    found = [description for form, description in _patterns.items() if form in text]
    if FERNET_TOKEN_START in text:
        found.append("a Fernet token (ciphertext)")
    return found


def assert_no_secrets(text: str, where: str = "output") -> None:
    """Fail unless ``text`` is free of registered secrets; for CLI output and the like."""
    leaks = find_leaks(text)
    assert not leaks, f"{where} contains {', '.join(leaks)}"


def store_file_bytes(path: Path) -> dict[str, bytes]:
    """Return the raw bytes of a store's database, -wal and -shm files that exist."""
    files = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            files[candidate.name] = candidate.read_bytes()
    return files


def files_containing(path: Path, secret: str) -> list[str]:
    """Return the names of the store's files whose bytes contain ``secret`` in UTF-8."""
    needle = secret.encode("utf-8")
    return [name for name, data in store_file_bytes(path).items() if needle in data]


# --- recording -----------------------------------------------------------------------------


class _RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        # The message with the traceback of a logged exception, if any.
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        where = f"{record.name} {record.levelname} "
        try:
            _recorded.append((where, self.format(record)))
        except Exception:
            # A record that cannot be formatted is still searched, in its raw parts.
            _recorded.append((where, f"{record.msg!r} {record.args!r}"))


_handler = _RecordingHandler()
_saved_levels: dict[str, int] = {}
_original_error_init = AsyncextError.__init__


def _recording_error_init(self: AsyncextError, *args: Any, **kwargs: Any) -> None:
    # Continue along the subclass's MRO (OSError for PoolTimeout, ValueError for
    # InvalidSystem, ...), exactly as the unpatched lookup would.
    super(AsyncextError, self).__init__(*args, **kwargs)
    _recorded.append((f"{type(self).__name__}: ", str(self)))
    # The cause is attached after the constructor returns, so it is read at the test's end.
    _errors.append(self)


_original_raises_exit = RaisesExc.__exit__


def _recording_raises_exit(self: Any, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
    if exc_value is not None:
        _record_chain(exc_value)
    return _original_raises_exit(self, exc_type, exc_value, traceback)


def _record_chain(error: BaseException) -> None:
    """Record the message of ``error`` and of every exception chained to it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        _recorded.append((f"{type(current).__name__}: ", str(current)))
        pending.append(current.__cause__)
        # A traceback leaves out the context of an error raised with "from None".
        if not current.__suppress_context__:
            pending.append(current.__context__)


def record_output(text: str, source: str) -> None:
    """Record text that a test saw, such as a command's output, for the check at teardown."""
    for line in text.splitlines():
        _recorded.append((f"{source}: ", line))


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_handler)
    for name in CAPTURED_LOGGERS:
        logger = logging.getLogger(name)
        _saved_levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
    AsyncextError.__init__ = _recording_error_init  # type: ignore[method-assign]
    RaisesExc.__exit__ = _recording_raises_exit  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    RaisesExc.__exit__ = _original_raises_exit  # type: ignore[method-assign]
    AsyncextError.__init__ = _original_error_init  # type: ignore[method-assign]
    logging.getLogger().removeHandler(_handler)
    for name, level in _saved_levels.items():
        logging.getLogger(name).setLevel(level)


def take_recorded() -> list[str]:
    """Return and forget the lines recorded since the last call, with the chains of errors."""
    return [where + text for where, text in _take_entries()]


def _take_entries() -> list[tuple[str, str]]:
    errors = _errors[:]
    _errors.clear()
    for error in errors:
        _record_chain(error)
    entries = _recorded[:]
    _recorded.clear()
    return entries


def _leaking_lines(entries: list[tuple[str, str]]) -> list[str]:
    # One search of all the text per secret form is much faster than one per line, and
    # lines are searched one by one only to report a hit.
    if not find_leaks("\n".join(where + text for where, text in entries)):
        return []
    report = []
    for where, text in entries:
        leaks = find_leaks(where + text)
        if leaks:
            # Only where the text came from is shown: the text contains the secret.
            report.append(f"{where}... contains {', '.join(leaks)}")
    return report


@pytest.fixture(autouse=True)
def _no_secret_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if its log lines or error messages contain a registered secret."""
    _take_entries()
    yield
    leaking = _leaking_lines(_take_entries())
    if leaking:
        pytest.fail(
            f"{request.node.nodeid} leaked secrets:\n  " + "\n  ".join(leaking[:10]),
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Lines emitted outside any test, by session fixtures or at interpreter shutdown of the
    # event loop, are checked once at the end.
    leaking = _leaking_lines(_take_entries())
    if leaking:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("secrets leaked outside tests:\n  " + "\n  ".join(leaking[:10]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
