"""The one-edit comparison level decided on code points (verification/matching/_compare.py,
``_within_one_edit``) gives what rapidfuzz's optimal string alignment distance ≤ 1 gives, on
random values with astral and NUL characters, missing values and a column of nothing but
missing values, for a frame of the run's records and for a frame of other records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rapidfuzz.distance import OSA

from verification.matching._codes import KEYED_ROW, RightValues
from verification.matching._compare import FrameValues, PairColumns, _within_one_edit

ALPHABET = list("ab\U000fe001\U0010fffd\x00")


def _word(rng: np.random.Generator) -> str | None:
    if rng.random() < 0.15:
        return None
    return "".join(rng.choice(ALPHABET, rng.integers(1, 7)))


@pytest.mark.parametrize("trial", range(8))
def test_one_edit_equals_rapidfuzz_osa_within_one(trial):
    rng = np.random.default_rng(trial)

    def frame(rows: int) -> pd.DataFrame:
        return pd.DataFrame({"c": [_word(rng) for _ in range(rows)],
                             "d": [_word(rng) for _ in range(rows)]})

    right, records = frame(300), frame(200)
    if trial == 5:
        right["d"] = None
    values = RightValues(records.assign(**{KEYED_ROW: np.arange(len(records))}))
    left = (records.assign(**{KEYED_ROW: np.arange(len(records))}) if trial % 2 == 0
            else frame(200))
    li, ri = rng.integers(0, len(left), 5000), rng.integers(0, len(right), 5000)
    columns = PairColumns(left, right, li, ri, FrameValues(left, right, values))
    lc, rc = columns.codes("c")
    rows = np.flatnonzero((lc >= 0) & (rc >= 0))
    assert len(rows) > 1000
    for column in ("c", "d"):
        got = _within_one_edit(columns, column, None, rows)
        want = np.array([OSA.distance(left[column].iloc[a] or "", right[column].iloc[b] or "")
                         <= 1 for a, b in zip(li[rows], ri[rows], strict=True)])
        np.testing.assert_array_equal(got, want)
