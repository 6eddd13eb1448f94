"""ExternalSystem.from_uri and to_uri: strict RFC 3986 encoding, every field, no leaks."""

from __future__ import annotations

import base64
import string
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from leakcheck import leak_forms, register_secret

from asyncext import (
    Adapter,
    ExternalSystem,
    InvalidSystem,
    Secret,
    UnknownSystemType,
    register_adapter,
)

PASSWORD = "p@ss:w/rd#%?&= +é"
WEIRD = "!Weird!Password^123$"
TOKEN = "uri-token-4b1e"
KEY_TEXT = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nuri-test-key-0f9e\n-----END OPENSSH PRIVATE KEY-----"
)
register_secret(PASSWORD, WEIRD, TOKEN, "uri-test-key-0f9e", "abc123/321xyz")

FINGERPRINT = "SHA256:" + base64.b64encode(bytes(range(32))).decode().rstrip("=")


@register_adapter
class AnyFieldsAdapter(Adapter[None]):
    """Accepts any field values, so that the URI code is tested on its own."""

    system_type: ClassVar[str] = "uri-test"
    description: ClassVar[str] = "test adapter without checks of its own"

    async def get_client(self, system: ExternalSystem) -> None:
        return None


TYPED_OPTIONS: dict[str, Any] = {
    "tds_version": "7.3",
    "as_dict": True,
    "n": 3,
    "f": 1.5,
    "nested": {"a": [1, 2]},
}


def full_system(**changes: Any) -> ExternalSystem:
    """Return a hand-built system with every URI-carried field set."""
    fields: dict[str, Any] = {
        "name": "db",
        "system_type": "uri-test",
        "host": "db.example",
        "port": 2222,
        "username": "svc@tenant",
        "password": PASSWORD,
        "private_key": KEY_TEXT,
        "private_key_password": "kp ss+/é",
        "fingerprint": "SHA256:uFm/tU3lV0qX7pW9Zz+abc=",
        "ignore_fingerprint": True,
        "remote_path": "/srv/data files/été",
        "tenants": ["acme", "beta co"],
        "options": {**TYPED_OPTIONS, "secrets": {"token": TOKEN}},
    }
    fields.update(changes)
    return ExternalSystem(**fields)


def assert_same_types(left: Any, right: Any) -> None:
    """Assert equality with the exact type at every level (True == 1 would hide a change)."""
    assert type(left) is type(right), (left, right)
    if isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            assert_same_types(left[key], right[key])
    elif isinstance(left, list):
        assert len(left) == len(right)
        for a, b in zip(left, right, strict=True):
            assert_same_types(a, b)
    else:
        assert left == right


def parse(uri: str) -> ExternalSystem:
    return ExternalSystem.from_uri(uri, name="db")


# --- round trips ---------------------------------------------------------------------------


def test_uri_round_trip_every_field() -> None:
    """from_uri(to_uri(s)) equals s on every field, secrets included."""
    system = full_system()
    assert parse(system.to_uri(include_secrets=True)) == system


def test_uri_round_trip_keeps_option_types() -> None:
    """Typed options come back with their types: '7.3' stays a string, True stays a bool."""
    system = full_system()
    again = parse(system.to_uri())
    assert_same_types(again.options, dict(TYPED_OPTIONS))


def test_uri_round_trip_secret_option() -> None:
    """Secret options travel as secret.NAME and come back as Secret."""
    again = parse(full_system().to_uri(include_secrets=True))
    assert isinstance(again.options["secrets"]["token"], Secret)
    assert again.options["secrets"]["token"].reveal() == TOKEN


def test_uri_encodes_plus_and_space() -> None:
    """'+' is written %2B and a space %20, never '+' for a space."""
    uri = full_system(password="a+b c").to_uri(include_secrets=True)
    assert ":a%2Bb%20c@" in uri


def test_uri_plus_decodes_as_plus() -> None:
    """A raw '+' in the URI is a plus sign, as RFC 3986 defines it, not a space."""
    system = parse("uri-test://u:a+b@h/srv")
    assert system.password is not None
    assert system.password.reveal() == "a+b"


