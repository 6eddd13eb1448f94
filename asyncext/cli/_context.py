"""What every command receives: the store location, the standard streams and output helpers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from .._crypto import KEY_ENVIRONMENT_VARIABLE
from .._errors import EncryptionKeyError
from .._store._store import SystemStore
from ._errors import CommandError, without_advice

STORE_ENVIRONMENT_VARIABLE = "ASYNCEXT_STORE"
DEFAULT_STORE = "asyncext.db"

T = TypeVar("T")


def run_interruptible(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` in a new event loop; Ctrl-C cancels it, then raises KeyboardInterrupt.

    Python 3.11's ``asyncio.run`` cancels the main task on SIGINT, so that cleanup such as
    closing connections runs before the program exits. On 3.10 the KeyboardInterrupt lands
    in whatever callback runs at that moment, and the cleanup of the tasks it leaves behind
    can wait for their own timeouts. The handler below gives both versions the 3.11
    behaviour.
    """

    async def cancellable() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        interrupted = False

        def interrupt() -> None:
            nonlocal interrupted
            interrupted = True
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, interrupt)
        except (NotImplementedError, RuntimeError):
            # No signal handlers on this platform or outside the main thread.
            return await main()
        try:
            return await main()
        except asyncio.CancelledError:
            if interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(cancellable())


def default_store_path() -> str:
    """Return ``$ASYNCEXT_STORE``, or ``asyncext.db`` in the working directory when unset."""
    return os.environ.get(STORE_ENVIRONMENT_VARIABLE) or DEFAULT_STORE


@dataclass
class Context:
    """The store path and streams of one command run.

    Results go to ``stdout``; prompts, warnings and errors go to ``stderr``, so that the
    output of ``--json`` and ``keygen`` can be piped or captured unchanged.
    """

    store_path: str
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    def require_store(self) -> None:
        """Raise `CommandError` unless the store file exists and is not empty.

        Commands other than ``init`` refuse a missing or empty file, so that a mistyped path
        does not leave a new store behind.
        """
        try:
            size = os.path.getsize(self.store_path)
        except OSError:
            size = None
        if size:
            return

        state = "not found" if size is None else "is an empty file"
        raise CommandError(
            f"store {self.store_path!r} {state}",
            hint="create it with 'asyncext init', or point --store or "
            f"{STORE_ENVIRONMENT_VARIABLE} at an existing store",
        )

    def open_store(self, *, create: bool = False) -> SystemStore:
        """Return an unopened store for `store_path`, keyed from ``ASYNCEXT_KEY``.

        Args:
            create: allow a missing file to be created.

        Raises:
            CommandError: the file is missing and ``create`` is false, or ``ASYNCEXT_KEY``
                is set but holds no valid Fernet key.
        """
        if not create:
            self.require_store()
        try:
            return SystemStore(self.store_path)
        except EncryptionKeyError as exc:
            # The constructor reads only the key setting, so the variable is at fault.
            raise CommandError(
                f"cannot use the encryption key in {KEY_ENVIRONMENT_VARIABLE}: "
                f"{without_advice(exc)}",
                hint=f"set {KEY_ENVIRONMENT_VARIABLE} to a key made by 'asyncext keygen' (during "
                "a key rotation, a comma-separated list of keys, newest first)",
            ) from exc

    def run(self, operation: Callable[[SystemStore], Awaitable[T]]) -> T:
        """Open the existing store, run ``operation`` on it in a new event loop, and close it.

        Commands read standard input and prompts before calling this. Inside the event loop,
        Python 3.11+ turns Ctrl-C into a cancellation of the main task, which a blocking read
        does not see, so the command would go on with whatever the read returned.
        """

        async def run_in_store() -> T:
            async with self.open_store() as store:
                return await operation(store)

        return run_interruptible(run_in_store)

    def has_key(self) -> bool:
        """Return whether ``ASYNCEXT_KEY`` is set, so that new secrets are encrypted."""
        return bool(os.environ.get(KEY_ENVIRONMENT_VARIABLE, "").strip(" ,"))

    def write(self, text: str = "") -> None:
        """Write one line of result to standard output."""
        self.stdout.write(text + "\n")

    def write_json(self, value: Any) -> None:
        """Write ``value`` as indented JSON, keys in the order given, to standard output."""
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")

    def warn(self, message: str) -> None:
        """Write a ``Warning:`` line to standard error."""
        self.stderr.write(f"Warning: {message}\n")
