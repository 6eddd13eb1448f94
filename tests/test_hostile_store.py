"""Hostile and random input to the store: stored verbatim or rejected clearly, never corrupting."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leakcheck import register_secret
from strategies import SECRET_MARK, differing_fields, hostile_text, systems

from asyncext import ExternalSystem, InvalidSystem, SystemStore, generate_key

KEY = generate_key()
register_secret(KEY)

MAX_MESSAGE_LENGTH = 1000
"""Characters an error message may have: a 100,000-character value must not be echoed whole."""

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

HOSTILE_FIELDS = (
    "name",
    "host",
    "username",
    "fingerprint",
    "remote_path",
    "tenant",
    "option_name",
    "option_value",
    "password",
    "secret_option",
)


def new_store(folder: Path) -> SystemStore:
    """Return an unopened store in a new file, so that each example starts empty."""
    return SystemStore(folder / f"{uuid.uuid4().hex}.db", key=KEY)


def editable_fields(system: ExternalSystem) -> dict[str, Any]:
    """Return the keyword arguments that add() takes to store ``system``."""
    names = (
        "host",
        "port",
        "username",
        "password",
        "private_key",
        "private_key_password",
        "fingerprint",
        "ignore_fingerprint",
        "remote_path",
        "tenants",
        "options",
    )
    return {name: getattr(system, name) for name in names}


def hostile_record(field: str, value: str) -> tuple[str, dict[str, Any]]:
    """Return a name and add() fields of a local system with ``value`` in ``field``."""
    name = value if field == "name" else "target"
    fields: dict[str, Any] = {"remote_path": "/srv/data"}
    if field == "tenant":
        fields["tenants"] = [value]
    elif field == "option_name":
        fields["options"] = {value: 1}
    elif field == "option_value":
        fields["options"] = {"value": value}
    elif field == "secret_option":
        fields["options"] = {"secrets": {"token": value}}
    elif field != "name":
        fields[field] = value
    return name, fields


def stored_value(system: ExternalSystem, field: str) -> Any:
    """Return the value that `hostile_record` put into ``system``."""
    if field == "name":
        return system.name
    if field == "tenant":
        return next(iter(system.tenants))
    if field == "option_name":
        return next(iter(system.options))
    if field == "option_value":
        return system.options["value"]
    if field == "secret_option":
        return system.options["secrets"]["token"].reveal()
    if field == "password":
        assert system.password is not None
        return system.password.reveal()
    return getattr(system, field)


# --- random systems ------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(system=systems)
async def test_store_random_system_round_trips(tmp_path: Path, system: ExternalSystem) -> None:
    """A random system reads back from the database with every field and option type."""
    async with new_store(tmp_path) as store:
        await store.add(system.name, system.system_type, **editable_fields(system))
        stored = await store.get(system.name)
        listed = await store.list()
    assert differing_fields(system, stored) == []
    assert [entry.name for entry in listed] == [system.name]


@PROPERTY_SETTINGS
@given(system=systems)
async def test_export_random_system_round_trips(tmp_path: Path, system: ExternalSystem) -> None:
    """A random system survives export to JSON text and import into another store."""
    async with new_store(tmp_path) as source:
        await source.add(system.name, system.system_type, **editable_fields(system))
        original = await source.get(system.name)
        text = json.dumps(await source.export_systems(include_secrets=True))
        public = json.dumps(await source.export_systems())

    async with new_store(tmp_path) as target:
        await target.import_systems(json.loads(text))
        imported = await target.get(system.name)

    assert differing_fields(original, imported) == []
    assert imported.revision == original.revision
    assert imported.created_at == original.created_at
    assert SECRET_MARK not in public


# --- hostile values ------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(field=st.sampled_from(HOSTILE_FIELDS), value=hostile_text)
async def test_store_hostile_value_verbatim_or_rejected(
    tmp_path: Path, field: str, value: str
) -> None:
    """Any text in any field is stored exactly, or rejected with a short InvalidSystem."""
    name, fields = hostile_record(field, value)
    async with new_store(tmp_path) as store:
        bystander = await store.add("bystander", "local", remote_path="/srv/other")
        try:
            await store.add(name, "local", **fields)
        except InvalidSystem as exc:
            message = str(exc)
            assert len(message) < MAX_MESSAGE_LENGTH
            assert [system.name for system in await store.list()] == ["bystander"]
        else:
            stored = await store.get(name)
            assert stored_value(stored, field) == value
        after = await store.get("bystander")
    assert after == bystander


@PROPERTY_SETTINGS
@given(field=st.sampled_from(HOSTILE_FIELDS[1:]), value=hostile_text)
async def test_store_hostile_update_verbatim_or_rejected(
    tmp_path: Path, field: str, value: str
) -> None:
    """An update with any text stores it exactly, or is rejected and changes nothing."""
    _, fields = hostile_record(field, value)
    if field != "remote_path":
        del fields["remote_path"]
    async with new_store(tmp_path) as store:
        before = await store.add("target", "local", remote_path="/srv/data")
        try:
            await store.update("target", **fields)
        except InvalidSystem as exc:
            assert len(str(exc)) < MAX_MESSAGE_LENGTH
            assert await store.get("target") == before
        else:
            stored = await store.get("target")
            assert stored_value(stored, field) == value
            assert stored.revision == before.revision + 1


# --- cases the properties found ------------------------------------------------------------


@pytest.mark.parametrize("field", HOSTILE_FIELDS)
async def test_store_rejects_lone_surrogate(tmp_path: Path, field: str) -> None:
    """A lone surrogate, which UTF-8 cannot encode, is InvalidSystem in every field."""
    name, fields = hostile_record(field, "bad\ud800text")
    async with new_store(tmp_path) as store:
        with pytest.raises(InvalidSystem, match="lone surrogate") as raised:
            await store.add(name, "local", **fields)
        remaining = await store.list()
    assert remaining == []
    if field in ("password", "secret_option"):
        assert "bad" not in str(raised.value)


async def test_store_rejects_integer_too_long_for_json(tmp_path: Path) -> None:
    """An option integer with more digits than Python converts to text is InvalidSystem."""
    async with new_store(tmp_path) as store:
        with pytest.raises(InvalidSystem, match="store it as a string"):
            await store.add("big", "local", remote_path="/srv", options={"n": 10**5000})
        stored = await store.add("fine", "local", remote_path="/srv", options={"n": 2**70})
        again = await store.get("fine")
    assert again.options == stored.options


def test_uri_rejects_lone_surrogate_in_option() -> None:
    """A JSON option escape for a lone surrogate is rejected when the URI is read."""
    with pytest.raises(InvalidSystem, match="lone surrogate"):
        ExternalSystem.from_uri("local:///srv?option.a=%22%5Cud800%22", name="u")


def test_uri_rejects_deeply_nested_option() -> None:
    """An option nested deeper than Python's recursion limit is InvalidSystem, not a crash."""
    nested = "%5B" * 100_000 + "%5D" * 100_000
    with pytest.raises(InvalidSystem, match="nested too deeply"):
        ExternalSystem.from_uri(f"local:///srv?option.a={nested}", name="u")
