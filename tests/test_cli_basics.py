"""The asyncext command: keygen, init, types, global options, exit codes and error output."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from test_cli_support import (
    RUN_TIMEOUT,
    SCRIPT,
    Cli,
    TerminalSession,
    cli_fixture,  # noqa: F401
)

COMMANDS = (
    "keygen",
    "init",
    "types",
    "add",
    "list",
    "show",
    "update",
    "remove",
    "test",
    "trust",
    "export",
    "import",
    "rotate-key",
)


def test_keygen_prints_only_a_key(tmp_path: Path) -> None:
    """keygen prints one valid Fernet key and nothing else, so $(asyncext keygen) works."""
    result = Cli(tmp_path).run("keygen")

    assert result.code == 0
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1
    Fernet(result.stdout.strip())  # raises if it is not a key


def test_keygen_differs_each_run(tmp_path: Path) -> None:
    """Two runs of keygen print different keys."""
    runner = Cli(tmp_path)

    assert runner.run("keygen").stdout != runner.run("keygen").stdout


def test_init_creates_store_once(tmp_path: Path) -> None:
    """init creates a private store file, and a second init reports it is ready."""
    runner = Cli(tmp_path)

    first = runner.run("init")
    second = runner.run("init")

    assert first.code == 0
    assert "created" in first.stdout
    assert stat.S_IMODE(runner.store.stat().st_mode) == 0o600
    assert second.code == 0
    assert "is ready" in second.stdout
    assert first.stderr == ""


def test_init_without_key_warns(tmp_path: Path) -> None:
    """Without ASYNCEXT_KEY, init warns that secrets will be stored unencrypted."""
    result = Cli(tmp_path).run("init", env={"ASYNCEXT_KEY": None})

    assert result.code == 0
    assert result.stderr.startswith("Warning: ASYNCEXT_KEY is not set")
    assert "asyncext keygen" in result.stderr


def test_store_option_overrides_environment(tmp_path: Path) -> None:
    """--store wins over ASYNCEXT_STORE, before or after the command name."""
    runner = Cli(tmp_path)
    other = tmp_path / "other.db"

    before = runner.run("--store", str(other), "init")
    after = runner.run("list", "--store", str(other))

    assert before.code == 0
    assert other.exists()
    assert not runner.store.exists()
    assert after.code == 0


def test_store_defaults_to_working_directory(tmp_path: Path) -> None:
    """Without --store and ASYNCEXT_STORE the store is ./asyncext.db."""
    result = Cli(tmp_path).run("init", env={"ASYNCEXT_STORE": None})

    assert result.code == 0
    assert (tmp_path / "asyncext.db").exists()


def test_missing_store_fails_with_hint(tmp_path: Path) -> None:
    """A command on a store that does not exist exits 1 and creates nothing."""
    runner = Cli(tmp_path)

    result = runner.run("list")

    assert result.code == 1
    assert result.stderr.splitlines() == [
        f"Error: store {str(runner.store)!r} not found",
        "Hint: create it with 'asyncext init', or point --store or ASYNCEXT_STORE at an "
        "existing store",
    ]
    assert not runner.store.exists()


def test_empty_store_file_needs_init(tmp_path: Path) -> None:
    """A command on an empty file exits 1 and points to init, which makes it a 0600 store."""
    runner = Cli(tmp_path)
    runner.store.touch()
    runner.store.chmod(0o644)

    refused = runner.run("list")
    initialised = runner.run("init")

    assert refused.code == 1
    assert refused.stderr.splitlines()[0] == (
        f"Error: store {str(runner.store)!r} is an empty file"
    )
    assert initialised.code == 0
    assert "created" in initialised.stdout
    assert stat.S_IMODE(runner.store.stat().st_mode) == 0o600


def test_folder_as_store_is_one_error(tmp_path: Path) -> None:
    """A folder given as --store gives the Error and Hint lines and nothing else."""
    result = Cli(tmp_path).run("--store", str(tmp_path), "list")

    assert result.code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"Error: cannot open the store {str(tmp_path)!r}: it is a folder")
    assert lines[1].startswith("Hint: ")
    assert len(lines) == 2


def test_types_lists_local(cli: Cli) -> None:
    """types shows each installed type with its description, as a table and as JSON."""
    table = cli.run("types")
    listed = cli.run("types", "--json")

    assert table.code == 0
    assert table.stdout.splitlines()[0].split() == ["TYPE", "DESCRIPTION"]
    assert any(line.startswith("local ") for line in table.stdout.splitlines())
    types = {entry["system_type"]: entry["description"] for entry in json.loads(listed.stdout)}
    assert types["local"].startswith("a folder on this machine")


def test_help_lists_every_command(tmp_path: Path) -> None:
    """--help exits 0 and names every command, the environment and the exit codes."""
    result = Cli(tmp_path).run("--help")

    assert result.code == 0
    for command in COMMANDS:
        assert f"    {command} " in result.stdout, command
    assert "ASYNCEXT_KEY" in result.stdout
    assert "2 usage error" in result.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    """A missing command, an unknown flag or a bad number is a usage error with a hint."""
    runner = Cli(tmp_path)

    for args in ((), ("list", "--bogus"), ("add", "x", "--type", "local", "--port", "ssh")):
        result = runner.run(*args)
        assert result.code == 2, args
        assert result.stderr.splitlines()[-2].startswith("Error: "), args
        assert result.stderr.splitlines()[-1].startswith("Hint: "), args
        assert "Traceback" not in result.stderr, args


def test_errors_have_no_traceback_unless_debug(cli: Cli) -> None:
    """An operation error prints Error and Hint lines; --debug adds the traceback."""
    plain = cli.run("show", "missing")
    debug = cli.run("--debug", "show", "missing")

    assert plain.code == 1
    assert plain.stderr.splitlines() == [
        f"Error: system 'missing' not found in store {str(cli.store)!r}",
        "Hint: 'asyncext list' shows the systems in the store",
    ]
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "SystemNotFound" in debug.stderr
    assert debug.stderr.splitlines()[-2] == plain.stderr.splitlines()[0]


def test_debug_logs_library_lines(cli: Cli) -> None:
    """--debug sends the library's DEBUG and INFO log lines to standard error."""
    result = cli.run("--debug", "list")

    assert result.code == 0
    assert "asyncext.store: INFO: opened store" in result.stderr


