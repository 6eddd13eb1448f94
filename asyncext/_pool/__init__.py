"""The pool layer: `ClientPool`, a generic pool of clients for any async create/destroy pair.

It does not depend on systems or adapters, and the store builds one pool per system on it.
"""

from __future__ import annotations

from ._lease import Lease
from ._options import PoolOptions, PoolStats, validate_overrides
from ._pool import ClientPool

__all__ = ["ClientPool", "Lease", "PoolOptions", "PoolStats", "validate_overrides"]
