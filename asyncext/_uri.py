"""Systems written as URIs, with strict RFC 3986 percent-encoding in both directions.

    TYPE://USER:PASSWORD@HOST:PORT/REMOTE/PATH?fingerprint=...&option.NAME=JSON&secret.NAME=TEXT

Writing percent-encodes everything but the unreserved characters (letters, digits, ``-._~``),
so ``+`` becomes ``%2B`` and a space ``%20``. Reading accepts only the characters RFC 3986
allows in each component and decodes escapes as UTF-8; ``+`` stays a plus sign. One rule is
stricter than RFC 3986: a raw ``@`` after the host is rejected unless the URI has user
information, because it is far more often a password with an unencoded ``/`` than an ``@`` in
a path.

A malformed URI is `InvalidSystem` naming the component at fault. Messages never quote text
from the user information, the host or the port, because an unencoded ``/``, ``?`` or ``#`` in
a password moves the rest of the password into those components, and never quote a query
value. They quote query parameter names only when no ``@`` follows the authority, which is
the sign of such a misplaced password.
"""

from __future__ import annotations

import ipaddress
import json
import re
import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote

from ._errors import InvalidSystem
from ._secrets import OPTION_SECRETS, Secret
from ._validation import MAX_OPTIONS_DEPTH

if TYPE_CHECKING:
    from ._system import ExternalSystem

SystemT = TypeVar("SystemT", bound="ExternalSystem")

