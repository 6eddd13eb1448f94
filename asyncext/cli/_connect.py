"""Commands that reach the remote side: ``test`` and ``trust``."""

from __future__ import annotations

import argparse
import shlex

from .._adapters._ssh_connect import scan_host_key
from .._adapters._ssh_settings import DEFAULT_PORT
from .._errors import ConnectionFailed
from .._store._store import SystemStore
from .._system import ConnectionReport, ExternalSystem
from ._context import Context
from ._errors import EXIT_FAILED, CommandError, command_error_from
from ._input import confirm
from ._output import format_address, format_report, report_to_json


def test(args: argparse.Namespace, context: Context) -> int:
    """Test the connection to a system; exit 0 when it works and 1 when it does not."""
    name: str = args.name

    async def run_test(store: SystemStore) -> ConnectionReport:
        system = await store.get(name)
        return await system.test_connection(timeout=args.timeout)

    report = context.run(run_test)
    if args.json:
        context.write_json(report_to_json(report))
    else:
        for line in format_report(report):
            context.write(line)
    if report.ok:
        return 0

    quoted = shlex.quote(name)
    hint = (
        f"check the system's fields with 'asyncext show {quoted}' and correct them with "
        f"'asyncext update {quoted}'"
    )
    if "host key" in report.detail:
        hint = (
            f"if the server's host key was changed on purpose, pin the new one with "
            f"'asyncext trust {quoted}'; otherwise find out why it changed before connecting"
        )
    context.stderr.write(f"Error: connection test of system {name!r} failed\nHint: {hint}\n")
    return EXIT_FAILED


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
        CommandError: the system has no host, or its server cannot be reached in time.
    """
    system = await store.get(name)
    if not system.host:
        raise CommandError(
            f"system {name!r} ({system.system_type}) has no host, so it has no host key to trust",
            hint="trust applies to ssh and sftp systems; set the host with "
            f"'asyncext update {shlex.quote(name)} --host HOST'",
        )
    try:
        fingerprint = await scan_host_key(system.host, system.port or DEFAULT_PORT, timeout=timeout)
    except ConnectionFailed as exc:
        translated = command_error_from(exc)
        raise CommandError(
            f"cannot fetch the host key of system {name!r}: {translated.message}",
            hint=translated.hint,
        ) from exc
    return system, fingerprint
