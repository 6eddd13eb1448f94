"""ExternalSystem: validation on construction, unpooled clients and connection tests."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar

import pytest
from leakcheck import register_secret

from asyncext import (
    Adapter,
    ConnectionFailed,
    ExternalSystem,
    HostKeyMismatch,
    InvalidSystem,
    Secret,
    SystemStore,
    register_adapter,
)
from asyncext._system import ConnectionTestTimeout

register_secret("wrong-token-777", "pass/word", "hunter22")


class Handle:
    """A fake client that records what happened to it."""

    def __init__(self, system: str) -> None:
        self.system = system
        self.destroyed = False


class RecordingAdapter(Adapter[Handle]):
    """Test adapter whose behaviour each test sets through class attributes."""

    system_type = "test-recording"
    description = "records get_client and destroy_client calls"

    opened: ClassVar[list[Handle]] = []
    fail_with: ClassVar[BaseException | None] = None
    connect_delay: ClassVar[float] = 0.0
    destroy_delay: ClassVar[float] = 0.0
    destroy_started: ClassVar[asyncio.Event | None] = None
    healthy: ClassVar[bool] = True

    def validate(self, system: ExternalSystem) -> None:
        if system.host == "invalid.example":
            raise InvalidSystem(f"system {system.name!r}: host is not allowed", system=system.name)

    async def get_client(self, system: ExternalSystem) -> Handle:
        await asyncio.sleep(self.connect_delay)
        if self.fail_with is not None:
            raise self.fail_with
        handle = Handle(system.name)
        self.opened.append(handle)
        return handle

    async def destroy_client(self, client: Handle) -> None:
        if self.destroy_started is not None:
            self.destroy_started.set()
        await asyncio.sleep(self.destroy_delay)
        client.destroyed = True

    async def check_client(self, client: Handle) -> bool:
        return self.healthy


register_adapter(RecordingAdapter)


@pytest.fixture(autouse=True)
def reset_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RecordingAdapter, "opened", [])
    monkeypatch.setattr(RecordingAdapter, "fail_with", None)
    monkeypatch.setattr(RecordingAdapter, "connect_delay", 0.0)
    monkeypatch.setattr(RecordingAdapter, "destroy_delay", 0.0)
    monkeypatch.setattr(RecordingAdapter, "destroy_started", None)
    monkeypatch.setattr(RecordingAdapter, "healthy", True)


def make_system(**fields: Any) -> ExternalSystem:
    return ExternalSystem(name="recorder", system_type="test-recording", **fields)


def test_system_wraps_plain_secrets() -> None:
    """Plain strings given for secrets become Secret objects hidden in repr."""
    system = make_system(password="hunter2", private_key="KEYTEXT", private_key_password="pp")

    assert isinstance(system.password, Secret)
    assert system.password.reveal() == "hunter2"
    assert "hunter2" not in repr(system)
    assert "KEYTEXT" not in repr(system)


def test_system_runs_adapter_validation() -> None:
    """Construction runs the adapter's validate()."""
    with pytest.raises(InvalidSystem, match="host is not allowed"):
        make_system(host="invalid.example")


def test_system_copies_options() -> None:
    """Later edits of the caller's dict do not reach the record."""
    options: dict[str, Any] = {"nested": {"a": 1}}
    system = make_system(options=options)

    options["nested"]["a"] = 2

    assert system.options == {"nested": {"a": 1}}


def test_system_is_hashable() -> None:
    """Records can be used in sets although options is a dict."""
    assert len({make_system(), make_system()}) == 1


def test_system_replace_validates() -> None:
    """dataclasses.replace() validates the changed record."""
    with pytest.raises(InvalidSystem, match="port"):
        dataclasses.replace(make_system(), port=0)


async def test_client_destroys_after_normal_exit() -> None:
    """An unpooled client is destroyed when the block ends."""
    async with make_system().client() as handle:
        assert not handle.destroyed

    assert handle.destroyed


async def test_client_destroys_after_body_error() -> None:
    """An exception in the body destroys the client and propagates unchanged."""
    with pytest.raises(KeyError, match="boom"):
        async with make_system().client() as handle:
            raise KeyError("boom")

    assert handle.destroyed


async def test_client_destroys_after_cancellation() -> None:
    """A body cancelled from outside still destroys the client."""
    entered = asyncio.Event()
    handles: list[Handle] = []

    async def use() -> None:
        async with make_system().client() as handle:
            handles.append(handle)
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(use())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert handles[0].destroyed


