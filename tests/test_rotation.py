"""rotate_key: one transaction, idempotent, readable with the old keys after any failure."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from leakcheck import files_containing, register_secret

from asyncext import EncryptionKeyError, RotationReport, StoreError, SystemStore, generate_key

PASSWORDS = {f"sys-{index:02d}": f"rotation-pw-{index:02d}-9f3b" for index in range(10)}
TOKEN = "rotation-token-77aa"
register_secret(*PASSWORDS.values(), TOKEN)


@pytest.fixture
def keys() -> tuple[str, str]:
    """Return (k1, k2): the key the secrets are written with, and the new key."""
    pair = (generate_key(), generate_key())
    register_secret(*pair)
    return pair


@pytest.fixture(autouse=True)
def no_environment_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCEXT_KEY", raising=False)


async def fill(path: Path, key: str | None) -> None:
    """Store ten systems with a password, one of them with a secret option too."""
    async with SystemStore(path, key=key) as store:
        for name, password in PASSWORDS.items():
            await store.add(name, "local", remote_path=str(path.parent), password=password)
        await store.update("sys-00", options={"secrets": {"token": TOKEN}})
        await store.add("no-secrets", "local", remote_path=str(path.parent))


async def assert_all_readable(path: Path, key: str | list[str]) -> None:
    async with SystemStore(path, key=key) as store:
        systems = {system.name: system for system in await store.list()}
    for name, password in PASSWORDS.items():
        secret = systems[name].password
        assert secret is not None
        assert secret.reveal() == password, name
    assert systems["sys-00"].options["secrets"]["token"].reveal() == TOKEN


def raw_secrets(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT name, coalesce(password, ''), options FROM systems ORDER BY name"
        ).fetchall()
    connection.close()
    return rows


async def test_rotation_first_run_re_encrypts_all(tmp_path: Path, keys: tuple[str, str]) -> None:
    """Keys [k2, k1] over secrets written with k1: every secret is re-encrypted."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=[k2, k1]) as store:
        report = await store.rotate_key(k2)
    assert report == RotationReport(re_encrypted=11, skipped=0, empty=23)


async def test_rotation_second_run_re_encrypts_none(tmp_path: Path, keys: tuple[str, str]) -> None:
    """Running the rotation again changes nothing and reports every secret as skipped."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=[k2, k1]) as store:
        await store.rotate_key(k2)
        before = raw_secrets(path)
        report = await store.rotate_key(k2)
    assert report == RotationReport(re_encrypted=0, skipped=11, empty=23)
    assert raw_secrets(path) == before


async def test_rotation_counts_add_up(tmp_path: Path, keys: tuple[str, str]) -> None:
    """The counts cover three fields per system plus each secret option."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=k1) as store:
        report = await store.rotate_key(k2)
    systems = len(PASSWORDS) + 1
    assert report.re_encrypted + report.skipped + report.empty == 3 * systems + 1


async def test_rotation_new_key_alone_reads_all(tmp_path: Path, keys: tuple[str, str]) -> None:
    """After rotating, [k2] alone decrypts every secret."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=[k2, k1]) as store:
        await store.rotate_key(k2)
    await assert_all_readable(path, k2)


async def test_rotation_store_switches_to_new_key(tmp_path: Path, keys: tuple[str, str]) -> None:
    """The same store object encrypts new secrets with k2 and still reads old records."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=k1) as store:
        before = await store.get("sys-01")
        await store.rotate_key(k2)
        await store.add("later", "local", remote_path=str(tmp_path), password="later-pw-1c0d")
        assert before.password is not None
        assert before.password.reveal() == PASSWORDS["sys-01"]
    async with SystemStore(path, key=k2) as store:
        later = await store.get("later")
    assert later.password is not None
    assert later.password.reveal() == "later-pw-1c0d"


async def test_rotation_encrypts_plain_store(tmp_path: Path, keys: tuple[str, str]) -> None:
    """A store written without a key gets every secret encrypted by rotate_key."""
    _, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, None)
    async with SystemStore(path) as store:
        report = await store.rotate_key(k2)
    assert report.re_encrypted == 11
    assert all(password.startswith("fernet:") for _, password, _ in raw_secrets(path)[1:])
    await assert_all_readable(path, k2)


async def test_rotation_purges_old_plaintext(tmp_path: Path, keys: tuple[str, str]) -> None:
    """After moving from no key to a key, no old plaintext remains in any file."""
    _, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, None)
    async with SystemStore(path, key=k2) as store:
        await store.rotate_key(k2)
        for secret in (*PASSWORDS.values(), TOKEN):
            assert files_containing(path, secret) == [], "while open"
    for secret in (*PASSWORDS.values(), TOKEN):
        assert files_containing(path, secret) == [], "after close"


