"""Secret: hidden in every text form, compared by value, any string storable."""

from __future__ import annotations

import copy
import logging
import pickle
from pathlib import Path

import pytest
from leakcheck import register_secret

from asyncext import ExternalSystem, InvalidSystem, Secret, SystemStore, generate_key
from asyncext._secrets import MASK

PASSWORD = "!Weird!Password^123$"
TOKEN = "tok-5e1f0a9c-client"
register_secret(PASSWORD, TOKEN)


def local_system(tmp_path: Path, **fields: object) -> ExternalSystem:
    return ExternalSystem(name="files", system_type="local", remote_path=str(tmp_path), **fields)


def test_secret_reveal_returns_value() -> None:
    """reveal() returns exactly the stored string."""
    assert Secret(PASSWORD).reveal() == PASSWORD


@pytest.mark.parametrize(
    "render",
    [repr, str, "{}".format, "{:>30}".format, "%s".__mod__, "%r".__mod__],
    ids=["repr", "str", "format", "format-spec", "percent-s", "percent-r"],
)
def test_secret_text_forms_hide_value(render: object) -> None:
    """Every way of turning a secret into text shows the mask, never the value."""
    assert callable(render)
    text = render(Secret(PASSWORD))
    assert PASSWORD not in text
    assert MASK in text


def test_secret_repr_is_the_mask() -> None:
    """repr and str show ten asterisks."""
    assert repr(Secret("x")) == "Secret('**********')"
    assert str(Secret("x")) == "**********"


def test_secret_equality_compares_values() -> None:
    """Secrets with equal values are equal; a plain string never equals a secret."""
    assert Secret(PASSWORD) == Secret(PASSWORD)
    assert Secret(PASSWORD) != Secret(PASSWORD + "x")
    assert Secret(PASSWORD) != PASSWORD


def test_secret_hash_follows_equality() -> None:
    """Equal secrets hash alike, so they work as set members."""
    assert len({Secret(PASSWORD), Secret(PASSWORD)}) == 1


def test_secret_rejects_non_string() -> None:
    """Only str values can be secrets; bytes are a type error."""
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


def test_secret_refuses_pickle() -> None:
    """Pickling would write the value out, so it raises."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret(PASSWORD))


def test_secret_copies_share_the_object() -> None:
    """copy and deepcopy return the same immutable secret."""
    secret = Secret(PASSWORD)
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret


def test_secret_deferred_reveals_once() -> None:
    """A deferred secret computes its value on the first reveal only."""
    calls = []

    def compute() -> str:
        calls.append(1)
        return PASSWORD

    secret = Secret._deferred(compute)
    assert calls == []
    assert secret.reveal() == PASSWORD
    assert secret.reveal() == PASSWORD
    assert calls == [1]


def test_secret_deferred_failure_retries() -> None:
    """A reveal that fails leaves the secret unrevealed, so the next call tries again."""
    outcomes = [RuntimeError("no key yet"), PASSWORD]

    def compute() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    secret = Secret._deferred(compute)
    with pytest.raises(RuntimeError):
        secret.reveal()
    assert secret.reveal() == PASSWORD


def test_secret_system_repr_masks_all_secrets(tmp_path: Path) -> None:
    """A record's repr masks the secret fields and the secret options."""
    system = local_system(
        tmp_path,
        password=PASSWORD,
        private_key=PASSWORD,
        private_key_password=PASSWORD,
        options={"secrets": {"token": TOKEN}, "region": "eu"},
    )
    text = repr(system)
    assert PASSWORD not in text
    assert TOKEN not in text
    assert "'region': 'eu'" in text


def test_secret_option_strings_become_secrets(tmp_path: Path) -> None:
    """Plain strings under options['secrets'] are wrapped in Secret on construction."""
    system = local_system(tmp_path, options={"secrets": {"token": TOKEN}})
    token = system.options["secrets"]["token"]
    assert isinstance(token, Secret)
    assert token.reveal() == TOKEN


def test_secret_option_wrapping_leaves_caller_dict(tmp_path: Path) -> None:
    """Wrapping works on a copy; the caller's options keep their plain strings."""
    options = {"secrets": {"token": TOKEN}}
    local_system(tmp_path, options=options)
    assert options == {"secrets": {"token": TOKEN}}


@pytest.mark.parametrize(
    "secrets",
    [["token"], {"token": 5}, {"": "value-x1"}, {"token": None}],
    ids=["not-a-dict", "int-value", "empty-name", "none-value"],
)
def test_secret_option_invalid_shapes_rejected(tmp_path: Path, secrets: object) -> None:
    """options['secrets'] must map non-empty names to strings or secrets."""
    with pytest.raises(InvalidSystem, match=r"options\['secrets'\]"):
        local_system(tmp_path, options={"secrets": secrets})


def test_secret_option_error_hides_value(tmp_path: Path) -> None:
    """A rejected secret option names its type, never its value."""
    with pytest.raises(InvalidSystem) as caught:
        local_system(tmp_path, options={"secrets": {"token": [TOKEN]}})
    assert TOKEN not in str(caught.value)


def test_secret_top_level_option_points_to_secrets(tmp_path: Path) -> None:
    """A Secret placed directly in options is rejected with the place it belongs."""
    with pytest.raises(InvalidSystem, match=r"options\['secrets'\]") as caught:
        local_system(tmp_path, options={"token": Secret(TOKEN)})
    assert TOKEN not in str(caught.value)


def test_secret_other_options_stay_plain(tmp_path: Path) -> None:
    """Options outside 'secrets' are plain JSON values, whatever their names."""
    system = local_system(tmp_path, options={"api_token": "visible-by-design"})
    assert system.options["api_token"] == "visible-by-design"


@pytest.mark.parametrize("value", ["******", MASK, "", "a", "plain:x", "fernet:gAAAAAxyz"])
async def test_secret_any_value_round_trips(tmp_path: Path, value: str) -> None:
    """Mask-like, empty, one-character and prefix-like values are stored and read back."""
    async with SystemStore(tmp_path / "s.db", key=generate_key()) as store:
        await store.add(
            "files",
            "local",
            remote_path=str(tmp_path),
            password=value,
            options={"secrets": {"t": value}},
        )
        system = await store.get("files")
    assert system.password is not None
    assert system.password.reveal() == value
    assert system.options["secrets"]["t"].reveal() == value


async def test_secret_mask_value_kept_by_update(tmp_path: Path) -> None:
    """A password that is literally '******' survives an update of another field."""
    async with SystemStore(tmp_path / "s.db", key=generate_key()) as store:
        await store.add("files", "local", remote_path=str(tmp_path), password="******")
        await store.update("files", host="db.example")
        system = await store.get("files")
    assert system.password is not None
    assert system.password.reveal() == "******"


@pytest.mark.parametrize("value", ["", "a"])
async def test_secret_short_values_do_not_mask_logs(
    tmp_path: Path, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Empty and one-letter passwords leave log lines readable: nothing is replaced."""
    caplog.set_level(logging.DEBUG, logger="asyncext")
    async with SystemStore(tmp_path / "s.db", key=generate_key()) as store:
        await store.add("files", "local", remote_path=str(tmp_path), password=value)
        await store.update("files", host="a.example")
    messages = [
        record.getMessage() for record in caplog.records if record.name.startswith("asyncext")
    ]
    assert "added system 'files' (type local)" in messages
    assert any("updated system 'files' to revision 2" in message for message in messages)
    assert not any("*" in message for message in messages)