async def test_client_destroy_survives_cancellation() -> None:
    """A cancellation that arrives during destroy does not interrupt it."""
    RecordingAdapter.destroy_delay = 0.05
    RecordingAdapter.destroy_started = asyncio.Event()
    handles: list[Handle] = []

    async def use() -> None:
        async with make_system().client() as handle:
            handles.append(handle)

    task = asyncio.create_task(use())
    await RecordingAdapter.destroy_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert handles[0].destroyed


async def test_client_destroy_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A destroy that hangs is abandoned after the cleanup timeout."""
    monkeypatch.setattr("asyncext._system.CLEANUP_TIMEOUT", 0.05)
    RecordingAdapter.destroy_delay = 60.0

    async def use() -> None:
        async with make_system().client():
            pass

    await asyncio.wait_for(use(), timeout=5)


async def test_client_connect_error_is_connection_failed() -> None:
    """A foreign error in get_client surfaces as ConnectionFailed naming the system."""
    original = OSError("connection refused")
    RecordingAdapter.fail_with = original

    with pytest.raises(ConnectionFailed, match="'recorder'") as caught:
        async with make_system().client():
            pass

    assert caught.value.system == "recorder"
    assert caught.value.__cause__ is original
    assert "connection refused" in str(caught.value)


async def test_client_asyncext_error_passes_through() -> None:
    """An asyncext error raised by the adapter reaches the caller unchanged."""
    original = HostKeyMismatch(
        "mismatch", system="recorder", expected="a", offered="b", key_type="ssh-ed25519"
    )
    RecordingAdapter.fail_with = original

    with pytest.raises(HostKeyMismatch) as caught:
        async with make_system().client():
            pass

    assert caught.value is original


async def test_connection_report_ok() -> None:
    """test_connection() reports ok with the adapter's detail and the elapsed time."""
    report = await make_system().test_connection()

    assert report.ok is True
    assert report.system == "recorder"
    assert report.detail == "connected"
    assert report.elapsed >= 0
    assert RecordingAdapter.opened[0].destroyed


async def test_connection_report_failure() -> None:
    """A failure to connect is ok=False with the reason, not an exception."""
    RecordingAdapter.fail_with = ConnectionRefusedError("refused by peer")

    report = await make_system().test_connection()

    assert report.ok is False
    assert "refused by peer" in report.detail


async def test_connection_report_unhealthy() -> None:
    """A client that fails its health check makes the report fail."""
    RecordingAdapter.healthy = False

    report = await make_system().test_connection()

    assert report.ok is False
    assert "health check" in report.detail


async def test_connection_report_timeout() -> None:
    """A test that runs past its timeout reports ok=False saying so."""
    RecordingAdapter.connect_delay = 60.0

    report = await make_system().test_connection(timeout=0.05)

    assert report.ok is False
    assert "timed out after 0.05 s" in report.detail
    assert report.elapsed < 5


async def test_stored_system_runs_adapter_validation(tmp_path: Path) -> None:
    """add() and update() both run the adapter's validate() and store nothing on failure."""
    async with SystemStore(tmp_path / "systems.db") as store:
        with pytest.raises(InvalidSystem, match="host is not allowed"):
            await store.add("recorder", "test-recording", host="invalid.example")
        await store.add("recorder", "test-recording", host="ok.example")
        with pytest.raises(InvalidSystem, match="host is not allowed"):
            await store.update("recorder", host="invalid.example")

        assert (await store.get("recorder")).host == "ok.example"


async def test_stored_system_client_unpooled(tmp_path: Path) -> None:
    """A record from a store without pooling opens and destroys a client per block."""
    async with SystemStore(tmp_path / "systems.db") as store:
        system = await store.add("recorder", "test-recording")
        async with system.client() as first:
            pass
        async with system.client() as second:
            pass

    assert first is not second
    assert first.destroyed
    assert second.destroyed


async def test_client_error_masks_own_secrets() -> None:
    """A foreign error that quotes the system's password or token is masked in the message."""
    RecordingAdapter.fail_with = RuntimeError(
        "server refused AUTH wrong-token-777 for pass%2Fword and pass/word"
    )
    system = make_system(password="pass/word", options={"secrets": {"token": "wrong-token-777"}})

    with pytest.raises(ConnectionFailed) as caught:
        async with system.client():
            pass

    message = str(caught.value)
    assert "wrong-token-777" not in message
    assert "pass/word" not in message
    assert "pass%2Fword" not in message
    assert "server refused AUTH **********" in message


