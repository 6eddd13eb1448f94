"""A suite-wide check that no test secret reaches a log line or an asyncext error message.

Loaded as a pytest plugin by ``tests/conftest.py``. For the whole run it sets the ``asyncext``
and ``aiosqlite`` loggers to DEBUG and records every line they emit, and it records the message
of every `AsyncextError` created. After each test the recorded text is searched for Fernet
tokens and for every registered secret in the forms it can leak in: as is, percent-encoded,
and JSON- or repr-escaped. A hit fails that test at teardown, naming the logger of the line.

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

from asyncext import AsyncextError

MIN_LENGTH = 6

CAPTURED_LOGGERS = ("asyncext", "aiosqlite")
"""asyncext's own loggers, and aiosqlite's, which logs every SQL statement with its parameters."""

FERNET_TOKEN_START = "gAAAAA"
"""How every Fernet token starts in base64 (version byte 0x80, then the timestamp's high bytes)."""

_patterns: dict[str, str] = {}  # form searched for -> description, never the secret itself
_recorded: list[str] = []  # log lines and error messages since the last check


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
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _recorded.append(self.format(record))
        except Exception:
            # A record that cannot be formatted is still searched, in its raw parts.
            _recorded.append(f"{record.name} {record.msg!r} {record.args!r}")


_handler = _RecordingHandler()
_saved_levels: dict[str, int] = {}
_original_error_init = AsyncextError.__init__


def _recording_error_init(self: AsyncextError, *args: Any, **kwargs: Any) -> None:
    # Continue along the subclass's MRO (OSError for PoolTimeout, ValueError for
    # InvalidSystem, ...), exactly as the unpatched lookup would.
    super(AsyncextError, self).__init__(*args, **kwargs)
    _recorded.append(f"{type(self).__name__}: {self}")


def pytest_configure(config: pytest.Config) -> None:
    for name in CAPTURED_LOGGERS:
        logger = logging.getLogger(name)
        _saved_levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_handler)
    AsyncextError.__init__ = _recording_error_init  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    AsyncextError.__init__ = _original_error_init  # type: ignore[method-assign]
    for name, level in _saved_levels.items():
        logger = logging.getLogger(name)
        logger.removeHandler(_handler)
        logger.setLevel(level)


def take_recorded() -> list[str]:
    """Return and forget the lines recorded since the last call."""
    lines = _recorded[:]
    _recorded.clear()
    return lines


def _leaking_lines(lines: list[str]) -> list[str]:
    report = []
    for line in lines:
        leaks = find_leaks(line)
        if leaks:
            # The line itself is not shown: it contains the secret.
            shown = line.split(" ", 2)[:2]
            report.append(f"{' '.join(shown)} ... contains {', '.join(leaks)}")
    return report


@pytest.fixture(autouse=True)
def _no_secret_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if its log lines or error messages contain a registered secret."""
    take_recorded()
    yield
    leaking = _leaking_lines(take_recorded())
    if leaking:
        pytest.fail(
            f"{request.node.nodeid} leaked secrets:\n  " + "\n  ".join(leaking[:10]),
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Lines emitted outside any test, by session fixtures or at interpreter shutdown of the
    # event loop, are checked once at the end.
    leaking = _leaking_lines(take_recorded())
    if leaking:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("secrets leaked outside tests:\n  " + "\n  ".join(leaking[:10]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