def test_invalid_key_fails_without_echo(cli: Cli) -> None:
    """A malformed ASYNCEXT_KEY exits 1 with a hint, and the value is never printed."""
    result = cli.run("list", env={"ASYNCEXT_KEY": "not-a-key-value"})

    assert result.code == 1
    assert "is not a valid Fernet key" in result.stderr
    assert "Hint: set ASYNCEXT_KEY to a key made by 'asyncext keygen'" in result.stderr
    assert "not-a-key-value" not in result.output


def test_python_m_runs_command(tmp_path: Path) -> None:
    """python -m asyncext is the same command as the console script."""
    result = subprocess.run(
        [sys.executable, "-m", "asyncext", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0
    assert result.stdout.startswith("asyncext ")


def test_interrupt_exits_130(cli: Cli) -> None:
    """Ctrl-C at a password prompt exits 130 without a traceback."""
    with TerminalSession(cli, "add", "box", "--type", "local", "--ask-password") as session:
        session.wait_for_prompt("Password: ")
        session.interrupt()
        result = session.finish()

    assert result.code == 130
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("Interrupted.\n")


def test_closed_stdout_exits_quietly(cli: Cli) -> None:
    """A reader that closes standard output early gets exit 1 and no traceback."""
    process = subprocess.Popen(
        [str(SCRIPT), "types"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.environment(),
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate(timeout=RUN_TIMEOUT)

    assert process.returncode == 1
    assert stderr == ""


def test_missing_arguments_exit_2(cli: Cli) -> None:
    """Every command that needs an argument exits 2 without it, before touching the store."""
    for command in ("add", "update", "show", "remove", "test", "trust", "import", "rotate-key"):
        result = cli.run(command)
        assert result.code == 2, command
        assert " required" in result.stderr.splitlines()[-2], command


def test_init_rejects_foreign_file(tmp_path: Path) -> None:
    """init on a file that is not an asyncext store exits 1 and leaves the file alone."""
    runner = Cli(tmp_path)
    runner.store.write_text("not a database\n" * 100)

    result = runner.run("init")

    assert result.code == 1
    assert result.stderr.startswith(f"Error: the file {str(runner.store)!r} is not an asyncext")
    assert runner.store.read_text() == "not a database\n" * 100
