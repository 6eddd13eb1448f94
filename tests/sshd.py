"""OpenSSH's sshd on 127.0.0.1 for tests and benchmarks: the launcher and its pytest fixtures.

Every server runs from a temporary folder with generated RSA and ed25519 host keys, its own
``authorized_keys`` and no PAM, so nothing on the machine (``/etc/ssh``, ``~/.ssh``) is used.
Password authentication is off because the test user may have no password; it is tested on
asyncssh's in-process server instead.

The pytest plugin part skips the OpenSSH tests with a stated reason when sshd is missing,
unless ``ASYNCEXT_REQUIRE_SSHD=1`` is set, in which case it fails them.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from asyncext import ExternalSystem

REQUIRE_ENV = "ASYNCEXT_REQUIRE_SSHD"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
"""Seconds sshd may take to accept connections after it is started."""

# sshd refuses to start without its privilege separation folder, which the service manager
# normally creates at boot.
PRIVSEP_FOLDER = "/run/sshd"


def find_sshd() -> str | None:
    """Return the path of OpenSSH's sshd, or None when it is not installed."""
    found = shutil.which("sshd")
    if found:
        return found
    if os.access("/usr/sbin/sshd", os.X_OK):
        return "/usr/sbin/sshd"
    return None


def run_keygen(*args: str) -> str:
    """Run ssh-keygen with ``args`` and return its standard output."""
    result = subprocess.run(
        ["ssh-keygen", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout


def public_file(private_key_file: Path) -> Path:
    """Return the file where ssh-keygen wrote the public half of ``private_key_file``."""
    return private_key_file.with_name(private_key_file.name + ".pub")


def keygen_fingerprint(public_key_file: Path, hash_name: str = "sha256") -> str:
    """Return the fingerprint of a public key file as ``ssh-keygen -l`` prints it."""
    output = run_keygen("-l", "-E", hash_name, "-f", str(public_key_file))
    return output.split()[1]


@dataclass(frozen=True)
class KeyFiles:
    """Host keys and user keys generated once, shared by every server of a test run."""

    folder: Path
    host_keys: dict[str, Path]
    """Private host key file by key type (``"ED25519"``, ``"RSA"``)."""
    user_key: Path
    """An ed25519 user key listed in ``authorized_keys``, without a passphrase."""
    user_rsa_key: Path
    """An RSA user key listed in ``authorized_keys``, without a passphrase."""
    stranger_key: Path
    """An ed25519 user key that no server accepts."""

    @property
    def authorized_keys(self) -> Path:
        return self.folder / "authorized_keys"

    def fingerprint(self, key_type: str, hash_name: str = "sha256") -> str:
        """Return a host key's fingerprint as ``ssh-keygen -l`` prints it."""
        return keygen_fingerprint(public_file(self.host_keys[key_type]), hash_name)

    def public_line(self, key_type: str) -> str:
        """Return a host key's public key line, as in ``known_hosts``."""
        return public_file(self.host_keys[key_type]).read_text().strip()


def generate_key_files(folder: Path) -> KeyFiles:
    """Generate host keys, user keys and ``authorized_keys`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)

    def generate(name: str, key_type: str, *extra: str) -> Path:
        path = folder / name
        run_keygen("-q", "-t", key_type, *extra, "-N", "", "-C", name, "-f", str(path))
        return path

    host_keys = {
        "ED25519": generate("host_ed25519", "ed25519"),
        "RSA": generate("host_rsa", "rsa", "-b", "2048"),
    }
    files = KeyFiles(
        folder=folder,
        host_keys=host_keys,
        user_key=generate("user_ed25519", "ed25519"),
        user_rsa_key=generate("user_rsa", "rsa", "-b", "2048"),
        stranger_key=generate("stranger_ed25519", "ed25519"),
    )
    authorized = [
        public_file(files.user_key).read_text(),
        public_file(files.user_rsa_key).read_text(),
    ]
    files.authorized_keys.write_text("".join(authorized))
    return files


KEY_FORMATS = ("openssh", "pem", "pkcs8")


def private_key_text(path: Path, key_format: str, passphrase: str | None = None) -> str:
    """Return the private key in ``path`` as ``openssh``, ``pem`` or ``pkcs8`` text.

    ``pem`` is the traditional ``BEGIN RSA PRIVATE KEY`` form, which exists for RSA only.
    """
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(path.read_bytes(), None)
    formats = {
        "openssh": serialization.PrivateFormat.OpenSSH,
        "pem": serialization.PrivateFormat.TraditionalOpenSSL,
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase is not None:
        encryption = serialization.BestAvailableEncryption(passphrase.encode())
    return key.private_bytes(serialization.Encoding.PEM, formats[key_format], encryption).decode()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class SSHServer:
    """One running sshd, listening on 127.0.0.1."""

    keys: KeyFiles
    folder: Path
    port: int
    process: subprocess.Popen[bytes]
    config: dict[str, str] = field(default_factory=dict)
    host: str = HOST
    username: str = field(default_factory=getpass.getuser)

    @property
    def log_file(self) -> Path:
        return self.folder / "sshd.log"

    def log(self) -> str:
        """Return what sshd has logged so far."""
        return self.log_file.read_text(errors="replace")

    def fingerprint(self, key_type: str = "ED25519", hash_name: str = "sha256") -> str:
        return self.keys.fingerprint(key_type, hash_name)

    def fields(self, system_type: str = "sftp", **overrides: Any) -> dict[str, Any]:
        """Return record fields that log in with the ed25519 user key and pin the ed25519 key.

        ``overrides`` replace any field; ``remote_path`` defaults to this server's data folder.
        """
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "private_key": self.keys.user_key.read_text(),
            "fingerprint": self.fingerprint("ED25519"),
        }
        if system_type == "sftp":
            values["remote_path"] = str(self.data_folder)
        values.update(overrides)
        return values

    def system(self, system_type: str = "sftp", name: str = "box", **fields: Any) -> ExternalSystem:
        """Return an unpooled record for this server; see `fields`."""
        from asyncext import ExternalSystem

        return ExternalSystem(
            name=name, system_type=system_type, **self.fields(system_type, **fields)
        )

    @property
    def data_folder(self) -> Path:
        """A folder for files that tests read and write through SFTP."""
        path = self.folder / "data"
        path.mkdir(exist_ok=True)
        return path

    def connection_processes(self) -> list[int]:
        """Return the ids of the processes sshd forked for its open connections."""
        return descendants(self.process.pid)

    def drop_connections(self) -> None:
        """End every open connection from the server side; sshd keeps listening.

        sshd starts each connection's handler in a session of its own, so the handlers are
        found through their parent ids rather than a process group.
        """
        for pid in self.connection_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    async def drop_until_closed(self, connection: Any, timeout: float = 10.0) -> None:
        """End every connection from the server side and wait until ``connection`` closes.

        When the test user is root, sshd 9.2 serves the connection in a process that only
        records a SIGTERM and acts on it when its poll returns (``server_loop2`` in
        serverloop.c). A signal that arrives while that process still handles the last
        request therefore waits for the next packet, which an idle connection may never get,
        so the signal is sent again every half second until the connection closes.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.drop_connections()
            try:
                await asyncio.wait_for(connection.wait_closed(), 0.5)
                return
            except asyncio.TimeoutError:
                assert loop.time() < deadline, f"sshd kept the connection open for {timeout} s"

    def kill(self) -> None:
        """Kill sshd and its connection processes with SIGKILL, as a crash would end them.

        The connection processes are killed first, because once sshd is gone they are no
        longer found as its descendants.
        """
        for pid in [*self.connection_processes(), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=5)

    def restart(self) -> None:
        """Start a new sshd with the same configuration on the same port, after `kill`.

        Raises:
            RuntimeError: sshd did not accept connections in time; the message contains its
                log.
        """
        sshd = self.process.args[0]
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(self.folder / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        if not wait_until_ready(self):
            raise RuntimeError(f"sshd did not restart on port {self.port}; its log:\n{self.log()}")

    def stop(self) -> None:
        """Stop sshd and the connections it serves; safe to call twice."""
        self.drop_connections()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def descendants(pid: int) -> list[int]:
    """Return the ids of every live descendant of process ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so fields are counted after it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))

    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def write_config(folder: Path, keys: KeyFiles, port: int, extra: dict[str, str]) -> Path:
    """Write an sshd_config for 127.0.0.1:``port``; ``extra`` adds or replaces directives."""
    settings = {
        "ListenAddress": f"{HOST}:{port}",
        "PidFile": str(folder / "sshd.pid"),
        "AuthorizedKeysFile": str(keys.authorized_keys),
        "UsePAM": "no",
        "StrictModes": "no",
        "PermitRootLogin": "prohibit-password",
        "PubkeyAuthentication": "yes",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "Subsystem": "sftp internal-sftp",
        "PrintMotd": "no",
        "PrintLastLog": "no",
        "PermitUserRC": "no",
        "LogLevel": "VERBOSE",
        # Sessions get this folder as HOME, so that the shell sshd starts for a command does
        # not run the account's ~/.bashrc. That file belongs to the machine and may be slow or
        # hang, as pyenv's rehash does when it waits up to a minute for a lock file.
        "SetEnv": f"HOME={folder}",
        **extra,
    }
    lines = [f"HostKey {path}" for path in keys.host_keys.values()]
    lines += [f"{name} {value}" for name, value in settings.items()]
    path = folder / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_server(
    keys: KeyFiles, folder: Path, config: dict[str, str] | None = None, *, sshd: str | None = None
) -> SSHServer:
    """Start sshd in the foreground on a free port and return once it accepts SSH connections.

    Raises:
        RuntimeError: sshd is missing, exited early or did not answer in time; the message
            contains its log.
    """
    sshd = sshd or find_sshd()
    if sshd is None:
        raise RuntimeError("OpenSSH's sshd is not installed; install the openssh-server package")
    if os.geteuid() == 0 and not os.path.isdir(PRIVSEP_FOLDER):
        os.makedirs(PRIVSEP_FOLDER, mode=0o755, exist_ok=True)

    folder.mkdir(parents=True, exist_ok=True)
    extra = dict(config or {})

    # The port may be taken between free_port() and sshd's bind, so a failed start is
    # retried on another port.
    last_log = ""
    for _ in range(5):
        port = free_port()
        config_file = write_config(folder, keys, port, extra)
        log_file = folder / "sshd.log"
        with open(log_file, "wb") as log:
            process = subprocess.Popen(
                [sshd, "-D", "-e", "-f", str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        server = SSHServer(keys=keys, folder=folder, port=port, process=process, config=extra)
        if wait_until_ready(server):
            return server
        server.stop()
        last_log = server.log()
    raise RuntimeError(f"sshd did not start; its log:\n{last_log}")


def wait_until_ready(server: SSHServer) -> bool:
    """Connect until sshd sends its SSH banner; return False if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with socket.create_connection((server.host, server.port), timeout=1.0) as probe:
                if probe.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        # Between two connection attempts; sshd usually listens within a few milliseconds.
        time.sleep(0.01)
    return False


# --- pytest plugin ----------------------------------------------------------------------


def require_sshd() -> str:
    """Return sshd's path, or skip the test with the reason (fail when sshd is required)."""
    path = find_sshd()
    if path is not None:
        return path
    reason = "OpenSSH's sshd is not installed (looked for 'sshd' on PATH and /usr/sbin/sshd)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires it")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    """Host and user keys shared by every sshd of the test run.

    Every line of every private key is a registered secret, so that the suite-wide leak
    check fails a test whose output or errors contain one.
    """
    from leakcheck import register_secret

    require_sshd()
    keys = generate_key_files(tmp_path_factory.mktemp("ssh-keys"))
    private_keys = [*keys.host_keys.values(), keys.user_key, keys.user_rsa_key, keys.stranger_key]
    for path in private_keys:
        lines = path.read_text().splitlines()
        register_secret(*(line for line in lines if line and not line.startswith("-----")))
    return keys


@pytest.fixture(scope="session")
def sshd(ssh_keys: KeyFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """An sshd with the default test configuration, shared by the tests that do not change it."""
    server = start_server(ssh_keys, tmp_path_factory.mktemp("sshd"), sshd=require_sshd())
    yield server
    server.stop()


@pytest.fixture
def start_sshd(
    ssh_keys: KeyFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SSHServer]]:
    """Start a private sshd with extra sshd_config directives; stopped after the test."""
    servers: list[SSHServer] = []
    path = require_sshd()

    def start(**config: str) -> SSHServer:
        server = start_server(ssh_keys, tmp_path_factory.mktemp("sshd"), config, sshd=path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# --- asyncssh's in-process server, for fault injection -------------------------------------


@dataclass
class FaultServer:
    """asyncssh's own SSH server on 127.0.0.1, for failures sshd cannot be made to show.

    It accepts password authentication (which the test sshd has turned off), can hold
    authentication open until ``auth_gate`` is set, and counts what reached it.
    """

    acceptor: Any
    host_key: Any
    password: str
    port: int
    host: str = HOST
    connections: int = 0
    auth_attempts: int = 0
    auth_started: Any = None
    """An asyncio.Event set when a password check begins."""
    auth_gate: Any = None
    """An asyncio.Event that password checks wait for, or None to answer at once."""
    closed_connections: int = 0
    connection_closed: Any = None
    """An asyncio.Event set when a client connection ends."""
    key_attempts: int = 0
    """Public keys offered by clients; the server accepts none."""

    @property
    def fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    def system(self, system_type: str = "ssh", name: str = "box", **fields: Any) -> ExternalSystem:
        from asyncext import ExternalSystem

        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": "tester",
            "password": self.password,
            "fingerprint": self.fingerprint,
        }
        values.update(fields)
        return ExternalSystem(name=name, system_type=system_type, **values)

    async def close(self) -> None:
        self.acceptor.close()
        await self.acceptor.wait_closed()


async def start_fault_server(password: str, *, hold_auth: bool = False) -> FaultServer:
    """Start asyncssh's server with one password; with ``hold_auth``, checks never finish."""
    import asyncio

    import asyncssh
    from leakcheck import register_secret

    register_secret(password)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    record = FaultServer(acceptor=None, host_key=host_key, password=password, port=0)
    record.auth_started = asyncio.Event()
    record.connection_closed = asyncio.Event()
    record.auth_gate = asyncio.Event() if hold_auth else None

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: Any) -> None:
            record.connections += 1

        def connection_lost(self, exc: Exception | None) -> None:
            record.closed_connections += 1
            record.connection_closed.set()

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: Any) -> bool:
            record.key_attempts += 1
            return False

        async def validate_password(self, username: str, offered: str) -> bool:
            record.auth_attempts += 1
            record.auth_started.set()
            if record.auth_gate is not None:
                await record.auth_gate.wait()
            return offered == password

    def answer(process: Any) -> None:
        process.stdout.write("ok\n")
        process.exit(0)

    record.acceptor = await asyncssh.create_server(
        Server,
        HOST,
        0,
        server_host_keys=[host_key],
        process_factory=answer,
        # Nothing from the machine: no authorized_keys, no config.
        authorized_client_keys=None,
        config=None,
    )
    record.port = record.acceptor.sockets[0].getsockname()[1]
    return record
