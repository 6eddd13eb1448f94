"""`ExternalSystem`, the record of one external system, and how a client is opened for it."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import TracebackType
from typing import Any, NoReturn, Protocol

import anyio

from ._adapters._base import Adapter
from ._adapters._registry import adapter_for
from ._errors import AsyncextError, ConnectionFailed, InvalidSystem, UnknownSystemType
from ._pool import validate_overrides
from ._secrets import MASK, OPTION_SECRETS, Secret, secret_forms, wrap_option_secrets
from ._tasks import CLEANUP_TIMEOUT, run_shielded
from ._uri import format_system_uri, parse_system_uri
from ._validation import (
    check_encodable,
    validate_name,
    validate_options,
    validate_port,
    validate_tenants,
    validate_text_field,
)

logger = logging.getLogger("asyncext.system")

SECRET_FIELDS = ("password", "private_key", "private_key_password")


class ClientSource(Protocol):
    """Hands out clients for the systems of one store; implemented by the store's pools."""

    def lease(self, system: ExternalSystem) -> AbstractAsyncContextManager[Any]: ...


@dataclass(frozen=True, kw_only=True)
class ExternalSystem:
    """One external system: where it is, how to log in, and how to check its identity.

    Records returned by a `SystemStore` carry its ``id``, ``revision`` and timestamps, and
    their `client` is pooled when the store has pooling on. A record built by hand is
    validated on construction and its clients are never pooled. Plain strings given for
    ``password``, ``private_key`` or ``private_key_password`` are wrapped in `Secret`.

    Options that are secrets, such as an API token, go in ``options["secrets"]``, a mapping
    from a name to a string. They are wrapped in `Secret`, encrypted at rest and masked in
    ``repr``, and URIs and exports leave them out unless secrets are requested. Every other
    option is plain JSON, whatever its name.
    """

    id: int | None = None
    name: str
    system_type: str
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: Secret | None = None
    private_key: Secret | None = None
    private_key_password: Secret | None = None
    fingerprint: str | None = None
    ignore_fingerprint: bool = False
    remote_path: str | None = None
    tenants: frozenset[str] = frozenset()
    options: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    # Set by the store on the records it returns. dataclasses.replace() leaves it unset, so an
    # edited copy never borrows a pooled client built from the stored credentials.
    _client_source: ClientSource | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in SECRET_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, Secret(value))

        tenants: object = self.tenants
        if isinstance(tenants, str) or not isinstance(tenants, Iterable):
            raise InvalidSystem(
                f"system {self.name!r}: tenants must be a collection of strings such as "
                f"['acme'], not {tenants!r}",
                system=self.name if isinstance(self.name, str) else None,
            )
        object.__setattr__(self, "tenants", frozenset(tenants))

        if self.options is None:
            object.__setattr__(self, "options", {})
        elif isinstance(self.options, dict) and OPTION_SECRETS in self.options:
            name = self.name if isinstance(self.name, str) else "?"
            object.__setattr__(self, "options", wrap_option_secrets(name, self.options))
        validate_system(self)

        # A private copy, so that the caller's later edits cannot change a validated record.
        object.__setattr__(self, "options", copy.deepcopy(self.options))

    def __hash__(self) -> int:
        # options is a dict, so the generated hash over all fields would fail.
        return hash((self.name, self.system_type, self.revision))

    @classmethod
    def from_uri(cls, uri: str, name: str) -> ExternalSystem:
        """Build an unsaved record from a URI such as ``sftp://user:p%40ss@host:2222/srv/data``.

        The scheme is the system type, the user information contains the user name and the
        password, and the path is ``remote_path``. Query parameters carry the other fields:
        ``fingerprint``, ``ignore_fingerprint=true``, one ``tenant`` per tenant, ``private_key``,
        ``private_key_password``, ``remote_path`` (for a relative path), ``option.NAME=JSON``
        for each option and ``secret.NAME=TEXT`` for each secret option. Every component is
        percent-decoded as UTF-8 by RFC 3986 rules, so ``+`` is a plus sign, not a space.

        Args:
            uri: the URI; reserved characters in names and secrets must be percent-encoded.
            name: the name of the new record.

        Raises:
            InvalidSystem: the URI is malformed or the record is invalid. The message names
                the part at fault and never contains the password or another secret.
            UnknownSystemType: no installed adapter handles the URI's scheme.
        """
        return parse_system_uri(cls, uri, name=name)

    def to_uri(self, *, include_secrets: bool = False) -> str:
        """Return this system as a URI that `from_uri` reads back into an equal record.

        Without ``include_secrets`` the password, private key, key passphrase and secret
        options are left out entirely, not masked, so the URI reads back as a record without
        them. The store's ``id``, ``revision`` and timestamps are not part of the URI.

        Raises:
            InvalidSystem: the system type is not a valid URI scheme (letters, digits, ``+``,
                ``-`` and ``.``, starting with a letter).
            EncryptionKeyError: ``include_secrets`` is true and a secret cannot be decrypted.
        """
        return format_system_uri(self, include_secrets=include_secrets)

    def client(self) -> AbstractAsyncContextManager[Any]:
        """Return an async context manager that yields a ready client for this system.

        Pooled when the store that returned this record has pooling on. Otherwise a client is
        opened on entry and destroyed on exit, also when the body raises or is cancelled.

        Raises:
            ConnectionFailed: the client could not be opened; the cause is chained.
            EncryptionKeyError: a secret needed to connect cannot be decrypted.
        """
        # Decrypting first makes a missing or wrong key an EncryptionKeyError naming the
        # system for every adapter, pooled or not, before any connection is attempted.
        reveal_secrets(self)
        if self._client_source is not None:
            return self._client_source.lease(self)
        return UnpooledClient(self)

    async def test_connection(self, timeout: float = 10.0) -> ConnectionReport:
        """Open a fresh client, check it and close it, bypassing any pool.

        Never raises for a failure to connect: the report has ``ok=False`` and the reason.

        Args:
            timeout: seconds for the whole test, connection and cleanup included.
        """
        started = time.monotonic()
        error: Exception | None = None
        try:
            # As in client(): a secret that cannot be decrypted fails the test even for an
            # adapter that would not use it, because client() would fail the same way.
            reveal_secrets(self)
            adapter = adapter_of(self)
            with anyio.move_on_after(timeout) as scope:
                detail = await adapter.test_connection(self)
            if scope.cancelled_caught:
                where = f" connecting to {self.host}:{self.port or 'default port'}"
                detail = (
                    f"system {self.name!r}: timed out after {timeout:g} s"
                    f"{where if self.host else ''}; check that the server answers, or "
                    "allow a longer timeout"
                )
                error = ConnectionTestTimeout(detail)
        except Exception as exc:
            error = exc
            detail = redact_secrets(describe_error(exc), self)
        elapsed = time.monotonic() - started
        ok = error is None

        logger.info(
            "connection test of system %r: %s in %.3f s (%s)",
            self.name,
            "ok" if ok else "failed",
            elapsed,
            detail,
        )
        return ConnectionReport(
            system=self.name, ok=ok, elapsed=elapsed, detail=detail, error=error
        )


