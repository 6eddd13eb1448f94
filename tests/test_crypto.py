"""Encryption at rest: keys, the stored format, and no secret bytes in the store's files."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from leakcheck import files_containing, register_secret

from asyncext import EncryptionKeyError, SystemStore, generate_key
from asyncext._crypto import Keyring, SealedText

PASSWORD = "pw-7Hq!x9 &=é+"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END"
PASSPHRASE = "passphrase-3c9d"
TOKEN = "token-e81b27f0"
register_secret(PASSWORD, PASSPHRASE, TOKEN, "b3BlbnNzaC1rZXktdjEAAAAA")

ALL_SECRETS = (PASSWORD, PRIVATE_KEY, PASSPHRASE, TOKEN)


@pytest.fixture
def key() -> str:
    value = generate_key()
    register_secret(value)
    return value


@pytest.fixture(autouse=True)
def no_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCEXT_KEY", raising=False)


async def add_secret_system(store: SystemStore, root: Path, name: str = "vault") -> None:
    await store.add(
        name,
        "local",
        remote_path=str(root),
        password=PASSWORD,
        private_key=PRIVATE_KEY,
        private_key_password=PASSPHRASE,
        options={"region": "eu", "secrets": {"token": TOKEN}},
    )


def stored_columns(path: Path) -> tuple[str, str]:
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT password, options FROM systems").fetchone()
    connection.close()
    return row[0], row[1]


# --- keyring -------------------------------------------------------------------------------


def test_crypto_keyring_encrypts_with_first_key(key: str) -> None:
    """A value sealed by a key list decrypts with the first key alone."""
    older = generate_key()
    sealed = Keyring([key, older]).seal(PASSWORD)
    assert Keyring([key]).decrypt(sealed, system="s") == PASSWORD


def test_crypto_keyring_decrypts_with_any_key(key: str) -> None:
    """A value sealed with an older key decrypts with a list that contains it anywhere."""
    sealed = Keyring([key]).seal(PASSWORD)
    assert Keyring([generate_key(), key]).decrypt(sealed, system="s") == PASSWORD


def test_crypto_keyring_stored_form_is_prefixed(key: str) -> None:
    """Stored values are 'fernet:<token>' with a key and 'plain:<value>' without."""
    assert Keyring([key]).seal(PASSWORD).startswith("fernet:gAAAAA")
    assert Keyring([]).seal("abc") == "plain:abc"


def test_crypto_keyring_invalid_key_not_echoed() -> None:
    """An invalid key is rejected with its position, never its text."""
    with pytest.raises(EncryptionKeyError) as caught:
        Keyring.from_setting([generate_key(), "not-a-key-6b2f"])
    assert "#2" in str(caught.value)
    assert "not-a-key-6b2f" not in str(caught.value)


def test_crypto_keyring_empty_key_rejected() -> None:
    """An explicit empty key is an error, not a silent switch to plain text."""
    with pytest.raises(EncryptionKeyError, match="empty"):
        Keyring.from_setting("")


def test_crypto_keyring_empty_list_rejected() -> None:
    """An empty list of keys is an error, like an empty key."""
    with pytest.raises(EncryptionKeyError, match="list of encryption keys is empty"):
        SystemStore("unused.db", key=[])


def test_crypto_keyring_accepts_bytes_key() -> None:
    """A key as bytes, as Fernet.generate_key() returns it, works like text."""
    key = generate_key()
    assert Keyring.from_setting(key.encode()).decrypt(Keyring([key]).seal("x"), system="s") == "x"


def test_crypto_keyring_reads_environment(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """key=None reads ASYNCEXT_KEY, which may list several keys separated by commas."""
    older = generate_key()
    monkeypatch.setenv("ASYNCEXT_KEY", f"{key}, {older}")
    keyring = Keyring.from_setting(None)
    assert keyring.key_count == 2
    assert Keyring([key]).decrypt(keyring.seal("x"), system="s") == "x"


def test_crypto_keyring_repr_hides_keys(key: str) -> None:
    """The keyring's repr counts its keys and shows none."""
    assert repr(Keyring([key])) == "<Keyring with 1 key>"


def test_crypto_sealed_text_repr_hides_value(key: str) -> None:
    """Stored forms handed to SQLite hide themselves from repr, as aiosqlite logs it."""
    sealed = Keyring([]).seal(PASSWORD)
    assert isinstance(sealed, SealedText)
    assert PASSWORD not in repr([sealed])
    assert sealed == "plain:" + PASSWORD


def test_crypto_keyring_decrypt_error_hides_ciphertext(key: str) -> None:
    """A wrong key names the system and field, never the stored token."""
    sealed = Keyring([key]).seal(PASSWORD)
    with pytest.raises(EncryptionKeyError) as caught:
        Keyring([generate_key()]).decrypt(sealed, system="vault", field="password")
    message = str(caught.value)
    assert "'vault'" in message
    assert "password" in message
    assert sealed[len("fernet:") :] not in message


# --- the store's files ---------------------------------------------------------------------


