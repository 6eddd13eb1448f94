"""Property tests of system URIs: arbitrary text is rejected cleanly, random systems round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import SECRET_MARK, differing_fields, hostile_text, systems, uri_like

from asyncext import ExternalSystem, InvalidSystem


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(hostile_text, uri_like()))
def test_from_uri_rejects_only_with_invalid_system(text: str) -> None:
    """from_uri on any text returns a system or raises InvalidSystem, nothing else."""
    try:
        system = ExternalSystem.from_uri(text, name="hostile")
    except InvalidSystem as exc:
        assert len(str(exc)) < 1000, "the message should be short enough to read"
        return
    assert isinstance(system, ExternalSystem)


@settings(max_examples=300, deadline=None)
@given(text=uri_like())
def test_from_uri_accepted_text_round_trips(text: str) -> None:
    """A system read from any accepted URI is written back to an equal URI and system."""
    try:
        system = ExternalSystem.from_uri(text, name="hostile")
    except InvalidSystem:
        return
    again = ExternalSystem.from_uri(system.to_uri(include_secrets=True), name="hostile")
    assert differing_fields(system, again) == []


@settings(max_examples=200, deadline=None)
@given(system=systems)
def test_uri_random_system_round_trips(system: ExternalSystem) -> None:
    """Any valid system survives to_uri and from_uri with every field and option type."""
    uri = system.to_uri(include_secrets=True)
    again = ExternalSystem.from_uri(uri, name=system.name)
    assert differing_fields(system, again) == []
    assert uri.isascii()


@settings(max_examples=200, deadline=None)
@given(system=systems)
def test_uri_random_system_hides_secrets(system: ExternalSystem) -> None:
    """Without include_secrets, neither the URI nor repr carries any drawn secret."""
    assert SECRET_MARK not in system.to_uri()
    assert SECRET_MARK not in repr(system)


def test_from_uri_long_fingerprint_message_is_short() -> None:
    """A 5000-character invalid fingerprint is quoted only in part in the error."""
    uri = "sftp://user@host/srv?fingerprint=" + "%5B" * 5000
    with pytest.raises(InvalidSystem, match="is not a host key fingerprint") as raised:
        ExternalSystem.from_uri(uri, name="hostile")
    assert len(str(raised.value)) < 1000
