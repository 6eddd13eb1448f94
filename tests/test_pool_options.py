"""PoolOptions: defaults, validation of each field, overrides and merging."""

from __future__ import annotations

import dataclasses
import math

import pytest

from asyncext import PoolOptions, PoolStats
from asyncext._pool import validate_overrides


def test_pool_options_defaults() -> None:
    """The defaults are the documented ones."""
    options = PoolOptions()
    assert dataclasses.asdict(options) == {
        "min_size": 0,
        "max_size": 10,
        "acquire_timeout": 30.0,
        "max_waiting": 0,
        "max_idle": 300.0,
        "max_lifetime": 3600.0,
        "max_uses": 0,
        "check_on_acquire": True,
        "check_interval": 0.5,
        "create_timeout": 30.0,
        "max_concurrent_creates": 4,
        "max_leases": 1,
    }


def test_pool_options_frozen() -> None:
    """Options cannot change after construction."""
    options = PoolOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_size", -1),
        ("min_size", 1.5),
        ("max_size", 0),
        ("max_size", True),
        ("max_size", "10"),
        ("acquire_timeout", -0.1),
        ("acquire_timeout", math.inf),
        ("acquire_timeout", math.nan),
        ("acquire_timeout", "30"),
        ("max_waiting", -1),
        ("max_idle", -1.0),
        ("max_lifetime", None),
        ("max_uses", -2),
        ("check_on_acquire", 1),
        ("check_interval", -0.5),
        ("create_timeout", False),
        ("max_concurrent_creates", -1),
        ("max_leases", 0),
    ],
)
def test_pool_options_rejects_invalid(field: str, value: object) -> None:
    """Each field rejects a wrong type or range with a message naming the field."""
    with pytest.raises(ValueError, match=repr(field)):
        PoolOptions(**{field: value})  # type: ignore[arg-type]


def test_pool_options_accepts_int_seconds() -> None:
    """Seconds may be given as integers, as JSON overrides often are."""
    assert PoolOptions(acquire_timeout=5).acquire_timeout == 5


def test_pool_options_min_above_max() -> None:
    """min_size larger than max_size is rejected, naming both."""
    with pytest.raises(ValueError, match=r"'min_size' .* 'max_size'"):
        PoolOptions(min_size=5, max_size=2)


def test_pool_options_merged() -> None:
    """merged() applies overrides over the other fields."""
    merged = PoolOptions(max_size=4, max_idle=10.0).merged({"max_size": 2, "max_leases": 3})
    assert (merged.max_size, merged.max_leases, merged.max_idle) == (2, 3, 10.0)


def test_pool_options_merged_checks_the_result() -> None:
    """An override that conflicts with the base options is rejected."""
    with pytest.raises(ValueError, match="min_size"):
        PoolOptions(max_size=4).merged({"min_size": 5})


def test_validate_overrides_unknown_key() -> None:
    """An unknown option is rejected, and the message lists the valid ones."""
    with pytest.raises(ValueError, match=r"unknown pool option 'max_sise'.*max_size"):
        validate_overrides({"max_sise": 3})


def test_validate_overrides_judges_values_alone() -> None:
    """min_size above the default max_size is fine until merged with real options."""
    validate_overrides({"min_size": 20})


def test_validate_overrides_bad_value() -> None:
    """A value of the wrong type is rejected with the key in the message."""
    with pytest.raises(ValueError, match="'max_leases'"):
        validate_overrides({"max_leases": "3"})


def test_validate_overrides_not_a_dict() -> None:
    """Overrides must be a mapping."""
    with pytest.raises(ValueError, match="dict"):
        validate_overrides([("max_size", 3)])


def test_pool_stats_fields() -> None:
    """PoolStats has the documented fields, in order."""
    assert [field.name for field in dataclasses.fields(PoolStats)] == [
        "size",
        "idle",
        "in_use",
        "waiting",
        "created",
        "destroyed",
        "acquired",
        "timeouts",
        "failed_checks",
        "create_errors",
        "wait_time_total",
    ]
