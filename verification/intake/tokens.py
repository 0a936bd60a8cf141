"""Keyed person tokens: the only form of a person's identity used for joins.

token = first 8 bytes of HMAC-SHA256(key, canonical ID), read as a signed big-endian int64. Raw
numbers never reach staging or match tables; without the key a token cannot be reversed by
enumerating the ~10^10 plausible ID numbers. 64 bits keep pandas joins on integer keys fast; with
a few million persons the chance of any collision is ~10^-7, and `assert_no_collisions` turns even
that into a loud error instead of a wrong join.

Tokens made with different keys never match each other, silently. So a key travels with its id
(``TokenKey``), ``person_tokens`` records that id in the Series' ``attrs`` (pandas keeps ``attrs``
through Parquet), and the matcher refuses to join frames stamped with different key ids.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from verification.config import Settings

KEY_ID_ATTR = "token_key_id"
_FINGERPRINT_LABEL = b"hedui person-token key fingerprint v1"


class TokenCollision(RuntimeError):
    pass


@dataclass(frozen=True)
class TokenKey:
    """The HMAC secret and the id under which it is stored and rotated."""

    key_id: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenKey:
        return cls(key_id=settings.token_key_id, secret=settings.token_key)

    @property
    def fingerprint(self) -> str:
        """A non-secret digest of the secret: tells whether two places hold the same key."""
        return hmac.new(self.secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def _secret(key: bytes | TokenKey) -> bytes:
    return key.secret if isinstance(key, TokenKey) else key


# HMAC's pads (RFC 2104), as byte translation tables: the key XOR 0x36 / 0x5c, byte by byte
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5c for byte in range(256))


def _first8_of_hmac(key: bytes | TokenKey) -> Callable[[str], bytes]:
    """The first 8 bytes of HMAC-SHA256(key, text) as a function of the text: the inner and
    outer hashes with the padded key absorbed once, copied per value (RFC 2104; copying two
    hash states costs half of copying an ``hmac`` object, which a million IDs notice)."""
    secret = _secret(key)
    block = hashlib.sha256().block_size
    if len(secret) > block:
        secret = hashlib.sha256(secret).digest()
    padded = secret.ljust(block, b"\0")
    inner_keyed = hashlib.sha256(padded.translate(_INNER_PAD))
    outer_keyed = hashlib.sha256(padded.translate(_OUTER_PAD))

    def first8(canonical: str) -> bytes:
        inner = inner_keyed.copy()
        inner.update(canonical.encode("ascii"))
        outer = outer_keyed.copy()
        outer.update(inner.digest())
        return outer.digest()[:8]

    return first8


def person_token(key: bytes | TokenKey, canonical_id: str) -> int:
    return int.from_bytes(_first8_of_hmac(key)(canonical_id), "big", signed=True)


def person_tokens(key: bytes | TokenKey, canonical_ids: pd.Series) -> pd.Series:
    """Tokens for a column of canonical IDs; missing IDs give <NA>.

    With a ``TokenKey`` the result carries ``attrs['token_key_id']``.
    """
    first8 = _first8_of_hmac(key)
    present = canonical_ids.notna().to_numpy()
    values = canonical_ids.to_numpy(dtype=object)

    digests = b"".join(first8(values[i]) for i in np.flatnonzero(present))
    out = np.zeros(len(values), dtype=np.int64)
    out[present] = np.frombuffer(digests, dtype=">i8")
    result = pd.Series(out, index=canonical_ids.index, dtype="Int64")
    result[~present] = pd.NA
    if isinstance(key, TokenKey):
        result.attrs[KEY_ID_ATTR] = key.key_id
    return result


def stamp_key_id(frame: pd.DataFrame, key: TokenKey) -> pd.DataFrame:
    """Record on a frame which key its ``person_token`` column was made with."""
    frame.attrs[KEY_ID_ATTR] = key.key_id
    return frame


def assert_no_collisions(canonical_ids: pd.Series, tokens: pd.Series) -> None:
    pairs = pd.DataFrame({"id": canonical_ids, "token": tokens}).dropna().drop_duplicates()
    if pairs["token"].duplicated().any():
        raise TokenCollision(
            "two different ID numbers share a 64-bit token; rotate HEDUI_TOKEN_KEY and rebuild"
        )


def near_miss_tokens(key: bytes | TokenKey, near: pd.Series) -> pd.Series:
    """Per row, the person tokens of ``identifiers.near_miss_ids`` as one text of sorted
    decimal tokens separated by spaces (<NA> where there is none): the keyed tokens of the
    numbers a mistyped ID may have meant, comparable with the roster's ``person_token`` and
    revealing no more than a token does."""
    values = near.to_numpy(dtype=object)
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    # most rows have none (a valid ID): only the others are looked at
    flat = pd.Series([number for at in np.flatnonzero(lengths) for number in values[at]],
                     dtype=object)
    tokens = person_tokens(key, flat).to_numpy(dtype=np.int64) if len(flat) else np.array([],
                                                                                      np.int64)
    owner = np.repeat(np.arange(len(near)), lengths)
    order = np.lexsort((tokens, owner))
    owners, starts = np.unique(owner[order], return_index=True)
    groups = np.split(tokens[order], starts[1:])
    out = pd.Series(pd.NA, index=near.index, dtype="string")
    if len(owners):
        out.iloc[owners] = [" ".join(map(str, g.tolist())) for g in groups]
    return out
