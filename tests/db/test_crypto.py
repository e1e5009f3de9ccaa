"""db/crypto.py without services: the sealed format, what a value is bound to, keys
from the environment, the lookup hash, and the API's refusal to start without keys."""

from __future__ import annotations

import uuid

import pytest
from sanic import Sanic

from api.config import AppConfig, ConfigError
from api.server import create_app
from db import crypto
from db.crypto import Keyring, UnreadableValue

K1, K2, MAC = crypto.new_key(), crypto.new_key(), crypto.new_key()
T, D = uuid.uuid4(), uuid.uuid4()
PLACE = {"tenant_id": T, "row_id": D, "column": crypto.CONTACT}


def ring(keys: str = f"1:{K1}") -> Keyring:
    return Keyring.parse(keys, MAC)


def test_seal_and_open_round_trip_with_the_key_id_in_front() -> None:
    sealed = ring().seal("Ana <ana@example.org> ☂", **PLACE)
    assert sealed is not None
    assert sealed[0] == crypto.FORMAT and crypto.key_id(sealed) == 1
    assert b"ana@example.org" not in sealed
    assert ring().open(sealed, **PLACE) == "Ana <ana@example.org> ☂"
    # A fresh nonce every time: equal contacts do not give equal ciphertexts.
    assert ring().seal("x", **PLACE) != ring().seal("x", **PLACE)


def test_repr_shows_no_key() -> None:
    assert repr(ring()) == "Keyring(newest=1)"


def test_empty_is_not_sealed() -> None:
    assert ring().seal("", **PLACE) is None
    assert ring().open(None, **PLACE) == ""
    assert ring().contact_hash("   ") is None


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"tenant_id": uuid.uuid4()},
        {"row_id": uuid.uuid4()},
        {"column": crypto.MESSAGE},
    ],
)
def test_a_value_opens_only_where_it_was_sealed(elsewhere: dict[str, object]) -> None:
    sealed = ring().seal("+55 11 99999-0000", **PLACE)
    with pytest.raises(UnreadableValue, match="copied from another row"):
        ring().open(sealed, **{**PLACE, **elsewhere})  # type: ignore[arg-type]


def test_altered_values_are_refused() -> None:
    sealed = ring().seal("+55 11 99999-0000", **PLACE)
    assert sealed is not None
    for at in (4, 20, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[at] ^= 0x40
        with pytest.raises(UnreadableValue):
            ring().open(bytes(altered), **PLACE)
    with pytest.raises(UnreadableValue, match="not a sealed value"):
        ring().open(b"plain text, not sealed at all....", **PLACE)


def test_newest_key_seals_every_listed_key_opens_a_removed_one_is_named() -> None:
    old = ring(f"1:{K1}").seal("a", **PLACE)
    both = ring(f"2:{K2},1:{K1}")
    new = both.seal("b", **PLACE)
    assert new is not None and crypto.key_id(new) == 2
    assert both.open(old, **PLACE) == "a" and both.open(new, **PLACE) == "b"
    with pytest.raises(UnreadableValue, match="encrypted with key 1, which is not in"):
        ring(f"2:{K2}").open(old, **PLACE)


def test_contact_hash_is_trimmed_case_insensitive_and_keyed() -> None:
    h = ring().contact_hash("Ana@Example.org")
    assert h is not None and len(h) == 32
    assert ring().contact_hash("  ana@example.ORG\t") == h
    assert ring().contact_hash("ana@example.org.") != h
    assert Keyring.parse(f"1:{K1}", crypto.new_key()).contact_hash("ana@example.org") != h


def test_row_reader_falls_back_to_plaintext_of_rows_not_yet_encrypted() -> None:
    row = {"id": D, "tenant_id": T, "donor_contact": "old", "donor_contact_enc": None}
    assert ring().donor_contact_of(row) == "old"
    sealed = ring().seal("new", **PLACE)
    assert ring().donor_contact_of({**row, "donor_contact": "", "donor_contact_enc": sealed})


def test_app_refuses_to_start_without_keys_and_says_which() -> None:
    base = {
        "DATABASE_URL": "postgresql://unused@127.0.0.1/unused",
        "JWT_SECRET": "x" * 40,
        "CONTACT_KEYS": f"1:{K1}",
        "CONTACT_HMAC_KEY": MAC,
    }
    app = create_app(AppConfig(base))  # complete: builds
    Sanic.unregister_app(app)  # the name stays free for the next test that builds one
    for missing in ("CONTACT_KEYS", "CONTACT_HMAC_KEY"):
        with pytest.raises(ConfigError, match=f"CONECTADES_{missing}"):
            AppConfig({**base, missing: ""}).check()
    with pytest.raises(ConfigError, match="key 7 is not valid base64"):
        AppConfig({**base, "CONTACT_KEYS": "7:not-base64!"}).check()