async def test_connection_report_masks_own_secrets() -> None:
    """A connection test's detail never repeats the system's secrets."""
    RecordingAdapter.fail_with = RuntimeError("bad password hunter22")

    report = await make_system(password="hunter22").test_connection()

    assert report.ok is False
    assert "hunter22" not in report.detail


async def test_connection_report_timeout_names_address() -> None:
    """A timed-out test names the system and the address it tried."""
    RecordingAdapter.connect_delay = 60.0

    report = await make_system(host="127.0.0.1", port=2222).test_connection(timeout=0.05)

    assert "system 'recorder'" in report.detail
    assert "127.0.0.1:2222" in report.detail


async def test_connection_report_keeps_error() -> None:
    """The report keeps the exception behind a failure, and a timeout of its own type."""
    original = ConnectionRefusedError("refused by peer")
    RecordingAdapter.fail_with = original
    failed = await make_system().test_connection()

    RecordingAdapter.fail_with = None
    RecordingAdapter.connect_delay = 60.0
    timed_out = await make_system().test_connection(timeout=0.05)

    RecordingAdapter.connect_delay = 0.0
    succeeded = await make_system().test_connection()

    assert failed.error is original
    assert isinstance(timed_out.error, ConnectionTestTimeout)
    assert succeeded.error is None


@pytest.mark.parametrize(
    "spelling",
    [
        "{value}",
        "{percent}",
        "{percent_lower}",
        "{plus}",
        "{repr}",
    ],
)
async def test_client_error_masks_secret_spellings(spelling: str) -> None:
    """A foreign error quoting the password in any usual spelling is masked."""

    value = "Weird pass+/%!\n2"
    percent = urllib.parse.quote(value, safe="")
    forms = {
        "value": value,
        "percent": percent,
        "percent_lower": re.sub("%[0-9A-F]{2}", lambda match: match.group(0).lower(), percent),
        "plus": urllib.parse.quote_plus(value, safe=""),
        "repr": repr(value)[1:-1],
    }
    quoted = spelling.format(**forms)
    register_secret(quoted)
    RecordingAdapter.fail_with = RuntimeError(f"login refused for {quoted}")

    with pytest.raises(ConnectionFailed) as caught:
        async with make_system(password=value).client():
            pass

    assert quoted not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_client_error_chain_with_secret_dropped() -> None:
    """A secret in a chained cause keeps the whole chain out of the error."""
    try:
        try:
            raise ValueError("token wrong-token-777 rejected")
        except ValueError as inner:
            raise RuntimeError("login failed") from inner
    except RuntimeError as outer:
        RecordingAdapter.fail_with = outer
    system = make_system(options={"secrets": {"token": "wrong-token-777"}})

    with pytest.raises(ConnectionFailed) as caught:
        async with system.client():
            pass

    assert caught.value.__cause__ is None
    assert "login failed" in str(caught.value)


async def test_connection_report_fails_on_undecryptable_secret(tmp_path: Path) -> None:
    """A secret that cannot be decrypted fails the test, as client() would fail."""
    from asyncext import EncryptionKeyError, generate_key

    path = tmp_path / "systems.db"
    async with SystemStore(path, key=generate_key()) as store:
        await store.add("recorder", "test-recording", password="hunter22")
    async with SystemStore(path, key=generate_key()) as store:
        system = await store.get("recorder")
        report = await system.test_connection()

    assert report.ok is False
    assert isinstance(report.error, EncryptionKeyError)
    assert "recorder" in report.detail


@pytest.mark.parametrize("password", ["", "a", "abc"])
async def test_client_error_keeps_short_secret_text(password: str) -> None:
    """Passwords shorter than four characters do not turn error text into asterisks."""
    RecordingAdapter.fail_with = RuntimeError("a bad answer from abc server")
    system = make_system(password=password)

    with pytest.raises(ConnectionFailed) as caught:
        async with system.client():
            pass
    report = await system.test_connection()

    assert "a bad answer from abc server" in str(caught.value)
    assert "*" not in str(caught.value)
    assert "a bad answer from abc server" in report.detail