async def test_crypto_store_encrypts_every_secret(tmp_path: Path, key: str) -> None:
    """With a key, the columns hold Fernet tokens, secret options included."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as store:
        await add_secret_system(store, tmp_path)
    password, options = stored_columns(path)
    assert password.startswith("fernet:")
    assert '"token": "fernet:' in options


async def test_crypto_files_hold_no_secret_bytes(tmp_path: Path, key: str) -> None:
    """No secret appears in the .db, -wal or -shm file while the store is open or after."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as store:
        await add_secret_system(store, tmp_path)
        await store.update("vault", host="db.example")
        await add_secret_system(store, tmp_path, name="vault-2")
        await store.remove("vault-2")
        for secret in ALL_SECRETS:
            assert files_containing(path, secret) == [], "while open"
    for secret in ALL_SECRETS:
        assert files_containing(path, secret) == [], "after close"


async def test_crypto_scan_finds_plaintext_without_key(tmp_path: Path) -> None:
    """The file scan itself works: without a key the password is in the -wal file."""
    path = tmp_path / "s.db"
    async with SystemStore(path) as store:
        await add_secret_system(store, tmp_path)
        assert files_containing(path, PASSWORD) == ["s.db-wal"]


async def test_crypto_replaced_secret_leaves_no_bytes(tmp_path: Path, key: str) -> None:
    """A password replaced by update leaves no trace of either value in the files."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as store:
        await add_secret_system(store, tmp_path)
        await store.update("vault", password="second-password-4f1a")
        for secret in (PASSWORD, "second-password-4f1a"):
            assert files_containing(path, secret) == []


async def test_crypto_store_without_key_serves_plain_systems(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store with no key adds and reads systems without secrets, and warns about nothing."""
    caplog.set_level(logging.WARNING, logger="asyncext")
    async with SystemStore(tmp_path / "s.db") as store:
        await store.add("files", "local", remote_path=str(tmp_path), options={"n": 1})
        system = await store.get("files")
    assert system.options == {"n": 1}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_crypto_store_without_key_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Writing secrets without a key logs exactly one WARNING per store, naming the store."""
    caplog.set_level(logging.WARNING, logger="asyncext")
    path = tmp_path / "s.db"
    async with SystemStore(path) as store:
        await store.add("one", "local", remote_path=str(tmp_path), password="x")
        await store.add("two", "local", remote_path=str(tmp_path), password="y")
        await store.update("one", password="z")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "stored unencrypted" in warnings[0]
    assert str(path) in warnings[0]
    assert "'one'" in warnings[0]


async def test_crypto_store_without_key_reads_back(tmp_path: Path) -> None:
    """Secrets written without a key read back exactly, by a store that has no key either."""
    path = tmp_path / "s.db"
    async with SystemStore(path) as store:
        await add_secret_system(store, tmp_path)
    async with SystemStore(path) as store:
        system = await store.get("vault")
    assert system.password is not None
    assert system.password.reveal() == PASSWORD
    assert system.options["secrets"]["token"].reveal() == TOKEN


async def test_crypto_keyed_store_warns_about_plain_rows(
    tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A store opened with a key warns once when it meets a secret stored unencrypted."""
    path = tmp_path / "s.db"
    async with SystemStore(path) as store:
        await add_secret_system(store, tmp_path)
    caplog.set_level(logging.WARNING, logger="asyncext")
    caplog.clear()
    async with SystemStore(path, key=key) as store:
        await store.list()
        await store.list()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rotate" in warnings[0]


async def test_crypto_update_keeps_untouched_ciphertext(tmp_path: Path, key: str) -> None:
    """Updating another field leaves the stored password token byte for byte."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as store:
        await add_secret_system(store, tmp_path)
        before = stored_columns(path)
        await store.update("vault", host="db.example")
    assert stored_columns(path)[0] == before[0]


async def test_crypto_update_copies_option_secrets_unchanged(tmp_path: Path, key: str) -> None:
    """New options that carry the stored secret options over keep their tokens as they were."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as store:
        await add_secret_system(store, tmp_path)
        before = stored_columns(path)[1]
        system = await store.get("vault")
        await store.update("vault", options={**system.options, "region": "us"})
    assert before.split('"token": ')[1] == stored_columns(path)[1].split('"token": ')[1]


async def test_crypto_unchanged_secrets_not_decrypted_on_update(tmp_path: Path, key: str) -> None:
    """update() with a wrong key still works when the secrets are carried over unchanged."""
    path = tmp_path / "s.db"
    async with SystemStore(path, key=key) as store:
        await add_secret_system(store, tmp_path)
    async with SystemStore(path, key=generate_key()) as store:
        system = await store.get("vault")
        await store.update("vault", options={**system.options, "region": "us"})
    async with SystemStore(path, key=key) as store:
        system = await store.get("vault")
    assert system.options["secrets"]["token"].reveal() == TOKEN
    assert system.options["region"] == "us"


@pytest.mark.parametrize("setting", ["", " ", ",", " , "])
def test_crypto_empty_environment_key_is_error(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """ASYNCEXT_KEY set but empty raises instead of storing secrets unencrypted."""
    monkeypatch.setenv("ASYNCEXT_KEY", setting)

    with pytest.raises(EncryptionKeyError, match="ASYNCEXT_KEY is set but contains no key"):
        Keyring.from_setting(None)


def test_crypto_unset_environment_key_means_no_key() -> None:
    """With ASYNCEXT_KEY unset, the keyring has no key and stores plain text."""
    keyring = Keyring.from_setting(None)

    assert not keyring.has_key
