"""The asyncext command on records: add, list, show, update, remove and test of local systems."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli_support import Cli, cli_fixture  # noqa: F401

from asyncext import ExternalSystem, SystemStore


def read_system(cli: Cli, name: str) -> ExternalSystem:
    async def get(store: SystemStore) -> ExternalSystem:
        return await store.get(name)

    return cli.in_store(get)


def test_add_local_with_flags(cli: Cli, tmp_path: Path) -> None:
    """add stores every flag: tenants repeat, option values are JSON when they parse."""
    result = cli.run(
        "add",
        "docs",
        "--type",
        "local",
        "--remote-path",
        str(tmp_path),
        "--tenant",
        "acme",
        "--tenant",
        "beta",
        "--option",
        "retries=3",
        "--option",
        'pool={"max_size": 2}',
        "--option",
        "mode=fast",
        "--option",
        "ratio=0.5",
        "--option",
        "label=",
        "--option",
        "missing=NaN",
        "--option",
        "huge=1e999",
    )

    assert result.code == 0
    assert result.stdout == "Added system 'docs' (local, revision 1).\n"
    system = read_system(cli, "docs")
    assert system.remote_path == str(tmp_path)
    assert system.tenants == frozenset({"acme", "beta"})
    assert system.options == {
        "retries": 3,
        "pool": {"max_size": 2},
        "mode": "fast",
        "ratio": 0.5,
        "label": "",
        "missing": "NaN",
        "huge": "1e999",
    }


def test_list_shows_table_and_json(cli: Cli) -> None:
    """list prints name, type, address, username, tenants and revision, or JSON."""
    cli.add_local("docs", tenants={"beta", "acme"})
    cli.add_local("archive", username="backup")

    table = cli.run("list")
    listed = cli.run("list", "--json")

    assert table.code == 0
    assert [line.split() for line in table.stdout.splitlines()] == [
        ["NAME", "TYPE", "HOST:PORT", "USERNAME", "TENANTS", "REVISION"],
        ["archive", "local", "-", "backup", "-", "1"],
        ["docs", "local", "-", "-", "acme,beta", "1"],
    ]
    records = json.loads(listed.stdout)
    assert [record["name"] for record in records] == ["archive", "docs"]
    assert records[1]["tenants"] == ["acme", "beta"]
    assert records[1]["revision"] == 1


def test_list_filters_by_type_and_tenant(cli: Cli) -> None:
    """list --tenant shows that tenant's systems and shared ones; --type filters by type."""
    cli.add_local("shared")
    cli.add_local("acme-only", tenants={"acme"})
    cli.add_local("beta-only", tenants={"beta"})

    acme = json.loads(cli.run("list", "--json", "--tenant", "acme").stdout)
    other_type = json.loads(cli.run("list", "--json", "--type", "sftp").stdout)

    assert [record["name"] for record in acme] == ["acme-only", "shared"]
    assert other_type == []


def test_list_empty_store(cli: Cli) -> None:
    """list on an empty store reports that and exits 0."""
    result = cli.run("list")

    assert result.code == 0
    assert result.stdout.startswith("No systems found in store")


def test_show_prints_every_field(cli: Cli) -> None:
    """show prints one aligned line per field; --json prints the record with its id."""
    cli.add_local("docs", options={"retries": 3}, tenants={"acme"})

    table = cli.run("show", "docs")
    record = json.loads(cli.run("show", "docs", "--json").stdout)

    assert table.code == 0
    lines = dict(line.split(None, 1) for line in table.stdout.splitlines())
    assert lines["name"] == "docs"
    assert lines["system_type"] == "local"
    assert lines["password"] == "-"
    assert lines["ignore_fingerprint"] == "no"
    assert lines["tenants"] == "acme"
    assert lines["options"] == '{"retries": 3}'
    assert lines["revision"] == "1"
    assert record["options"] == {"retries": 3}
    assert record["id"] == 1
    assert "password" not in record


def test_add_existing_name_fails(cli: Cli) -> None:
    """Adding a name that exists exits 1 and names the system."""
    cli.add_local("docs")

    result = cli.run("add", "docs", "--type", "local", "--remote-path", "/srv")

    assert result.code == 1
    assert result.stderr.startswith("Error: a system named 'docs' already exists")
    assert "Hint: choose another name" in result.stderr


