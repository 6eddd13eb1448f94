"""``add NAME --uri URI``: a system read from a URI that carries no secret, completed by flags.

A secret in a URI on the command line would end up in shell history and in the process
list, so a URI with a password or a secret query parameter is rejected. The secrets, and
fields such as ``--ignore-fingerprint``, come from flags instead. They are merged into the URI
before `ExternalSystem.from_uri` reads it, because that constructor validates the whole
record: an ``sftp`` URI without a fingerprint is only valid together with the flag.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .._system import METADATA_FIELDS, SYSTEM_FIELDS, ExternalSystem
from ._errors import UsageError

SECRET_PARAMETERS = ("private_key", "private_key_password")
SECRET_OPTION_PREFIX = "secret."

URI_FIELDS = tuple(
    name for name in SYSTEM_FIELDS if name not in {"name", "system_type", *METADATA_FIELDS}
)
"""Fields of the record read from the URI that `add` stores."""

FIELDS_ONLY_IN_URI = {
    "system_type": "--type",
    "host": "--host",
    "port": "--port",
    "username": "--username",
    "remote_path": "--remote-path",
}
"""Fields that a URI always sets, so the flags for them cannot be combined with --uri."""

PASSWORD_HINT = (
    "remove the password from the URI and pipe it in with --password-stdin (or prompt for it "
    "with --ask-password); also remove the command from your shell history"
)


def check_uri_has_no_secret(uri: str, name: str) -> None:
    """Raise `UsageError` if ``uri`` contains a password or a secret query parameter.

    The message never quotes the URI, which may contain the secret.
    """
    parts = urlsplit(uri)
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        raise UsageError(
            f"the URI given for system {name!r} contains a password, which the command line "
            "must not carry",
            hint=PASSWORD_HINT,
        )
    for key in _query_keys(parts.query):
        if key in SECRET_PARAMETERS or key.startswith(SECRET_OPTION_PREFIX):
            raise UsageError(
                f"the URI given for system {name!r} contains the secret query parameter "
                f"{key!r}, which the command line must not carry",
                hint="use --private-key-file and --passphrase-stdin or --ask-passphrase "
                "instead, and remove the command from your shell history",
            )


def system_from_uri(
    args: argparse.Namespace,
    flag_fields: dict[str, Any],
    options: dict[str, Any],
    secrets: dict[str, str],
) -> tuple[str, dict[str, Any]]:
    """Read ``args.uri`` completed by the flags; return the system type and fields for `add`.

    Raises:
        UsageError: a flag sets a field that the URI sets too.
        InvalidSystem: the URI or the completed record is invalid.
    """
    name: str = args.name
    uri: str = args.uri
    query_keys = set(_query_keys(urlsplit(uri).query))

    # Parameters that complete the URI; each may appear in the URI or as a flag, not both.
    parameters: list[tuple[str, str]] = []
    for field in ("fingerprint", "ignore_fingerprint"):
        if field not in flag_fields:
            continue
        _reject_duplicate(field in query_keys, f"--{field.replace('_', '-')}", field, name)
        value = flag_fields[field]
        if isinstance(value, bool):
            value = "true" if value else "false"
        parameters.append((field, value))
    parameters.extend(("tenant", tenant) for tenant in sorted(flag_fields.get("tenants", ())))
    for key, value in options.items():
        _reject_duplicate(f"option.{key}" in query_keys, f"--option {key}=...", key, name)
        parameters.append((f"option.{key}", json.dumps(value, separators=(",", ":"))))
    parameters.extend((field, secrets[field]) for field in SECRET_PARAMETERS if field in secrets)

    completed = _with_password(uri, secrets.get("password"))
    if parameters:
        query = "&".join(
            f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in parameters
        )
        completed += ("&" if "?" in completed else "?") + query

    system = ExternalSystem.from_uri(completed, name=name)
    fields = {field: getattr(system, field) for field in URI_FIELDS}
    return system.system_type, fields


def check_uri_fingerprint(args: argparse.Namespace) -> None:
    """Reject a fingerprint and ``ignore_fingerprint=true`` set between the URI and the flags.

    Raises:
        UsageError: one is in the URI and the other is a flag.
    """
    query = _query(args.uri)
    if args.ignore_fingerprint and "fingerprint" in query:
        conflict = "the URI's fingerprint parameter and --ignore-fingerprint"
    elif args.fingerprint is not None and query.get("ignore_fingerprint") == "true":
        conflict = "the URI's ignore_fingerprint=true parameter and --fingerprint"
    else:
        return
    raise UsageError(
        f"{conflict} were both given for system {args.name!r}, but a pinned host key is "
        "checked only when host keys are not ignored",
        hint="keep the fingerprint to check the server's host key, or ignore host keys "
        "(unsafe outside tests), not both",
    )


def uri_record(uri: str, flag_fields: dict[str, Any], secrets: dict[str, str]) -> dict[str, object]:
    """Return which of the probed fields the URI and flags set, for a rejected record.

    Values from the URI are its raw query text; only whether they are set matters.
    """
    query = _query(uri)
    return {
        "fingerprint": flag_fields.get("fingerprint") or query.get("fingerprint"),
        "ignore_fingerprint": bool(flag_fields.get("ignore_fingerprint"))
        or query.get("ignore_fingerprint") == "true",
        "password": secrets.get("password"),
        "private_key": secrets.get("private_key"),
        "private_key_password": secrets.get("private_key_password"),
    }


def check_uri_flags(args: argparse.Namespace) -> None:
    """Reject flags for fields that only the URI may set.

    Raises:
        UsageError: such a flag was given next to ``--uri``.
    """
    for field, flag in FIELDS_ONLY_IN_URI.items():
        if getattr(args, field) is not None:
            raise UsageError(
                f"--uri and {flag} were both given for system {args.name!r}",
                hint=f"put the {field.replace('_', ' ')} in the URI and drop {flag}",
            )


def _reject_duplicate(in_uri: bool, flag: str, field: str, name: str) -> None:
    if in_uri:
        raise UsageError(
            f"the URI and {flag} both set {field} of system {name!r}",
            hint=f"give {field} once, in the URI or as a flag",
        )


def _query(uri: str) -> dict[str, str]:
    """Return the URI's query parameters, decoded; a repeated key keeps its last value."""
    return dict(parse_qsl(urlsplit(uri).query, keep_blank_values=True))


def _query_keys(query: str) -> list[str]:
    return [unquote(part.partition("=")[0]) for part in query.split("&") if part]


def _with_password(uri: str, password: str | None) -> str:
    """Return ``uri`` with ``password`` percent-encoded into its user information."""
    if password is None:
        return uri
    netloc = urlsplit(uri).netloc
    userinfo, at, host = netloc.rpartition("@")
    encoded = quote(password, safe="")
    new_netloc = f"{userinfo}:{encoded}@{host}" if at else f":{encoded}@{netloc}"
    return uri.replace(f"//{netloc}", f"//{new_netloc}", 1)
