"""Helpers for the command-line tests: run the installed ``asyncext`` script in a subprocess.

This module contains no tests. Every test runs the real console script from the virtual
environment, with ``HOME``, ``ASYNCEXT_STORE`` and ``ASYNCEXT_KEY`` pointing into its own
temporary folder, so nothing outside that folder is read or written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from leakcheck import record_output, register_secret

from asyncext import SystemStore, generate_key

SCRIPT = Path(sys.executable).parent / "asyncext"
RUN_TIMEOUT = 60.0
"""Seconds a command may run before the test fails; the slowest, trust, takes about 1 s."""

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    """Exit status and output of one run of the command."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    """Runs ``asyncext`` against a store in one temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = folder / "store.db"
        self.key = generate_key()
        register_secret(self.key)
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("ASYNCEXT_")
        }
        environment.update(
            HOME=str(folder),
            ASYNCEXT_STORE=str(self.store),
            ASYNCEXT_KEY=self.key,
            PYTHONWARNINGS="error::ResourceWarning",
        )
        self.env = environment

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None
    ) -> Result:
        """Run the command with ``args``; ``env`` adds variables, or removes those set to None."""
        completed = subprocess.run(
            [str(SCRIPT), *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=self.environment(env),
            cwd=self.folder,
            timeout=RUN_TIMEOUT,
            # Without a controlling terminal, no test can prompt on the developer's terminal.
            start_new_session=True,
        )
        result = Result(completed.returncode, completed.stdout, completed.stderr)
        record_result(result, args)
        return result

    def environment(self, changes: dict[str, str | None] | None = None) -> dict[str, str]:
        environment = dict(self.env)
        for name, value in (changes or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return environment

    def in_store(self, operation: Callable[[SystemStore], Awaitable[T]]) -> T:
        """Run ``operation`` on the store in this process, with the same key as the command."""

        async def run() -> T:
            async with SystemStore(self.store, key=self.key) as store:
                return await operation(store)

        return asyncio.run(run())

    def init_store(self) -> None:
        """Create the store in this process, which is faster than running ``init``."""

        async def nothing(store: SystemStore) -> None:
            return None

        self.in_store(nothing)

    def add_local(self, name: str, **fields: Any) -> None:
        """Add a ``local`` system serving a new folder, in this process."""
        folder = self.folder / f"{name}-data"
        folder.mkdir(exist_ok=True)
        fields.setdefault("remote_path", str(folder))

        async def add(store: SystemStore) -> None:
            await store.add(name, "local", **fields)

        self.in_store(add)


SECRET_FLAGS = ("--show-secrets", "--include-secrets")
"""Options with which a command prints secrets because the user asked for them."""

SECRET_COMMANDS = ("keygen",)
"""Commands whose output is a secret: keygen prints a new encryption key."""


def record_result(result: Result, args: tuple[str, ...]) -> None:
    """Hand a command's output to the suite-wide secret check.

    Standard output is left out when the command was asked to print secrets; standard error
    never may contain one.
    """
    asked = bool(args) and args[0] in SECRET_COMMANDS
    if not asked and not any(flag in args for flag in SECRET_FLAGS):
        record_output(result.stdout, f"'asyncext {' '.join(args[:1])}' stdout")
    record_output(result.stderr, f"'asyncext {' '.join(args[:1])}' stderr")


@pytest.fixture(name="cli")
def cli_fixture(tmp_path: Path) -> Cli:
    """A `Cli` whose store exists and is empty."""
    runner = Cli(tmp_path)
    runner.init_store()
    return runner


class TerminalSession:
    """The command running with a pseudo-terminal as standard input, as an operator types.

    The child starts a new session, so it has no controlling terminal and ``getpass`` reads
    from the pseudo-terminal on standard input, switching its echo off there. Standard output
    and standard error go to files, so that a test can wait for a prompt.
    """

    def __init__(self, cli: Cli, *args: str) -> None:
        self.args = args
        self.controller, terminal = pty.openpty()
        self._stdout = cli.folder / "terminal-stdout.txt"
        self._stderr = cli.folder / "terminal-stderr.txt"
        with open(self._stdout, "w") as stdout, open(self._stderr, "w") as stderr:
            self.process = subprocess.Popen(
                [str(SCRIPT), *args],
                stdin=terminal,
                stdout=stdout,
                stderr=stderr,
                env=cli.environment(),
                cwd=cli.folder,
                start_new_session=True,
            )
        os.close(terminal)
        self.echoed = ""

    def __enter__(self) -> TerminalSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # A test that failed half-way must not leave the command running.
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=RUN_TIMEOUT)
        with contextlib.suppress(OSError):
            os.close(self.controller)

    def wait_for_prompt(self, prompt: str) -> None:
        """Wait until the command has written ``prompt`` to standard error."""
        deadline = time.monotonic() + RUN_TIMEOUT
        while prompt not in self._stderr.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no prompt {prompt!r}; got {self._stderr.read_text()!r}")
            self.read_echo(0.05)

    def read_echo(self, timeout: float) -> None:
        """Collect what the terminal echoes back within ``timeout`` seconds."""
        ready, _, _ = select.select([self.controller], [], [], timeout)
        if ready:
            # The read fails with EIO once the child has closed its end.
            with contextlib.suppress(OSError):
                self.echoed += os.read(self.controller, 4096).decode(errors="replace")

    def type(self, text: str) -> None:
        os.write(self.controller, text.encode())

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self) -> Result:
        """Wait for the command to exit and return its result; the echo is in ``echoed``."""
        code = self.process.wait(timeout=RUN_TIMEOUT)
        self.read_echo(0.1)
        result = Result(code, self._stdout.read_text(), self._stderr.read_text())
        record_result(result, self.args)
        record_output(self.echoed, "terminal echo")
        return result
