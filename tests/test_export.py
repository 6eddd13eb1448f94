"""export_systems and import_systems: typed round trips, secrets only when asked, all or nothing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from leakcheck import leak_forms, register_secret

from asyncext import (
    Adapter,
    DuplicateSystem,
    ExternalSystem,
    ImportReport,
    InvalidSystem,
    SystemStore,
    UnknownSystemType,
    generate_key,
    register_adapter,
)

PASSWORD = "export-pw-!Weird^123$"
KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nexport-key-body-6a0c\n-----END"
PASSPHRASE = "export-passphrase-2b7d"
TOKEN = "export-token-91fe"
register_secret(PASSWORD, "export-key-body-6a0c", PASSPHRASE, TOKEN)

TYPED_OPTIONS: dict[str, Any] = {
    "tds_version": "7.3",
    "as_dict": True,
    "n": 3,
    "f": 1.5,
    "nested": {"a": [1, 2]},
}


@register_adapter
class PickyAdapter(Adapter[None]):
    """Rejects a host named 'forbidden.example', to show import runs the adapter's checks."""

    system_type: ClassVar[str] = "picky-test"
    description: ClassVar[str] = "test adapter with a check of its own"

    def validate(self, system: ExternalSystem) -> None:
        if system.host == "forbidden.example":
            raise InvalidSystem(f"system {system.name!r}: host is forbidden", system=system.name)

    async def get_client(self, system: ExternalSystem) -> None:
        return None


@pytest.fixture
def key() -> str:
    value = generate_key()
    register_secret(value)
    return value


@pytest.fixture
async def store(tmp_path: Path, key: str) -> AsyncIterator[SystemStore]:
    async with SystemStore(tmp_path / "source.db", key=key) as opened:
        await opened.add(
            "vault",
            "picky-test",
            host="db.example",
            port=2222,
            username="svc@tenant",
            password=PASSWORD,
            private_key=KEY_TEXT,
            private_key_password=PASSPHRASE,
            fingerprint="SHA256:xyz",
            ignore_fingerprint=True,
            remote_path="/srv/data",
            tenants=["acme", "beta"],
            options={**TYPED_OPTIONS, "secrets": {"token": TOKEN}},
        )
        await opened.add("plain", "picky-test", host="plain.example")
        yield opened


def assert_same_types(left: Any, right: Any) -> None:
    """Assert equality with the exact type at every level (True == 1 would hide a change)."""
    assert type(left) is type(right), (left, right)
    if isinstance(left, dict):
        assert left.keys() == right.keys()
        for name in left:
            assert_same_types(left[name], right[name])
    elif isinstance(left, list):
        for a, b in zip(left, right, strict=True):
            assert_same_types(a, b)
    else:
        assert left == right


