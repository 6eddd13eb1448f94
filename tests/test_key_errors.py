"""A missing or wrong key: non-secret fields stay readable, secrets raise EncryptionKeyError."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.fernet import Fernet, MultiFernet
from leakcheck import register_secret

from asyncext import (
    Adapter,
    EncryptionKeyError,
    ExternalSystem,
    PoolOptions,
    SystemStore,
    generate_key,
    register_adapter,
)
from asyncext._crypto import Keyring

PASSWORD = "key-test-pw-51c2"
TOKEN = "key-test-token-0d7e"
register_secret(PASSWORD, TOKEN)


@dataclass(eq=False)
class FakeConnection:
    """A client that remembers the password it connected with."""

    password: str


@register_adapter
class CredentialAdapter(Adapter[FakeConnection]):
    """Reads the password when connecting, as a real adapter would; no network."""

    system_type: ClassVar[str] = "credential-test"
    description: ClassVar[str] = "test adapter that reads the password to connect"
    connects: ClassVar[list[str]] = []

    async def get_client(self, system: ExternalSystem) -> FakeConnection:
        self.connects.append(system.name)
        return FakeConnection("" if system.password is None else system.password.reveal())


@pytest.fixture
def key() -> str:
    value = generate_key()
    register_secret(value)
    return value


@pytest.fixture(autouse=True)
def no_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCEXT_KEY", raising=False)


@pytest.fixture
async def encrypted_store(tmp_path: Path, key: str) -> Path:
    """Return the path of a store whose two systems were written with ``key``."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as store:
        await store.add(
            "vault",
            "credential-test",
            host="db.example",
            port=2222,
            username="svc",
            password=PASSWORD,
            options={"region": "eu", "secrets": {"token": TOKEN}},
            tenants=["acme"],
        )
        await store.add("plain", "credential-test", host="other.example")
    return path


