"""The asyncext command against OpenSSH's sshd: add with a key file, trust, test."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

from leakcheck import assert_no_secrets, register_secret
from sshd import HOST, SSHServer, keygen_fingerprint, public_file
from test_cli_support import (
    RUN_TIMEOUT,
    SCRIPT,
    Cli,
    Result,
    TerminalSession,
    cli_fixture,  # noqa: F401
)


def add_sftp(cli: Cli, server: SSHServer, *extra: str, name: str = "box") -> Result:
    """Add an sftp system for ``server`` that logs in with the test user key file."""
    register_secret(server.keys.user_key.read_text())
    return cli.run(
        "add",
        name,
        "--type",
        "sftp",
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--username",
        server.username,
        "--private-key-file",
        str(server.keys.user_key),
        "--remote-path",
        str(server.data_folder),
        *extra,
    )


def shown(cli: Cli, name: str = "box") -> dict[str, object]:
    result = cli.run("show", name, "--json")
    assert result.code == 0, result.stderr
    record: dict[str, object] = json.loads(result.stdout)
    return record


def test_sftp_add_trust_test(cli: Cli, sshd: SSHServer) -> None:
    """add with a key file, trust --yes and test work end to end against sshd."""
    expected = sshd.fingerprint("ED25519")

    added = add_sftp(cli, sshd, "--ignore-fingerprint")
    trusted = cli.run("trust", "box", "--yes")
    record = shown(cli)
    tested = cli.run("test", "box")
    report = json.loads(cli.run("test", "box", "--json").stdout)

    assert added.code == 0, added.stderr
    assert trusted.code == 0, trusted.stderr
    assert f"Host key of system 'box' at {HOST}:{sshd.port}: {expected}\n" in trusted.stdout
    assert record["fingerprint"] == expected
    assert record["ignore_fingerprint"] is False
    assert record["revision"] == 2
    assert tested.code == 0, tested.output
    assert tested.stdout.splitlines()[1].split()[:2] == ["box", "ok"]
    assert report["ok"] is True
    for result in (added, trusted, tested):
        assert_no_secrets(result.output, "command output")


def test_trust_again_changes_nothing(cli: Cli, sshd: SSHServer) -> None:
    """trust of a system that already pins the offered key leaves it as it is."""
    add_sftp(cli, sshd, "--fingerprint", sshd.fingerprint("ED25519"))

    result = cli.run("trust", "box", "--yes")

    assert result.code == 0
    assert "already trusts this host key; nothing changed" in result.stdout
    assert shown(cli)["revision"] == 1


def test_trust_replaces_other_pin(cli: Cli, sshd: SSHServer) -> None:
    """trust of a system pinned to another key warns, then pins the offered key."""
    other = keygen_fingerprint(public_file(sshd.keys.stranger_key))
    add_sftp(cli, sshd, "--fingerprint", other)

    result = cli.run("trust", "box", "--yes")

    assert result.code == 0
    assert f"Warning: system 'box' currently pins {other}; trusting replaces it" in result.stderr
    assert shown(cli)["fingerprint"] == sshd.fingerprint("ED25519")


def test_trust_without_terminal_needs_yes(cli: Cli, sshd: SSHServer) -> None:
    """trust without --yes and without a terminal to ask on exits 2 and stores nothing."""
    add_sftp(cli, sshd, "--ignore-fingerprint")

    result = cli.run("trust", "box")

    assert result.code == 2
    assert sshd.fingerprint("ED25519") in result.stdout
    assert "Error: cannot ask for confirmation" in result.stderr
    assert "pass --yes" in result.stderr
    assert shown(cli)["fingerprint"] is None


def test_trust_asks_on_terminal(cli: Cli, sshd: SSHServer) -> None:
    """On a terminal, trust stores the key after 'y' and leaves the system after 'n'."""
    add_sftp(cli, sshd, "--ignore-fingerprint")
    question = "Trust this host key?"

    with TerminalSession(cli, "trust", "box") as declined:
        declined.wait_for_prompt(question)
        declined.type("n\n")
        refused = declined.finish()
    fingerprint_after_no = shown(cli)["fingerprint"]
    with TerminalSession(cli, "trust", "box") as accepted:
        accepted.wait_for_prompt(question)
        accepted.type("y\n")
        agreed = accepted.finish()

    assert refused.code == 1
    assert "was not accepted; nothing changed" in refused.stderr
    assert fingerprint_after_no is None
    assert agreed.code == 0, agreed.stderr
    assert shown(cli)["fingerprint"] == sshd.fingerprint("ED25519")


def test_add_sftp_without_fingerprint_fails(cli: Cli, sshd: SSHServer) -> None:
    """An sftp system without fingerprint or --ignore-fingerprint is rejected with a hint."""
    result = add_sftp(cli, sshd)

    assert result.code == 1
    assert result.stderr.startswith("Error: system 'box' has no host key fingerprint")
    assert "--ignore-fingerprint and then run 'asyncext trust box'" in result.stderr
    assert "scan_host_key" not in result.stderr


def test_test_host_key_mismatch_fails(cli: Cli, sshd: SSHServer) -> None:
    """test of a system pinned to another key exits 1 and suggests trust."""
    other_key_line = public_file(sshd.keys.stranger_key).read_text().strip()
    add_sftp(cli, sshd, "--fingerprint", other_key_line)

    result = cli.run("test", "box")

    assert result.code == 1
    assert result.stdout.splitlines()[1].split()[:2] == ["box", "failed"]
    assert "'asyncext trust box'" in result.stderr


def test_trust_unreachable_fails(cli: Cli, sshd: SSHServer) -> None:
    """trust of an unreachable server exits 1 and names the system."""
    with socket.socket() as closed:
        closed.bind((HOST, 0))
        port = closed.getsockname()[1]
    add_sftp(cli, sshd, "--ignore-fingerprint")
    cli.run("update", "box", "--port", str(port))

    result = cli.run("trust", "box", "--yes", "--timeout", "5")

    assert result.code == 1
    assert result.stderr.startswith("Error: cannot fetch the host key of system 'box': ")
    assert "Hint: " in result.stderr


def test_trust_local_system_fails(cli: Cli) -> None:
    """trust of a system whose type checks no host key exits 1 without connecting."""
    cli.add_local("docs")

    result = cli.run("trust", "docs", "--yes")

    assert result.code == 1
    assert result.stderr.splitlines() == [
        "Error: system 'docs' is of type 'local', which checks no SSH host key",
        "Hint: trust applies to systems of type ssh and sftp",
    ]


def test_trust_silent_server_hint(cli: Cli) -> None:
    """trust of a server that accepts TCP but never answers names the phase, then --timeout."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        cli.run(
            "add",
            "silent",
            "--type",
            "sftp",
            "--host",
            HOST,
            "--port",
            str(port),
            "--username",
            "nobody",
            "--ignore-fingerprint",
        )

        result = cli.run("trust", "silent", "--yes", "--timeout", "1")

    error, hint = result.stderr.splitlines()
    assert result.code == 1
    assert "during the key exchange phase" in error
    assert hint == (
        f"Hint: allow more time with --timeout SECONDS if {HOST}:{port} is slow to answer"
    )


