"""Household composition: exclusions per member, recorded, vectorised."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from verification.households import EXCLUSIONS, household_composition, household_sizes

AS_OF = dt.date(2026, 11, 28)


def _members() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "household_id": [1, 1, 1, 1, 2, 2, 2, 3],
            "relation": ["户主", "配偶", "子女", "父母", "户主", "配偶", "子女", "户主"],
            "in_prison": [False, True, False, False, False, False, None, False],
            "compulsory_rehabilitation": [False, False, True, False, False, False, False, True],
            "declared_missing": [False, False, False, True, False, False, False, False],
            "clergy": [False, False, False, False, True, True, False, False],
            "living_apart_since": pd.to_datetime(
                [None, None, None, None, "2023-11-28", "2023-11-29", None, None]
            ),
        }
    )


def test_each_exclusion_is_recorded_per_member() -> None:
    result = household_composition(_members(), AS_OF)
    assert result["exclusion"].tolist() == [
        "", "prison", "rehabilitation", "missing", "clergy_apart", "", "", "rehabilitation"
    ]
    assert result["counted"].tolist() == [True, False, False, False, False, True, True, False]


def test_clergy_exactly_three_years_apart_is_excluded_one_day_less_is_not() -> None:
    result = household_composition(_members(), AS_OF).set_index(["household_id", "relation"])
    assert result.loc[(2, "户主"), "exclusion"] == "clergy_apart"  # since 2023-11-28
    assert result.loc[(2, "配偶"), "exclusion"] == ""  # since 2023-11-29: not yet 3 years


def test_clergy_apart_needs_the_clergy_flag() -> None:
    members = pd.DataFrame({"clergy": [False], "living_apart_since": [pd.Timestamp("2000-01-01")]})
    assert household_composition(members, AS_OF)["counted"].tolist() == [True]


def test_declared_exclusion_from_batch_file_is_kept_and_priority_applies() -> None:
    members = pd.DataFrame(
        {
            "exclusion": ["missing", "", None, "clergy_apart"],
            "in_prison": [True, False, False, False],
        }
    )
    result = household_composition(members, AS_OF)
    assert result["exclusion"].tolist() == ["prison", "", "", "clergy_apart"]
    assert result["counted"].tolist() == [False, True, True, False]


def test_unknown_declared_exclusion_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown exclusion"):
        household_composition(pd.DataFrame({"exclusion": ["holiday"]}), AS_OF)


def test_no_status_columns_means_everyone_counts() -> None:
    result = household_composition(pd.DataFrame({"household_id": [1, 1]}), AS_OF)
    assert result["counted"].all()
    assert (result["exclusion"] == "").all()


def test_leap_day_as_of() -> None:
    members = pd.DataFrame({"clergy": [True], "living_apart_since": [pd.Timestamp("2021-02-28")]})
    assert household_composition(members, dt.date(2024, 2, 29))["exclusion"].tolist() == [
        "clergy_apart"
    ]


def test_household_sizes_count_only_counted_members() -> None:
    sizes = household_sizes(household_composition(_members(), AS_OF))
    assert sizes.to_dict() == {1: 1, 2: 2, 3: 0}


def test_vocabulary_matches_the_architecture_seam() -> None:
    assert EXCLUSIONS == ("prison", "rehabilitation", "missing", "clergy_apart")


def test_large_frame() -> None:
    small = _members()
    members = small.iloc[np.tile(np.arange(len(small)), 50_000)].reset_index(drop=True)
    result = household_composition(members, AS_OF)
    assert int((~result["counted"]).sum()) == 5 * 50_000
