"""Realistic synthetic Chinese names and the errors real feeds make in them.

Frequencies: the synthetic generator (``verification.synthetic.generator``) draws names uniformly
from its
character lists. Real surnames are far from uniform — 王, 李 and 张 alone are about a fifth of the
population — and that skew is exactly what makes name matching hard (many unrelated people share
a name), so this module weights the generator's lists: approximate shares of the 20 commonest
surnames from published census summaries, a Zipf tail for the rest, a Zipf law over given-name
characters. Used by the matching benchmark and the tests.

Corruptions, each as clerks and old systems make them: a homophone typed through a pinyin input
method (晓 → 小), a wrong character, the two characters of a given name swapped, traditional
characters, a dropped character; birth dates with one wrong digit or month and day swapped.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np
from pypinyin import Style, lazy_pinyin

from verification.matching._trad_simp import TRAD_TO_SIMP
from verification.synthetic.generator import GIVEN, SURNAMES

# approximate population shares (%) of the commonest surnames, in the generator's order
_TOP_SURNAME_SHARES = (7.1, 7.0, 6.7, 5.4, 4.5, 3.1, 2.6, 2.3, 2.1, 2.0,
                       1.7, 1.5, 1.5, 1.4, 1.3, 1.2, 1.2, 1.1, 1.1, 0.9)
NAME_CORRUPTIONS = ("homophone", "typo", "swap", "traditional", "drop")
_SIMP_TO_TRAD = {simp: trad for trad, simp in TRAD_TO_SIMP.items()}


def surname_weights() -> tuple[list[str], np.ndarray]:
    surnames = list(dict.fromkeys(SURNAMES))
    top = np.array(_TOP_SURNAME_SHARES[: len(surnames)])
    rest = len(surnames) - len(top)
    tail = 1.0 / np.arange(len(top) + 1, len(top) + rest + 1)  # Zipf from rank 21 on
    tail = tail / tail.sum() * 30.0  # ranks 21-100 hold roughly 30% of the population
    weights = np.concatenate([top, tail])
    return surnames, weights / weights.sum()


def given_weights() -> tuple[list[str], np.ndarray]:
    chars = list(dict.fromkeys(GIVEN))
    weights = 1.0 / np.arange(1, len(chars) + 1) ** 0.9
    return chars, weights / weights.sum()


def random_names(rng: np.random.Generator, n: int) -> list[str]:
    surnames, s_weights = surname_weights()
    chars, c_weights = given_weights()
    family = rng.choice(surnames, size=n, p=s_weights)
    first = rng.choice(chars, size=n, p=c_weights)
    second = rng.choice(chars, size=n, p=c_weights)
    single = rng.random(n) < 0.3  # one-character given names: common among older people
    return [f + a + ("" if s else b) for f, a, b, s in zip(family, first, second, single,
                                                            strict=True)]


def _toneless(char: str) -> str:
    return lazy_pinyin(char, style=Style.NORMAL)[0]


@cache
def _common_characters() -> tuple[str, ...]:
    """GB 2312 level-1 characters (the 3,755 commonest, ordered by pinyin)."""
    out = []
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            try:
                out.append(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return tuple(out)


@cache
def _homophones() -> dict[str, tuple[str, ...]]:
    by_sound: dict[str, list[str]] = {}
    for char in _common_characters():
        by_sound.setdefault(_toneless(char), []).append(char)
    return {sound: tuple(chars) for sound, chars in by_sound.items()}


def homophone_of(char: str, rng: np.random.Generator) -> str:
    """Another common character read the same (ignoring tone), or the character itself."""
    choices = [c for c in _homophones().get(_toneless(char), ()) if c != char]
    return str(rng.choice(choices)) if choices else char


def corrupt_name(name: str, kind: str, rng: np.random.Generator) -> str:
    """``name`` with one error of ``kind`` in the given name (surnames are rarely mistyped)."""
    given = list(name[1:])
    at = int(rng.integers(0, len(given)))
    if kind == "homophone":
        given[at] = homophone_of(given[at], rng)
    elif kind == "typo":
        given[at] = str(rng.choice(_common_characters()))
    elif kind == "swap" and len(given) >= 2:
        given[0], given[1] = given[1], given[0]
    elif kind == "traditional":
        return "".join(_SIMP_TO_TRAD.get(c, c) for c in name)
    elif kind == "drop" and len(given) >= 2:
        del given[at]
    elif kind not in NAME_CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; one of {NAME_CORRUPTIONS}")
    return name[0] + "".join(given)


def corrupt_birth_date(born: dt.date, rng: np.random.Generator) -> dt.date:
    """One wrong digit in month or day, or month and day swapped; always a real date."""
    if rng.random() < 0.3 and born.day <= 12 and born.day != born.month:
        return born.replace(month=born.day, day=born.month)
    for _ in range(20):
        text = f"{born:%Y%m%d}"
        at = int(rng.integers(4, 8))
        candidate = text[:at] + str(int(rng.integers(0, 10))) + text[at + 1 :]
        try:
            changed = dt.date(int(candidate[:4]), int(candidate[4:6]), int(candidate[6:]))
        except ValueError:
            continue
        if changed != born:
            return changed
    return born + dt.timedelta(days=1)