def test_uri_matches_documented_example() -> None:
    """The documented sftp example reads into the expected fields."""
    system = ExternalSystem.from_uri(
        f"sftp://user:p%40ss@host:2222/srv/data?fingerprint={quote(FINGERPRINT, safe='')}",
        name="backups",
    )
    assert (system.system_type, system.username, system.host) == ("sftp", "user", "host")
    assert (system.port, system.remote_path, system.fingerprint) == (
        2222,
        "/srv/data",
        FINGERPRINT,
    )
    assert system.password == Secret("p@ss")


@pytest.mark.parametrize(
    "changes",
    [
        {"host": "::1"},
        {"host": "fe80::1%eth0"},
        {"host": "bücher.example"},
        {"remote_path": "relative/dir"},
        {"remote_path": "//double/slash"},
        {"remote_path": "/"},
        {"remote_path": None, "host": None, "port": None},
        {"username": None, "password": None},
        {"password": ""},
        {"username": ""},
        {"tenants": []},
        {"options": {}},
        {"options": {"a&b=c": "x=y&z", "ü": None, "": [None, {"k": False}]}},
        {"ignore_fingerprint": False, "fingerprint": None},
        {"fingerprint": ""},
    ],
    ids=lambda changes: ",".join(f"{key}={value!r}" for key, value in changes.items()),
)
def test_uri_round_trip_edge_values(changes: dict[str, Any]) -> None:
    """Awkward hosts, paths, empty values and odd option names all round-trip."""
    system = full_system(**changes)
    assert parse(system.to_uri(include_secrets=True)) == system


def test_uri_ipv6_host_is_bracketed() -> None:
    """An IPv6 host is written in brackets, with a zone's '%' as %25."""
    assert "@[fe80::1%25eth0]:2222/" in full_system(host="fe80::1%eth0").to_uri()


uri_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(username=uri_text, password=uri_text, path=uri_text, option=uri_text, value=uri_text)
def test_uri_round_trip_any_text(
    username: str, password: str, path: str, option: str, value: str
) -> None:
    """Any user name, password, path and option survive, and the URI is pure ASCII."""
    if any(ch in string.whitespace or not ch.isprintable() for ch in username + path):
        # Control characters are invalid in those fields whatever the URI contains.
        return
    # Both names are reserved options with a structure of their own.
    assume(option not in ("pool", "secrets"))
    system = full_system(
        username=username,
        password=password,
        remote_path="/" + path,
        options={option: value, "secrets": {"s": password}},
    )
    uri = system.to_uri(include_secrets=True)
    assert uri.isascii()
    assert parse(uri) == system


# --- secrets left out ----------------------------------------------------------------------


def test_uri_without_secrets_has_no_password() -> None:
    """Without include_secrets the URI carries no password, not even a placeholder."""
    uri = full_system(password=WEIRD).to_uri()
    for form in leak_forms(WEIRD):
        assert form not in uri
    assert "svc%40tenant@db.example" in uri
    assert "*" not in uri


def test_uri_without_secrets_reads_back_without_secrets() -> None:
    """The secret-less URI reads back as a system with no password, key or secret option."""
    again = parse(full_system().to_uri())
    assert again.password is None
    assert again.private_key is None
    assert again.private_key_password is None
    assert "secrets" not in again.options


def test_uri_without_secrets_never_reads_a_mask() -> None:
    """A masked-looking URI password is an ordinary value, never a hidden one."""
    again = parse(full_system(password="******").to_uri(include_secrets=True))
    assert again.password == Secret("******")


# --- malformed URIs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri", ["sftp://AKIA:abc123/321xyz@bucket", "sftp://AKIA:123/321xyz@bucket"]
)
def test_uri_unencoded_password_rejected(uri: str) -> None:
    """A password with a raw '/' is rejected at parse time, naming the part, hiding it.

    The second form reads as a valid host and port up to the '/', so only the '@' after
    it shows that a password was meant.
    """
    with pytest.raises(InvalidSystem) as caught:
        parse(uri)
    message = str(caught.value)
    assert "password" in message
    assert "321xyz" not in message


