"""Hypothesis strategies for hostile input and random systems, shared by the property tests.

Secrets drawn here start with `SECRET_MARK`, a registered secret, so that the suite-wide leak
check catches a leak of any random secret without registering each drawn value.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st
from leakcheck import register_secret

from asyncext import ExternalSystem

SECRET_MARK = "hostile-secret-7d3a"
"""Prefix of every secret drawn here; only URI-safe characters, so it survives encoding."""
register_secret(SECRET_MARK)

RESERVED_OPTIONS = frozenset(
    {
        "secrets",
        "pool",
        "connect_timeout",
        "keepalive_interval",
        "keepalive_count_max",
        "max_concurrent_handshakes",
    }
)
"""Option names with a meaning of their own, left out of random options."""

TRICKY_TEXT = (
    "'; DROP TABLE systems; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM systems WHERE ('1'='1",
    "%s %d %(name)s {0} {name}",
    "\\",
    "\\x00",
    "%00",
    "%2e%2e/%2E%2E",
    "null",
    "NaN",
    "..",
    "/",
    "~root",
    "\u202eevil",  # right-to-left override
    "e\u0301",  # combining accent
    "\U0001f469\u200d\U0001f4bb",  # emoji joined by a zero-width joiner
    "\ufeff",  # byte order mark
    "\u2028\u2029",  # line and paragraph separators (not category Cc)
    "\x00",
    "\x1b[31mred",
    "\r\n",
    "\ud800",  # lone surrogate
    "\udfff",
)
"""Fragments aimed at SQL, format strings, path handling, terminals and text encoders."""

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)

any_character = st.one_of(st.characters(), surrogates)

any_text = st.one_of(
    st.text(any_character, max_size=40),
    st.sampled_from(TRICKY_TEXT),
    st.lists(st.one_of(st.sampled_from(TRICKY_TEXT), st.text(max_size=5)), max_size=6).map("".join),
)
"""Any Python string: control characters, lone surrogates, SQL and format strings."""

long_text = st.builds(
    lambda unit, count: unit * count,
    st.sampled_from(["x", "é", "\U0001f600", "'", "a\x00", "ab\ud800"]),
    st.integers(min_value=256, max_value=100_000),
)
"""One character or pair repeated up to 100,000 times."""

hostile_text = st.one_of(any_text, long_text)

plain_characters = st.characters(exclude_categories=("Cc", "Cs"))

field_text = st.text(plain_characters, min_size=1, max_size=30).filter(lambda text: text.strip())
"""Text that every plain field accepts: no control characters, no lone surrogates, not blank."""

names = field_text
"""Valid system names."""

json_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
"""Text JSON stores as is, control characters included."""

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    json_text,
)

json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(json_text, children, max_size=4)
    ),
    max_leaves=12,
)
"""Any value that JSON stores with its type: dicts, lists, str, int, finite float, bool, None."""

option_names = json_text.filter(lambda name: name not in RESERVED_OPTIONS)

secrets_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20).map(
    lambda tail: SECRET_MARK + tail
)
"""Secrets that start with `SECRET_MARK`; any text after it, control characters included."""

fingerprints = st.binary(min_size=32, max_size=32).map(
    lambda digest: "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
)


@st.composite
def option_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Random plain options, sometimes with secret options."""
    options: dict[str, Any] = draw(st.dictionaries(option_names, json_values, max_size=4))
    secret_options = draw(
        st.dictionaries(st.text(min_size=1, max_size=8), secrets_text, max_size=2)
    )
    if secret_options:
        options["secrets"] = secret_options
    return options


