"""`Secret`: a credential that never shows its value unless asked."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

MASK = "**********"


class Secret:
    """A credential value that stays hidden in ``repr``, ``str``, f-strings and logs.

    Only `reveal` returns the value. A secret read from an encrypted store is decrypted on
    the first `reveal`, so listing systems decrypts nothing.
    """

    __slots__ = ("_reveal", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret value must be a str, not {type(value).__name__}")
        self._value: str | None = value
        self._reveal: Callable[[], str] | None = None

    @classmethod
    def _deferred(cls, reveal: Callable[[], str]) -> Secret:
        """Create a secret whose value is computed by ``reveal`` on first use (decryption)."""
        secret = cls.__new__(cls)
        secret._value = None
        secret._reveal = reveal
        return secret

    def reveal(self) -> str:
        """Return the plain value.

        Raises:
            EncryptionKeyError: the value is stored encrypted and the store's key cannot
                decrypt it.
        """
        if self._value is None:
            assert self._reveal is not None
            self._value = self._reveal()
            self._reveal = None
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return format(MASK, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash(self.reveal())

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        # A secret is immutable, so copies can share it.
        return self

    def __reduce__(self) -> Any:
        # Pickling would write the plain value to wherever the pickle goes.
        raise TypeError("Secret cannot be pickled; pass secret.reveal() explicitly if needed")