# RFC 3986, appendix B: splits any string into its five components without validating them.
_COMPONENTS = re.compile(
    r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$", re.S
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_SUB_DELIMS = "!$&'()*+,;="
# Characters allowed unencoded in each component (section 3); "%" starts an escape in all.
_USERINFO_CHARACTERS = frozenset(_UNRESERVED + _SUB_DELIMS + ":%")
_HOST_CHARACTERS = frozenset(_UNRESERVED + _SUB_DELIMS + "%")
_PATH_CHARACTERS = frozenset(_UNRESERVED + _SUB_DELIMS + ":@/%")
_QUERY_CHARACTERS = frozenset(_UNRESERVED + _SUB_DELIMS + ":@/?%")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

OPTION_PREFIX = "option."
SECRET_PREFIX = "secret."
_SINGLE_PARAMETERS = (
    "fingerprint",
    "ignore_fingerprint",
    "remote_path",
    "private_key",
    "private_key_password",
)

_ENCODING_HINT = (
    "percent-encode reserved characters such as '@', ':', '/', '?', '#' and '%' in the user "
    "name and password, for example with urllib.parse.quote(password, safe='')"
)


# --- writing -------------------------------------------------------------------------------


def format_system_uri(system: ExternalSystem, *, include_secrets: bool) -> str:
    """Return the URI of ``system``; see `ExternalSystem.to_uri`."""
    scheme = system.system_type
    if not _SCHEME.fullmatch(scheme) or scheme != scheme.lower():
        raise InvalidSystem(
            f"system {system.name!r}: the system type {scheme!r} cannot be a URI scheme, "
            "which allows only lowercase letters, digits, '+', '-' and '.', starting with a "
            "letter; use export_systems() to copy this system instead",
            system=system.name,
        )

    # Authority: user information, host and port.
    # NOTE: RFC 3986 cannot write a password without a user name, or an empty host, so a
    # username of None with a password reads back as "", and a host of "" reads back as None.
    password = _reveal(system.password) if include_secrets else None
    userinfo = ""
    if system.username is not None or password is not None:
        userinfo = _encode(system.username or "")
        if password is not None:
            userinfo += ":" + _encode(password)
        userinfo += "@"
    port = "" if system.port is None else f":{system.port:d}"
    authority = userinfo + _format_host(system.host) + port

    # Path: an absolute remote path is the URI's path; a relative one goes in the query.
    remote_path = system.remote_path
    path = ""
    if remote_path is not None and remote_path.startswith("/"):
        path = quote(remote_path, safe="/")
        remote_path = None

    parameters: list[tuple[str, str]] = []
    if system.fingerprint is not None:
        parameters.append(("fingerprint", system.fingerprint))
    if system.ignore_fingerprint:
        parameters.append(("ignore_fingerprint", "true"))
    if remote_path is not None:
        parameters.append(("remote_path", remote_path))
    parameters.extend(("tenant", tenant) for tenant in sorted(system.tenants))
    if include_secrets:
        for field in ("private_key", "private_key_password"):
            value = _reveal(getattr(system, field))
            if value is not None:
                parameters.append((field, value))

    for key, value in system.options.items():
        if key == OPTION_SECRETS:
            continue
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        parameters.append((OPTION_PREFIX + key, text))
    if include_secrets:
        for key, secret in system.options.get(OPTION_SECRETS, {}).items():
            parameters.append((SECRET_PREFIX + key, secret.reveal()))

    query = "&".join(f"{_encode(key)}={_encode(value)}" for key, value in parameters)
    return f"{scheme}://{authority}{path}{'?' + query if query else ''}"


def _encode(text: str) -> str:
    return quote(text, safe="")


def _reveal(secret: Secret | None) -> str | None:
    return None if secret is None else secret.reveal()


def _format_host(host: str | None) -> str:
    if not host:
        return ""
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return _encode(host)
    # An IPv6 literal goes in brackets; "%" before a zone id is written "%25" (RFC 6874).
    return "[" + quote(host, safe=":") + "]"


# --- reading -------------------------------------------------------------------------------


def parse_system_uri(cls: type[SystemT], uri: str, *, name: str) -> SystemT:
    """Return a new, unsaved record read from ``uri``; see `ExternalSystem.from_uri`."""

    def invalid(problem: str) -> InvalidSystem:
        return InvalidSystem(f"system {name!r}: invalid URI: {problem}", system=name)

    if not isinstance(uri, str):
        raise invalid(f"the URI must be a string, not {type(uri).__name__}")
    match = _COMPONENTS.match(uri)
    assert match is not None  # the pattern matches every string
    scheme, authority, path, query, fragment = match.groups()

    # Structure first, before any component is decoded or quoted in a message.
    if scheme is None or authority is None or not _SCHEME.fullmatch(scheme):
        raise invalid(
            "expected TYPE://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?PARAMETERS], such as "
            f"sftp://user@host:22/srv/data; {_ENCODING_HINT}"
        )
    if "@" not in authority and "@" in uri[match.end(2) :]:
        raise invalid(
            "an '@' follows the host part: either the user name or password contains an "
            "unencoded '/', '?' or '#', or the path or query contains an '@', which must then "
            f"be written %40; {_ENCODING_HINT}"
        )
    if fragment is not None:
        raise invalid(
            "a fragment ('#...') is not allowed; if a password or option contains '#', "
            "percent-encode it as %23"
        )

    fields: dict[str, Any] = {"system_type": scheme.lower()}
    fields.update(_parse_authority(authority, invalid))
    _check_characters(path, _PATH_CHARACTERS, "the path", invalid)
    if path:
        fields["remote_path"] = _decode(path, "the path", invalid)
    if query is not None:
        _parse_query(query, fields, invalid)
    return cls(name=name, **fields)


def _parse_authority(authority: str, invalid: Callable[[str], InvalidSystem]) -> dict[str, Any]:
    fields: dict[str, Any] = {}

    # User information: USER[:PASSWORD], with "@" allowed only as the separator.
    userinfo, at, host_port = authority.rpartition("@")
    if at:
        if "@" in userinfo:
            raise invalid(f"the user information contains an unencoded '@'; {_ENCODING_HINT}")
        username, colon, password = userinfo.partition(":")
        _check_characters(username, _USERINFO_CHARACTERS, "the user name", invalid)
        _check_characters(password, _USERINFO_CHARACTERS, "the password", invalid)
        fields["username"] = _decode(username, "the user name", invalid)
        if colon:
            fields["password"] = Secret(_decode(password, "the password", invalid))

    # Host: an IPv6 literal in brackets, or a registered name or IPv4 address.
    if host_port.startswith("["):
        literal, bracket, port = host_port[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise invalid("the host starts with '[' but is not a bracketed IPv6 address")
        host = _decode(literal, "the IPv6 host", invalid)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise invalid("the host in brackets is not a valid IPv6 address") from None
        port = port[1:]
    else:
        host, _, port = host_port.partition(":")
        _check_characters(host, _HOST_CHARACTERS, "the host", invalid)
        host = _decode(host, "the host", invalid)
    if host:
        fields["host"] = host

    # Port: digits only; an empty port after ":" means no port (section 3.2.3).
    if port:
        if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise invalid(
                "the port must be a number from 1 to 65535; if the text after ':' is part of "
                f"a password, {_ENCODING_HINT}"
            )
        fields["port"] = int(port)
    return fields


def _parse_query(
    query: str, fields: dict[str, Any], invalid: Callable[[str], InvalidSystem]
) -> None:
    _check_characters(query, _QUERY_CHARACTERS, "the query", invalid)
    if not query:
        return

    options: dict[str, Any] = {}
    secret_options: dict[str, Secret] = {}
    tenants: list[str] = []
    seen: set[str] = set()
    for parameter in query.split("&"):
        raw_key, equals, raw_value = parameter.partition("=")
        key = _decode(raw_key, "a query parameter name", invalid)
        shown = repr(key if len(key) <= 40 else key[:40] + "...")
        if not equals:
            raise invalid(f"the query parameter {shown} has no '=' and value")
        value = _decode(raw_value, f"the value of the query parameter {shown}", invalid)
        if key != "tenant":
            if key in seen:
                raise invalid(f"the query parameter {shown} is given twice")
            seen.add(key)

        # Cases: a field, a tenant, an option (JSON value), a secret option (text).
        if key in _SINGLE_PARAMETERS:
            if key in fields:
                raise invalid("the remote path is given both as the path and as a parameter")
            fields[key] = _parse_field(key, value, invalid)
        elif key == "tenant":
            tenants.append(value)
        elif key.startswith(OPTION_PREFIX):
            option = key[len(OPTION_PREFIX) :]
            if option == OPTION_SECRETS:
                raise invalid(
                    f"write secret options as {SECRET_PREFIX}NAME=TEXT, not as "
                    f"{OPTION_PREFIX}{OPTION_SECRETS}"
                )
            options[option] = _parse_json(option, value, invalid)
        elif key.startswith(SECRET_PREFIX):
            secret_options[key[len(SECRET_PREFIX) :]] = Secret(value)
        else:
            raise invalid(
                f"unknown query parameter {shown}; the parameters are "
                f"{', '.join(_SINGLE_PARAMETERS)}, tenant, {OPTION_PREFIX}NAME=JSON and "
                f"{SECRET_PREFIX}NAME=TEXT"
            )

    if tenants:
        fields["tenants"] = frozenset(tenants)
    if secret_options:
        options[OPTION_SECRETS] = secret_options
    if options:
        fields["options"] = options


def _parse_field(key: str, value: str, invalid: Callable[[str], InvalidSystem]) -> Any:
    if key == "ignore_fingerprint":
        if value not in ("true", "false"):
            raise invalid("the query parameter 'ignore_fingerprint' must be true or false")
        return value == "true"
    if key in ("private_key", "private_key_password"):
        return Secret(value)
    return value


def _parse_json(option: str, text: str, invalid: Callable[[str], InvalidSystem]) -> Any:
    def reject_constant(constant: str) -> Any:
        raise ValueError(constant)

    try:
        return json.loads(text, parse_constant=reject_constant)
    except RecursionError:
        # json.loads recurses once per level of nesting, so "[[[[…" exhausts the stack.
        raise invalid(
            f"the value of option {option!r} is nested too deeply to read; options may be "
            f"nested at most {MAX_OPTIONS_DEPTH} levels"
        ) from None
    except ValueError:
        # The value is not quoted: a misplaced secret could have ended up in an option.
        raise invalid(
            f"the value of option {option!r} is not valid JSON; write a string in double "
            'quotes, percent-encoded: option.mode=%22fast%22 for "fast"'
        ) from None


def _check_characters(
    text: str, allowed: frozenset[str], part: str, invalid: Callable[[str], InvalidSystem]
) -> None:
    if not allowed.issuperset(text):
        raise invalid(f"{part} contains a character that must be percent-encoded; {_ENCODING_HINT}")


def _decode(text: str, part: str, invalid: Callable[[str], InvalidSystem]) -> str:
    if _ESCAPE.search(text):
        raise invalid(
            f"{part} contains a '%' that does not start an escape such as %40; write '%' "
            "itself as %25"
        )
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise invalid(f"{part} contains percent-escapes that are not valid UTF-8") from None
