"""Keyed person tokens: the only form of a person's identity used for joins.

token = first 8 bytes of HMAC-SHA256(key, canonical ID), read as a signed big-endian int64. Raw
numbers never reach staging or match tables; without the key a token cannot be reversed by
enumerating the ~10^10 plausible ID numbers. 64 bits keep pandas joins on integer keys fast; with
a few million persons the chance of any collision is ~10^-7, and `assert_no_collisions` turns even
that into a loud error instead of a wrong join.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd


class TokenCollision(RuntimeError):
    pass


def person_token(key: bytes, canonical_id: str) -> int:
    digest = hmac.new(key, canonical_id.encode("ascii"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def person_tokens(key: bytes, canonical_ids: pd.Series) -> pd.Series:
    """Tokens for a column of canonical IDs; missing IDs give <NA>."""
    out = np.zeros(len(canonical_ids), dtype=np.int64)
    present = canonical_ids.notna().to_numpy()
    values = canonical_ids.to_numpy()
    for i in np.flatnonzero(present):
        out[i] = person_token(key, values[i])
    result = pd.Series(out, index=canonical_ids.index, dtype="Int64")
    result[~present] = pd.NA
    return result


def assert_no_collisions(canonical_ids: pd.Series, tokens: pd.Series) -> None:
    pairs = pd.DataFrame({"id": canonical_ids, "token": tokens}).dropna().drop_duplicates()
    if pairs["token"].duplicated().any():
        raise TokenCollision(
            "two different ID numbers share a 64-bit token; rotate HEDUI_TOKEN_KEY and rebuild"
        )