def test_add_needs_type_or_uri(cli: Cli) -> None:
    """add without --type or --uri is a usage error that suggests an example."""
    result = cli.run("add", "docs")

    assert result.code == 2
    assert result.stderr.startswith("Error: system 'docs' needs --type or --uri\n")
    assert "asyncext add docs --type local" in result.stderr


def test_add_unknown_type_fails(cli: Cli) -> None:
    """An unknown type exits 1, lists the installed types and points at 'asyncext types'."""
    result = cli.run("add", "docs", "--type", "mssql")

    assert result.code == 1
    assert "unknown system type 'mssql'; installed types:" in result.stderr
    assert "Hint: install the Python package that provides the type 'mssql'" in result.stderr
    assert "'asyncext types' lists the installed types" in result.stderr


def test_add_misspelled_type_suggests(cli: Cli) -> None:
    """A type one typo away from an installed one is named in the hint."""
    result = cli.run("add", "docs", "--type", "stfp")

    assert result.code == 1
    assert "unknown system type 'stfp'; installed types:" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "Hint: did you mean 'sftp'? 'asyncext types' lists the installed types"
    )


def test_add_invalid_field_fails(cli: Cli) -> None:
    """A field the adapter rejects exits 1 and names the system and the field."""
    result = cli.run("add", "docs", "--type", "local", "--remote-path", "relative/path")

    assert result.code == 1
    assert "system 'docs': remote_path 'relative/path' is not an absolute path" in result.stderr
    assert read_system_count(cli) == 0


def read_system_count(cli: Cli) -> int:
    async def count(store: SystemStore) -> int:
        return len(await store.list())

    return cli.in_store(count)


def test_option_without_equals_is_usage_error(cli: Cli) -> None:
    """--option needs KEY=VALUE."""
    result = cli.run("add", "docs", "--type", "local", "--option", "retries")

    assert result.code == 2
    assert "--option 'retries' is not of the form KEY=VALUE" in result.stderr


def test_update_changes_given_fields(cli: Cli, tmp_path: Path) -> None:
    """update sets, removes and replaces fields and options and bumps the revision."""
    cli.add_local("docs", username="old", tenants={"acme"}, options={"a": 1, "b": 2})

    result = cli.run(
        "update",
        "docs",
        "--username",
        "new",
        "--option",
        "c=[1, 2]",
        "--remove-option",
        "a",
        "--tenant",
        "beta",
        "--tenant",
        "gamma",
    )

    assert result.code == 0
    assert result.stdout == "Updated system 'docs' to revision 2.\n"
    system = read_system(cli, "docs")
    assert system.username == "new"
    assert system.options == {"b": 2, "c": [1, 2]}
    assert system.tenants == frozenset({"beta", "gamma"})
    assert system.remote_path == str(tmp_path / "docs-data")


def test_update_clears_and_renames(cli: Cli) -> None:
    """--clear unsets fields, '--clear options' with --option replaces all, --rename renames."""
    cli.add_local("docs", username="someone", tenants={"acme"}, options={"a": 1})

    result = cli.run(
        "update",
        "docs",
        "--rename",
        "papers",
        "--clear",
        "username",
        "--clear",
        "tenants",
        "--clear",
        "options",
        "--option",
        "z=true",
    )

    assert result.code == 0
    assert "Updated system 'papers' (renamed from 'docs') to revision 2." in result.stdout
    system = read_system(cli, "papers")
    assert system.username is None
    assert system.tenants == frozenset()
    assert system.options == {"z": True}


def test_update_usage_errors(cli: Cli) -> None:
    """update without changes, or clearing a field it also sets, exits 2 and changes nothing."""
    cli.add_local("docs")

    nothing = cli.run("update", "docs")
    conflict = cli.run("update", "docs", "--clear", "username", "--username", "x")

    assert nothing.code == 2
    assert nothing.stderr.startswith("Error: no changes given for system 'docs'")
    assert conflict.code == 2
    assert "--clear username and --username both change username" in conflict.stderr
    assert read_system(cli, "docs").revision == 1


def test_update_missing_option_fails(cli: Cli) -> None:
    """Removing an option the system does not have exits 1 and lists its options."""
    cli.add_local("docs", options={"a": 1})

    result = cli.run("update", "docs", "--remove-option", "b")

    assert result.code == 1
    assert "system 'docs' has no option 'b' to remove (its options: a)" in result.stderr


