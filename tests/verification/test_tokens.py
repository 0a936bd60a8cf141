"""Keyed person tokens: stable, keyed, int64, key id carried, collisions loud."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verification.config import load_settings
from verification.intake import identifiers as ids
from verification.intake.tokens import (
    KEY_ID_ATTR,
    TokenCollision,
    TokenKey,
    assert_no_collisions,
    person_token,
    person_tokens,
    stamp_key_id,
)
from verification.matching import match_exact

KEY = TokenKey("test-1", b"a test key, not a secret")
OTHER = TokenKey("test-2", b"another test key")


def test_token_is_first_8_bytes_of_hmac_sha256_as_signed_int64() -> None:
    digest = hmac.new(KEY.secret, b"11010519491231002X", hashlib.sha256).digest()
    expected = int.from_bytes(digest[:8], "big", signed=True)
    assert person_token(KEY, "11010519491231002X") == expected
    assert person_token(KEY.secret, "11010519491231002X") == expected  # raw bytes still work
    assert -(2**63) <= expected < 2**63


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 100, 200])
def test_tokens_are_the_standard_hmac_for_keys_of_any_length(key_length: int) -> None:
    # person_tokens absorbs the padded key itself (RFC 2104): a key longer than SHA-256's
    # 64-byte block is hashed first, a shorter one padded with zeros
    secret = bytes((7 * i + 3) % 256 for i in range(key_length))
    values = ["11010519491231002X", "440524188001010014", "", "0" * 18, "X" * 200]
    expected = [int.from_bytes(hmac.new(secret, v.encode("ascii"), hashlib.sha256).digest()[:8],
                               "big", signed=True) for v in values]
    assert person_tokens(secret, pd.Series(values, dtype=object)).tolist() == expected
    assert [person_token(secret, v) for v in values] == expected


def test_different_keys_give_different_tokens() -> None:
    assert person_token(KEY, "11010519491231002X") != person_token(OTHER, "11010519491231002X")


def test_column_tokens_match_scalar_and_keep_missing() -> None:
    column = pd.Series(["11010519491231002X", None, "440524188001010014"], index=[5, 6, 7])
    tokens = person_tokens(KEY, column)
    assert tokens.dtype == "Int64"
    assert tokens.index.tolist() == [5, 6, 7]
    assert tokens.iloc[0] == person_token(KEY, "11010519491231002X")
    assert tokens.iloc[2] == person_token(KEY, "440524188001010014")
    assert tokens.isna().tolist() == [False, True, False]
    assert tokens.attrs[KEY_ID_ATTR] == "test-1"


def test_empty_and_all_missing_columns() -> None:
    assert len(person_tokens(KEY, pd.Series([], dtype=object))) == 0
    assert person_tokens(KEY, pd.Series([None, None])).isna().all()


@given(st.lists(st.text(alphabet="0123456789X", min_size=18, max_size=18), max_size=20))
def test_vectorised_equals_scalar(values: list[str]) -> None:
    tokens = person_tokens(KEY, pd.Series(values, dtype=object))
    assert tokens.tolist() == [person_token(KEY, v) for v in values]


def test_key_from_settings_and_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEDUI_TOKEN_KEY", "00" * 32)
    monkeypatch.setenv("HEDUI_TOKEN_KEY_ID", "prod-2026-11")
    key = TokenKey.from_settings(load_settings())
    assert key.key_id == "prod-2026-11"
    assert key.secret == bytes(32)
    assert key.fingerprint != TokenKey("prod-2026-11", b"x").fingerprint
    assert repr(bytes(32)) not in repr(key)  # the secret never shows in logs


def test_collision_guard() -> None:
    canonical = pd.Series(["11010519491231002X", "440524188001010014", "11010519491231002X"])
    assert_no_collisions(canonical, person_tokens(KEY, canonical))  # repeats of one ID are fine
    forged = pd.Series([1, 1, 1], dtype="Int64")
    with pytest.raises(TokenCollision, match="rotate"):
        assert_no_collisions(canonical, forged)


def test_no_collisions_among_many_synthetic_ids() -> None:
    rng = np.random.default_rng(4)
    days = rng.integers(0, 30000, 50_000)
    seqs = rng.integers(0, 1000, 50_000)
    canonical = pd.Series(
        [
            ids.make_id("210112", dt.date(1930, 1, 1) + dt.timedelta(days=int(d)), int(s))
            for d, s in zip(days, seqs, strict=True)
        ]
    )
    assert_no_collisions(canonical, person_tokens(KEY, canonical))


def test_matcher_refuses_tokens_from_different_keys() -> None:
    canonical = pd.Series(["11010519491231002X"])
    records = stamp_key_id(pd.DataFrame({"person_token": person_tokens(KEY, canonical)}), KEY)
    members = stamp_key_id(
        pd.DataFrame(
            {"household_id": [1], "person_token": person_tokens(OTHER, canonical).astype("int64")}
        ),
        OTHER,
    )
    with pytest.raises(ValueError, match="different keys"):
        match_exact(records, members)