def through_json(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(json.dumps(records))
    return loaded


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        count: int = connection.execute("SELECT count(*) FROM systems").fetchone()[0]
    connection.close()
    return count


# --- export --------------------------------------------------------------------------------


async def test_export_omits_secrets_by_default(store: SystemStore) -> None:
    """Without include_secrets no secret field or secret option is in a record at all."""
    vault = (await store.export_systems())[1]
    assert "password" not in vault
    assert "private_key" not in vault
    assert "private_key_password" not in vault
    assert "secrets" not in vault["options"]
    text = json.dumps(vault)
    for secret in (PASSWORD, PASSPHRASE, TOKEN):
        for form in leak_forms(secret):
            assert form not in text


async def test_export_includes_secrets_when_asked(store: SystemStore) -> None:
    """include_secrets=True puts the plain values in the record."""
    vault = (await store.export_systems(include_secrets=True))[1]
    assert vault["password"] == PASSWORD
    assert vault["private_key"] == KEY_TEXT
    assert vault["private_key_password"] == PASSPHRASE
    assert vault["options"]["secrets"] == {"token": TOKEN}


async def test_export_record_shape(store: SystemStore) -> None:
    """Records are plain JSON data with a format version, ordered by name."""
    records = await store.export_systems(include_secrets=True)
    assert through_json(records) == records
    assert [record["name"] for record in records] == ["plain", "vault"]
    assert records[1]["format_version"] == 1
    assert records[1]["tenants"] == ["acme", "beta"]
    assert "id" not in records[1]


async def test_export_empty_secret_fields_are_null(store: SystemStore) -> None:
    """With include_secrets, a system without a password exports null, not a missing key."""
    plain = (await store.export_systems(include_secrets=True))[0]
    assert plain["password"] is None


# --- round trips ---------------------------------------------------------------------------


async def test_export_import_round_trips_every_field(
    store: SystemStore, tmp_path: Path, key: str
) -> None:
    """Export with secrets, JSON, import into a new store: every field comes back equal."""
    records = through_json(await store.export_systems(include_secrets=True))
    originals = await store.list()
    async with SystemStore(tmp_path / "copy.db", key=generate_key()) as target:
        report = await target.import_systems(records)
        copies = await target.list()
    assert report == ImportReport(added=2, overwritten=0, skipped=0)
    for original, copy in zip(originals, copies, strict=True):
        assert dataclass_fields(copy) == dataclass_fields(original)


def dataclass_fields(system: ExternalSystem) -> dict[str, Any]:
    fields = {name: getattr(system, name) for name in system.__dataclass_fields__}
    fields.pop("id")
    fields.pop("_client_source")
    return fields


async def test_export_import_keeps_option_types(store: SystemStore, tmp_path: Path) -> None:
    """Typed options survive export, JSON, import and the database with their types."""
    records = through_json(await store.export_systems())
    async with SystemStore(tmp_path / "copy.db") as target:
        await target.import_systems(records)
    async with SystemStore(tmp_path / "copy.db") as reopened:
        vault = await reopened.get("vault")
    assert_same_types(vault.options, TYPED_OPTIONS)


async def test_export_import_without_secrets_has_none(store: SystemStore, tmp_path: Path) -> None:
    """A secret-less export imports as systems without secrets, never with placeholders."""
    records = await store.export_systems()
    async with SystemStore(tmp_path / "copy.db", key=generate_key()) as target:
        await target.import_systems(records)
        vault = await target.get("vault")
    assert vault.password is None
    assert vault.private_key is None
    assert "secrets" not in vault.options


async def test_export_import_keeps_revision_and_times(store: SystemStore, tmp_path: Path) -> None:
    """A newly imported system keeps the revision and timestamps of its record."""
    await store.update("vault", host="db2.example")
    original = await store.get("vault")
    records = await store.export_systems()
    async with SystemStore(tmp_path / "copy.db") as target:
        await target.import_systems(records)
        copy = await target.get("vault")
    assert (copy.revision, copy.created_at, copy.updated_at) == (
        original.revision,
        original.created_at,
        original.updated_at,
    )


async def test_export_import_minimal_record(tmp_path: Path) -> None:
    """A hand-written record needs only a name and a type; the rest takes defaults."""
    async with SystemStore(tmp_path / "s.db") as target:
        await target.import_systems([{"name": "m", "system_type": "picky-test"}])
        system = await target.get("m")
    assert (system.revision, system.host, system.options) == (1, None, {})


# --- conflicts -----------------------------------------------------------------------------


async def test_import_conflict_fail_writes_nothing(store: SystemStore) -> None:
    """on_conflict='fail' rejects the whole import when one name exists."""
    records = await store.export_systems()
    records.append({"name": "new", "system_type": "picky-test"})
    with pytest.raises(DuplicateSystem, match="nothing was written"):
        await store.import_systems(records)
    assert [system.name for system in await store.list()] == ["plain", "vault"]


async def test_import_conflict_skip_keeps_existing(store: SystemStore) -> None:
    """on_conflict='skip' keeps existing systems and adds the new ones."""
    records = await store.export_systems()
    records[1]["host"] = "changed.example"
    records.append({"name": "new", "system_type": "picky-test"})
    report = await store.import_systems(records, on_conflict="skip")
    assert report == ImportReport(added=1, overwritten=0, skipped=2)
    assert (await store.get("vault")).host == "db.example"


async def test_import_overwrite_replaces_fields(store: SystemStore) -> None:
    """on_conflict='overwrite' replaces the fields and counts as a change."""
    before = await store.get("vault")
    records = await store.export_systems()
    records[1]["host"] = "changed.example"
    records[1]["options"] = {"n": 4}
    report = await store.import_systems(records, on_conflict="overwrite")
    vault = await store.get("vault")
    assert report == ImportReport(added=0, overwritten=2, skipped=0)
    assert vault.host == "changed.example"
    assert vault.revision == before.revision + 1
    assert vault.created_at == before.created_at


async def test_import_overwrite_keeps_omitted_secrets(store: SystemStore) -> None:
    """Secrets left out of a record are kept by an overwrite, secret options included."""
    records = await store.export_systems()
    records[1]["options"] = {"n": 4}
    await store.import_systems(records, on_conflict="overwrite")
    vault = await store.get("vault")
    assert vault.password is not None
    assert vault.password.reveal() == PASSWORD
    assert vault.options["secrets"]["token"].reveal() == TOKEN
    assert vault.options["n"] == 4


async def test_import_overwrite_keeps_secrets_with_wrong_key(
    store: SystemStore, tmp_path: Path, key: str
) -> None:
    """Keeping omitted secrets needs no decryption, so it works without the key."""
    records = await store.export_systems()
    await store.close()
    async with SystemStore(tmp_path / "source.db", key=generate_key()) as wrong:
        await wrong.import_systems(records, on_conflict="overwrite")
    async with SystemStore(tmp_path / "source.db", key=key) as right:
        vault = await right.get("vault")
    assert vault.password is not None
    assert vault.password.reveal() == PASSWORD


async def test_import_overwrite_null_clears_secret(store: SystemStore) -> None:
    """An explicit null password in a record removes the stored password."""
    records = await store.export_systems(include_secrets=True)
    records[1]["password"] = None
    await store.import_systems(records, on_conflict="overwrite")
    assert (await store.get("vault")).password is None


async def test_import_bad_on_conflict_rejected(store: SystemStore) -> None:
    """An unknown on_conflict value is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="'overwrite'"):
        await store.import_systems([], on_conflict="replace")  # type: ignore[arg-type]


# --- validation: all or nothing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"name": "x", "system_type": "picky-test", "port": 0}, "port"),
        ({"name": "x", "system_type": "picky-test", "host": "forbidden.example"}, "forbidden"),
        ({"name": "x", "system_type": "no-such-type"}, "no-such-type"),
        ({"name": "x", "system_type": "picky-test", "colour": "red"}, "unknown field"),
        ({"system_type": "picky-test"}, "no name"),
        ({"name": "x", "system_type": "picky-test", "format_version": 2}, "newer asyncext"),
        ({"name": "x", "system_type": "picky-test", "revision": 0}, "revision"),
        ({"name": "x", "system_type": "picky-test", "created_at": "yesterday"}, "ISO 8601"),
        ({"name": "x", "system_type": "picky-test", "created_at": "2024-01-01T00:00"}, "offset"),
        ({"name": "x", "system_type": "picky-test", "tenants": "acme"}, "tenants"),
        ({"name": "x", "system_type": "picky-test", "tenants": [["a"]]}, "record #3"),
        ({"name": "x", "system_type": "picky-test", "options": [1]}, "options"),
        ({"name": "x", "system_type": "picky-test", "password": 5}, "password"),
        ({"name": "x", "system_type": "picky-test", "options": {"secrets": [1]}}, "secrets"),
        ({"name": "new-1", "system_type": "picky-test"}, "both name"),
        ("not a record", "not a dict"),
    ],
)
async def test_import_bad_record_writes_nothing(tmp_path: Path, bad: Any, match: str) -> None:
    """One bad record among good ones rejects the file; not even the good ones are stored."""
    path = tmp_path / "s.db"
    records = [
        {"name": "new-1", "system_type": "picky-test"},
        {"name": "new-2", "system_type": "picky-test", "password": PASSWORD},
        bad,
    ]
    async with SystemStore(path) as target:
        with pytest.raises(InvalidSystem, match=match) as caught:
            await target.import_systems(records)
    assert "nothing was written" in str(caught.value)
    assert count_rows(path) == 0


async def test_import_unknown_type_is_unknown_system_type(tmp_path: Path) -> None:
    """An unknown type raises UnknownSystemType, as add() does, naming the record."""
    async with SystemStore(tmp_path / "s.db") as target:
        with pytest.raises(UnknownSystemType) as caught:
            await target.import_systems([{"name": "x", "system_type": "no-such-type"}])
    assert "record #1" in str(caught.value)
    assert caught.value.system_type == "no-such-type"
    assert caught.value.system == "x"
    assert isinstance(caught.value.__cause__, UnknownSystemType)


async def test_export_empty_secret_options_round_trip(store: SystemStore, tmp_path: Path) -> None:
    """An empty options["secrets"] is dropped on the way in, so every form round-trips."""
    added = await store.add("bare", "local", remote_path=str(tmp_path), options={"secrets": {}})
    record = [r for r in await store.export_systems(include_secrets=True) if r["name"] == "bare"]
    parsed = ExternalSystem.from_uri(added.to_uri(include_secrets=True), name="bare")

    assert added.options == {}
    assert record[0]["options"] == {}
    assert parsed.options == {}


async def test_import_rejects_non_list(tmp_path: Path) -> None:
    """A single dict or a string is not a list of records."""
    async with SystemStore(tmp_path / "s.db") as target:
        with pytest.raises(InvalidSystem, match="list of dicts"):
            await target.import_systems({"name": "x", "system_type": "picky-test"})  # type: ignore[arg-type]


async def test_import_error_hides_secrets(tmp_path: Path) -> None:
    """A rejected record's message never contains its secrets."""
    record = {
        "name": "x",
        "system_type": "picky-test",
        "host": "forbidden.example",
        "password": PASSWORD,
        "options": {"secrets": {"token": TOKEN}},
    }
    async with SystemStore(tmp_path / "s.db") as target:
        with pytest.raises(InvalidSystem) as caught:
            await target.import_systems([record])
    for secret in (PASSWORD, TOKEN):
        assert secret not in str(caught.value)


async def test_import_secrets_encrypted_at_rest(tmp_path: Path, key: str) -> None:
    """Imported secrets are stored encrypted like added ones."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as target:
        await target.import_systems(
            [{"name": "x", "system_type": "picky-test", "password": PASSWORD}]
        )
    with sqlite3.connect(path) as connection:
        stored = connection.execute("SELECT password FROM systems").fetchone()[0]
    connection.close()
    assert stored.startswith("fernet:")


# --- tenants -------------------------------------------------------------------------------


async def test_export_tenant_view_sees_own_systems(store: SystemStore) -> None:
    """A tenant's export contains the systems in its view: shared ones and its own."""
    await store.add("gamma-only", "picky-test", tenants=["gamma"])
    names = [record["name"] for record in await store.for_tenant("acme").export_systems()]
    assert names == ["plain", "vault"]


async def test_import_tenant_view_assigns_tenant(store: SystemStore) -> None:
    """Records imported through a tenant view are assigned to that tenant."""
    await store.for_tenant("gamma").import_systems([{"name": "g", "system_type": "picky-test"}])
    assert (await store.get("g")).tenants == frozenset({"gamma"})


async def test_import_tenant_view_never_overwrites_others(store: SystemStore) -> None:
    """A tenant cannot overwrite a system outside its view, even with overwrite."""
    await store.add("gamma-only", "picky-test", tenants=["gamma"], host="g.example")
    view = store.for_tenant("acme")
    records = [{"name": "gamma-only", "system_type": "picky-test", "host": "evil.example"}]
    with pytest.raises(DuplicateSystem, match="outside the view"):
        await view.import_systems(records, on_conflict="overwrite")
    assert (await store.get("gamma-only")).host == "g.example"
