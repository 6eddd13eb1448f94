"""The ``asyncext`` command: manage, test and trust the systems of a store from a shell.

Run ``asyncext --help`` for the commands. `main` is the console script's entry point and
returns the exit status instead of exiting, so that it can be called from Python too.
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