SYSTEM_FIELDS = tuple(item.name for item in fields(ExternalSystem) if not item.name.startswith("_"))
"""The public fields of `ExternalSystem`, in the order of its definition."""

METADATA_FIELDS = ("id", "revision", "created_at", "updated_at")
"""The fields that the store sets; ``add`` and ``update`` take the others."""


@dataclass(frozen=True)
class ConnectionReport:
    """Result of `ExternalSystem.test_connection`."""

    system: str
    """Name of the tested system."""
    ok: bool
    elapsed: float
    """Seconds the test took."""
    detail: str
    """The adapter's detail line on success, or the reason for the failure."""
    error: Exception | None = field(default=None, repr=False, compare=False)
    """The exception that made the test fail, for callers that react to its type.

    A `ConnectionTestTimeout` when the test's own timeout passed. Its message may quote a
    secret that ``detail`` masks, so show ``detail`` rather than this.
    """


class ConnectionTestTimeout(TimeoutError):
    """The connection test did not finish within its ``timeout``."""


def validate_system(system: ExternalSystem) -> None:
    """Run the checks shared by every way a record enters, then the adapter's own `validate`.

    Raises:
        InvalidSystem: a field is invalid; the message names the system, field and value.
        UnknownSystemType: no installed adapter handles ``system.system_type``.
    """
    validate_name(system.name)
    name = system.name

    if not isinstance(system.system_type, str) or not system.system_type:
        raise InvalidSystem(
            f"system {name!r}: system_type must be a non-empty string such as 'sftp'",
            system=name,
        )
    validate_text_field(name, "host", system.host)
    validate_port(name, system.port)
    validate_text_field(name, "username", system.username)
    validate_text_field(name, "fingerprint", system.fingerprint)
    validate_text_field(name, "remote_path", system.remote_path)
    for secret_field in SECRET_FIELDS:
        value = getattr(system, secret_field)
        if value is not None and not isinstance(value, Secret):
            raise InvalidSystem(
                f"system {name!r}: {secret_field} must be a str or Secret, "
                f"not {type(value).__name__}",
                system=name,
            )
        if value is not None:
            _check_secret_text(name, secret_field, value)
    if not isinstance(system.ignore_fingerprint, bool):
        raise InvalidSystem(
            f"system {name!r}: ignore_fingerprint must be True or False, "
            f"not {system.ignore_fingerprint!r}",
            system=name,
        )
    validate_tenants(name, system.tenants)
    # wrap_option_secrets checked the types of the secret options on construction, and
    # their text is checked here; the rest is JSON.
    options = system.options
    if isinstance(options, dict) and OPTION_SECRETS in options:
        for key, secret in options[OPTION_SECRETS].items():
            where = f"options[{OPTION_SECRETS!r}][{key!r}]"
            check_encodable(name, f"the name of {where}", key)
            _check_secret_text(name, where, secret)
        options = {key: value for key, value in options.items() if key != OPTION_SECRETS}
    if isinstance(options, dict):
        for key, value in options.items():
            if isinstance(value, Secret):
                raise InvalidSystem(
                    f"system {name!r}: option {key!r} is a Secret; put secret options in "
                    f"options[{OPTION_SECRETS!r}], for example {{{OPTION_SECRETS!r}: "
                    f"{{{key!r}: ...}}}}",
                    system=name,
                )
    validate_options(name, options)
    _validate_pool_overrides(name, options.get("pool"))

    adapter_of(system).validate(system)


