"""The asyncext command keeps secrets off the command line and out of its output."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_support import Cli, TerminalSession, cli_fixture  # noqa: F401

from asyncext import ExternalSystem, SystemStore

PASSWORD = "pw-4f1c9e secret"
KEY_TEXT = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-text-8d27a0\n-----END OPENSSH PRIVATE KEY-----\n"
)
PASSPHRASE = "phrase-77b3e1"


def read_system(cli: Cli, name: str) -> ExternalSystem:
    async def get(store: SystemStore) -> ExternalSystem:
        return await store.get(name)

    return cli.in_store(get)


def add_with_secrets(cli: Cli, tmp_path: Path) -> None:
    """Add 'docs' with a password from stdin and a private key from a file."""
    key_file = tmp_path / "id_test"
    key_file.write_text(KEY_TEXT)
    result = cli.run(
        "add",
        "docs",
        "--type",
        "local",
        "--remote-path",
        str(tmp_path),
        "--password-stdin",
        "--private-key-file",
        str(key_file),
        input=PASSWORD + "\n",
    )
    assert result.code == 0, result.stderr


def test_password_stdin_strips_one_newline(cli: Cli, tmp_path: Path) -> None:
    """--password-stdin removes exactly one trailing newline and keeps other whitespace."""
    first = cli.run(
        "add",
        "a",
        "--type",
        "local",
        "--remote-path",
        str(tmp_path),
        "--password-stdin",
        input=" padded \n",
    )
    second = cli.run(
        "add",
        "b",
        "--type",
        "local",
        "--remote-path",
        str(tmp_path),
        "--password-stdin",
        input="two\r\n\n",
    )

    assert first.code == 0
    assert second.code == 0
    password_a = read_system(cli, "a").password
    password_b = read_system(cli, "b").password
    assert password_a is not None
    assert password_a.reveal() == " padded "
    assert password_b is not None
    assert password_b.reveal() == "two\r\n"


def test_secrets_read_and_encrypted(cli: Cli, tmp_path: Path) -> None:
    """Secrets from stdin and a key file are stored, encrypted with ASYNCEXT_KEY."""
    add_with_secrets(cli, tmp_path)

    system = read_system(cli, "docs")
    assert system.password is not None
    assert system.password.reveal() == PASSWORD
    assert system.private_key is not None
    assert system.private_key.reveal() == KEY_TEXT
    stored = cli.store.read_bytes()
    assert PASSWORD.encode() not in stored
    assert b"key-text-8d27a0" not in stored


def test_output_hides_secrets(cli: Cli, tmp_path: Path) -> None:
    """show, list and their JSON never print a secret; show masks the set ones."""
    add_with_secrets(cli, tmp_path)

    runs = {
        "show": cli.run("show", "docs"),
        "show --json": cli.run("show", "docs", "--json"),
        "list": cli.run("list"),
        "list --json": cli.run("list", "--json"),
        "export": cli.run("export"),
    }

    for label, result in runs.items():
        assert result.code == 0, label
        assert PASSWORD not in result.output, label
        assert "key-text-8d27a0" not in result.output, label
    lines = dict(line.split(None, 1) for line in runs["show"].stdout.splitlines())
    assert lines["password"] == "**********"
    assert lines["private_key"] == "**********"
    assert lines["private_key_password"] == "-"
    record = json.loads(runs["show --json"].stdout)
    assert "password" not in record
    assert "private_key" not in record


def test_show_secrets_reveals(cli: Cli, tmp_path: Path) -> None:
    """--show-secrets prints the secrets, the key on indented continuation lines."""
    add_with_secrets(cli, tmp_path)

    table = cli.run("show", "docs", "--show-secrets")
    record = json.loads(cli.run("show", "docs", "--json", "--show-secrets").stdout)

    assert table.code == 0
    assert f"password              {PASSWORD}\n" in table.stdout
    assert "\n                      key-text-8d27a0\n" in table.stdout
    assert record["password"] == PASSWORD
    assert record["private_key"] == KEY_TEXT
    assert record["private_key_password"] is None


def test_show_secrets_with_wrong_key_fails(cli: Cli, tmp_path: Path) -> None:
    """With a wrong key, show still masks; --show-secrets exits 1 naming the system."""
    add_with_secrets(cli, tmp_path)
    other_key = cli.run("keygen").stdout.strip()

    masked = cli.run("show", "docs", env={"ASYNCEXT_KEY": other_key})
    revealed = cli.run("show", "docs", "--show-secrets", env={"ASYNCEXT_KEY": other_key})
    no_key = cli.run("show", "docs", "--show-secrets", env={"ASYNCEXT_KEY": None})

    assert masked.code == 0
    assert revealed.code == 1
    assert revealed.stdout == ""
    assert "system 'docs' cannot be decrypted with the key given" in revealed.stderr
    assert (
        "Hint: set ASYNCEXT_KEY to the key that the secrets of system 'docs' were encrypted with"
        in revealed.stderr
    )
    assert no_key.code == 1
    assert "system 'docs' is encrypted and no key is set" in no_key.stderr


def test_secret_arguments_rejected(cli: Cli) -> None:
    """--password, --passphrase and --private-key with a value exit 2 and never echo it."""
    for args in (
        ("--password", "hunter2-a"),
        ("--password=hunter2-a",),
        ("--passphrase", "hunter2-a"),
        ("--private-key", "hunter2-a"),
    ):
        result = cli.run("add", "docs", "--type", "local", *args)
        assert result.code == 2, args
        assert "hunter2-a" not in result.output, args
        assert "is not accepted because a secret on the command line" in result.stderr, args


def test_uri_with_password_rejected(cli: Cli) -> None:
    """A URI with a password exits 2, never echoes it and suggests --password-stdin."""
    result = cli.run("add", "box", "--uri", "sftp://alice:hunter2-b@127.0.0.1:2222/srv")

    assert result.code == 2
    assert "hunter2-b" not in result.output
    assert "contains a password" in result.stderr
    assert "--password-stdin" in result.stderr


def test_uri_with_secret_parameter_rejected(cli: Cli) -> None:
    """A URI with a private key or a secret option in its query exits 2."""
    for query in ("private_key=hunter2-c", "secret.token=hunter2-c"):
        result = cli.run("add", "box", "--uri", f"local:///srv?{query}")
        assert result.code == 2, query
        assert "hunter2-c" not in result.output, query


def test_add_from_uri_with_flags(cli: Cli, tmp_path: Path) -> None:
    """add --uri takes the URI's fields, completed by tenants, options and secrets."""
    uri = f"local://{tmp_path}?option.retries=3&tenant=acme"

    result = cli.run(
        "add",
        "docs",
        "--uri",
        uri,
        "--tenant",
        "beta",
        "--option",
        "mode=fast",
        "--password-stdin",
        input="p@ss:/word\n",
    )

    assert result.code == 0, result.stderr
    system = read_system(cli, "docs")
    assert system.system_type == "local"
    assert system.remote_path == str(tmp_path)
    assert system.tenants == frozenset({"acme", "beta"})
    assert system.options == {"retries": 3, "mode": "fast"}
    assert system.password is not None
    assert system.password.reveal() == "p@ss:/word"


