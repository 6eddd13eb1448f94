"""The asyncext command in bulk: export, import and rotate-key."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

from leakcheck import assert_no_secrets, register_secret
from test_cli_support import (
    Cli,
    cli_fixture,  # noqa: F401
)

from asyncext import ExternalSystem, SystemStore

PASSWORD = "export-pw-93c1d0"
register_secret(PASSWORD)


def read_system(cli: Cli, name: str) -> ExternalSystem:
    async def get(store: SystemStore) -> ExternalSystem:
        return await store.get(name)

    return cli.in_store(get)


def second_store(cli: Cli, tmp_path: Path) -> Cli:
    """Return a runner for a new empty store that uses the same key as ``cli``."""
    folder = tmp_path / "second"
    folder.mkdir()
    other = Cli(folder)
    other.key = cli.key
    other.env["ASYNCEXT_KEY"] = cli.key
    other.init_store()
    return other


def test_export_leaves_secrets_out(cli: Cli) -> None:
    """export prints a JSON list of records without secrets unless asked."""
    cli.add_local("docs", password=PASSWORD, options={"retries": 3}, tenants={"acme"})

    result = cli.run("export")

    assert result.code == 0
    assert_no_secrets(result.output, "export output")
    [record] = json.loads(result.stdout)
    assert record["name"] == "docs"
    assert record["options"] == {"retries": 3}
    assert record["tenants"] == ["acme"]
    assert "password" not in record


def test_export_accepts_json_flag(cli: Cli) -> None:
    """export --json, like the other reading commands, prints the same JSON as export."""
    cli.add_local("docs")

    plain = cli.run("export")
    flagged = cli.run("export", "--json")

    assert flagged.code == 0
    assert flagged.stdout == plain.stdout


def test_export_import_round_trip(cli: Cli, tmp_path: Path) -> None:
    """An export with secrets imports into another store with every field and secret."""
    cli.add_local("docs", password=PASSWORD, options={"pool": {"max_size": 2}, "ratio": 0.5})
    export_file = tmp_path / "systems.json"
    target = second_store(cli, tmp_path)

    exported = cli.run("export", "--include-secrets", "--output", str(export_file))
    imported = target.run("import", str(export_file))

    assert exported.code == 0
    assert exported.stdout == ""
    assert exported.stderr == f"Exported 1 system with secrets to {str(export_file)!r}.\n"
    assert stat.S_IMODE(export_file.stat().st_mode) == 0o600
    assert imported.code == 0, imported.stderr
    assert imported.stdout == (
        f"Imported 1 record from {str(export_file)!r}: 1 added, 0 overwritten, 0 skipped.\n"
    )
    system = read_system(target, "docs")
    assert system.options == {"pool": {"max_size": 2}, "ratio": 0.5}
    assert system.password is not None
    assert system.password.reveal() == PASSWORD


def test_export_tightens_existing_file(cli: Cli, tmp_path: Path) -> None:
    """Exporting secrets over a readable file makes it mode 0600 first."""
    cli.add_local("docs", password=PASSWORD)
    export_file = tmp_path / "systems.json"
    export_file.write_text("old")
    export_file.chmod(0o644)

    result = cli.run("export", "--include-secrets", "--output", str(export_file))

    assert result.code == 0
    assert stat.S_IMODE(export_file.stat().st_mode) == 0o600
    assert PASSWORD in export_file.read_text()


def test_export_unwritable_file_fails(cli: Cli, tmp_path: Path) -> None:
    """An export file in a missing folder exits 1 naming the path."""
    path = str(tmp_path / "missing" / "systems.json")

    result = cli.run("export", "--output", path)

    assert result.code == 1
    assert result.stderr.startswith(f"Error: cannot write the export file {path!r}")


def test_import_conflicts(cli: Cli, tmp_path: Path) -> None:
    """import fails on an existing name unless --on-conflict is skip or overwrite."""
    cli.add_local("docs", username="original")
    records = json.loads(cli.run("export").stdout)
    records[0]["username"] = "imported"
    text = json.dumps(records)

    failed = cli.run("import", "-", input=text)
    skipped = cli.run("import", "-", "--on-conflict", "skip", input=text)
    username_after_skip = read_system(cli, "docs").username
    overwritten = cli.run("import", "-", "--on-conflict", "overwrite", input=text)

    assert failed.code == 1
    assert "already exist ('docs')" in failed.stderr
    assert "Hint: pass --on-conflict skip" in failed.stderr
    assert skipped.code == 0
    assert skipped.stdout.endswith("0 added, 0 overwritten, 1 skipped.\n")
    assert username_after_skip == "original"
    assert overwritten.code == 0
    assert overwritten.stdout.endswith("0 added, 1 overwritten, 0 skipped.\n")
    assert read_system(cli, "docs").username == "imported"


def test_import_bad_input(cli: Cli, tmp_path: Path) -> None:
    """A missing file exits 2; invalid JSON, a non-list or an invalid record exit 1."""
    missing = str(tmp_path / "missing.json")
    cases = {
        "missing file": (("import", missing), None, 2, f"import file {missing!r} not found"),
        "invalid JSON": (("import", "-"), '[{"name": ', 1, "is not valid JSON (line 1, column"),
        "not a list": (("import", "-"), '{"name": "x"}', 1, "is not a JSON list of system"),
        "invalid record": (
            ("import", "-"),
            '[{"name": "x"}]',
            1,
            "record #1: system 'x': system_type must be",
        ),
    }

    for label, (args, text, code, message) in cases.items():
        result = cli.run(*args, input=text)
        assert result.code == code, label
        assert message in result.stderr, label
        assert result.stderr.splitlines()[-1].startswith("Hint: "), label


def test_import_bad_conflict_choice(cli: Cli) -> None:
    """An unknown --on-conflict value is a usage error."""
    result = cli.run("import", "-", "--on-conflict", "merge", input="[]")

    assert result.code == 2
    assert "invalid choice: 'merge'" in result.stderr


def test_rotate_key_from_stdin(cli: Cli) -> None:
    """rotate-key --new-key-stdin re-encrypts every secret; only the new key reads them."""
    cli.add_local("docs", password=PASSWORD)
    cli.add_local("plain")
    new_key = cli.run("keygen").stdout.strip()
    register_secret(new_key, cli.key)

    rotated = cli.run("rotate-key", "--new-key-stdin", input=new_key + "\n")
    with_new = cli.run("show", "docs", "--show-secrets", env={"ASYNCEXT_KEY": new_key})
    with_old = cli.run("show", "docs", "--show-secrets")

    assert rotated.code == 0, rotated.stderr
    assert "1 secret re-encrypted, 0 already used the new key, 5 empty secret fields" in (
        rotated.stdout
    )
    assert "Warning: set ASYNCEXT_KEY to the new key now" in rotated.stderr
    assert_no_secrets(rotated.output, "rotate-key output")
    assert with_new.code == 0
    assert PASSWORD in with_new.stdout
    assert with_old.code == 1


def test_rotate_key_argument_and_key_list(cli: Cli) -> None:
    """rotate-key --new-key works, and ASYNCEXT_KEY may list several keys."""
    cli.add_local("docs", password=PASSWORD)
    first = cli.run("keygen").stdout.strip()
    second = cli.run("keygen").stdout.strip()

    once = cli.run("rotate-key", "--new-key", first)
    twice = cli.run("rotate-key", "--new-key", second, env={"ASYNCEXT_KEY": f"{first},{cli.key}"})
    again = cli.run("rotate-key", "--new-key", second, env={"ASYNCEXT_KEY": second})

    assert once.code == 0
    assert twice.code == 0, twice.stderr
    assert again.code == 0
    assert "0 secrets re-encrypted, 1 already used the new key" in again.stdout


def test_rotate_key_errors(cli: Cli) -> None:
    """An invalid new key exits 1 without echoing it; no new key at all exits 2."""
    cli.add_local("docs", password=PASSWORD)

    invalid = cli.run("rotate-key", "--new-key-stdin", input="not-a-fernet-key-5e2\n")
    missing = cli.run("rotate-key")
    wrong_old = cli.run(
        "rotate-key",
        "--new-key",
        cli.run("keygen").stdout.strip(),
        env={"ASYNCEXT_KEY": cli.run("keygen").stdout.strip()},
    )

    assert invalid.code == 1
    assert "not-a-fernet-key-5e2" not in invalid.output
    assert "not a valid Fernet key" in invalid.stderr
    assert missing.code == 2
    assert wrong_old.code == 1
    assert "cannot be decrypted" in wrong_old.stderr
    password = read_system(cli, "docs").password
    assert password is not None
    assert password.reveal() == PASSWORD


def test_rotate_key_warns_until_key_switched(cli: Cli) -> None:
    """The warning to switch ASYNCEXT_KEY appears while it still lacks the new key first."""
    cli.add_local("docs", password=PASSWORD)
    new_key = cli.run("keygen").stdout.strip()
    register_secret(new_key)

    first = cli.run("rotate-key", "--new-key-stdin", input=new_key + "\n")
    not_switched = cli.run("rotate-key", "--new-key-stdin", input=new_key + "\n")
    switched = cli.run(
        "rotate-key", "--new-key-stdin", input=new_key + "\n", env={"ASYNCEXT_KEY": new_key}
    )

    assert first.code == 0, first.stderr
    assert "Warning: set ASYNCEXT_KEY to the new key now" in first.stderr
    assert not_switched.code == 0, not_switched.stderr
    assert "0 secrets re-encrypted, 1 already used the new key" in not_switched.stdout
    assert "Warning: set ASYNCEXT_KEY to the new key now" in not_switched.stderr
    assert switched.code == 0, switched.stderr
    assert "0 secrets re-encrypted, 1 already used the new key" in switched.stdout
    assert switched.stderr == ""


def test_rotate_key_without_secrets_no_warning(cli: Cli) -> None:
    """A store without secrets needs no new ASYNCEXT_KEY, so rotate-key prints no warning."""
    cli.add_local("plain")
    new_key = cli.run("keygen").stdout.strip()
    register_secret(new_key)

    result = cli.run("rotate-key", "--new-key-stdin", input=new_key + "\n")

    assert result.code == 0, result.stderr
    assert "0 secrets re-encrypted, 0 already used the new key" in result.stdout
    assert result.stderr == ""


def test_rotate_key_argument_starting_with_dash(cli: Cli) -> None:
    """--new-key accepts a key whose base64 text starts with '-', as 1 in 64 keys do."""
    cli.add_local("docs", password=PASSWORD)
    # The first 6 bits of 0xf8 are 62, which URL-safe base64 writes as '-'.
    new_key = base64.urlsafe_b64encode(b"\xf8" + os.urandom(31)).decode()
    register_secret(new_key)

    result = cli.run("rotate-key", "--new-key", new_key)
    with_new = cli.run("show", "docs", "--show-secrets", env={"ASYNCEXT_KEY": new_key})

    assert new_key.startswith("-")
    assert result.code == 0, result.stderr
    assert "1 secret re-encrypted" in result.stdout
    assert with_new.code == 0, with_new.stderr
