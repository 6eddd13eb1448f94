"""The asyncext command's hints follow the kind of failure, never the wording of a message.

A plug-in distribution written into a temporary site folder adds the type ``cli-token``,
which needs a password and the secret option ``token``, as plug-ins for services do. Its
client fails on request, in ways chosen by the option ``failure``.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from leakcheck import register_secret
from test_cli_support import Cli, Result, cli_fixture  # noqa: F401

from asyncext import ConnectionReport, SystemStore

PASSWORD = "cli-hints-password-51f0"
TOKEN = "cli-hints-token-8a2e7c"
PASSPHRASE = "cli-hints-passphrase-03d9"
FINGERPRINT = "SHA256:xJoi5BmINsmVuBV/GMb2BFG2nguMwfsHk28K9ouf3HI"
register_secret(PASSWORD, TOKEN, PASSPHRASE)

PLUGIN_MODULE = """
    from asyncext import Adapter, InvalidSystem, Secret

    class TokenAdapter(Adapter[str]):
        system_type = "cli-token"
        description = "a test service that needs a password and the secret option token"

        def validate(self, system):
            name = system.name
            if system.password is None:
                raise InvalidSystem(
                    f"system {name!r} of type 'cli-token' needs a password", system=name
                )
            if not isinstance(system.options.get("secrets", {}).get("token"), Secret):
                raise InvalidSystem(
                    f"system {name!r} of type 'cli-token' needs its token as the secret "
                    "option options['secrets']['token']",
                    system=name,
                )

        async def get_client(self, system):
            token = system.options["secrets"]["token"].reveal()
            failure = system.options.get("failure")
            if failure == "quotes-token":
                raise ConnectionError(f"the server rejected the token {token}")
            if failure == "host-key-words":
                raise ConnectionError("no matching host key type found")
            return "client"
"""


@pytest.fixture(name="plugin_site")
def plugin_site_fixture(tmp_path: Path) -> Path:
    """A folder holding the installed ``cli-token`` plug-in, as pip would leave it."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "asyncext_cli_token.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    info = site / "asyncext_cli_token-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: asyncext-cli-token\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[asyncext.adapters]\ncli-token = asyncext_cli_token:TokenAdapter\n"
    )
    (info / "RECORD").write_text("")
    return site


def with_plugin(site: Path) -> dict[str, str | None]:
    """Return the environment changes that make the plug-in importable by the command."""
    inherited = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(site), *([inherited] if inherited else [])])}


def import_token_system(cli: Cli, site: Path, name: str, **options: object) -> None:
    """Import a ``cli-token`` system with its password and token through the command."""
    record = {
        "format_version": 1,
        "name": name,
        "system_type": "cli-token",
        "host": "127.0.0.1",
        "port": 9,
        "password": PASSWORD,
        "options": {**options, "secrets": {"token": TOKEN}},
    }
    result = cli.run("import", "-", input=json.dumps([record]), env=with_plugin(site))
    assert result.code == 0, result.stderr


def add_sftp(cli: Cli, name: str, port: int, *extra: str) -> Result:
    """Add an sftp system on 127.0.0.1 that logs in with a password from standard input."""
    return cli.run(
        "add",
        name,
        "--type",
        "sftp",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--username",
        "nobody",
        "--password-stdin",
        *extra,
        input=PASSWORD + "\n",
    )


@pytest.fixture(name="silent_port")
def silent_port_fixture() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never sends a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture(name="closed_port")
def closed_port_fixture() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def error_and_hint(result: Result) -> tuple[str, str]:
    """Return the last ``Error:`` and ``Hint:`` lines of standard error."""
    lines = result.stderr.splitlines()
    assert lines[-2].startswith("Error: "), result.stderr
    assert lines[-1].startswith("Hint: "), result.stderr
    return lines[-2], lines[-1]