@st.composite
def system_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of a valid `ExternalSystem` of type ``local`` or ``sftp``.

    Values keep to what a URI can carry without change: a password comes with a user name,
    and a host is never empty.
    """
    system_type = draw(st.sampled_from(["local", "sftp"]))
    fields: dict[str, Any] = {
        "name": draw(names),
        "system_type": system_type,
        "port": draw(st.none() | st.integers(min_value=1, max_value=65535)),
        "tenants": draw(st.frozensets(field_text, max_size=3)),
        "options": draw(option_dicts()),
    }
    if system_type == "local":
        fields["remote_path"] = "/" + draw(st.text(plain_characters, max_size=30))
        fields["host"] = draw(st.none() | field_text)
        fields["username"] = draw(st.none() | field_text)
        fields["fingerprint"] = draw(st.none() | field_text)
        fields["private_key"] = draw(st.none() | secrets_text)
        fields["private_key_password"] = draw(st.none() | secrets_text)
    else:
        fields["remote_path"] = draw(st.none() | field_text)
        fields["host"] = draw(field_text)
        fields["username"] = draw(field_text)
        fields["fingerprint"] = draw(st.none() | fingerprints)
        fields["ignore_fingerprint"] = fields["fingerprint"] is None
    if fields["username"] is not None:
        fields["password"] = draw(st.none() | secrets_text)
    return fields


systems = system_fields().map(lambda fields: ExternalSystem(**fields))
"""Random valid systems built by hand, not pooled."""


PATH_SEGMENTS = (
    "..",
    ".",
    "",
    "a",
    "b",
    "inner.txt",
    "link_in",
    "link_out",
    "link_up",
    "dangling",
    "data",
    "data_secret",
    "srv",
    "etc",
    "passwd",
    "x",
)
"""Names in the layout of the path tests, the names around the root there, and dot segments."""

path_segments = st.one_of(
    st.sampled_from(PATH_SEGMENTS),
    st.sampled_from(PATH_SEGMENTS),
    st.sampled_from(PATH_SEGMENTS),
    st.text(alphabet="./\\a~% é" + string.digits, max_size=4),
    st.sampled_from(["%2e%2e", "...", " ..", ".. ", "a\x00b", "\\..", "~root"]),
)
"""Mostly names that exist in the layout, so that random paths often pass through its links."""


@st.composite
def relative_paths(draw: st.DrawFn) -> str:
    """A path of one to six random segments, sometimes absolute, sometimes with '//'."""
    segments = draw(st.lists(path_segments, min_size=1, max_size=6))
    if draw(st.booleans()):
        # Half of the paths start at a link of the layout, the likeliest way out of a root.
        segments.insert(0, draw(st.sampled_from(["link_in", "link_out", "link_up", "dangling"])))
    separator = draw(st.sampled_from(["/", "/", "//"]))
    path: str = separator.join(segments)
    if draw(st.booleans()):
        path = "/" + path
    return path


def same_json(left: Any, right: Any) -> bool:
    """Return whether two JSON values are equal with the same type at every level.

    ``True == 1`` and ``1 == 1.0`` in Python, so plain equality would hide a changed type.
    """
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same_json, left, right))
    return bool(left == right)


uri_parts = st.one_of(
    any_text,
    any_text.map(lambda text: quote(text, safe="", errors="surrogatepass")),
    st.sampled_from(["@", ":", "/", "?", "#", "&", "=", "[", "]", "%", "%4", "%zz", "%ED%A0%80"]),
    st.sampled_from(["::1", "0", "65536", "%40", "%3A", "%2F", "%25"]),
)
"""Pieces of URI components: raw text, percent-encoded text and stray delimiters."""

query_names = st.one_of(
    st.sampled_from(["fingerprint", "ignore_fingerprint", "remote_path", "tenant"]),
    st.sampled_from(["private_key", "private_key_password", "option.secrets"]),
    st.builds(
        lambda prefix, name: prefix + name, st.sampled_from(["option.", "secret."]), any_text
    ),
)

query_values = st.one_of(
    any_text.map(lambda text: quote(text, safe="", errors="surrogatepass")),
    # JSON text with lone surrogates written as \ud800 escapes, which json.loads accepts.
    json_values.map(lambda value: quote(json.dumps(value))),
    st.sampled_from(['"\\ud800"', '{"\\udfff": 1}', '["\\ud800"]']).map(quote),
    st.integers(min_value=1, max_value=100_000).map(lambda depth: "%5B" * depth + "%5D" * depth),
    st.integers(min_value=4000, max_value=6000).map(lambda digits: "1" * digits),
    st.sampled_from(["true", "false", "NaN", "Infinity", "1e999", "-0", "%22%22"]),
)


@st.composite
def uri_like(draw: st.DrawFn) -> str:
    """Text shaped like a system URI, with hostile parts in every component.

    Half of the URIs start from a valid base, so that the parser gets past the authority and
    the path to the query more often than random text would.
    """
    if draw(st.booleans()):
        base = draw(
            st.sampled_from(
                [
                    "local:///srv/data?",
                    "local://host/srv?",
                    "sftp://user@host/srv?ignore_fingerprint=true&",
                    "ssh://user:pass@[::1]:2222?ignore_fingerprint=true&",
                ]
            )
        )
    else:
        scheme = draw(st.sampled_from(["sftp", "ssh", "local", "SFTP", "s", "1x", ""]))
        authority = "".join(draw(st.lists(uri_parts, max_size=4)))
        path = "".join(draw(st.lists(uri_parts, max_size=3)))
        base = f"{scheme}://{authority}/{path}?"
    parameters = draw(st.lists(st.tuples(query_names, query_values), max_size=4))
    query = "&".join(
        f"{quote(name, safe='.', errors='surrogatepass')}={value}" for name, value in parameters
    )
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        query += "&" + "".join(draw(st.lists(uri_parts, max_size=2)))
    return base + query


COMPARED_FIELDS = (
    "name",
    "system_type",
    "host",
    "port",
    "username",
    "fingerprint",
    "ignore_fingerprint",
    "remote_path",
    "tenants",
)


def differing_fields(left: ExternalSystem, right: ExternalSystem) -> list[str]:
    """Return the names of the fields that differ, secrets and option types included.

    The store's ``id``, ``revision`` and timestamps are not compared.
    """
    differing = [name for name in COMPARED_FIELDS if getattr(left, name) != getattr(right, name)]
    for name in ("password", "private_key", "private_key_password"):
        left_secret, right_secret = getattr(left, name), getattr(right, name)
        left_value = None if left_secret is None else left_secret.reveal()
        right_value = None if right_secret is None else right_secret.reveal()
        if left_value != right_value:
            differing.append(name)
    if not same_json(_revealed(left.options), _revealed(right.options)):
        differing.append("options")
    return differing


def _revealed(options: dict[str, Any]) -> dict[str, Any]:
    """Return ``options`` with its secret options as plain text."""
    secrets = options.get("secrets")
    if not isinstance(secrets, dict):
        return options
    return {**options, "secrets": {key: value.reveal() for key, value in secrets.items()}}