def test_uri_flag_conflicts(cli: Cli, tmp_path: Path) -> None:
    """--uri with --type or --host, or a field set twice, is a usage error."""
    uri = f"local://{tmp_path}?option.retries=3"

    with_type = cli.run("add", "docs", "--uri", uri, "--type", "local")
    with_host = cli.run("add", "docs", "--uri", uri, "--host", "example")
    twice = cli.run("add", "docs", "--uri", uri, "--option", "retries=4")

    assert with_type.code == 2
    assert "--uri and --type were both given" in with_type.stderr
    assert with_host.code == 2
    assert twice.code == 2
    assert "the URI and --option retries=... both set retries" in twice.stderr


def test_private_key_file_errors(cli: Cli, tmp_path: Path) -> None:
    """A missing, empty or folder key file is a usage error naming the path."""
    empty = tmp_path / "empty"
    empty.write_text("")
    cases = {
        str(tmp_path / "missing"): "not found",
        str(empty): "is empty",
        str(tmp_path): "is a folder",
    }

    for path, problem in cases.items():
        result = cli.run("add", "docs", "--type", "local", "--private-key-file", path)
        assert result.code == 2, path
        assert f"private key file {path!r} {problem}" in result.stderr, path


def test_private_key_file_content_never_printed(cli: Cli, tmp_path: Path) -> None:
    """An unreadable key file's error names the path, not the content."""
    key_file = tmp_path / "binary-key"
    key_file.write_bytes(b"\xff\xfehunter2-d")

    result = cli.run("add", "docs", "--type", "local", "--private-key-file", str(key_file))

    assert result.code == 2
    assert "is not a text file" in result.stderr
    assert "hunter2-d" not in result.output


