"""Commands that reach the remote side: ``test`` and ``trust``."""

from __future__ import annotations

import argparse
import shlex
import time

from .._adapters._registry import adapter_for
from .._adapters._ssh import SSHAdapterBase
from .._adapters._ssh_connect import scan_host_key
from .._adapters._ssh_settings import DEFAULT_PORT
from .._errors import ConnectionFailed, EncryptionKeyError, HostKeyMismatch, UnknownSystemType
from .._store._store import SystemStore
from .._system import ConnectionReport, ConnectionTestTimeout, ExternalSystem
from ._context import Context
from ._errors import (
    EXIT_FAILED,
    CommandError,
    fields_hint,
    key_hint,
    trust_hint,
    unknown_type_hint,
)
from ._input import confirm
from ._output import format_address, format_report, report_to_json

TestOutcome = tuple[ConnectionReport, Exception | None]
"""A connection report and the exception behind a failure, or None on success."""

TIMER_MARGIN = 0.01
"""Seconds by which an event-loop timer may fire before its deadline."""


def test(args: argparse.Namespace, context: Context) -> int:
    """Test the connection to a system; exit 0 when it works and 1 when it does not."""
    name: str = args.name
    timeout: float = args.timeout

    async def run_test(store: SystemStore) -> tuple[ExternalSystem, TestOutcome]:
        system = await store.get(name)
        return system, await run_connection_test(system, timeout)

    system, (report, failure) = context.run(run_test)
    if args.json:
        context.write_json(report_to_json(report))
    else:
        for line in format_report(report):
            context.write(line)
    if report.ok:
        return 0

    hint = test_failure_hint(system, failure, timeout)
    context.stderr.write(f"Error: connection test of system {name!r} failed\nHint: {hint}\n")
    return EXIT_FAILED


async def run_connection_test(system: ExternalSystem, timeout: float) -> TestOutcome:
    """Test the connection and return the report with the exception behind a failure."""
    report = await system.test_connection(timeout=timeout)
    return report, report.error


def test_failure_hint(system: ExternalSystem, failure: Exception | None, timeout: float) -> str:
    """Return the hint for a failed test, chosen by the class of the failure."""
    if isinstance(failure, UnknownSystemType):
        return unknown_type_hint(failure)
    if isinstance(failure, EncryptionKeyError):
        return key_hint(failure)
    if isinstance(failure, HostKeyMismatch):
        return trust_hint(system.name)
    if (
        isinstance(failure, ConnectionFailed)
        and isinstance(adapter_for(system.system_type), SSHAdapterBase)
        and system.password is None
        and system.private_key is None
    ):
        quoted = shlex.quote(system.name)
        return (
            f"give it a password with 'asyncext update {quoted} --password-stdin', or a "
            f"private key with 'asyncext update {quoted} --private-key-file PATH'"
        )
    if isinstance(failure, TimeoutError):
        budget = f" within {timeout:g} s" if isinstance(failure, ConnectionTestTimeout) else ""
        if not system.host:
            return f"the test did not finish{budget}; allow more time with --timeout SECONDS"
        where = format_address(system.host, system.port)
        return (
            f"no answer came{budget}: check that {where} can be reached from this machine "
            "(host, port, firewall, VPN), or allow more time with --timeout SECONDS"
        )
    return fields_hint(system.name)


def trust(args: argparse.Namespace, context: Context) -> int:
    """Fetch the host key fingerprint, confirm it, then pin it and clear ignore_fingerprint."""
    name: str = args.name

    # Three steps, so that the confirmation reads the terminal outside any event loop, where
    # Ctrl-C interrupts the read (see Context.run).
    system, fingerprint = context.run(lambda store: _scan(store, name, args.timeout))
    where = format_address(system.host, system.port or DEFAULT_PORT)
    context.write(f"Host key of system {name!r} at {where}: {fingerprint}")

    if system.fingerprint == fingerprint and not system.ignore_fingerprint:
        context.write(f"System {name!r} already trusts this host key; nothing changed.")
        return 0
    if system.fingerprint is not None and system.fingerprint != fingerprint:
        context.warn(
            f"system {name!r} currently pins {system.fingerprint}; trusting replaces it. "
            "Accept only if the server's key was changed on purpose"
        )
    if not args.yes:
        accepted = confirm(
            "Trust this host key? Compare it with 'ssh-keygen -lf' on the server first.",
            stdin=context.stdin,
            stderr=context.stderr,
        )
        if not accepted:
            raise CommandError(
                f"host key {fingerprint} of system {name!r} was not accepted; nothing changed",
                hint="run the command again and answer y once the fingerprint is verified",
            )

    async def pin(store: SystemStore) -> ExternalSystem:
        return await store.update(name, fingerprint=fingerprint, ignore_fingerprint=False)

    updated = context.run(pin)
    context.write(
        f"Trusted the host key of system {name!r}: only {fingerprint} is accepted from now "
        f"on (revision {updated.revision})."
    )
    return 0


async def _scan(store: SystemStore, name: str, timeout: float) -> tuple[ExternalSystem, str]:
    """Return the system and the fingerprint of the host key its server offers now.

    Raises:
        CommandError: the system's type checks no host key, or its server cannot be reached
            in time.
    """
    system = await store.get(name)
    if not isinstance(adapter_for(system.system_type), SSHAdapterBase):
        raise CommandError(
            f"system {name!r} is of type {system.system_type!r}, which checks no SSH host key",
            hint="trust applies to systems of type ssh and sftp",
        )
    assert system.host is not None  # the ssh and sftp adapters require one
    port = system.port or DEFAULT_PORT
    started = time.monotonic()
    try:
        fingerprint = await scan_host_key(system.host, port, timeout=timeout)
    except ConnectionFailed as exc:
        # scan_host_key gives up at its deadline, so a failure at the deadline is a timeout;
        # the margin covers event-loop timers that fire a little early.
        timed_out = time.monotonic() - started >= timeout - TIMER_MARGIN
        where = format_address(system.host, port)
        if timed_out:
            # The message names the phase that timed out and what to check for it.
            hint = f"allow more time with --timeout SECONDS if {where} is slow to answer"
        else:
            quoted = shlex.quote(name)
            hint = (
                f"check that an SSH server listens on {where}; correct the host or port with "
                f"'asyncext update {quoted} --host HOST --port PORT'"
            )
        raise CommandError(
            f"cannot fetch the host key of system {name!r}: {exc}", hint=hint
        ) from exc
    return system, fingerprint
