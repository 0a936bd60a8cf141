"""Name keys: what the fallback matcher compares instead of names.

A raw name exists only in memory, inside the step that builds these keys. The keys are strings
of *keyed codes*: each unit (a character, or a toneless pinyin syllable) becomes one code point
in Unicode's supplementary private-use area, chosen by HMAC-SHA256 under the token key. Equal
units give equal codes, so exact agreement, edit distance and swaps can be measured on the codes
with ordinary string tools (rapidfuzz); without the key a code says nothing about its unit.

Columns built from a name:

* ``name_chars`` — one code per character of the normalised name (NFKC, separators such as the
  middle dot of minority names dropped, common traditional characters → simplified);
* ``name_sounds`` — one code per toneless pinyin syllable (pypinyin): homophones, and any
  traditional/simplified pair, agree here;
* ``name_fuzzy`` — the same with the confusions of pinyin input and regional speech folded
  (zh/z, ch/c, sh/s, n/l, -ng/-n): 刘/牛, 陈/岑 agree here;
* ``surname_sound`` — the code of the first syllable, for blocking.

Honest limits: codes are per unit, so someone holding many keyed strings could guess frequent
characters (王, 李, 张) by frequency analysis. The keys are pseudonyms that need the key and
staff access to the match tables, not anonymity. 65,534 code points make an accidental clash of
two different units rare (≈1 in 65,534 per pair) and a clash only ever adds agreement for that
unit, never a certain match.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd
import pypinyin
from pypinyin import Style, lazy_pinyin

from verification.intake.tokens import TokenKey
from verification.matching._trad_simp import TRAD_TO_SIMP, TRANSLATION

NAME_KEY_COLUMNS = ("name_chars", "name_sounds", "name_fuzzy", "surname_sound")
# Stored name keys are only comparable when built by the same rules: pypinyin's readings and the
# traditional table are part of them. Keep this beside stored keys; rebuild when it changes.
_TABLE_DIGEST = hashlib.sha256("".join(a + b for a, b in sorted(TRAD_TO_SIMP.items())).encode())
NAME_KEY_VERSION = f"v1;pypinyin={pypinyin.__version__};trad={_TABLE_DIGEST.hexdigest()[:12]}"
_SEPARATORS = re.compile(r"[\s·•・‧.﹒\-_'\"`‘’“”,，。]")
_PRIVATE_USE_START = 0xF0000
_PRIVATE_USE_SIZE = 65534
_FUZZY = ((re.compile(r"^zh"), "z"), (re.compile(r"^ch"), "c"), (re.compile(r"^sh"), "s"),
          (re.compile(r"^l"), "n"), (re.compile(r"ng$"), "n"))


def normalise_name(name: str) -> str:
    """NFKC, separators and spaces dropped, common traditional characters simplified, upper-case
    Latin (for names written partly in letters)."""
    text = unicodedata.normalize("NFKC", name)
    return _SEPARATORS.sub("", text).translate(TRANSLATION).upper()


@lru_cache(maxsize=50_000)
def _syllable(char: str) -> str:
    return lazy_pinyin(char, style=Style.NORMAL, v_to_u=False)[0].lower()


def name_syllables(normalised: str) -> list[str]:
    """Toneless pinyin, one syllable per character, each character read on its own (its
    commonest reading): a name is not a phrase, and both sides must read a character alike."""
    return [_syllable(char) for char in normalised]


def fuzzy_syllable(syllable: str) -> str:
    for pattern, replacement in _FUZZY:
        syllable = pattern.sub(replacement, syllable)
    return syllable


_fuzzy = lru_cache(maxsize=5_000)(fuzzy_syllable)  # ~400 syllables exist


class _Coder:
    """Keyed codes of units (characters, syllables), memoised per call: the same few thousand
    units recur across a roster. Nothing outlives the call (no secret in a global cache)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.codes: dict[tuple[str, str], str] = {}

    def __call__(self, kind: str, units: list[str]) -> str:
        return "".join(self._code(kind, unit) for unit in units)

    def _code(self, kind: str, unit: str) -> str:
        code = self.codes.get((kind, unit))
        if code is None:
            digest = hmac.new(self.secret, f"{kind}:{unit}".encode(), hashlib.sha256).digest()
            value = int.from_bytes(digest[:4], "big") % _PRIVATE_USE_SIZE
            code = self.codes[(kind, unit)] = chr(_PRIVATE_USE_START + value)
        return code


def name_key(name: str, key: TokenKey | bytes) -> dict[str, str]:
    """The keyed forms of one name (see the module docstring)."""
    return dict(_name_key(name, _Coder(_secret(key))))


def _secret(key: TokenKey | bytes) -> bytes:
    return key.secret if isinstance(key, TokenKey) else key


def _name_key(name: str, coder: _Coder) -> tuple[tuple[str, str], ...]:
    normalised = normalise_name(name)
    sounds = name_syllables(normalised)
    return (
        ("name_chars", coder("char", list(normalised))),
        ("name_sounds", coder("sound", sounds)),
        ("name_fuzzy", coder("sound", [_fuzzy(s) for s in sounds])),
        ("surname_sound", coder("sound", sounds[:1])),
    )


def _distinct_keys(names: pd.Series, key: TokenKey | bytes
                   ) -> tuple[np.ndarray, dict[str, list[str | None]]]:
    """(codes, keyed columns of the distinct names): row i's keys are entry ``codes[i]`` of each
    column; a missing or blank name is coded to the last entry, None.

    Each character is read and keyed once: a name's syllables are its characters' own readings
    (``name_syllables``), so its keyed forms are its characters' codes joined."""
    codes, distinct = pd.factorize(names, use_na_sentinel=True)
    coder = _Coder(_secret(key))
    normalised = [normalise_name(n) if n.strip() else None for n in (str(n) for n in distinct)]
    chars = {c for n in normalised if n for c in n}
    sound = {c: _syllable(c) for c in chars}
    by_char = {"name_chars": {c: coder("char", [c]) for c in chars},
               "name_sounds": {c: coder("sound", [sound[c]]) for c in chars},
               "name_fuzzy": {c: coder("sound", [_fuzzy(sound[c])]) for c in chars}}
    columns: dict[str, list[str | None]] = {
        column: [None if n is None else "".join(map(table.__getitem__, n)) for n in normalised]
        for column, table in by_char.items()}
    sounds = by_char["name_sounds"]
    columns["surname_sound"] = [None if n is None else sounds[n[0]] if n else ""
                                for n in normalised]
    for values in columns.values():
        values.append(None)
    return np.where(codes < 0, len(normalised), codes), columns


def name_keys(names: pd.Series, key: TokenKey | bytes) -> pd.DataFrame:
    """Keyed name columns for a column of names (each distinct name is keyed once); blank or
    missing names have no keys (NaN)."""
    codes, columns = _distinct_keys(names, key)
    return pd.DataFrame({column: np.array([np.nan if v is None else v for v in values],
                                          dtype=object)[codes]
                         for column, values in columns.items()}, index=names.index)


def name_key_text(names: pd.Series, key: TokenKey | bytes) -> pd.DataFrame:
    """``name_keys`` as Arrow-backed text (<NA> for no key), taken in Arrow: what intake stages,
    without a Python string per row."""
    import pyarrow as pa

    codes, columns = _distinct_keys(names, key)
    at = pa.array(codes)
    return pd.DataFrame({column: pd.arrays.ArrowStringArray(
        pa.array(values, pa.large_string()).take(at)) for column, values in columns.items()},
        index=names.index)
