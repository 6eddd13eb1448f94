"""Encryption of secrets at rest with Fernet, and the text format of a stored secret.

A stored secret is ``fernet:<token>`` when the store has a key, or ``plain:<value>`` when it has
none. The prefix makes every value storable, ``******`` included, with no magic mask string.
Secret options are stored the same way, as the values of the ``"secrets"`` object inside the
options JSON.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ._errors import EncryptionKeyError
from ._secrets import OPTION_SECRETS, Secret

KEY_ENVIRONMENT_VARIABLE = "ASYNCEXT_KEY"
ENCRYPTED_PREFIX = "fernet:"
PLAIN_PREFIX = "plain:"

KeySetting = str | bytes | Sequence[str | bytes] | None
"""Type of ``SystemStore(key=...)``: one key, a list of keys, or None for the environment."""

logger = logging.getLogger("asyncext.store")


class SealedText(str):
    """The stored form of a secret, as passed to SQLite; its ``repr`` hides the text.

    aiosqlite logs every statement with the ``repr`` of its parameters at DEBUG level on the
    ``aiosqlite`` logger, so a plain ``str`` would put unencrypted secrets and ciphertext in
    debug logs. sqlite3 binds this subclass as ordinary text.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<sealed secret>"


class StoredSecret(Secret):
    """A secret read from an encrypted store, decrypted by its keyring on the first reveal.

    A listing creates one per stored secret, so the keyring and stored text sit in slots. A
    closure would allocate a function, four cells and a tuple per secret, and the garbage
    collector would scan each of them. The base class's ``_reveal`` and ``_origin`` stay None.
    """

    __slots__ = ("_field", "_keyring", "_stored", "_system")

    _keyring: Keyring
    _stored: str
    _system: str
    _field: str

    def _stored_form(self, keyring: object) -> str | None:
        return self._stored if keyring is self._keyring else None

    def reveal(self) -> str:
        """Return the plain value, decrypting it on the first call.

        Raises:
            EncryptionKeyError: the store's keys cannot decrypt the value. The secret stays
                unrevealed, so a later call tries again.
        """
        value = self._value
        if value is None:
            value = self._keyring.decrypt(self._stored, system=self._system, field=self._field)
            self._value = value
        return value


_new_object = object.__new__


def generate_key() -> str:
    """Return a new random Fernet key as URL-safe base64 text."""
    return Fernet.generate_key().decode("ascii")


