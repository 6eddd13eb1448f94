"""Authentication: private key formats, passphrases, passwords, and nothing from ~/.ssh."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest
from leakcheck import register_secret
from sshd import FaultServer, SSHServer, private_key_text, public_file, start_fault_server

from asyncext import ConnectionFailed, InvalidSystem

PASSPHRASE = "tr0ub4dor&3-passphrase"
WRONG_PASSPHRASE = "not-the-passphrase-41"
PASSWORD = "!Weird!Password^123$"
register_secret(PASSPHRASE, WRONG_PASSPHRASE, PASSWORD)

KEY_CASES = [
    ("ed25519", "openssh"),
    ("ed25519", "pkcs8"),
    ("rsa", "openssh"),
    ("rsa", "pem"),
    ("rsa", "pkcs8"),
]


def key_path(sshd: SSHServer, key_type: str) -> Path:
    return sshd.keys.user_key if key_type == "ed25519" else sshd.keys.user_rsa_key


def key_body_lines(text: str) -> list[str]:
    """Return the base64 lines of a key, which must never appear in any output."""
    lines = [line for line in text.splitlines() if line and not line.startswith("-----")]
    return [line for line in lines if ":" not in line]


@pytest.fixture
async def password_server() -> AsyncIterator[FaultServer]:
    server = await start_fault_server(PASSWORD)
    yield server
    await server.close()


@pytest.mark.parametrize(("key_type", "key_format"), KEY_CASES)
@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
async def test_ssh_key_formats_connect(
    sshd: SSHServer, key_type: str, key_format: str, passphrase: str | None
) -> None:
    """OpenSSH, PEM and PKCS#8 keys, ed25519 and RSA, with or without passphrase, log in."""
    text = private_key_text(key_path(sshd, key_type), key_format, passphrase)
    register_secret(*key_body_lines(text))
    system = sshd.system("ssh", private_key=text, private_key_password=passphrase)

    async with system.client() as connection:
        result = await connection.run("echo ok", check=True)

    assert result.stdout == "ok\n"


@pytest.mark.parametrize(("key_type", "key_format"), KEY_CASES)
async def test_ssh_wrong_passphrase(sshd: SSHServer, key_type: str, key_format: str) -> None:
    """A wrong passphrase is a ConnectionFailed naming private_key_password, without secrets."""
    text = private_key_text(key_path(sshd, key_type), key_format, PASSPHRASE)
    register_secret(*key_body_lines(text))
    system = sshd.system("ssh", private_key=text, private_key_password=WRONG_PASSPHRASE)

    with pytest.raises(ConnectionFailed) as raised:
        async with system.client():
            pass

    message = str(raised.value)
    assert "private_key_password does not decrypt" in message
    assert WRONG_PASSPHRASE not in message
    assert all(line not in message for line in key_body_lines(text))


async def test_ssh_missing_and_wrong_passphrase_differ(sshd: SSHServer) -> None:
    """A missing passphrase and a wrong one are different errors with different messages."""
    text = private_key_text(sshd.keys.user_key, "openssh", PASSPHRASE)

    with pytest.raises(InvalidSystem) as missing:
        sshd.system("ssh", private_key=text)
    with pytest.raises(ConnectionFailed) as wrong:
        async with sshd.system(
            "ssh", private_key=text, private_key_password=WRONG_PASSPHRASE
        ).client():
            pass

    assert "is encrypted but private_key_password is not set" in str(missing.value)
    assert "does not decrypt" in str(wrong.value)
    assert not isinstance(wrong.value, InvalidSystem)


async def test_ssh_unauthorized_key_fails(sshd: SSHServer) -> None:
    """A key the server does not accept fails authentication, naming the user."""
    system = sshd.system("ssh", private_key=sshd.keys.stranger_key.read_text())

    with pytest.raises(ConnectionFailed) as raised:
        async with system.client():
            pass

    assert f"authentication as {sshd.username!r}" in str(raised.value)


async def test_ssh_password_login(password_server: FaultServer) -> None:
    """Password authentication logs in."""
    async with password_server.system("ssh").client() as connection:
        result = await connection.run("anything", check=True)
    assert isinstance(connection, asyncssh.SSHClientConnection)
    assert result.stdout == "ok\n"


