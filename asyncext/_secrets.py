"""`Secret`: a credential that never shows its value unless asked.

Besides the three secret fields of a system (``password``, ``private_key`` and
``private_key_password``), options may hold secrets too, such as an API token or an OAuth
client secret. They go in one reserved option, ``options["secrets"]``: a flat mapping from a
name to a `Secret` (plain strings given there are wrapped on construction). Everything else in
``options`` is ordinary JSON and is never treated as a secret, whatever its name.
"""

from __future__ import annotations

import hmac
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import InvalidSystem

MASK = "**********"

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")

OPTION_SECRETS = "secrets"
"""Name of the option that contains a system's secret options, a mapping from name to `Secret`."""


class Secret:
    """A credential value that stays hidden in ``repr``, ``str``, f-strings and logs.

    Only `reveal` returns the value. Any string can be a secret, ``"******"`` and ``""``
    included: the mask is only ever produced for display, never compared against. A secret
    read from an encrypted store is decrypted on the first `reveal`, so listing systems
    decrypts nothing.

    Two secrets are equal when their values are equal, which reveals (and so decrypts) both.
    """

    __slots__ = ("_origin", "_reveal", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret value must be a str, not {type(value).__name__}")
        self._value: str | None = value
        self._reveal: Callable[[], str] | None = None
        self._origin: tuple[object, str] | None = None

    @classmethod
    def _deferred(
        cls, reveal: Callable[[], str], *, origin: tuple[object, str] | None = None
    ) -> Secret:
        """Create a secret whose value is computed by ``reveal`` on first use (decryption).

        ``origin`` is ``(keyring, stored text)``: the keyring that can write the secret back
        unchanged, without decrypting it, as long as it is the same keyring.
        """
        secret = cls.__new__(cls)
        secret._value = None
        secret._reveal = reveal
        secret._origin = origin
        return secret

    def _stored_form(self, keyring: object) -> str | None:
        """Return the stored text this secret was read from, if ``keyring`` read it."""
        if self._origin is not None and self._origin[0] is keyring:
            return self._origin[1]
        return None

    def reveal(self) -> str:
        """Return the plain value.

        Raises:
            EncryptionKeyError: the value is stored encrypted and the store's key cannot
                decrypt it. The secret stays unrevealed, so a later call tries again.
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


def wrap_option_secrets(system: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``options`` whose secret options are all `Secret` objects.

    The caller's mapping is left unchanged. Options without ``"secrets"`` are returned as a
    plain copy of the top level, and an empty ``"secrets"`` is left out.

    Raises:
        InvalidSystem: ``options["secrets"]`` is not a mapping from non-empty names to
            strings or secrets. The message names the option, never its value.
    """
    copied = dict(options)
    if OPTION_SECRETS not in copied:
        return copied

    secrets = copied[OPTION_SECRETS]
    if not isinstance(secrets, Mapping):
        raise InvalidSystem(
            f"system {system!r}: options[{OPTION_SECRETS!r}] must be a dict from a name to a "
            f"secret string, such as {{'token': '...'}}, not {type(secrets).__name__}",
            system=system,
        )
    wrapped: dict[str, Secret] = {}
    for name, value in secrets.items():
        if not isinstance(name, str) or not name:
            raise InvalidSystem(
                f"system {system!r}: the names in options[{OPTION_SECRETS!r}] must be "
                f"non-empty strings, not {name!r}",
                system=system,
            )
        if isinstance(value, str):
            value = Secret(value)
        elif not isinstance(value, Secret):
            # The type is safe to show; the value might be the secret itself.
            raise InvalidSystem(
                f"system {system!r}: options[{OPTION_SECRETS!r}][{name!r}] must be a str or "
                f"Secret, not {type(value).__name__}",
                system=system,
            )
        wrapped[name] = value

    # An empty object contains no secret, and the export and URI forms, which write secret
    # options only when there are some, could not bring it back.
    if wrapped:
        copied[OPTION_SECRETS] = wrapped
    else:
        del copied[OPTION_SECRETS]
    return copied


def split_option_secrets(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Secret]]:
    """Return ``(plain options, secret options)``, the second taken from ``"secrets"``."""
    plain = dict(options)
    secrets = plain.pop(OPTION_SECRETS, None)
    return plain, dict(secrets) if isinstance(secrets, Mapping) else {}


def secret_forms(value: str) -> set[str]:
    """Return the spellings under which ``value`` may appear in an error message or a log.

    Besides the value itself: percent-encoded (RFC 3986, in upper and lower case, and with
    ``+`` for spaces as HTML forms write it), and escaped as ``repr`` and JSON write it.
    """
    encoded = urllib.parse.quote(value, safe="")
    forms = {
        value,
        encoded,
        _PERCENT_ESCAPE.sub(lambda match: match.group(0).lower(), encoded),
        urllib.parse.quote_plus(value, safe=""),
        repr(value)[1:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    forms.discard("")
    return forms