async def test_rotation_purges_old_ciphertext(tmp_path: Path, keys: tuple[str, str]) -> None:
    """Tokens under the old key are gone from the .db and -wal files after rotating."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    old_tokens = [password.removeprefix("fernet:") for _, password, _ in raw_secrets(path)[1:]]
    async with SystemStore(path, key=k1) as store:
        await store.rotate_key(k2)
        leftovers = [token for token in old_tokens if files_containing(path, token)]
    assert leftovers == []


async def test_rotation_failure_midway_rolls_back(tmp_path: Path, keys: tuple[str, str]) -> None:
    """An SQLite error after some rows were rewritten leaves every row as it was."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    before = raw_secrets(path)
    with sqlite3.connect(path) as connection:
        # Rows are rewritten in name order, so sys-00 to sys-04 are already updated here.
        connection.execute(
            "CREATE TRIGGER fail_midway BEFORE UPDATE ON systems WHEN NEW.name = 'sys-05' "
            "BEGIN SELECT RAISE(ABORT, 'disk failure in the middle of rotation'); END"
        )
    connection.close()

    async with SystemStore(path, key=[k2, k1]) as store:
        with pytest.raises(StoreError, match="disk failure"):
            await store.rotate_key(k2)

    assert raw_secrets(path) == before
    await assert_all_readable(path, k1)


async def test_rotation_failure_keeps_old_key(tmp_path: Path, keys: tuple[str, str]) -> None:
    """After a failed rotation the store still writes with k1, so [k1] reads new secrets."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TRIGGER fail_always BEFORE UPDATE ON systems "
            "BEGIN SELECT RAISE(ABORT, 'no updates'); END"
        )
    connection.close()

    async with SystemStore(path, key=k1) as store:
        with pytest.raises(StoreError):
            await store.rotate_key(k2)
        await store.add("after", "local", remote_path=str(tmp_path), password="after-pw-55e1")
    async with SystemStore(path, key=k1) as store:
        after = await store.get("after")
    assert after.password is not None
    assert after.password.reveal() == "after-pw-55e1"


async def test_rotation_unknown_key_row_rolls_back(tmp_path: Path, keys: tuple[str, str]) -> None:
    """A secret that no key decrypts stops the rotation, names its system, changes nothing."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=generate_key()) as stranger:
        await stranger.update("sys-05", password="stranger-pw-8d2e")
    register_secret("stranger-pw-8d2e")
    before = raw_secrets(path)

    async with SystemStore(path, key=[k2, k1]) as store:
        with pytest.raises(EncryptionKeyError) as caught:
            await store.rotate_key(k2)

    assert caught.value.system == "sys-05"
    assert "nothing was changed" in str(caught.value)
    assert raw_secrets(path) == before


async def test_rotation_invalid_new_key_changes_nothing(
    tmp_path: Path, keys: tuple[str, str]
) -> None:
    """An invalid new key is rejected before any row is touched, and is not echoed."""
    k1, _ = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    before = raw_secrets(path)
    async with SystemStore(path, key=k1) as store:
        with pytest.raises(EncryptionKeyError) as caught:
            await store.rotate_key("not-a-fernet-key-c3d4")
    assert "not-a-fernet-key-c3d4" not in str(caught.value)
    assert raw_secrets(path) == before


async def test_rotation_cancelled_caller_gets_whole_result(
    tmp_path: Path, keys: tuple[str, str]
) -> None:
    """Cancelling the caller mid-rotation still commits it whole and switches the key."""
    k1, k2 = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=k1) as store:
        task = asyncio.create_task(store.rotate_key(k2))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.add("after", "local", remote_path=str(tmp_path), password="after-pw-19bb")
    register_secret("after-pw-19bb")
    # Every row, the one added after the cancelled rotation included, is under k2 now.
    async with SystemStore(path, key=k2) as store:
        after = await store.get("after")
    assert after.password is not None
    assert after.password.reveal() == "after-pw-19bb"
    await assert_all_readable(path, k2)


async def test_rotation_same_key_skips_everything(tmp_path: Path, keys: tuple[str, str]) -> None:
    """Rotating to the key already in use re-encrypts nothing."""
    k1, _ = keys
    path = tmp_path / "s.db"
    await fill(path, k1)
    async with SystemStore(path, key=k1) as store:
        report = await store.rotate_key(k1)
    assert report.re_encrypted == 0
    assert report.skipped == 11
