"""No secret in any output shown to a user, with logging at DEBUG and no filter installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import leakcheck
from leakcheck import find_leaks, leak_forms, register_secret
from sshd import KeyFiles

from asyncext import generate_key

PASSWORD = "!Weird!Password^123$"
register_secret(PASSWORD)

TESTS_FOLDER = Path(__file__).parent

# Everything an application might do with a system, printed or logged without care.
SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, sys
    from asyncext import ExternalSystem, SystemStore

    logging.basicConfig(level=logging.DEBUG)
    log = logging.getLogger("app")
    password, folder, key, other_key = sys.argv[1:5]

    async def main():
        async with SystemStore(folder + "/plain.db") as store:
            system = await store.add("plain", "local", remote_path=folder, password=password,
                                     options={"secrets": {"token": password}})
            log.info("added %r", system)
        async with SystemStore(folder + "/keyed.db", key=key) as store:
            system = await store.add("keyed", "local", remote_path=folder, password=password,
                                     options={"secrets": {"token": password}})
            system = await store.update("keyed", host="h.example")
            print(system, str(system.password), f"{system.password}", system.to_uri())
            print(await store.export_systems())
            await store.rotate_key(other_key)
        async with SystemStore(folder + "/keyed.db", key=key) as store:
            system = await store.get("keyed")
            try:
                async with system.client():
                    pass
            except Exception:
                log.exception("client of %s failed", system.name)
        for uri in ("sftp://svc:" + password + "@host/x", "sftp://svc:abc/" + password + "@h"):
            try:
                ExternalSystem.from_uri(uri, name="u")
            except Exception:
                log.exception("bad URI")

    asyncio.run(main())
    """
)


def test_leaks_none_in_application_output(tmp_path: Path) -> None:
    """repr, str, URIs, exports, errors and DEBUG logs of a whole session hide the password."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, PASSWORD, str(tmp_path), generate_key(), generate_key()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "bad URI" in output
    assert "client of keyed failed" in output
    for form in leak_forms(PASSWORD):
        assert form not in output
    assert "gAAAAA" not in output


# --- the suite-wide check itself -----------------------------------------------------------


def test_leaks_checker_finds_encoded_forms() -> None:
    """The checker finds a registered secret raw, percent-encoded and JSON-escaped."""
    assert find_leaks(f"x {PASSWORD} y") != []
    assert find_leaks("x %21Weird%21Password%5E123%24 y") != []
    register_secret('quote"é-secret')
    assert find_leaks('{"a": "quote\\"\\u00e9-secret"}') != []


def test_leaks_checker_finds_fernet_tokens() -> None:
    """Any Fernet token in text counts as a leak of ciphertext."""
    assert find_leaks("stored fernet:gAAAAABmAbCdEf") != []


def test_leaks_checker_ignores_short_secrets() -> None:
    """Secrets shorter than the minimum are not searched, so 'a' cannot flag every line."""
    register_secret("a", "")
    assert find_leaks("a line with the letter a") == []


def test_leaks_checker_fails_leaking_test(tmp_path: Path) -> None:
    """A test that logs a registered secret fails at teardown, naming the logger."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import logging
            from leakcheck import register_secret

            register_secret("inner-secret-3e8f")

            def test_logs_secret():
                logging.getLogger("asyncext.store").debug("value %s", "inner-secret-3e8f")

            def test_clean():
                logging.getLogger("asyncext.store").debug("nothing to see")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "leakcheck", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS_FOLDER), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    assert "test_logs_secret leaked secrets" in result.stdout
    # The leaking test itself passes; its teardown reports the error.
    assert "2 passed, 1 error" in result.stdout
    assert "asyncext.store DEBUG ... contains registered secret" in result.stdout


def test_leaks_checker_records_error_messages() -> None:
    """AsyncextError messages are recorded for the check, subclasses included."""
    from asyncext import InvalidSystem, PoolTimeout

    leakcheck.take_recorded()
    InvalidSystem("invalid value-7c1d", system="s")
    PoolTimeout("timed out 4a9e")
    recorded = leakcheck.take_recorded()
    assert "InvalidSystem: invalid value-7c1d" in recorded
    assert "PoolTimeout: timed out 4a9e" in recorded


def test_leaks_checker_fails_every_kind_of_leak(tmp_path: Path) -> None:
    """Each place the check watches fails the test that leaks there, and only that test."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import logging
            import pytest
            from leakcheck import record_output, register_secret
            from asyncext import ConnectionFailed

            SECRET = "inner-secret-5b0c"
            register_secret(SECRET)

            def test_chained_cause():
                try:
                    raise ConnectionFailed("connecting failed") from OSError(SECRET)
                except ConnectionFailed:
                    pass

            def test_caught_by_raises():
                with pytest.raises(ValueError):
                    raise ValueError(f"bad value {SECRET}")

            def test_command_output():
                record_output(f"password: {SECRET}", "'asyncext show' stdout")

            def test_third_party_logger():
                logging.getLogger("asyncssh").debug("auth with %s", SECRET)

            def test_clean():
                with pytest.raises(ValueError):
                    raise ValueError("nothing secret")
                record_output("nothing secret", "'asyncext list' stdout")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "leakcheck", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(TESTS_FOLDER), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    for name in ("chained_cause", "caught_by_raises", "command_output", "third_party_logger"):
        assert f"test_{name} leaked secrets" in result.stdout
    assert "test_clean leaked" not in result.stdout
    assert "5 passed, 4 errors" in result.stdout
    # The reports name where each leak came from, never the secret itself.
    reports = [line for line in result.stdout.splitlines() if "... contains" in line]
    assert len(reports) == 4
    assert all("inner-secret-5b0c" not in line for line in reports)


def test_leaks_checker_knows_sshd_keys(ssh_keys: KeyFiles) -> None:
    """Every line of the test sshd's private keys is a registered secret."""
    for path in (ssh_keys.user_key, ssh_keys.host_keys["ED25519"], ssh_keys.stranger_key):
        body = [line for line in path.read_text().splitlines() if not line.startswith("-----")]
        assert all(find_leaks(f"log {line} end") for line in body), path.name
