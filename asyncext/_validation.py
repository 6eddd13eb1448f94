"""Field checks shared by every way a system record enters: constructor, store, URI, import."""

from __future__ import annotations

import math
import unicodedata
from typing import Any

from ._errors import InvalidSystem

MAX_NAME_LENGTH = 255
MAX_OPTIONS_DEPTH = 32


def has_control_characters(text: str) -> bool:
    """Return whether ``text`` contains a control character (Unicode category Cc)."""
    return any(unicodedata.category(character) == "Cc" for character in text)


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
            f"system name {name!r} contains a control character; use printable characters",
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
            f"system {name!r}: {field} {value!r} contains a control character",
            system=name,
        )


def validate_tenants(name: str, tenants: frozenset[object]) -> None:
    """Raise `InvalidSystem` unless every tenant is a non-empty string."""
    for tenant in tenants:
        if not isinstance(tenant, str) or not tenant.strip():
            raise InvalidSystem(
                f"system {name!r}: tenant {tenant!r} is invalid; tenants are non-empty strings",
                system=name,
            )
        if has_control_characters(tenant):
            raise InvalidSystem(
                f"system {name!r}: tenant {tenant!r} contains a control character",
                system=name,
            )


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

    if value is None or isinstance(value, (str, bool, int)):
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
                    f"system {name!r}: key {key!r} in {where} is not a string; "
                    "JSON objects only have string keys",
                    system=name,
                )
            _check_json_value(name, item, f"{where}[{key!r}]", depth + 1)
        return

    raise InvalidSystem(
        f"system {name!r}: {where} has the type {type(value).__name__}, which does not "
        "round-trip through JSON; use a dict, list, str, int, float, bool or None",
        system=name,
    )
