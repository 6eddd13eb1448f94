"""Finding which missing field made ``add`` or ``update`` fail, so the hint names its flag.

A rejected record raises `InvalidSystem`, whose only structure is the system's name. Instead
of reading the message, the command builds the record again with one candidate fix
applied, such as ``ignore_fingerprint=True``. If validation then passes, or fails with a
different message, that fix addresses the reported problem, and the hint names the flag
that supplies it. Each fix is tried only where it applies: a passphrase only next to a
private key, for example.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._adapters._registry import adapter_for
from .._errors import AsyncextError, InvalidSystem
from ._errors import CommandError

RecordBuilder = Callable[[dict[str, Any]], object]
"""Builds and validates the rejected record with some fields replaced; raises if invalid."""

PROBE_SECRET = "probe"
"""Stand-in for a missing secret while probing; the probed record is never stored."""

FINGERPRINT_HINT = (
    "pass --fingerprint with the server's host key fingerprint (on the server: "
    "ssh-keygen -l -f <host key>.pub), or add the system with --ignore-fingerprint and then "
    "run 'asyncext trust {quoted}', which fetches the key and asks you to confirm it"
)
PINNED_HINT = (
    "the system pins a host key, which --ignore-fingerprint would leave unchecked: pass "
    "--clear fingerprint with it to stop checking host keys, or drop --ignore-fingerprint"
)
PASSPHRASE_HINT = "give the key's passphrase with --passphrase-stdin or --ask-passphrase"
PASSWORD_HINT = "give the password with --password-stdin or --ask-password"


@dataclass(frozen=True)
class Probe:
    """One candidate fix: when it applies, the fields it changes, and what to report.

    ``problem`` is the ``Error:`` line, with ``{name}`` for the system's name. It replaces
    the library's message, whose advice is written for Python callers; None keeps the
    message, which a plug-in may have written. ``hint`` may use ``{quoted}``, the name quoted
    for a shell.
    """

    applies: Callable[[Mapping[str, Any]], bool]
    fix: dict[str, Any]
    problem: str | None
    hint: str


def _is_empty(field: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda record: not record[field]


PROBES = (
    Probe(
        lambda record: not record["fingerprint"] and not record["ignore_fingerprint"],
        {"ignore_fingerprint": True},
        "system {name!r} has no host key fingerprint, so the server's identity cannot be checked",
        FINGERPRINT_HINT,
    ),
    Probe(
        lambda record: bool(record["fingerprint"]) and bool(record["ignore_fingerprint"]),
        {"fingerprint": None},
        "system {name!r} pins a host key fingerprint, which is checked only when host keys "
        "are not ignored",
        PINNED_HINT,
    ),
    Probe(
        lambda record: bool(record["private_key"]) and not record["private_key_password"],
        {"private_key_password": PROBE_SECRET},
        "the private key of system {name!r} is encrypted, but no passphrase was given",
        PASSPHRASE_HINT,
    ),
    Probe(
        lambda record: not record["password"] and not record["private_key"],
        {"password": PROBE_SECRET},
        None,
        PASSWORD_HINT,
    ),
    *(
        Probe(
            _is_empty(field),
            {field: value},
            None,
            f"give it with --{field.replace('_', '-')} {metavar}",
        )
        for field, value, metavar in (
            ("host", "localhost", "HOST"),
            ("username", "probe", "USER"),
            ("remote_path", "/", "PATH"),
        )
    ),
)

PROBED_FIELDS = (
    "fingerprint",
    "ignore_fingerprint",
    "password",
    "private_key",
    "private_key_password",
    "host",
    "username",
    "remote_path",
)
"""The fields that decide which probes apply."""


def invalid_record_error(
    exc: InvalidSystem,
    *,
    name: str,
    build: RecordBuilder,
    record: Mapping[str, Any],
    system_type: str,
    command: str,
    fallback_hint: str | None = None,
) -> CommandError:
    """Return the `CommandError` for a record that ``add`` or ``update`` could not store.

    Args:
        exc: the validation error.
        name: the record's name.
        build: rebuilds the record with some fields replaced.
        record: the rejected record's values of `PROBED_FIELDS`.
        system_type: the record's type.
        command: ``"add"`` or ``"update"``, for the hint.
        fallback_hint: the hint when no probe finds the field and the type is built in.
    """
    for probe in PROBES:
        if probe.applies(record) and _is_fixed_by(build, probe.fix, str(exc)):
            problem = str(exc) if probe.problem is None else probe.problem.format(name=name)
            return CommandError(problem, hint=probe.hint.format(quoted=shlex.quote(name)))
    if _is_plugin_type(system_type):
        return CommandError(str(exc), hint=plugin_hint(system_type, command))
    return CommandError(
        str(exc),
        hint=fallback_hint
        or f"correct the field named above with its flag; 'asyncext {command} --help' lists them",
    )


def plugin_hint(system_type: str, command: str) -> str:
    """Return how to set the fields of a plug-in type, secret options included."""
    load = "asyncext import FILE"
    if command == "update":
        load += " --on-conflict overwrite"
    return (
        f"set the fields and plain options of type {system_type!r} with the flags of "
        f"'asyncext {command} --help'. Secret options (options['secrets']) cannot be given "
        "on the command line: write the system as a JSON record in the format of "
        f"'asyncext export' and load it with '{load}', or set them from Python"
    )


def _is_fixed_by(build: RecordBuilder, fix: dict[str, Any], message: str) -> bool:
    try:
        build(fix)
    except InvalidSystem as exc:
        return str(exc) != message
    except (AsyncextError, CommandError):
        return False
    return True


def _is_plugin_type(system_type: str) -> bool:
    """Return whether an installed package other than asyncext provides ``system_type``."""
    try:
        adapter = adapter_for(system_type)
    except AsyncextError:
        return False
    return not type(adapter).__module__.startswith("asyncext.")
