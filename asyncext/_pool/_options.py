"""`PoolOptions`, the settings of a `ClientPool`, and `PoolStats`, a snapshot of its counters."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"pool option {name!r} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"pool option {name!r} must be at least {minimum}, not {value!r}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"pool option {name!r} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"pool option {name!r} must be a finite number of seconds of at least 0 "
            f"(0 means no limit), not {value!r}"
        )


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"pool option {name!r} must be True or False, not {value!r}")


# One check per field, shared by PoolOptions and by the validation of per-system overrides,
# which must judge each value before the options it will be merged with are known.
_FIELD_CHECKS: dict[str, Callable[[str, object], None]] = {
    "min_size": lambda name, value: _check_count(name, value, 0),
    "max_size": lambda name, value: _check_count(name, value, 1),
    "acquire_timeout": _check_seconds,
    "max_waiting": lambda name, value: _check_count(name, value, 0),
    "max_idle": _check_seconds,
    "max_lifetime": _check_seconds,
    "max_uses": lambda name, value: _check_count(name, value, 0),
    "check_on_acquire": _check_flag,
    "check_interval": _check_seconds,
    "create_timeout": _check_seconds,
    "max_concurrent_creates": lambda name, value: _check_count(name, value, 0),
    "max_leases": lambda name, value: _check_count(name, value, 1),
}


@dataclass(frozen=True)
class PoolOptions:
    """Settings of a `ClientPool`. Times are in seconds, and 0 means no limit where a limit
    makes sense.

    Args:
        min_size: number of clients kept open in the background, even when unused.
        max_size: maximum number of clients that exist at once, counting those being
            created or destroyed.
        acquire_timeout: one deadline for the whole of ``acquire()``. 0 waits forever.
        max_waiting: maximum number of ``acquire()`` calls waiting at once. Beyond it, new
            calls fail at once. 0 for no limit.
        max_idle: an idle client is retired after this long unused, while the pool holds
            more than ``min_size`` clients.
        max_lifetime: a client is retired after this long, shortened by up to 10 % at
            random so that clients created together do not all expire together.
        max_uses: a client is retired after this many leases. 0 for no limit.
        check_on_acquire: run the pool's ``check`` before handing out an idle client.
        check_interval: a client used more recently than this is handed out unchecked.
        create_timeout: how long one ``create`` call may take before it counts as failed.
        max_concurrent_creates: maximum number of ``create`` calls running at once. 0 for
            no limit.
        max_leases: how many holders share one client at once (1 = exclusive).

    Raises:
        ValueError: a value has the wrong type or is out of range. The message names it.
    """

    min_size: int = 0
    max_size: int = 10
    acquire_timeout: float = 30.0
    max_waiting: int = 0
    max_idle: float = 300.0
    max_lifetime: float = 3600.0
    max_uses: int = 0
    check_on_acquire: bool = True
    check_interval: float = 0.5
    create_timeout: float = 30.0
    max_concurrent_creates: int = 4
    max_leases: int = 1

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _FIELD_CHECKS[field.name](field.name, getattr(self, field.name))
        if self.min_size > self.max_size:
            raise ValueError(
                f"pool option 'min_size' ({self.min_size}) is larger than 'max_size' "
                f"({self.max_size}); lower min_size or raise max_size"
            )

    def merged(self, overrides: Mapping[str, Any]) -> PoolOptions:
        """Return a copy with ``overrides`` applied, validated as a whole.

        Raises:
            ValueError: an override names no option, or the result is invalid.
        """
        validate_overrides(overrides)
        return dataclasses.replace(self, **overrides)


def validate_overrides(overrides: object) -> None:
    """Check a mapping of option names to values on its own, without the options it will
    be merged with.

    Checks that need both sides, such as ``min_size <= max_size``, happen in `merged`.

    Raises:
        ValueError: ``overrides`` is not a dict with valid option names and values.
    """
    if not isinstance(overrides, Mapping):
        raise ValueError(
            f"pool options must be a dict of option names and values, not {overrides!r}"
        )
    for name, value in overrides.items():
        check = _FIELD_CHECKS.get(name)
        if check is None:
            raise ValueError(
                f"unknown pool option {name!r}; valid options are {', '.join(_FIELD_CHECKS)}"
            )
        check(name, value)


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of a `ClientPool`'s state and of its counters since it was created."""

    size: int
    """Clients that exist now: idle, in use, being checked, created or destroyed, and
    creates given up on that still run."""
    idle: int
    """Clients ready to be handed out."""
    in_use: int
    """Clients held by at least one ``acquire()`` block or being checked for one."""
    waiting: int
    """``acquire()`` calls waiting for a client."""
    created: int
    destroyed: int
    acquired: int
    """Successful ``acquire()`` calls."""
    timeouts: int
    """``acquire()`` calls that raised `PoolTimeout`."""
    failed_checks: int
    """Health checks that returned false, raised or timed out."""
    create_errors: int
    """``create`` calls that raised or timed out."""
    wait_time_total: float
    """Seconds that ``acquire()`` calls spent waiting for a client, summed."""