def encrypted_key_file(folder: Path) -> Path:
    """Write an OpenSSH private key encrypted with `PASSPHRASE` and return its path."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    text = key.export_private_key(passphrase=PASSPHRASE).decode()
    register_secret(text)
    path = folder / "id_encrypted"
    path.write_text(text)
    return path


# --- test ------------------------------------------------------------------------------------


def test_test_wrong_key_hint(cli: Cli, closed_port: int) -> None:
    """A secret that the key cannot decrypt leads to ASYNCEXT_KEY, not to the fields."""
    add_sftp(cli, "drop", closed_port, "--ignore-fingerprint")
    other_key = cli.run("keygen").stdout.strip()
    register_secret(other_key)

    result = cli.run("test", "drop", env={"ASYNCEXT_KEY": other_key})

    error, hint = error_and_hint(result)
    assert result.code == 1
    assert "cannot be decrypted" in result.stdout
    assert error == "Error: connection test of system 'drop' failed"
    assert hint.startswith("Hint: set ASYNCEXT_KEY to the key that the secrets of system 'drop'")
    assert "asyncext update" not in hint


def test_test_missing_key_hint(cli: Cli, closed_port: int) -> None:
    """An encrypted secret with ASYNCEXT_KEY unset also leads to ASYNCEXT_KEY."""
    add_sftp(cli, "drop", closed_port, "--ignore-fingerprint")

    result = cli.run("test", "drop", env={"ASYNCEXT_KEY": None})

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert hint.startswith("Hint: set ASYNCEXT_KEY to the key that the secrets of system 'drop'")


def test_test_unknown_type_hint(cli: Cli, plugin_site: Path) -> None:
    """A system whose plug-in is not installed here leads to installing the package."""
    import_token_system(cli, plugin_site, "greeter")

    result = cli.run("test", "greeter")

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert "unknown system type 'cli-token'" in result.stdout
    assert hint.startswith("Hint: install the Python package that provides the type 'cli-token'")
    assert "'asyncext types'" in hint


def test_test_timeout_hint(cli: Cli, silent_port: int) -> None:
    """A server that sends nothing leads to --timeout and the network, naming the address."""
    add_sftp(cli, "drop", silent_port, "--ignore-fingerprint")

    result = cli.run("test", "drop", "--timeout", "0.5")

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert "timed out after 0.5 s" in result.stdout
    assert f"127.0.0.1:{silent_port}" in hint
    assert "within 0.5 s" in hint
    assert "--timeout SECONDS" in hint
    assert "asyncext update" not in hint


def test_test_words_do_not_pick_hint(cli: Cli, plugin_site: Path) -> None:
    """A failure that mentions host keys but is not a mismatch does not suggest trust."""
    import_token_system(cli, plugin_site, "greeter", failure="host-key-words")

    result = cli.run("test", "greeter", env=with_plugin(plugin_site))

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert "no matching host key type found" in result.stdout
    assert "trust" not in hint
    assert hint == (
        "Hint: check the system's fields with 'asyncext show greeter' and correct them with "
        "'asyncext update greeter'"
    )


def test_test_report_matches_library(
    cli: Cli, plugin_site: Path, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command reports what ExternalSystem.test_connection reports, secrets masked."""
    monkeypatch.syspath_prepend(str(plugin_site))
    importlib.invalidate_caches()
    cli.add_local("gone", remote_path=str(cli.folder / "missing"))
    add_sftp(cli, "silent", silent_port, "--ignore-fingerprint")
    import_token_system(cli, plugin_site, "quoting", failure="quotes-token")

    async def library_reports(store: SystemStore) -> dict[str, ConnectionReport]:
        names = ("gone", "silent", "quoting")
        reports = [await (await store.get(name)).test_connection(timeout=0.5) for name in names]
        return dict(zip(names, reports, strict=True))

    expected = cli.in_store(library_reports)

    for name, report in expected.items():
        result = cli.run("test", name, "--json", "--timeout", "0.5", env=with_plugin(plugin_site))
        shown = json.loads(result.stdout)
        assert result.code == 1, name
        assert shown["ok"] is report.ok is False, name
        assert shown["detail"] == report.detail, name
    assert TOKEN not in expected["quoting"].detail


def test_test_other_failure_hint(cli: Cli) -> None:
    """Any other failure leads to the system's fields."""
    cli.add_local("docs", remote_path=str(cli.folder / "gone"))

    result = cli.run("test", "docs")

    _, hint = error_and_hint(result)
    assert hint == (
        "Hint: check the system's fields with 'asyncext show docs' and correct them with "
        "'asyncext update docs'"
    )


# --- add and update ----------------------------------------------------------------------------


def test_add_plugin_secret_option_hint(cli: Cli, plugin_site: Path) -> None:
    """A plug-in type that needs a secret option leads to import or Python, not to a flag."""
    result = cli.run(
        "add",
        "greeter",
        "--type",
        "cli-token",
        "--host",
        "127.0.0.1",
        "--port",
        "9",
        "--password-stdin",
        input=PASSWORD + "\n",
        env=with_plugin(plugin_site),
    )

    error, hint = error_and_hint(result)
    assert result.code == 1
    assert "options['secrets']['token']" in error
    assert "'asyncext import FILE'" in hint
    assert "from Python" in hint
    assert "matching option" not in hint


def test_update_plugin_secret_option_hint(cli: Cli, plugin_site: Path) -> None:
    """update names the import that overwrites, since the system exists already."""
    import_token_system(cli, plugin_site, "greeter")

    result = cli.run(
        "update", "greeter", "--clear", "options", "--option", "a=1", env=with_plugin(plugin_site)
    )

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert "'asyncext import FILE --on-conflict overwrite'" in hint


def test_add_plugin_password_hint(cli: Cli, plugin_site: Path) -> None:
    """A plug-in that needs a password leads to the password flags, keeping its message."""
    result = cli.run(
        "add", "greeter", "--type", "cli-token", "--host", "h", env=with_plugin(plugin_site)
    )

    error, hint = error_and_hint(result)
    assert result.code == 1
    assert error == "Error: system 'greeter' of type 'cli-token' needs a password"
    assert hint == "Hint: give the password with --password-stdin or --ask-password"


