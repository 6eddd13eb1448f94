"""Fixtures shared by the whole test suite."""

# Fails any test whose log lines or asyncext error messages contain a registered secret.
# sshd: OpenSSH's sshd on 127.0.0.1 for the ssh and sftp tests; they skip without it.
pytest_plugins = ["leakcheck", "sshd"]
