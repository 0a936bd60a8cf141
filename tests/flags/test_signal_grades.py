"""supports_removal and the certain-evidence filter read categories as they would read rows."""

import pandas as pd
import pytest

from verification.flags.signals import _SIGNAL_ITEMS, _certain, supports_removal
from verification.matching import grade_supports_removal


def _row_wise(grades: pd.Series) -> list[bool]:
    return [grade_supports_removal(g) for g in grades.astype(object)]


def test_supports_removal_on_categories_as_on_rows():
    rows = ["certain", "probable", "certain", "none", "possible"]
    dtype = pd.CategoricalDtype(["certain", "probable", "possible", "none", "typo"])
    for grades in (pd.Series(rows), pd.Series(rows, dtype="category"),
                   pd.Series(rows, dtype=dtype)):
        # an unknown category no row uses is not a grade of any row: no error, as before
        assert supports_removal(grades).tolist() == _row_wise(grades)


@pytest.mark.parametrize("bad", ["typo", None])
def test_an_unknown_or_missing_grade_in_use_still_raises(bad):
    dtype = pd.CategoricalDtype(["certain", "probable", "typo"])
    grades = pd.Series(["certain", bad, "probable"], dtype=dtype)
    with pytest.raises(ValueError, match="unknown match grade"):
        supports_removal(grades)


def test_certain_keeps_signal_items_of_any_column_type():
    item = next(iter(sorted(_SIGNAL_ITEMS)))
    values = [item, None, "not_an_item", item]
    for dtype in ("string", object, "category"):
        evidence = pd.DataFrame({
            "item": pd.Series(values, dtype=dtype),
            "match_grade": pd.Series(["certain", "certain", "certain", "probable"],
                                     dtype="category"),
            "period_start": pd.to_datetime(["2026-01-01"] * 4),
        })
        got = _certain(evidence)
        assert got.index.tolist() == [0]
        assert got["item"].tolist() == [item]
