"""Field checks shared by every way a system record enters: constructor, store, URI, import."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from ._errors import InvalidSystem

MAX_NAME_LENGTH = 255
MAX_OPTIONS_DEPTH = 32


SHOWN_LENGTH = 60
"""Characters of a value that an error message quotes before cutting it short."""


def shorten(value: object) -> str:
    """Return ``repr(value)`` for an error message, cut after `SHOWN_LENGTH` characters.

    A message that quotes a 100,000-character value whole cannot be read in a log or a
    terminal, so long values show their start and their length.
    """
    text = repr(value)
    if len(text) <= SHOWN_LENGTH:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:SHOWN_LENGTH]}...{size}"


def has_control_characters(text: str) -> bool:
    """Return whether ``text`` contains a control character (Unicode category Cc)."""
    return any(unicodedata.category(character) == "Cc" for character in text)


def find_surrogate(text: str) -> int | None:
    """Return the index of the first lone surrogate in ``text``, or None if it has none.

    A lone surrogate (U+D800 to U+DFFF) is not a Unicode character, so UTF-8 cannot encode it
    and neither SQLite nor a URI can store it. Python lets one into a string through
    ``"\\ud800"``, ``json.loads`` or ``os.fsdecode``.
    """
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_encodable(name: str, where: str, text: str) -> None:
    """Raise `InvalidSystem` if ``text`` contains a lone surrogate.

    The message gives the position, not the text, because ``text`` may be a secret.
    """
    index = find_surrogate(text)
    if index is not None:
        raise InvalidSystem(
            f"system {name!r}: {where} contains a lone surrogate "
            f"(U+{ord(text[index]):04X} at index {index}), which is not valid Unicode and "
            "cannot be stored; decode the text with errors='replace' or fix its source",
            system=name,
        )


def validate_name(name: object) -> None:
    """Raise `InvalidSystem` unless ``name`` can name a system.

    Names are stored exactly as given. Control characters are rejected because they would
    corrupt log lines and terminal tables.
    """
    if not isinstance(name, str):
        raise InvalidSystem(f"system name must be a string, not {type(name).__name__}")
    if not name.strip():
        raise InvalidSystem(f"system name {name!r} is empty; give the system a name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSystem(
            f"system name {name[:40]!r}... is {len(name)} characters long; "
            f"the maximum is {MAX_NAME_LENGTH}",
            system=name,
        )
    if has_control_characters(name):
        raise InvalidSystem(
            f"system name {shorten(name)} contains a control character; use printable characters",
            system=name,
        )
    index = find_surrogate(name)
    if index is not None:
        raise InvalidSystem(
            f"system name {shorten(name)} contains a lone surrogate (U+{ord(name[index]):04X} "
            f"at index {index}), which is not valid Unicode and cannot be stored",
            system=name,
        )


def validate_port(name: str, port: object) -> None:
    """Raise `InvalidSystem` unless ``port`` is None or an integer from 1 to 65535."""
    if port is None:
        return
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidSystem(
            f"system {name!r}: port {port!r} is invalid; use an integer from 1 to 65535",
            system=name,
        )


def validate_text_field(name: str, field: str, value: object) -> None:
    """Raise `InvalidSystem` unless ``value`` is None or a string without control characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidSystem(
            f"system {name!r}: {field} must be a string, not {type(value).__name__}",
            system=name,
        )
    if has_control_characters(value):
        raise InvalidSystem(
            f"system {name!r}: {field} {shorten(value)} contains a control character",
            system=name,
        )
    check_encodable(name, field, value)


def validate_tenants(name: str, tenants: frozenset[object]) -> None:
    """Raise `InvalidSystem` unless every tenant is a non-empty string."""
    for tenant in tenants:
        if not isinstance(tenant, str) or not tenant.strip():
            raise InvalidSystem(
                f"system {name!r}: tenant {shorten(tenant)} is invalid; tenants are non-empty "
                "strings",
                system=name,
            )
        if has_control_characters(tenant):
            raise InvalidSystem(
                f"system {name!r}: tenant {shorten(tenant)} contains a control character",
                system=name,
            )
        check_encodable(name, f"tenant {shorten(tenant)}", tenant)


def validate_options(name: str, options: object) -> None:
    """Raise `InvalidSystem` unless ``options`` is a dict that JSON stores without change.

    Only JSON's own types are accepted: dict with string keys, list, str, int, finite float,
    bool and None. Every value then reads back with the type it was written with, whereas a
    tuple would come back as a list and a NaN is not valid JSON.
    """
    if not isinstance(options, dict):
        raise InvalidSystem(
            f"system {name!r}: options must be a dict, not {type(options).__name__}",
            system=name,
        )
    _check_json_value(name, options, "options", 0)


def _check_json_value(name: str, value: Any, where: str, depth: int) -> None:
    if depth > MAX_OPTIONS_DEPTH:
        raise InvalidSystem(
            f"system {name!r}: {where} is nested more than {MAX_OPTIONS_DEPTH} levels deep",
            system=name,
        )

    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        check_encodable(name, where, value)
        return
    if isinstance(value, int):
        _check_integer(name, value, where)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidSystem(
                f"system {name!r}: {where} is {value!r}, which JSON cannot store; "
                "use a finite number or a string",
                system=name,
            )
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(name, item, f"{where}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidSystem(
                    f"system {name!r}: key {shorten(key)} in {where} is not a string; "
                    "JSON objects only have string keys",
                    system=name,
                )
            check_encodable(name, f"a key in {where}", key)
            _check_json_value(name, item, f"{where}[{shorten(key)}]", depth + 1)
        return

    raise InvalidSystem(
        f"system {name!r}: {where} has the type {type(value).__name__}, which does not "
        "round-trip through JSON; use a dict, list, str, int, float, bool or None",
        system=name,
    )


def _check_integer(name: str, value: int, where: str) -> None:
    """Raise `InvalidSystem` for an integer too long to write as JSON text.

    Python refuses to convert integers of more than ``sys.get_int_max_str_digits()`` digits
    (4300 by default since 3.11) to text, so ``json.dumps`` would fail on it.
    """
    if value.bit_length() <= 64:
        return
    try:
        str(value)
    except ValueError:
        raise InvalidSystem(
            f"system {name!r}: {where} is an integer of {value.bit_length()} bits, too long "
            "to write as JSON text; store it as a string",
            system=name,
        ) from None