@pytest.mark.parametrize(
    "uri",
    [
        f"sftp://svc:{WEIRD}@host/x",
        f"sftp://svc:{quote(WEIRD, safe='')}@host:notaport/x",
        "sftp://svc:!Weird!Password^123$/x@host",
        "sftp://svc:!Weird!Password#123$@host",
        "sftp://svc:!Weird!Password?123$@host",
        "sftp://svc@ten:!Weird!Password^123$@host",
        "sftp://svc:!Weird!Password%zz123$@host",
        "sftp://svc:!Weird!Password%FF123$@host",
        "sftp:svc:!Weird!Password^123$@host",
        "svc:!Weird!Password^123$@host",
        "sftp://svc:!Weird!Password^123$",
        f"sftp://svc:x@host?secret.t={quote(WEIRD)}&oops",
        f"sftp://svc:x@host?option.t={quote(WEIRD)}",
        f"sftp://svc:x@host?private_key={quote(WEIRD)}&private_key=2",
    ],
)
def test_uri_errors_never_contain_password(uri: str) -> None:
    """Malformed URIs raise InvalidSystem whose message has no form of the password."""
    with pytest.raises(InvalidSystem) as caught:
        parse(uri)
    message = str(caught.value)
    for form in leak_forms(WEIRD):
        assert form not in message
    assert "Weird" not in message


@pytest.mark.parametrize(
    ("uri", "part"),
    [
        ("sftp://h:99999/x", "port"),
        ("sftp://h:22x/x", "port"),
        ("sftp://[::zz]/x", "IPv6"),
        ("sftp://[::1/x", "IPv6"),
        ("sftp://h/x#frag", "fragment"),
        ("sftp://h/a b", "path"),
        ("sftp://h/x?fingerprint=a&fingerprint=b", "twice"),
        ("sftp://h/x?color=blue", "unknown query parameter 'color'"),
        ("sftp://h/x?ignore_fingerprint=yes", "ignore_fingerprint"),
        ("sftp://h/x?option.mode=fast", "option 'mode' is not valid JSON"),
        ("sftp://h/x?option.n=NaN", "option 'n' is not valid JSON"),
        ("sftp://h/x?option.secrets=%7B%7D", "secret."),
        ("sftp://h/x?remote_path=y", "both"),
        ("sftp://h/x?flag", "no '='"),
        ("sftp://h/a@b", "'@'"),
        ("sftp://h/%", "'%'"),
        ("sftp:/h/x", "TYPE://"),
        ("1sftp://h/x", "TYPE://"),
    ],
)
def test_uri_malformed_names_the_part(uri: str, part: str) -> None:
    """Each malformed URI is InvalidSystem with a message naming the part at fault."""
    with pytest.raises(InvalidSystem, match="invalid URI") as caught:
        parse(uri)
    assert part in str(caught.value)
    assert caught.value.system == "db"


def test_uri_unknown_scheme_lists_types() -> None:
    """A well-formed URI of an unknown type is UnknownSystemType."""
    with pytest.raises(UnknownSystemType):
        parse("nosuchtype://h/x")


def test_uri_scheme_is_case_insensitive() -> None:
    """The scheme is read case-insensitively, as RFC 3986 requires."""
    assert parse("URI-TEST://h/srv").system_type == "uri-test"


def test_uri_rejects_non_string() -> None:
    """Only strings are URIs."""
    with pytest.raises(InvalidSystem, match="must be a string"):
        ExternalSystem.from_uri(b"uri-test://h/x", name="db")  # type: ignore[arg-type]


def test_uri_unwritable_system_type_rejected(tmp_path: Path) -> None:
    """A system type that is not a valid scheme cannot be written as a URI."""
    system = full_system()
    object.__setattr__(system, "system_type", "my_adapter")
    with pytest.raises(InvalidSystem, match="cannot be a URI scheme"):
        system.to_uri()


def test_uri_result_is_validated() -> None:
    """The record built from a URI goes through the same validation as add()."""
    with pytest.raises(InvalidSystem, match="control character"):
        parse("uri-test://h/x?fingerprint=a%0Ab")
