"""The examples run as a user runs them: as scripts in a subprocess, checked by their output."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from leakcheck import assert_no_secrets, register_secret
from sshd import SSHServer, keygen_fingerprint, public_file

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

TIMEOUT = 60.0
"""Seconds an example may run; each one takes a few seconds at most."""

REUSE = re.compile(r"SSH connections opened: (\d+), leases served: (\d+)")


def run_example(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/NAME`` with ``args`` and return the finished process."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=ROOT,
    )


def start_example(name: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Examples started in the background; killed after the test if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def read_line(process: subprocess.Popen[str], timeout: float = TIMEOUT) -> str:
    """Return the next line of the process's standard output; fail after ``timeout`` seconds."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout:g} s"
    return process.stdout.readline()


def line_starting(output: str, prefix: str) -> str:
    """Return the line of ``output`` that starts with ``prefix``."""
    for line in output.splitlines():
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix!r} in:\n{output}")


def reuse_counts(output: str) -> tuple[int, int]:
    """Return (connections opened, leases served) from an example's "reuse" line."""
    match = REUSE.search(line_starting(output, "reuse"))
    assert match is not None
    return int(match.group(1)), int(match.group(2))


def quickstart_flags(server: SSHServer, fingerprint: str) -> Sequence[str]:
    return [
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--username",
        server.username,
        "--key-file",
        str(server.keys.user_key),
        "--fingerprint",
        fingerprint,
        "--remote-path",
        str(server.data_folder),
    ]


# --- quickstart ---------------------------------------------------------------------------


def test_quickstart_runs_without_arguments() -> None:
    """The quick start runs every job on its own SFTP server, reports reuse and cleans up."""
    result = run_example("quickstart.py")

    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "fetched with scan_host_key and pinned" in output
    assert line_starting(output, "tested").startswith("tested    connected to 127.0.0.1:")
    assert "private_key Secret('**********')" in output
    assert "300 files moved at once through pooled clients" in output
    assert "330 files arrived intact" in output
    opened, leases = reuse_counts(output)
    assert 1 <= opened <= 4
    assert leases == 300
    assert " created, 0 destroyed, 300 acquires waiting " in line_starting(output, "pool")
    assert line_starting(output, "closed").endswith(": 0 clients left")
    temporary_folder = Path(line_starting(output, "removed").split(maxsplit=1)[1])
    assert not temporary_folder.exists()
    assert "PRIVATE KEY" not in output + result.stderr
    assert_no_secrets(output + result.stderr, "the quick start's output")


def test_quickstart_against_sshd(sshd: SSHServer) -> None:
    """With --host and the other flags, the quick start runs its jobs on OpenSSH's sshd."""
    private_key = sshd.keys.user_key.read_text()
    register_secret(private_key)
    # The sshd fixture serves the whole session, so other tests may have left files there.
    before = set(sshd.data_folder.iterdir())

    result = run_example("quickstart.py", *quickstart_flags(sshd, sshd.fingerprint()))

    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "pinned from --fingerprint" in output
    assert "330 files arrived intact" in output
    opened, leases = reuse_counts(output)
    assert 1 <= opened <= 4
    assert leases == 300
    assert line_starting(output, "closed").startswith("closed    store and pools")
    assert set(sshd.data_folder.iterdir()) == before
    assert_no_secrets(output + result.stderr, "the quick start's output")


def test_quickstart_wrong_fingerprint_fails(sshd: SSHServer) -> None:
    """A --fingerprint that is not the server's stops the quick start before any job."""
    other_key = keygen_fingerprint(public_file(sshd.keys.stranger_key))
    before = set(sshd.data_folder.iterdir())

    result = run_example("quickstart.py", *quickstart_flags(sshd, other_key))

    assert result.returncode == 1
    assert "quickstart failed:" in result.stderr
    assert "does not match the fingerprint" in result.stderr
    assert "jobs" not in result.stdout
    assert set(sshd.data_folder.iterdir()) == before


def test_quickstart_flag_without_host() -> None:
    """A server flag without --host is a usage error."""
    result = run_example("quickstart.py", "--key-file", "id_ed25519")

    assert result.returncode == 2
    assert "--key-file needs --host" in result.stderr


# --- worker --------------------------------------------------------------------------------


