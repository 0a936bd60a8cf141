"""What the disability register (残联, feed ``disability``) says about members, over the roster.

The roster carries the disability grade and type a household declared; a certificate of the
disability register matched with grade ``certain`` is the authority and replaces them. The
grade and type then decide labour capacity for 特困 (特困人员认定办法 第五条,
``tekun.disability_max_grade``) and the disability exception of the business test. A member
without a certificate keeps what the roster says: a register that does not list someone is not
evidence that they have no disability. A member whose latest record in the register is a
cancelled certificate (item ``disability_cancelled``) keeps the roster's grade and type but is
marked ``certificate_cancelled``: 特困人员认定办法 第十条 wants a 残疾人证, and a cancelled one
says neither that the disability is gone (it may have been re-assessed or replaced) nor that it
stands — what rests on the grade is left to a caseworker (audit 9).
"""

from __future__ import annotations

from datetime import date
from functools import cache

import numpy as np
import pandas as pd

from verification import codes
from verification.assessment.evidence import dated_by

# the register's cancelled certificate (codes.yaml)
CANCELLED = "disability_cancelled"


@cache
def disability_types() -> dict[str, str]:
    """Evidence item (``disability_limb``, …) → the disability type members carry (``limb``)."""
    table = codes.vocabulary()["items"]
    return {item: table[item]["disability_type"] for item in codes.items("disability")}


def members_with_disability_register(members: pd.DataFrame, evidence: pd.DataFrame,
                                     as_of: date | None = None) -> pd.DataFrame:
    """``members`` with ``disability_grade`` and ``disability_type`` taken from each member's
    latest certain certificate (by issue date) issued on or before ``as_of`` (a certificate
    issued later says nothing of the as-of date, as a car or a home registered later does
    not); the caller's frame is never changed."""
    certificates = _certain_certificates(evidence)
    if not certificates.empty and as_of is not None:
        certificates = certificates[dated_by(certificates["period_start"].to_numpy(), as_of)]
    if certificates.empty:
        return members
    # a cancellation sorts after a certificate of the same day: the register cancelled it
    cancelled = certificates["item"].eq(CANCELLED).to_numpy()
    latest = (certificates.assign(cancelled=cancelled)
              .sort_values(["period_start", "cancelled"], kind="stable")
              .drop_duplicates(["household_id", "person_token"], keep="last"))
    key = pd.MultiIndex.from_frame(latest[["household_id", "person_token"]].astype("int64"))
    at = key.get_indexer(pd.MultiIndex.from_frame(
        members[["household_id", "person_token"]].astype("int64")))
    found = at >= 0
    if not found.any():
        return members
    out = members.copy()
    voided = np.zeros(len(members), dtype=bool)
    voided[found] = latest["cancelled"].to_numpy()[at[found]]
    out["certificate_cancelled"] = voided
    listed = found & ~voided
    if not listed.any():
        return out
    grades = latest["amount"].to_numpy()[at[listed]].round().astype(np.int64)
    types = latest["item"].map(disability_types()).to_numpy()[at[listed]]
    out["disability_grade"] = out["disability_grade"].astype("float64")
    out.loc[listed, "disability_grade"] = grades
    out["disability_grade"] = out["disability_grade"].fillna(0).astype(np.int64)
    out["disability_type"] = out["disability_type"].astype(object)
    out.loc[listed, "disability_type"] = types
    return out


def _certain_certificates(evidence: pd.DataFrame) -> pd.DataFrame:
    if evidence is None or not len(evidence) or "match_grade" not in evidence:
        return pd.DataFrame()
    kept = evidence["item"].isin([*disability_types(), CANCELLED]).to_numpy(dtype=bool)
    if not kept.any():  # the usual case: one pass over the item column, nothing copied
        return pd.DataFrame()
    kept &= (evidence["match_grade"] == "certain").to_numpy(dtype=bool)
    kept &= evidence["household_id"].notna().to_numpy()
    kept &= evidence["person_token"].notna().to_numpy()
    columns = ["household_id", "person_token", "item", "amount", "period_start"]
    rows = evidence.loc[kept, columns]
    return rows.assign(item=rows["item"].astype(str),
                       period_start=pd.to_datetime(rows["period_start"]))
