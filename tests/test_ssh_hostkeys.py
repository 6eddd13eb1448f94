"""Host key pins against OpenSSH's sshd, which has both an RSA and an ed25519 host key."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import asyncssh
import pytest
from sshd import SSHServer, free_port

import asyncext
from asyncext import ConnectionFailed, HostKeyMismatch
from asyncext._adapters._hostkeys import key_family


def wait_for_log(server: SSHServer, predicate: Callable[[str], bool]) -> str:
    """Return sshd's log once ``predicate`` holds for it; fail after 5 seconds."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        log = server.log()
        if predicate(log):
            return log
        # sshd writes its log from a separate process per connection.
        time.sleep(0.02)
    pytest.fail(f"sshd did not log the expected lines:\n{server.log()}")


async def server_key_type(server: SSHServer, fingerprint: str) -> str:
    async with server.system("ssh", fingerprint=fingerprint).client() as connection:
        key = connection.get_server_host_key()
        assert key is not None
        return key_family(key)


async def test_ssh_ed25519_pin_on_server_with_rsa(sshd: SSHServer) -> None:
    """An ed25519 SHA256 pin connects although the server also has an RSA key."""
    assert await server_key_type(sshd, sshd.fingerprint("ED25519")) == "ED25519"


async def test_ssh_rsa_pin_on_server_with_ed25519(sshd: SSHServer) -> None:
    """An RSA SHA256 pin connects although the server prefers its ed25519 key."""
    assert await server_key_type(sshd, sshd.fingerprint("RSA")) == "RSA"
    assert await server_key_type(sshd, sshd.fingerprint("RSA")) == "RSA"


@pytest.mark.parametrize("key_type", ["ED25519", "RSA"])
async def test_ssh_md5_pin(sshd: SSHServer, key_type: str) -> None:
    """An MD5 pin, as 'ssh-keygen -l -E md5' prints it, connects."""
    assert await server_key_type(sshd, sshd.fingerprint(key_type, "md5")) == key_type


@pytest.mark.parametrize("key_type", ["ED25519", "RSA"])
async def test_ssh_public_key_line_pin(sshd: SSHServer, key_type: str) -> None:
    """A public key line pin asks for its own key type and connects."""
    assert await server_key_type(sshd, sshd.keys.public_line(key_type)) == key_type


async def test_ssh_wrong_pin_raises_mismatch(start_sshd: Callable[..., SSHServer]) -> None:
    """A wrong pin raises HostKeyMismatch naming both fingerprints and the key type."""
    server = start_sshd()
    wrong = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")

    with pytest.raises(HostKeyMismatch) as raised:
        async with server.system("sftp", fingerprint=wrong).client():
            pass

    mismatch = raised.value
    assert mismatch.expected == wrong
    assert mismatch.offered == server.fingerprint("ED25519")
    assert mismatch.key_type == "ED25519"
    assert mismatch.system == "box"
    message = str(mismatch)
    assert wrong in message
    assert server.fingerprint("ED25519") in message
    assert server.fingerprint("RSA") in message
    assert "(ED25519)" in message


async def test_ssh_mismatch_sends_no_credential(start_sshd: Callable[..., SSHServer]) -> None:
    """A mismatch ends every attempt before authentication: sshd sees no key offered."""
    server = start_sshd()
    wrong = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")

    with pytest.raises(HostKeyMismatch):
        async with server.system("ssh", fingerprint=wrong).client():
            pass

    log = wait_for_log(server, lambda text: "no matching host key type" in text)
    assert log.count("Host key is not trusted") == 2
    assert "publickey" not in log
    assert "Accepted" not in log


async def test_ssh_wrong_public_key_line_pin(sshd: SSHServer) -> None:
    """A wrong RSA public key pin fails on the server's RSA key, in one attempt."""
    other = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    line = other.export_public_key("openssh").decode().strip()

    with pytest.raises(HostKeyMismatch) as raised:
        async with sshd.system("ssh", fingerprint=line).client():
            pass

    assert raised.value.key_type == "RSA"
    assert raised.value.offered == sshd.fingerprint("RSA")


async def test_ssh_ignore_fingerprint_logs_one_warning(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    """ignore_fingerprint=True connects and logs one WARNING with the unchecked key."""
    system = sshd.system("ssh", fingerprint=None, ignore_fingerprint=True)
    with caplog.at_level(logging.WARNING, logger="asyncext.ssh"):
        async with system.client() as connection:
            result = await connection.run("echo ok", check=True)

    assert result.stdout == "ok\n"
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'box'" in warnings[0].getMessage()
    assert sshd.fingerprint("ED25519") in warnings[0].getMessage()


async def test_scan_host_key_matches_ssh_keygen(sshd: SSHServer) -> None:
    """scan_host_key returns the ed25519 fingerprint exactly as 'ssh-keygen -l' prints it."""
    fingerprint = await asyncext.scan_host_key(sshd.host, sshd.port)
    assert fingerprint == sshd.fingerprint("ED25519")
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fingerprint)


async def test_scan_host_key_trust_on_first_use(sshd: SSHServer) -> None:
    """A system pinned to the scanned fingerprint connects."""
    fingerprint = await asyncext.scan_host_key(sshd.host, sshd.port)
    async with sshd.system("sftp", fingerprint=fingerprint).client() as files:
        assert await files.exists(".")


async def test_scan_host_key_closed_port() -> None:
    """Scanning a port where nothing listens raises ConnectionFailed naming the address."""
    port = free_port()
    with pytest.raises(ConnectionFailed) as raised:
        await asyncext.scan_host_key("127.0.0.1", port, timeout=5)
    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "ConnectionRefusedError" in str(raised.value)