def _check_secret_text(name: str, where: str, secret: Secret) -> None:
    """Raise `InvalidSystem` if a secret given as text cannot be stored as UTF-8.

    A secret read from a store was checked when it was written, and is not decrypted here.
    """
    value = secret._value
    if value is not None:
        check_encodable(name, where, value)


def _validate_pool_overrides(name: str, overrides: object) -> None:
    """Raise `InvalidSystem` unless ``options["pool"]`` contains valid `PoolOptions` fields.

    Each value is checked on its own. Whether it fits the store's options, such as
    ``min_size`` against the store's ``max_size``, is checked when the pool is built.
    """
    if overrides is None:
        return
    try:
        validate_overrides(overrides)
    except ValueError as exc:
        raise InvalidSystem(
            f"system {name!r}: options['pool'] is invalid: {exc}", system=name
        ) from None


def reveal_secrets(system: ExternalSystem) -> None:
    """Decrypt every secret of ``system``, so a key problem shows before connecting.

    Raises:
        EncryptionKeyError: a secret cannot be decrypted; the message names the system.
    """
    for secret_field in SECRET_FIELDS:
        secret = getattr(system, secret_field)
        if secret is not None:
            secret.reveal()
    option_secrets = system.options.get(OPTION_SECRETS)
    if isinstance(option_secrets, dict):
        for secret in option_secrets.values():
            secret.reveal()


MIN_REDACTED_LENGTH = 4
"""Secrets shorter than this are not masked in messages.

Masking every "a" or "1" in a message would make it unreadable and would reveal the secret's
value by where the asterisks appear.
"""