def test_add_encrypted_key_hint(cli: Cli, closed_port: int) -> None:
    """An encrypted key without passphrase leads to the two passphrase flags."""
    key_file = encrypted_key_file(cli.folder)

    result = cli.run(
        "add",
        "drop",
        "--type",
        "sftp",
        "--host",
        "127.0.0.1",
        "--port",
        str(closed_port),
        "--username",
        "nobody",
        "--ignore-fingerprint",
        "--private-key-file",
        str(key_file),
    )

    error, hint = error_and_hint(result)
    assert result.code == 1
    assert (
        error == "Error: the private key of system 'drop' is encrypted, but no passphrase was given"
    )
    assert hint == "Hint: give the key's passphrase with --passphrase-stdin or --ask-passphrase"


def test_update_encrypted_key_hint(cli: Cli, closed_port: int) -> None:
    """update with an encrypted key file and no passphrase gives the same hint."""
    add_sftp(cli, "drop", closed_port, "--ignore-fingerprint")
    key_file = encrypted_key_file(cli.folder)

    result = cli.run("update", "drop", "--private-key-file", str(key_file))
    accepted = cli.run(
        "update",
        "drop",
        "--private-key-file",
        str(key_file),
        "--passphrase-stdin",
        input=PASSPHRASE + "\n",
    )

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert "--passphrase-stdin or --ask-passphrase" in hint
    assert accepted.code == 0, accepted.stderr


def test_add_uri_without_fingerprint_hint(cli: Cli) -> None:
    """--uri without a fingerprint leads to --fingerprint and trust, not to Python."""
    result = cli.run(
        "add", "drop", "--uri", "sftp://nobody@127.0.0.1/in", "--password-stdin", input="pw\n"
    )

    error, hint = error_and_hint(result)
    assert result.code == 1
    assert error == (
        "Error: system 'drop' has no host key fingerprint, so the server's identity cannot be "
        "checked"
    )
    assert "--ignore-fingerprint and then run 'asyncext trust drop'" in hint


def test_update_ignore_on_pinned_hint(cli: Cli, closed_port: int) -> None:
    """--ignore-fingerprint on a pinned system leads to --clear fingerprint."""
    add_sftp(cli, "drop", closed_port, "--fingerprint", FINGERPRINT)

    refused = cli.run("update", "drop", "--ignore-fingerprint")
    cleared = cli.run("update", "drop", "--ignore-fingerprint", "--clear", "fingerprint")

    _, hint = error_and_hint(refused)
    assert refused.code == 1
    assert "--clear fingerprint" in hint
    assert cleared.code == 0, cleared.stderr


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--new-key-stdin", "--new-key"])
def test_rotate_key_invalid_new_key_hint(cli: Cli, flag: str) -> None:
    """An invalid new key is named as the new key; ASYNCEXT_KEY is not blamed."""
    bad_key = "not-a-fernet-key-90ab"
    arguments = ("rotate-key", flag) if flag == "--new-key-stdin" else ("rotate-key", flag, bad_key)

    result = cli.run(*arguments, input=bad_key + "\n")

    error, hint = error_and_hint(result)
    assert result.code == 1
    assert error.startswith(f"Error: the new key given with {flag} is not a valid Fernet key")
    assert hint == f"Hint: generate the new key with 'asyncext keygen' and pass it with {flag}"
    assert "ASYNCEXT_KEY" not in result.stderr
    assert bad_key not in result.output


def test_empty_asyncext_key_hint(cli: Cli) -> None:
    """An ASYNCEXT_KEY that is set but empty is named as the problem."""
    result = cli.run("list", env={"ASYNCEXT_KEY": " , "})

    error, hint = error_and_hint(result)
    assert result.code == 1
    assert error.startswith("Error: cannot use the encryption key in ASYNCEXT_KEY: ")
    assert hint.startswith("Hint: set ASYNCEXT_KEY to a key made by 'asyncext keygen'")


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (("--type", "sftp", "--host", "127.0.0.1", "--ignore-fingerprint"), "--username USER"),
        (("--type", "ssh", "--username", "nobody", "--ignore-fingerprint"), "--host HOST"),
        (
            (
                "--type",
                "local",
            ),
            "--remote-path PATH",
        ),
    ],
)
def test_add_missing_field_hint_names_flag(cli: Cli, arguments: tuple[str, ...], flag: str) -> None:
    """A required field left out of add leads to the flag that supplies it."""
    result = cli.run("add", "drop", *arguments)

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert hint == f"Hint: give it with {flag}"


def test_test_without_credentials_hint(cli: Cli, closed_port: int) -> None:
    """test of an sftp system with no password and no key leads to the flags that set them."""
    cli.run(
        "add",
        "drop",
        "--type",
        "sftp",
        "--host",
        "127.0.0.1",
        "--port",
        str(closed_port),
        "--username",
        "nobody",
        "--ignore-fingerprint",
    )

    result = cli.run("test", "drop")

    _, hint = error_and_hint(result)
    assert result.code == 1
    assert "has no password and no private_key" in result.stdout
    assert hint == (
        "Hint: give it a password with 'asyncext update drop --password-stdin', or a private "
        "key with 'asyncext update drop --private-key-file PATH'"
    )