def test_secret_input_usage_errors(cli: Cli) -> None:
    """Two stdin readers, an empty password, a passphrase without a key or no terminal exit 2."""
    two_readers = cli.run(
        "add", "docs", "--type", "local", "--password-stdin", "--passphrase-stdin", input="x\n"
    )
    empty = cli.run("add", "docs", "--type", "local", "--password-stdin", input="\n")
    passphrase_only = cli.run("add", "docs", "--type", "local", "--passphrase-stdin", input="x\n")
    no_terminal = cli.run("add", "docs", "--type", "local", "--ask-password", input="x\n")

    assert two_readers.code == 2
    assert "cannot both read standard input" in two_readers.stderr
    assert empty.code == 2
    assert "read an empty password from standard input" in empty.stderr
    assert passphrase_only.code == 2
    assert "a passphrase was given for system 'docs' but no private key" in passphrase_only.stderr
    assert no_terminal.code == 2
    assert "--ask-password found no terminal to ask for the password on" in no_terminal.stderr


def test_option_secrets_rejected(cli: Cli) -> None:
    """--option secrets=... exits 2, because it would put secrets on the command line."""
    result = cli.run("add", "docs", "--type", "local", "--option", 'secrets={"t": "hunter2-e"}')

    assert result.code == 2
    assert "hunter2-e" not in result.output


def test_update_sets_and_clears_secrets(cli: Cli, tmp_path: Path) -> None:
    """update reads a new passphrase from stdin, and --clear removes a secret."""
    add_with_secrets(cli, tmp_path)

    set_passphrase = cli.run("update", "docs", "--passphrase-stdin", input=PASSPHRASE)
    clear_password = cli.run("update", "docs", "--clear", "password")

    assert set_passphrase.code == 0
    assert clear_password.code == 0
    system = read_system(cli, "docs")
    assert system.private_key_password is not None
    assert system.private_key_password.reveal() == PASSPHRASE
    assert system.password is None
    assert system.revision == 3


def test_ask_password_does_not_echo(cli: Cli, tmp_path: Path) -> None:
    """--ask-password prompts on the terminal with echo off and stores what was typed."""
    args = ("add", "docs", "--type", "local", "--remote-path", str(tmp_path), "--ask-password")
    with TerminalSession(cli, *args) as session:
        session.wait_for_prompt("Password: ")
        session.type("typed-hunter2\n")
        result = session.finish()

    assert result.code == 0, result.stderr
    assert "typed-hunter2" not in session.echoed
    assert "typed-hunter2" not in result.output
    password = read_system(cli, "docs").password
    assert password is not None
    assert password.reveal() == "typed-hunter2"


def test_secret_options_hidden_unless_asked(cli: Cli) -> None:
    """Secret options are masked by show, left out of its JSON, and shown when asked."""
    cli.add_local("api", options={"retries": 3, "secrets": {"token": "token-6a0f2e"}})

    table = cli.run("show", "api")
    record = json.loads(cli.run("show", "api", "--json").stdout)
    revealed = json.loads(cli.run("show", "api", "--json", "--show-secrets").stdout)

    assert "token-6a0f2e" not in table.output
    assert 'options               {"retries": 3, "secrets": {"token": "**********"}}' in (
        table.stdout
    )
    assert record["options"] == {"retries": 3}
    assert revealed["options"] == {"retries": 3, "secrets": {"token": "token-6a0f2e"}}


def test_unencrypted_secret_warns_on_one_line(cli: Cli, tmp_path: Path) -> None:
    """Without ASYNCEXT_KEY, the library's warning reaches stderr as one line."""
    result = cli.run(
        "add",
        "docs",
        "--type",
        "local",
        "--remote-path",
        str(tmp_path),
        "--password-stdin",
        input=PASSWORD,
        env={"ASYNCEXT_KEY": None},
    )

    assert result.code == 0
    [line] = result.stderr.splitlines()
    assert line.startswith(f"asyncext.store: WARNING: store {str(cli.store)!r} has no encryption")
    assert PASSWORD not in result.output


def test_ask_password_eof_ends_prompt_line(cli: Cli, tmp_path: Path) -> None:
    """Ctrl-D at the password prompt ends the prompt's line before the error."""
    args = ("add", "docs", "--type", "local", "--remote-path", str(tmp_path), "--ask-password")
    with TerminalSession(cli, *args) as session:
        session.wait_for_prompt("Password: ")
        session.type("\x04")
        result = session.finish()

    assert result.code == 2
    assert result.stderr.startswith("Password: \nError: --ask-password read end of input")
