"""Encryption of secrets at rest with Fernet, and the text format of a stored secret.

A stored secret is ``fernet:<token>`` when the store has a key, or ``plain:<value>`` when it has
none. The prefix makes every value storable, ``******`` included, with no magic mask string.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ._errors import EncryptionKeyError
from ._secrets import Secret

KEY_ENVIRONMENT_VARIABLE = "ASYNCEXT_KEY"
ENCRYPTED_PREFIX = "fernet:"
PLAIN_PREFIX = "plain:"


def generate_key() -> str:
    """Return a new random Fernet key as URL-safe base64 text."""
    return Fernet.generate_key().decode("ascii")


class Keyring:
    """The Fernet keys of a store: the first encrypts, every key decrypts.

    A keyring without keys stores secrets in plain text.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError, AttributeError) as exc:
                # The key itself is never echoed: it is a secret.
                raise EncryptionKeyError(
                    f"encryption key #{position} is not a valid Fernet key (32 bytes of "
                    "URL-safe base64); generate one with 'asyncext keygen'"
                ) from exc
        self._fernets = fernets
        self._multi = MultiFernet(fernets) if fernets else None

    @classmethod
    def from_setting(cls, key: str | Sequence[str] | None) -> Keyring:
        """Build the keyring from ``SystemStore(key=...)``, or from ``ASYNCEXT_KEY`` if None.

        The environment variable may hold several keys separated by commas, newest first.
        """
        if key is None:
            setting = os.environ.get(KEY_ENVIRONMENT_VARIABLE, "")
            keys = [part for part in setting.split(",") if part.strip()]
        elif isinstance(key, str):
            keys = [key]
        else:
            keys = list(key)
        return cls(keys)

    @property
    def has_key(self) -> bool:
        return self._multi is not None

    def seal(self, value: str) -> str:
        """Return the stored form of a secret value: encrypted when there is a key."""
        if self._multi is None:
            return PLAIN_PREFIX + value
        return ENCRYPTED_PREFIX + self._multi.encrypt(value.encode("utf-8")).decode("ascii")

    def unseal(self, stored: str, *, system: str) -> Secret:
        """Return a `Secret` for a stored value, decrypted only when it is revealed."""
        if stored.startswith(PLAIN_PREFIX):
            return Secret(stored[len(PLAIN_PREFIX) :])
        return Secret._deferred(lambda: self.decrypt(stored, system=system))

    def decrypt(self, stored: str, *, system: str) -> str:
        """Return the plain value of a stored secret.

        Raises:
            EncryptionKeyError: no key, a wrong key, or an unreadable stored value; the
                message names the system and never the ciphertext.
        """
        if stored.startswith(PLAIN_PREFIX):
            return stored[len(PLAIN_PREFIX) :]
        if not stored.startswith(ENCRYPTED_PREFIX):
            raise EncryptionKeyError(
                f"a secret of system {system!r} is stored in an unknown format; "
                "set it again with 'asyncext update'",
                system=system,
            )
        if self._multi is None:
            raise EncryptionKeyError(
                f"the secrets of system {system!r} are encrypted and no key is set; "
                f"set {KEY_ENVIRONMENT_VARIABLE} or pass SystemStore(key=...)",
                system=system,
            )
        token = stored[len(ENCRYPTED_PREFIX) :].encode("ascii")
        try:
            return self._multi.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise EncryptionKeyError(
                f"the secrets of system {system!r} cannot be decrypted with the given "
                f"key{'s' if len(self._fernets) > 1 else ''}; pass the key they were "
                "encrypted with (a list of keys is accepted during rotation)",
                system=system,
            ) from None
