"""Household composition: who counts as a 共同生活家庭成员 (审核确认办法 第七条).

The batch file lists the people the family declared; registry data (prison and rehabilitation
records, court declarations, religious-affairs registers) can say that some of them do not count.
Excluded by the national rule: people in prison, in compulsory drug rehabilitation (强制隔离戒毒),
people declared missing (宣告失踪), and clergy (宗教教职人员) who have lived apart from the family
for three years or more. Every member keeps a row: ``counted`` says whether they count and
``exclusion`` says why not, so the household size on a report can be explained.

Input columns (all optional; an absent column means no such status is known):
``exclusion`` (already recorded in the batch file: "" or one of ``EXCLUSIONS``),
``in_prison``, ``compulsory_rehabilitation``, ``declared_missing`` (bool), ``clergy`` (bool) with
``living_apart_since`` (date). When several apply, the first in ``EXCLUSIONS`` is recorded.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

EXCLUSIONS = ("prison", "rehabilitation", "missing", "clergy_apart")
CLERGY_YEARS_APART = 3
_FLAG_COLUMNS = {
    "prison": "in_prison",
    "rehabilitation": "compulsory_rehabilitation",
    "missing": "declared_missing",
}


def _flag(members: pd.DataFrame, column: str) -> np.ndarray:
    if column not in members.columns:
        return np.zeros(len(members), dtype=bool)
    return members[column].astype("boolean").fillna(False).to_numpy(dtype=bool)


def _clergy_apart(members: pd.DataFrame, as_of: dt.date, years: int) -> np.ndarray:
    """Clergy living apart since at least ``years`` years before ``as_of`` (anniversary counts;
    29 February falls back to 28 February)."""
    if "living_apart_since" not in members.columns:
        return np.zeros(len(members), dtype=bool)
    since = pd.to_datetime(members["living_apart_since"], errors="coerce")
    try:
        cutoff = as_of.replace(year=as_of.year - years)
    except ValueError:
        cutoff = as_of.replace(year=as_of.year - years, day=28)
    apart = (since <= pd.Timestamp(cutoff)).fillna(False).to_numpy(dtype=bool)
    return _flag(members, "clergy") & apart


def _declared(members: pd.DataFrame) -> np.ndarray:
    if "exclusion" not in members.columns:
        return np.full(len(members), "", dtype=object)
    declared = members["exclusion"].astype("string").fillna("").str.strip().to_numpy(dtype=object)
    unknown = sorted(set(declared) - {"", *EXCLUSIONS})
    if unknown:
        raise ValueError(f"unknown exclusion {unknown}; expected one of {EXCLUSIONS} or ''")
    return declared


def household_composition(
    members: pd.DataFrame, as_of: dt.date, clergy_years: int = CLERGY_YEARS_APART
) -> pd.DataFrame:
    """``members`` with ``counted`` (bool) and ``exclusion`` ("" or the first that applies)."""
    applies = {
        "prison": _flag(members, _FLAG_COLUMNS["prison"]),
        "rehabilitation": _flag(members, _FLAG_COLUMNS["rehabilitation"]),
        "missing": _flag(members, _FLAG_COLUMNS["missing"]),
        "clergy_apart": _clergy_apart(members, as_of, clergy_years),
    }
    declared = _declared(members)
    exclusion = np.full(len(members), "", dtype=object)
    for code in reversed(EXCLUSIONS):  # earlier codes overwrite later ones
        exclusion = np.where(applies[code] | (declared == code), code, exclusion)
    return members.assign(counted=exclusion == "", exclusion=exclusion)


def household_sizes(members: pd.DataFrame) -> pd.Series:
    """Counted members per household (households where nobody counts show 0)."""
    counted = members["counted"].astype(bool).astype(int)
    return counted.groupby(members["household_id"]).sum().rename("household_size")
