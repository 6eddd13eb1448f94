"""Fixtures shared by the whole test suite."""

# Fails any test whose log lines or asyncext error messages contain a registered secret.
pytest_plugins = ["leakcheck"]