def test_worker_drains_queue() -> None:
    """Eight workers run every job over at most three connections, then close them."""
    result = run_example("worker.py", "--workers", "8", "--jobs", "200")

    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert line_starting(output, "done").startswith("done      200 jobs")
    assert line_starting(output, "files") == "files     200 reports on the SFTP server"
    opened, leases = reuse_counts(output)
    assert 1 <= opened <= 3
    assert leases == 200
    assert line_starting(output, "shutdown").endswith(", 0 left")
    assert result.stderr == ""


def test_worker_stops_on_sigterm(processes: list[subprocess.Popen[str]]) -> None:
    """SIGTERM stops the producer; the queued jobs finish and the pools close."""
    process = start_example("worker.py", "--jobs", "1000000")
    processes.append(process)
    assert read_line(process).startswith("started   8 workers")

    process.send_signal(signal.SIGTERM)
    output, errors = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 0, errors
    assert line_starting(output, "stopped").startswith("stopped   by SIGTERM")
    done = int(line_starting(output, "done").split()[1])
    assert 0 < done < 1000000
    assert line_starting(output, "files") == f"files     {done} reports on the SFTP server"
    assert line_starting(output, "shutdown").endswith(", 0 left")


# --- service -------------------------------------------------------------------------------


def test_service_answers_requests() -> None:
    """The service responds to uploads, reads and each error case with its status."""
    result = run_example("service.py")

    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "40 x 201" in line_starting(output, "PUT")
    assert re.search(r"^GET +/files +200 \[\"note-00.txt\"", output, re.MULTILINE)
    assert re.search(r"^GET +/files/note-07.txt +200 note 7$", output, re.MULTILINE)
    assert re.search(r"^GET +/files/missing.txt +404 ", output, re.MULTILINE)
    assert re.search(r"^GET +/files/\.\.%2F\S+ +403 ", output, re.MULTILINE)
    assert re.search(r"^DELETE +/files/note-07.txt +405 ", output, re.MULTILINE)
    opened, leases = reuse_counts(output)
    assert 1 <= opened <= 4
    assert leases == 45
    assert line_starting(output, "stopped").endswith(": 0 connections left")


def test_service_serves_until_sigint(processes: list[subprocess.Popen[str]]) -> None:
    """With --serve, the service responds to an HTTP client until SIGINT, then stops."""
    process = start_example("service.py", "--serve")
    processes.append(process)
    match = re.search(r"http://127\.0\.0\.1:\d+/files", read_line(process))
    assert match is not None
    url = match.group(0)

    upload = urllib.request.Request(f"{url}/hello.txt", data=b"hello\n", method="PUT")
    with urllib.request.urlopen(upload, timeout=TIMEOUT) as response:
        assert response.status == 201
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.read() == b'["hello.txt"]'

    process.send_signal(signal.SIGINT)
    output, errors = process.communicate(timeout=TIMEOUT)

    assert process.returncode == 0, errors
    assert reuse_counts(output) == (1, 2)
    assert line_starting(output, "stopped").endswith(": 0 connections left")


# --- custom adapter ------------------------------------------------------------------------


def test_custom_adapter_found_through_entry_point(tmp_path: Path) -> None:
    """Installed, the echo package's adapter is found through the asyncext.adapters group."""
    # Installed into a folder of its own, put on PYTHONPATH, so the venv stays unchanged.
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLES / "echo_adapter"),
        ],
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}

    result = run_example("custom_adapter.py", env=env)

    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert line_starting(output, "echo") == (
        "echo      found through the entry point echo = asyncext_echo:EchoAdapter"
    )
    assert "needs port" in line_starting(output, "validate")
    assert line_starting(output, "adapter") == "adapter   EchoAdapter from module asyncext_echo"
    assert "Secret('**********')" in line_starting(output, "options")
    assert line_starting(output, "test").startswith("test      ok=True: echo server at")
    assert "100 of 100 replies correct" in line_starting(output, "pooled")
    assert "failed checks: 4" in line_starting(output, "health")
    assert "rejected the token" in line_starting(output, "rejected")

    types = subprocess.run(
        [sys.executable, "-m", "asyncext", "types"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=True,
    )
    assert re.search(r"^echo +a line echo server", types.stdout, re.MULTILINE)


def test_custom_adapter_registers_by_hand() -> None:
    """Without the package installed, the example registers the adapter by hand."""
    result = run_example("custom_adapter.py")

    assert result.returncode == 0, result.stderr
    output = result.stdout
    assert "registered by hand" in line_starting(output, "echo")
    assert "100 of 100 replies correct" in line_starting(output, "pooled")
