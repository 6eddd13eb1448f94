"""The sshd test plugin's skip rule, and connection reports for ssh and sftp systems."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator

import pytest
import sshd as sshd_plugin
from sshd import SSHServer

from asyncext import ExternalSystem


def hide_sshd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "access", lambda path, mode: False)


def test_require_sshd_skips_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without sshd, the OpenSSH tests skip and say why."""
    hide_sshd(monkeypatch)
    monkeypatch.delenv(sshd_plugin.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="sshd is not installed"):
        sshd_plugin.require_sshd()


def test_require_sshd_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ASYNCEXT_REQUIRE_SSHD=1, a missing sshd fails the tests instead of skipping them."""
    hide_sshd(monkeypatch)
    monkeypatch.setenv(sshd_plugin.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="ASYNCEXT_REQUIRE_SSHD=1 requires it"):
        sshd_plugin.require_sshd()


@pytest.mark.parametrize("system_type", ["ssh", "sftp"])
async def test_ssh_test_connection_reports_host_key(sshd: SSHServer, system_type: str) -> None:
    """test_connection reports the address and the verified host key."""
    report = await sshd.system(system_type).test_connection()
    assert report.ok
    assert f"{sshd.host}:{sshd.port}" in report.detail
    assert sshd.fingerprint("ED25519") in report.detail


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never sends anything."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_ssh_test_connection_reports_timeout_phase(silent_port: int) -> None:
    """A failed test is ok=False with the phase that timed out, not an exception."""
    system = ExternalSystem(
        name="silent",
        system_type="sftp",
        host="127.0.0.1",
        port=silent_port,
        username="nobody",
        password="never-sent",
        ignore_fingerprint=True,
        options={"connect_timeout": 0.3},
    )
    report = await system.test_connection(timeout=5)
    assert not report.ok
    assert "key exchange" in report.detail
