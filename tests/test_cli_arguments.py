"""The asyncext command's usage errors: values are never repeated, timeouts are checked."""

from __future__ import annotations

import pytest
from leakcheck import register_secret
from test_cli_support import Cli, cli_fixture  # noqa: F401

TYPED = "typed-value-7c1d0e"
"""Stands for a secret typed in the wrong place; no usage error may repeat it."""

register_secret(TYPED)

HIDDEN_HINT = "The value you typed is not shown"


def assert_usage_error_without_value(result_code: int, output: str, *names: str) -> None:
    assert result_code == 2, output
    assert TYPED not in output
    assert "Traceback" not in output
    for name in names:
        assert name in output, name


@pytest.mark.parametrize(
    "flag",
    [
        "--password-stdin",
        "--ask-password",
        "--passphrase-stdin",
        "--ask-passphrase",
        "--ignore-fingerprint",
        "--debug",
        "--help",
    ],
)
def test_flag_with_value_not_echoed(cli: Cli, flag: str) -> None:
    """A flag that takes no value, given one with '=', fails naming the flag only."""
    result = cli.run("add", "box", "--type", "local", f"{flag}={TYPED}")

    assert_usage_error_without_value(result.code, result.output, flag)
    assert f"Error: {flag} takes no value, but one was given with '='" in result.stderr
    assert HIDDEN_HINT in result.stderr


@pytest.mark.parametrize(
    "arguments",
    [
        (f"--pass={TYPED}",),
        (f"--passw={TYPED}",),
        (f"--api-token={TYPED}",),
        (f"-p{TYPED}",),
        ("--pass", TYPED),
        ("--password-stdin", TYPED),
        ("--json", TYPED),
        ("--port", "22", TYPED),
    ],
)
def test_unrecognized_argument_value_not_echoed(cli: Cli, arguments: tuple[str, ...]) -> None:
    """Unknown options keep their name in the message; their values and stray ones do not."""
    result = cli.run("update", "box", *arguments)

    assert_usage_error_without_value(result.code, result.output, "unrecognized arguments: ")
    assert "<value not shown>" in result.stderr
    assert HIDDEN_HINT in result.stderr
    assert "'asyncext update --help' lists the options" in result.stderr


def test_unrecognized_option_named(cli: Cli) -> None:
    """An unknown option given with '=' is named, its value replaced by a marker."""
    result = cli.run("update", "box", f"--pass={TYPED}")

    assert "Error: unrecognized arguments: --pass=<value not shown>" in result.stderr


def test_stray_argument_shown_when_safe(cli: Cli) -> None:
    """A stray argument that follows no option is quoted, so the user sees what was extra."""
    result = cli.run("show", "box", "extra-word")

    assert result.code == 2
    assert "Error: unrecognized arguments: 'extra-word'" in result.stderr
    assert HIDDEN_HINT not in result.stderr


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (("update", "box"), "--port"),
        (("update", "box"), "--clear"),
        (("import", "-"), "--on-conflict"),
        (("test", "box"), "--timeout"),
        (("trust", "box"), "--timeout"),
    ],
)
def test_invalid_value_with_equals_not_echoed(
    cli: Cli, command: tuple[str, ...], option: str
) -> None:
    """A value given with '=' that fails a type or choice check is not quoted back."""
    result = cli.run(*command, f"{option}={TYPED}")

    assert_usage_error_without_value(result.code, result.output, f"argument {option}:")


def test_invalid_separate_value_quoted(cli: Cli) -> None:
    """A separate value of a known option, which no secret flag takes, is still quoted."""
    result = cli.run("update", "box", "--port", "twenty-two")

    assert result.code == 2
    assert "argument --port: invalid int value: 'twenty-two'" in result.stderr


@pytest.mark.parametrize(
    ("command", "abbreviation"),
    [
        (("add", "box", "--type", "local"), "--ask-pass"),
        (("add", "box", "--type", "local"), "--pass"),
        (("rotate-key", "--new-key", "unused"), "--new-key-std"),
        (("list",), "--js"),
    ],
)
def test_abbreviations_not_expanded(cli: Cli, command: tuple[str, ...], abbreviation: str) -> None:
    """A prefix of an option is an unknown option, never expanded to the full one."""
    result = cli.run(*command, abbreviation, input="")

    assert result.code == 2
    assert f"Error: unrecognized arguments: {abbreviation}\n" in result.stderr


def test_rejected_secret_option_hides_value(cli: Cli) -> None:
    """--password=VALUE is rejected by name, and the hint states that the value is not shown."""
    result = cli.run("add", "box", "--type", "local", f"--password={TYPED}")

    assert_usage_error_without_value(result.code, result.output, "--password-stdin")
    assert "Error: --password is not accepted" in result.stderr
    assert HIDDEN_HINT in result.stderr


NOT_POSITIVE = ["-1", "0", "-0.5", "nan", "inf", "1e999", "ten"]
"""--timeout values that are not a finite number above 0."""

# Both commands share the check, so trust gets a few values to show that it is wired.
TIMEOUT_CASES = [("test", value) for value in NOT_POSITIVE] + [("trust", "-1"), ("trust", "nan")]


@pytest.mark.parametrize(("command", "value"), TIMEOUT_CASES)
def test_timeout_must_be_positive_and_finite(cli: Cli, command: str, value: str) -> None:
    """--timeout outside (0, inf) is a usage error before the system is even looked up."""
    cli.add_local("docs")

    result = cli.run(command, "docs", "--timeout", value)

    assert result.code == 2, result.output
    assert result.stdout == ""
    assert "Error: argument --timeout: expected a number of seconds greater than 0" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("command", "value"), [("test", "-inf"), ("test", "0"), ("test", "nan"), ("trust", "-1")]
)
def test_timeout_with_equals_checked(cli: Cli, command: str, value: str) -> None:
    """--timeout=VALUE is checked the same way; '-inf' can only be given like this."""
    cli.add_local("docs")

    result = cli.run(command, "docs", f"--timeout={value}")

    assert result.code == 2, result.output
    assert result.stdout == ""
    assert "Error: argument --timeout: expected a number of seconds greater than 0" in (
        result.stderr
    )


def test_timeout_accepts_fractions(cli: Cli) -> None:
    """A small positive --timeout is accepted."""
    cli.add_local("docs")

    result = cli.run("test", "docs", "--timeout", "2.5")

    assert result.code == 0, result.stderr
