"""The registry of system types: built-in adapters, `register_adapter` and entry points.

Third-party packages declare their adapters in the entry-point group ``asyncext.adapters``::

    [project.entry-points."asyncext.adapters"]
    echo = "asyncext_echo:EchoAdapter"

Entry points are read only when a type is not registered yet, so a broken third-party package
cannot slow down or break lookups of the built-in types.
"""

from __future__ import annotations

import difflib
import logging
import threading
from importlib.metadata import entry_points
from typing import Any, TypeVar

from .._errors import UnknownSystemType
from ._base import Adapter

ENTRY_POINT_GROUP = "asyncext.adapters"

logger = logging.getLogger("asyncext.adapters")

AdapterClass = TypeVar("AdapterClass", bound=type[Adapter[Any]])

_adapters: dict[str, Adapter[Any]] = {}
_load_errors: dict[str, str] = {}
_loaded_entry_points: set[str] = set()
_lock = threading.Lock()


def register_adapter(cls: AdapterClass) -> AdapterClass:
    """Register an `Adapter` subclass under its ``system_type``; usable as a class decorator.

    Registering the same class again does nothing.

    Raises:
        TypeError: ``cls`` is not a concrete `Adapter` subclass with a ``system_type``.
        ValueError: another class is already registered for that ``system_type``.
    """
    if not isinstance(cls, type) or not issubclass(cls, Adapter):
        raise TypeError(f"register_adapter() expects an Adapter subclass, got {cls!r}")

    system_type = getattr(cls, "system_type", None)
    if not isinstance(system_type, str) or not system_type:
        raise TypeError(
            f"adapter class {cls.__qualname__} must set the class attribute system_type "
            "to a non-empty string"
        )
    if not isinstance(getattr(cls, "description", None), str):
        raise TypeError(
            f"adapter class {cls.__qualname__} must set the class attribute description "
            "to a one-line string"
        )

    with _lock:
        current = _adapters.get(system_type)
        if current is not None and type(current) is not cls:
            raise ValueError(
                f"system type {system_type!r} is already handled by "
                f"{type(current).__module__}.{type(current).__qualname__}; "
                "choose another system_type for the new adapter"
            )
        if current is None:
            _adapters[system_type] = cls()
    return cls


def adapter_for(system_type: str) -> Adapter[Any]:
    """Return the adapter instance that handles ``system_type``.

    Raises:
        UnknownSystemType: no installed adapter handles it; the message lists the installed
            types.
    """
    adapter = _adapters.get(system_type)
    if adapter is not None:
        return adapter

    load_entry_points()
    adapter = _adapters.get(system_type)
    if adapter is not None:
        return adapter

    installed = tuple(sorted(_adapters))
    message = f"unknown system type {system_type!r}; installed types: {', '.join(installed)}. "
    suggestion = closest_type(system_type, installed)
    if suggestion is not None:
        message += f"Did you mean {suggestion!r}? Otherwise install "
    else:
        message += "Install "
    message += "the package that provides it, or register its adapter with register_adapter()"
    failure = _load_errors.get(system_type)
    if failure is not None:
        message += f". Its entry point failed to load: {failure}"
    raise UnknownSystemType(message, system_type=system_type, installed=installed)


def closest_type(system_type: str, installed: tuple[str, ...]) -> str | None:
    """Return the installed type that ``system_type`` most likely misspells, or None."""
    matches = difflib.get_close_matches(system_type, installed, n=1)
    return matches[0] if matches else None


def installed_adapters() -> dict[str, Adapter[Any]]:
    """Return every registered adapter by system type, entry points included, sorted by type."""
    load_entry_points()
    return dict(sorted(_adapters.items()))


def load_entry_points() -> None:
    """Register the adapters declared in the ``asyncext.adapters`` entry-point group.

    Entry points whose type is already registered are skipped. One that fails to load is
    logged and remembered, so that the error of `adapter_for` can name why its type is missing.
    """
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in _adapters or entry_point.value in _loaded_entry_points:
            continue

        try:
            cls = entry_point.load()
            register_adapter(cls)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if _load_errors.get(entry_point.name) != reason:
                logger.warning(
                    "adapter entry point %r (%s) failed to load: %s",
                    entry_point.name,
                    entry_point.value,
                    reason,
                )
            _load_errors[entry_point.name] = reason
            continue

        _load_errors.pop(entry_point.name, None)
        _loaded_entry_points.add(entry_point.value)
        if cls.system_type != entry_point.name:
            logger.warning(
                "adapter entry point %r loads %s, whose system_type is %r; "
                "rename the entry point to match",
                entry_point.name,
                entry_point.value,
                cls.system_type,
            )