async def test_ssh_wrong_password_is_not_retried(password_server: FaultServer) -> None:
    """A wrong password fails after one connection and one check, with no secret in the message."""
    system = password_server.system("ssh", password="wrong-password-77")

    with pytest.raises(ConnectionFailed) as raised:
        async with system.client():
            pass

    assert "authentication as 'tester'" in str(raised.value)
    assert "wrong-password-77" not in str(raised.value)
    assert password_server.connections == 1
    assert password_server.auth_attempts == 1


async def test_ssh_repr_hides_credentials(sshd: SSHServer) -> None:
    """A record's repr shows neither the key nor the passphrase."""
    text = private_key_text(sshd.keys.user_key, "openssh", PASSPHRASE)
    system = sshd.system("ssh", private_key=text, private_key_password=PASSPHRASE)
    shown = repr(system) + str(system)
    assert PASSPHRASE not in shown
    assert all(line not in shown for line in key_body_lines(text))


# --- nothing from the user's ~/.ssh --------------------------------------------------------


@pytest.fixture
def hostile_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sshd: SSHServer) -> Path:
    """A HOME whose ~/.ssh would break or change every connection if it were read.

    The config sends connections to port 1 through a failing proxy and turns off key
    authentication, known_hosts revokes the server's keys, and id_ed25519 is a key that the
    server accepts.
    """
    home = tmp_path / "home"
    dot_ssh = home / ".ssh"
    dot_ssh.mkdir(parents=True)
    (dot_ssh / "config").write_text(
        "Host *\n"
        "  Port 1\n"
        "  User nobody\n"
        "  ProxyCommand false\n"
        "  HostKeyAlgorithms ssh-dss\n"
        "  IdentityFile ~/.ssh/id_ed25519\n"
        "  PubkeyAuthentication no\n"
        "  PreferredAuthentications password\n"
    )
    revoked = [f"@revoked * {sshd.keys.public_line(key_type)}\n" for key_type in ("ED25519", "RSA")]
    (dot_ssh / "known_hosts").write_text("".join(revoked))
    for name in ("id_ed25519", "id_rsa"):
        source = sshd.keys.user_key if name == "id_ed25519" else sshd.keys.user_rsa_key
        (dot_ssh / name).write_text(source.read_text())
        (dot_ssh / f"{name}.pub").write_text(public_file(source).read_text())
        os.chmod(dot_ssh / name, 0o600)
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def agent_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A listening socket posing as an SSH agent, named by SSH_AUTH_SOCK."""
    path = tmp_path / "agent.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    listener.setblocking(False)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(path))
    yield listener
    listener.close()


def agent_was_contacted(listener: socket.socket) -> bool:
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


async def test_ssh_ignores_user_config_and_known_hosts(
    hostile_home: Path, agent_socket: socket.socket, sshd: SSHServer
) -> None:
    """~/.ssh/config and ~/.ssh/known_hosts are not read: the record's settings connect."""
    async with sshd.system("sftp").client() as files:
        assert await files.exists(".")
    assert not agent_was_contacted(agent_socket)


async def test_ssh_ignores_default_keys_and_agent(
    hostile_home: Path, agent_socket: socket.socket, sshd: SSHServer
) -> None:
    """An accepted ~/.ssh/id_ed25519 and an agent are not tried when the record's key fails."""
    system = sshd.system("ssh", private_key=sshd.keys.stranger_key.read_text())

    with pytest.raises(ConnectionFailed, match="authentication"):
        async with system.client():
            pass

    assert not agent_was_contacted(agent_socket)


async def test_ssh_password_only_ignores_default_keys(
    hostile_home: Path, agent_socket: socket.socket, password_server: FaultServer
) -> None:
    """A record with only a password offers no key from ~/.ssh and contacts no agent."""
    async with password_server.system("ssh").client() as connection:
        await connection.run("anything", check=True)
    assert password_server.key_attempts == 0
    assert not agent_was_contacted(agent_socket)