def test_update_missing_system_fails(cli: Cli) -> None:
    """update of an unknown name exits 1."""
    result = cli.run("update", "ghost", "--username", "x")

    assert result.code == 1
    assert result.stderr.startswith("Error: system 'ghost' not found")


def test_remove_deletes_system(cli: Cli) -> None:
    """remove deletes the system; removing it again exits 1."""
    cli.add_local("docs")

    first = cli.run("remove", "docs")
    second = cli.run("remove", "docs")

    assert first.code == 0
    assert first.stdout == "Removed system 'docs'.\n"
    assert read_system_count(cli) == 0
    assert second.code == 1
    assert "system 'docs' not found" in second.stderr


def test_test_reports_ok(cli: Cli) -> None:
    """test of a reachable system prints ok with the time in ms and exits 0."""
    cli.add_local("docs")

    table = cli.run("test", "docs")
    report = json.loads(cli.run("test", "docs", "--json").stdout)

    assert table.code == 0
    header, row = table.stdout.splitlines()
    assert header.split() == ["SYSTEM", "RESULT", "ELAPSED", "DETAIL"]
    assert row.split()[:2] == ["docs", "ok"]
    assert row.split()[3] == "ms"
    assert report["ok"] is True
    assert report["system"] == "docs"
    assert report["detail"] == "connected"
    assert report["elapsed_ms"] >= 0


def test_test_reports_failure(cli: Cli, tmp_path: Path) -> None:
    """test of a system whose folder is gone reports why and exits 1."""
    cli.add_local("docs", remote_path=str(tmp_path / "gone"))

    result = cli.run("test", "docs", "--json")

    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert "does not exist" in report["detail"]
    assert result.stderr.startswith("Error: connection test of system 'docs' failed\nHint: ")


FINGERPRINT = "SHA256:xJoi5BmINsmVuBV/GMb2BFG2nguMwfsHk28K9ouf3HI"
SFTP_FLAGS = ("--type", "sftp", "--host", "127.0.0.1", "--username", "u", "--password-stdin")


def test_update_fingerprint_turns_checking_on(cli: Cli) -> None:
    """update --fingerprint on a system that ignored host keys pins and checks the key."""
    added = cli.run("add", "box", *SFTP_FLAGS, "--ignore-fingerprint", input="pw-box\n")

    result = cli.run("update", "box", "--fingerprint", FINGERPRINT)
    shown = json.loads(cli.run("show", "box", "--json").stdout)

    assert added.code == 0, added.stderr
    assert result.code == 0, result.stderr
    assert f"only {FINGERPRINT} is accepted" in result.stdout
    assert shown["fingerprint"] == FINGERPRINT
    assert shown["ignore_fingerprint"] is False


def test_fingerprint_and_ignore_together_rejected(cli: Cli) -> None:
    """--fingerprint with --ignore-fingerprint is a usage error naming both flags."""
    cli.run("add", "box", *SFTP_FLAGS, "--ignore-fingerprint", input="pw-box\n")
    uri = "sftp://u@127.0.0.1/in"

    cases = {
        "add": ("add", "new", *SFTP_FLAGS, "--fingerprint", FINGERPRINT, "--ignore-fingerprint"),
        "update": ("update", "box", "--fingerprint", FINGERPRINT, "--ignore-fingerprint"),
        "uri pin": (
            "add",
            "new",
            "--uri",
            f"{uri}?fingerprint={FINGERPRINT}",
            "--ignore-fingerprint",
            "--password-stdin",
        ),
        "uri ignore": (
            "add",
            "new",
            "--uri",
            f"{uri}?ignore_fingerprint=true",
            "--fingerprint",
            FINGERPRINT,
            "--password-stdin",
        ),
    }
    for label, args in cases.items():
        result = cli.run(*args, input="pw-new\n")
        assert result.code == 2, label
        assert (
            "--ignore-fingerprint" in result.stderr.splitlines()[0]
            or "ignore_fingerprint" in (result.stderr.splitlines()[0])
        ), label
        assert "fingerprint" in result.stderr.splitlines()[0], label
    assert json.loads(cli.run("list", "--json").stdout)[0]["name"] == "box"
    assert len(json.loads(cli.run("list", "--json").stdout)) == 1