def stored_token(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        stored: str = connection.execute(
            "SELECT password FROM systems WHERE name = 'vault'"
        ).fetchone()[0]
    connection.close()
    return stored.removeprefix("fernet:")


@pytest.mark.parametrize("wrong_key", ["other", "none"])
async def test_key_wrong_list_shows_every_system(encrypted_store: Path, wrong_key: str) -> None:
    """list() returns every system with its non-secret fields, whatever the key."""
    key = generate_key() if wrong_key == "other" else None
    async with SystemStore(encrypted_store, key=key) as store:
        systems = await store.list()
    assert [system.name for system in systems] == ["plain", "vault"]
    vault = systems[1]
    assert (vault.host, vault.port, vault.username) == ("db.example", 2222, "svc")
    assert vault.options["region"] == "eu"
    assert vault.tenants == frozenset({"acme"})


async def test_key_wrong_get_returns_record(encrypted_store: Path) -> None:
    """get() works with a wrong key and the password is still present, just not readable."""
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        vault = await store.get("vault")
    assert vault.password is not None
    assert vault.host == "db.example"


async def test_key_wrong_reveal_names_system(encrypted_store: Path) -> None:
    """Revealing raises EncryptionKeyError naming the system, without the ciphertext."""
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        vault = await store.get("vault")
    assert vault.password is not None
    with pytest.raises(EncryptionKeyError) as caught:
        vault.password.reveal()
    assert caught.value.system == "vault"
    assert "'vault'" in str(caught.value)
    assert stored_token(encrypted_store) not in str(caught.value)


async def test_key_missing_reveal_says_how_to_set(encrypted_store: Path) -> None:
    """With no key at all the error names ASYNCEXT_KEY as the fix."""
    async with SystemStore(encrypted_store) as store:
        vault = await store.get("vault")
    assert vault.password is not None
    with pytest.raises(EncryptionKeyError, match="ASYNCEXT_KEY"):
        vault.password.reveal()


async def test_key_wrong_secret_option_names_option(encrypted_store: Path) -> None:
    """A secret option that cannot be decrypted names the system and the option."""
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        vault = await store.get("vault")
    with pytest.raises(EncryptionKeyError, match=r"secret option 'token' of system 'vault'"):
        vault.options["secrets"]["token"].reveal()


async def test_key_wrong_client_raises_before_connecting(encrypted_store: Path) -> None:
    """client() raises EncryptionKeyError naming the system; the adapter is never called."""
    CredentialAdapter.connects.clear()
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        vault = await store.get("vault")
        with pytest.raises(EncryptionKeyError) as caught:
            async with vault.client():
                pass
    assert caught.value.system == "vault"
    assert stored_token(encrypted_store) not in str(caught.value)
    assert CredentialAdapter.connects == []


async def test_key_right_client_connects(encrypted_store: Path, key: str) -> None:
    """With the right key the adapter receives the decrypted password."""
    async with SystemStore(encrypted_store, key=key) as store:
        vault = await store.get("vault")
        async with vault.client() as client:
            assert client.password == PASSWORD


async def test_key_wrong_system_without_secrets_connects(encrypted_store: Path) -> None:
    """A system with no secrets opens clients even when the key is wrong."""
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        plain = await store.get("plain")
        async with plain.client() as client:
            assert client.password == ""


async def test_key_wrong_pooled_client_raises(encrypted_store: Path) -> None:
    """A pooled store raises EncryptionKeyError too, and builds no client."""
    CredentialAdapter.connects.clear()
    async with SystemStore(encrypted_store, key=generate_key(), pool=PoolOptions()) as store:
        vault = await store.get("vault")
        with pytest.raises(EncryptionKeyError, match="'vault'"):
            async with vault.client():
                pass
    assert CredentialAdapter.connects == []


async def test_key_import_overwrite_retires_pooled_clients(encrypted_store: Path, key: str) -> None:
    """After an import overwrites a system, its pool hands out clients of the new record."""
    register_secret("replaced-pw-3f7a")
    async with SystemStore(encrypted_store, key=key, pool=PoolOptions()) as store:
        async with (await store.get("vault")).client() as first:
            assert first.password == PASSWORD
        records = await store.export_systems(include_secrets=True)
        records[1]["password"] = "replaced-pw-3f7a"
        await store.import_systems(records, on_conflict="overwrite")
        async with (await store.get("vault")).client() as second:
            assert second.password == "replaced-pw-3f7a"


async def test_key_wrong_test_connection_reports(encrypted_store: Path) -> None:
    """test_connection() reports the key problem as ok=False instead of raising."""
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        vault = await store.get("vault")
    report = await vault.test_connection()
    assert report.ok is False
    assert "'vault'" in report.detail


async def test_key_wrong_update_other_field_keeps_secret(encrypted_store: Path, key: str) -> None:
    """update() of a non-secret field works with a wrong key and keeps the password."""
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        await store.update("vault", host="new.example")
    async with SystemStore(encrypted_store, key=key) as store:
        vault = await store.get("vault")
    assert vault.host == "new.example"
    assert vault.password is not None
    assert vault.password.reveal() == PASSWORD


async def test_key_wrong_export_without_secrets(encrypted_store: Path) -> None:
    """export_systems() without secrets works with a wrong key; with secrets it raises."""
    async with SystemStore(encrypted_store, key=generate_key()) as store:
        records = await store.export_systems()
        with pytest.raises(EncryptionKeyError, match="'vault'"):
            await store.export_systems(include_secrets=True)
    assert [record["name"] for record in records] == ["plain", "vault"]


NEW_PASSWORD = "key-test-new-pw-7a90"
register_secret(NEW_PASSWORD)


def file_bytes(path: Path) -> bytes:
    """Return the bytes of the store file and of its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.mark.usefixtures("no_environment_key")
@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda store: store.add("new", "credential-test", host="h", password=NEW_PASSWORD),
            id="add",
        ),
        pytest.param(lambda store: store.update("plain", password=NEW_PASSWORD), id="update"),
        pytest.param(
            lambda store: store.import_systems(
                [{"name": "new", "system_type": "credential-test", "password": NEW_PASSWORD}]
            ),
            id="import",
        ),
    ],
)
async def test_key_missing_refuses_plain_next_to_encrypted(
    encrypted_store: Path, write: Callable[[SystemStore], Any]
) -> None:
    """Without a key, a store containing encrypted secrets stores no new secret unencrypted."""
    async with SystemStore(encrypted_store) as store:
        with pytest.raises(EncryptionKeyError, match="contains encrypted secrets") as caught:
            await write(store)
        names = [system.name for system in await store.list()]
        plain = await store.get("plain")

    assert "open the store with its key" in str(caught.value)
    assert names == ["plain", "vault"]
    assert plain.password is None
    assert NEW_PASSWORD.encode() not in file_bytes(encrypted_store)


@pytest.mark.usefixtures("no_environment_key")
async def test_key_missing_writes_without_secrets(encrypted_store: Path) -> None:
    """Without a key, writes that carry no new secret still work on an encrypted store."""
    async with SystemStore(encrypted_store) as store:
        await store.add("bare", "credential-test", host="h")
        await store.update("vault", host="moved.example")
        names = [system.name for system in await store.list()]

    assert names == ["bare", "plain", "vault"]


# --- lazy decryption -----------------------------------------------------------------------


def bulk_insert(path: Path, key: str, count: int) -> None:
    """Insert ``count`` systems with a password and a secret option straight into SQLite."""
    keyring = Keyring([key])
    sealed_password = str(keyring.seal(PASSWORD))
    options = json.dumps({"n": 1, "secrets": {"token": str(keyring.seal(TOKEN))}})
    now = "2024-01-01T00:00:00.000000+00:00"
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO systems (name, system_type, host, password, options, created_at, "
            "updated_at) VALUES (?, 'credential-test', 'h.example', ?, ?, ?, ?)",
            [(f"s{index:05d}", sealed_password, options, now, now) for index in range(count)],
        )
    connection.close()


@pytest.fixture
def count_decryptions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every Fernet decryption, through MultiFernet or a single Fernet."""
    calls: list[int] = []

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        def decrypt(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return original(self, *args, **kwargs)

        return decrypt

    monkeypatch.setattr(Fernet, "decrypt", counting(Fernet.decrypt))
    monkeypatch.setattr(MultiFernet, "decrypt", counting(MultiFernet.decrypt))
    return calls


async def test_key_list_of_many_decrypts_nothing(
    tmp_path: Path, key: str, count_decryptions: list[int]
) -> None:
    """Listing 10,000 systems with secrets performs no decryption at all."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key):
        pass
    bulk_insert(path, key, 10_000)

    async with SystemStore(path, key=key) as store:
        systems = await store.list()
        assert len(systems) == 10_000
        assert count_decryptions == []

        # The counter does see decryption, so the empty count above means something.
        assert systems[0].password is not None
        assert systems[0].password.reveal() == PASSWORD
    assert count_decryptions != []
