"""The exception tree of asyncext.

Every error derives from `AsyncextError`. Foreign exceptions (sqlite3, OSError, asyncssh) are
translated where they enter the library and chained with ``raise ... from exc``, so callers catch
one family and still see the original cause. Messages name the system or pool and the value at
fault, say what to do next, and never contain a secret.
"""

from __future__ import annotations


class AsyncextError(Exception):
    """Base class of every error raised by asyncext."""


class StoreError(AsyncextError):
    """Raised when a store file cannot be opened or used.

    The file is unreadable, not an SQLite database, or written by a newer version of asyncext.
    The file is left untouched.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class SystemNotFound(AsyncextError, LookupError):
    """Raised when no system with the requested name is visible in the store or tenant view."""

    def __init__(self, message: str, *, system: str) -> None:
        super().__init__(message)
        self.system = system


class DuplicateSystem(AsyncextError):
    """Raised when a system is added under a name that the store already contains."""

    def __init__(self, message: str, *, system: str) -> None:
        super().__init__(message)
        self.system = system


class InvalidSystem(AsyncextError, ValueError):
    """Raised when a system record fails validation; nothing is written to the store."""

    def __init__(self, message: str, *, system: str | None = None) -> None:
        super().__init__(message)
        self.system = system


class UnknownSystemType(InvalidSystem):
    """Raised when no installed adapter handles the requested ``system_type``."""

    def __init__(
        self,
        message: str,
        *,
        system_type: str,
        installed: tuple[str, ...],
        system: str | None = None,
    ) -> None:
        super().__init__(message, system=system)
        self.system_type = system_type
        self.installed = installed

    def about(self, system: str, context: str) -> UnknownSystemType:
        """Return a copy whose message starts with ``context`` and that names ``system``."""
        return UnknownSystemType(
            f"{context}: {self}",
            system_type=self.system_type,
            installed=self.installed,
            system=system,
        )


class ConnectionFailed(AsyncextError):
    """Raised when a client for a system cannot be created.

    The original exception, if any, is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, system: str | None = None) -> None:
        super().__init__(message)
        self.system = system


class HostKeyMismatch(ConnectionFailed):
    """Raised when a server offers a host key that does not match the pinned fingerprint.

    The connection is dropped before any credential is sent.
    """

    def __init__(
        self,
        message: str,
        *,
        system: str | None = None,
        expected: str,
        offered: str,
        key_type: str,
    ) -> None:
        super().__init__(message, system=system)
        self.expected = expected
        self.offered = offered
        self.key_type = key_type


class PathOutsideRoot(AsyncextError, PermissionError):
    """Raised when a file path resolves outside the root folder that confines a file client."""

    def __init__(self, message: str, *, path: str, root: str) -> None:
        super().__init__(message)
        self.path = path
        self.root = root


class PoolTimeout(AsyncextError, TimeoutError):
    """Raised when no client could be acquired from a pool within ``acquire_timeout``."""


class PoolClosed(AsyncextError):
    """Raised when a client is requested from a pool that is closed or closing."""


class EncryptionKeyError(AsyncextError):
    """Raised when a secret cannot be encrypted or decrypted because the key is missing or wrong."""

    def __init__(self, message: str, *, system: str | None = None) -> None:
        super().__init__(message)
        self.system = system