def redact_secrets(text: str, system: ExternalSystem) -> str:
    """Return ``text`` with each of the system's own secrets replaced by asterisks.

    This catches credentials quoted by foreign errors, such as a third-party adapter's
    exception that repeats a token. The plain and the percent-encoded forms are masked.
    Secrets that cannot be decrypted, or that are shorter than `MIN_REDACTED_LENGTH`, are
    left alone.
    """
    values: list[str] = []
    secrets: list[Secret] = [
        value for value in (getattr(system, name) for name in SECRET_FIELDS) if value is not None
    ]
    option_secrets = system.options.get(OPTION_SECRETS)
    if isinstance(option_secrets, dict):
        secrets.extend(value for value in option_secrets.values() if isinstance(value, Secret))
    for secret in secrets:
        try:
            values.append(secret.reveal())
        except AsyncextError:
            continue

    forms = {
        form
        for value in values
        if len(value) >= MIN_REDACTED_LENGTH
        for form in secret_forms(value)
    }
    # Longest first, so that a form containing another is masked whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def error_chain_text(exc: BaseException) -> str:
    """Return the messages and arguments of ``exc`` and every exception chained to it."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(describe_error(current))
        parts.append(repr(current.args))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def describe_error(exc: BaseException) -> str:
    """Return ``Type: message`` for an exception, or the message alone for asyncext errors."""
    if isinstance(exc, AsyncextError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def adapter_of(system: ExternalSystem) -> Adapter[Any]:
    """Return the adapter of the system's type.

    Raises:
        UnknownSystemType: no installed adapter handles the type; the message names the
            system, which `adapter_for` alone cannot.
    """
    try:
        return adapter_for(system.system_type)
    except UnknownSystemType as exc:
        raise exc.about(system.name, f"system {system.name!r}") from None


async def open_client(system: ExternalSystem) -> Any:
    """Open a client through the system's adapter, translating foreign errors.

    Raises:
        ConnectionFailed: the adapter failed; the original exception is chained.
        AsyncextError: raised by the adapter itself (`HostKeyMismatch`, `EncryptionKeyError`,
            ...), passed through unchanged.
    """
    adapter = adapter_of(system)
    try:
        return await adapter.get_client(system)
    except AsyncextError:
        raise
    except Exception as exc:
        # The adapter may come from another package, and its error may quote a credential.
        reason = redact_secrets(describe_error(exc), system)
        error = ConnectionFailed(
            f"cannot connect to system {system.name!r} ({system.system_type}): {reason}; "
            "check its host, port and credentials",
            system=system.name,
        )
        raise_chained(error, exc, system)


async def destroy_client(system: ExternalSystem, client: Any) -> None:
    """Destroy a client, shielded from cancellation and bounded by `CLEANUP_TIMEOUT`.

    A failure is logged, not raised, because the caller is already done with the client and
    may be handling another error.
    """
    adapter = adapter_of(system)
    try:
        await run_shielded(lambda: adapter.destroy_client(client), timeout=CLEANUP_TIMEOUT)
    except Exception as exc:
        logger.warning(
            "destroying a client of system %r failed: %s", system.name, describe_error(exc)
        )


class UnpooledClient:
    """Async context manager that opens a client on entry and destroys it on exit."""

    __slots__ = ("_client", "_system")

    def __init__(self, system: ExternalSystem) -> None:
        self._system = system
        self._client: Any = None

    async def __aenter__(self) -> Any:
        self._client = await open_client(self._system)
        return self._client

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        failure = None if exc is None else connection_failure(self._system, client, exc)
        await destroy_client(self._system, client)
        if failure is not None:
            assert exc is not None
            raise_chained(failure, exc, self._system)


def connection_failure(
    system: ExternalSystem, client: Any, error: BaseException
) -> ConnectionFailed | None:
    """Return the `ConnectionFailed` for an error of a ``client()`` block that the adapter
    reports as a failure of ``client``'s connection, or None to let the error pass.

    Call it before the client is released, because destroying the client closes its
    connection too.
    """
    if isinstance(error, AsyncextError) or not isinstance(error, Exception):
        return None
    if not adapter_of(system).is_connection_error(client, error):
        return None

    reason = redact_secrets(describe_error(error), system)
    return ConnectionFailed(
        f"system {system.name!r}: the connection failed inside the client() block: "
        f"{reason}; retry the operation in a new client() block, which gets a new connection",
        system=system.name,
    )


def raise_chained(error: AsyncextError, cause: BaseException, system: ExternalSystem) -> NoReturn:
    """Raise ``error`` from ``cause``, or from None when the cause's text contains a secret
    of ``system``, because a traceback would print the chained error, secret and all."""
    chain = error_chain_text(cause)
    if redact_secrets(chain, system) != chain:
        raise error from None
    raise error from cause