class Keyring:
    """The Fernet keys of a store: the first encrypts, every key decrypts.

    A keyring without keys stores secrets in plain text, and logs one WARNING the first time
    it does so. Key material never appears in its messages or its ``repr``.

    Args:
        keys: Fernet keys as URL-safe base64 text, newest first.
        owner: what the keyring belongs to (the store's path), for log lines.
    """

    def __init__(self, keys: Sequence[str | bytes], *, owner: str = "") -> None:
        texts: list[str] = []
        fernets: list[Fernet] = []
        for position, key in enumerate(keys, start=1):
            try:
                text = key.decode("ascii") if isinstance(key, bytes) else key.strip()
                fernet = Fernet(text.encode("ascii"))
            except (ValueError, UnicodeError, AttributeError, TypeError) as exc:
                # The key itself is never echoed: it is a secret.
                raise EncryptionKeyError(
                    f"encryption key #{position} is not a valid Fernet key (32 bytes of "
                    "URL-safe base64); generate one with 'asyncext keygen'"
                ) from exc
            if text not in texts:
                texts.append(text)
                fernets.append(fernet)
        self._keys = tuple(texts)
        self._fernets = fernets
        self._multi = MultiFernet(fernets) if fernets else None
        self._owner = owner
        self._warned_unencrypted = False
        self._warned_plain_read = False
        self.plain_sealed = 0
        """How many secrets were sealed without a key; a store compares it around a write."""

    @classmethod
    def from_setting(cls, key: KeySetting, *, owner: str = "") -> Keyring:
        """Build the keyring from ``SystemStore(key=...)``, or from ``ASYNCEXT_KEY`` if None.

        The environment variable may hold several keys separated by commas, newest first. An
        unset variable means no key. An empty key, whether passed or read from a variable that
        is set but empty, is an error rather than "no encryption", because it almost always
        comes from a variable or file that the caller expected to contain a key.

        Raises:
            EncryptionKeyError: a key is empty or not a valid Fernet key.
        """
        keys: list[str | bytes]
        if key is None:
            setting = os.environ.get(KEY_ENVIRONMENT_VARIABLE)
            if setting is None:
                return cls([], owner=owner)
            keys = [part for part in setting.split(",") if part.strip()]
            if not keys:
                raise EncryptionKeyError(
                    f"{KEY_ENVIRONMENT_VARIABLE} is set but contains no key; set it to a key "
                    f"made by 'asyncext keygen', or unset it to store secrets without encryption"
                )
        elif isinstance(key, (str, bytes)):
            keys = [key]
        else:
            keys = list(key)
            if not keys:
                raise EncryptionKeyError(
                    "the list of encryption keys is empty; pass at least one key made by "
                    f"'asyncext keygen', or pass key=None and leave {KEY_ENVIRONMENT_VARIABLE} "
                    "unset to store secrets without encryption"
                )
        for position, item in enumerate(keys, start=1):
            if isinstance(item, (str, bytes)) and not item.strip():
                raise EncryptionKeyError(
                    f"encryption key #{position} is empty; pass a key made by 'asyncext "
                    f"keygen', or pass key=None and leave {KEY_ENVIRONMENT_VARIABLE} unset to "
                    "store secrets without encryption"
                )
        return cls(keys, owner=owner)

    def with_new_key(self, key: str | bytes) -> Keyring:
        """Return a keyring that encrypts with ``key`` and still decrypts with these keys.

        Raises:
            EncryptionKeyError: ``key`` is empty or not a valid Fernet key.
        """
        if not isinstance(key, (str, bytes)):
            raise EncryptionKeyError(
                f"the new key must be one Fernet key as a string, not {type(key).__name__}"
            )
        new = Keyring.from_setting(key, owner=self._owner)
        return Keyring([*new._keys, *self._keys], owner=self._owner)

    def __repr__(self) -> str:
        return f"<Keyring with {len(self._keys)} key{'' if len(self._keys) == 1 else 's'}>"

    @property
    def has_key(self) -> bool:
        return self._multi is not None

    @property
    def key_count(self) -> int:
        return len(self._keys)

    # --- sealing: value -> stored text ---------------------------------------------------

    def seal(self, value: str, *, system: str | None = None) -> str:
        """Return the stored form of a secret value: encrypted when there is a key."""
        if self._multi is None:
            self.plain_sealed += 1
            return SealedText(PLAIN_PREFIX + value)
        token = self._multi.encrypt(value.encode("utf-8")).decode("ascii")
        return SealedText(ENCRYPTED_PREFIX + token)

    def seal_secret(self, secret: Secret, *, system: str) -> str:
        """Return the stored form of ``secret``, reusing its stored text when this keyring read it.

        A secret that this keyring read and that is already encrypted (or that stays plain
        because there is no key) is written back as it was, so copying a record's secrets
        into an update never decrypts them.
        """
        stored = secret._stored_form(self)
        if stored is not None and (stored.startswith(ENCRYPTED_PREFIX) or self._multi is None):
            return SealedText(stored)
        return self.seal(secret.reveal(), system=system)

    def seal_options(self, options: Mapping[str, Any], *, system: str) -> dict[str, Any]:
        """Return ``options`` with each secret option replaced by its stored form."""
        secrets = options.get(OPTION_SECRETS)
        if not secrets:
            return dict(options)
        sealed = {name: self.seal_secret(value, system=system) for name, value in secrets.items()}
        return {**options, OPTION_SECRETS: sealed}

    def warn_unencrypted(self, system: str | None) -> None:
        """Log once per store that secrets are being written unencrypted."""
        if self._warned_unencrypted:
            return
        self._warned_unencrypted = True
        logger.warning(
            "store %r has no encryption key, so the secrets of system %r are stored "
            "unencrypted (logged once per store); set %s or pass SystemStore(key=...), then "
            "run 'asyncext rotate-key' to encrypt the secrets already stored",
            self._owner,
            system,
            KEY_ENVIRONMENT_VARIABLE,
        )

    # --- unsealing: stored text -> value -------------------------------------------------

    def unseal(self, stored: str, *, system: str, field: str = "password") -> Secret:
        """Return a `Secret` for a stored value, decrypted only when it is revealed."""
        if stored.startswith(PLAIN_PREFIX):
            if self._multi is not None and not self._warned_plain_read:
                self._warned_plain_read = True
                logger.warning(
                    "store %r has an encryption key but the %s of system %r is stored "
                    "unencrypted (logged once per store); run 'asyncext rotate-key' or "
                    "store.rotate_key() to encrypt every stored secret",
                    self._owner,
                    field,
                    system,
                )
            secret = Secret(stored[len(PLAIN_PREFIX) :])
            secret._origin = (self, stored)
            return secret

        # Slot assignments rather than __init__, because a listing builds one per stored secret.
        sealed = _new_object(StoredSecret)
        sealed._value = None
        sealed._reveal = None
        sealed._origin = None
        sealed._keyring = self
        sealed._stored = stored
        sealed._system = system
        sealed._field = field
        return sealed

    def unseal_options(self, options: dict[str, Any], *, system: str) -> dict[str, Any]:
        """Replace the stored secret options in ``options`` by deferred `Secret` objects."""
        secrets = options.get(OPTION_SECRETS)
        if isinstance(secrets, dict):
            options[OPTION_SECRETS] = {
                name: self.unseal(stored, system=system, field=f"secret option {name!r}")
                for name, stored in secrets.items()
            }
        return options

    def decrypt(self, stored: str, *, system: str, field: str = "password") -> str:
        """Return the plain value of a stored secret.

        Raises:
            EncryptionKeyError: no key, a wrong key, or an unreadable stored value; the
                message names the system and the field, and never the stored text.
        """
        if stored.startswith(PLAIN_PREFIX):
            return stored[len(PLAIN_PREFIX) :]
        if not stored.startswith(ENCRYPTED_PREFIX):
            raise EncryptionKeyError(
                f"the {field} of system {system!r} is stored in an unknown format; "
                "set it again with 'asyncext update'",
                system=system,
            )
        if self._multi is None:
            raise EncryptionKeyError(
                f"the {field} of system {system!r} is encrypted and no key is set; "
                f"set {KEY_ENVIRONMENT_VARIABLE} or pass SystemStore(key=...)",
                system=system,
            )
        try:
            token = stored[len(ENCRYPTED_PREFIX) :].encode("ascii")
            return self._multi.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeError):
            count = len(self._keys)
            raise EncryptionKeyError(
                f"the {field} of system {system!r} cannot be decrypted with the "
                f"{'key' if count == 1 else f'{count} keys'} given; pass the key it was "
                "encrypted with (a list of keys is accepted during rotation)",
                system=system,
            ) from None

    def is_current(self, stored: str) -> bool:
        """Return whether ``stored`` is encrypted with this keyring's first key."""
        if not stored.startswith(ENCRYPTED_PREFIX) or not self._fernets:
            return False
        try:
            self._fernets[0].decrypt(stored[len(ENCRYPTED_PREFIX) :].encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True
