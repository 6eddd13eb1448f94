"""Commands that set up the command line's surroundings: ``keygen``, ``init`` and ``types``."""

from __future__ import annotations

import argparse
import os

from .._adapters._registry import installed_adapters
from .._crypto import generate_key
from .._store._schema import SCHEMA_VERSION
from ._context import Context, run_interruptible
from ._output import format_table

NO_KEY_WARNING = (
    "ASYNCEXT_KEY is not set, so secrets are stored unencrypted; create a key with: "
    "export ASYNCEXT_KEY=$(asyncext keygen)"
)


def keygen(args: argparse.Namespace, context: Context) -> int:
    """Print a new Fernet key and nothing else, so that ``$(asyncext keygen)`` captures it."""
    context.write(generate_key())
    return 0


def init(args: argparse.Namespace, context: Context) -> int:
    """Create the store file, or bring an existing one to the current schema."""
    # An empty file becomes a new store, just as a missing one does.
    existed = os.path.isfile(context.store_path) and os.path.getsize(context.store_path) > 0

    async def open_and_close() -> None:
        async with context.open_store(create=True):
            pass

    run_interruptible(open_and_close)

    state = "is ready" if existed else "created"
    context.write(f"Store {context.store_path!r} {state} (schema version {SCHEMA_VERSION}).")
    if not context.has_key():
        context.warn(NO_KEY_WARNING)
    return 0


def types(args: argparse.Namespace, context: Context) -> int:
    """List the installed system types with their one-line descriptions."""
    adapters = installed_adapters()
    if args.json:
        context.write_json(
            [
                {"system_type": system_type, "description": adapter.description}
                for system_type, adapter in adapters.items()
            ]
        )
        return 0

    rows = [[system_type, adapter.description] for system_type, adapter in adapters.items()]
    for line in format_table(("TYPE", "DESCRIPTION"), rows):
        context.write(line)
    return 0