def test_interrupt_during_connect_exits_130(cli: Cli) -> None:
    """Ctrl-C while a test waits on a silent server exits 130 without a traceback."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()
        listener.settimeout(RUN_TIMEOUT)
        port = listener.getsockname()[1]
        added = cli.run(
            "add",
            "silent",
            "--type",
            "sftp",
            "--host",
            HOST,
            "--port",
            str(port),
            "--username",
            "nobody",
            "--remote-path",
            "/",
            "--ignore-fingerprint",
            "--password-stdin",
            input="never-sent\n",
        )
        assert added.code == 0, added.stderr

        process = subprocess.Popen(
            [str(SCRIPT), "test", "silent", "--timeout", "60"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli.environment(),
            text=True,
        )
        try:
            # The command is inside its event loop once it has connected.
            connection, _ = listener.accept()
            with connection:
                started = time.monotonic()
                process.send_signal(signal.SIGINT)
                stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
                elapsed = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.endswith("Interrupted.\n")
    assert stdout == ""
    assert elapsed < 10


def test_trust_eof_ends_prompt_line(cli: Cli, sshd: SSHServer) -> None:
    """Ctrl-D at the confirmation declines and ends the question's line before the error."""
    add_sftp(cli, sshd, "--ignore-fingerprint")

    with TerminalSession(cli, "trust", "box") as session:
        session.wait_for_prompt("[y/N] ")
        session.type("\x04")
        result = session.finish()

    assert result.code == 1
    assert "[y/N] \nError: host key " in result.stderr
    assert shown(cli)["fingerprint"] is None
