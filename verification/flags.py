"""Flags: what an officer must do about each household, from its assessment and current status.

A flag is a signal for a caseworker, not a verdict. Each one carries reason codes (labels in
codes.yaml), the evidence behind them, a due date and the jurisdiction that must act. Safety
rules, enforced here and by ``check_invariants``:
- a household whose data is missing or stale, or whose evidence is only probably matched, or in
  which a member has died, gets REVIEW — never ADD, REMOVE or REJECT;
- REMOVE needs at least one failing rule backed by certain-match evidence;
- every flag has at least one reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from verification import codes
from verification.matching import grade_supports_removal

FLAG_COLUMNS = ["household_id", "kind", "street_code", "community_code", "due_date",
                "evidence_digest"]
# Tests of one category only (特困, 刚性支出): failing them does not explain a household's
# ineligibility when the general tests decide it, so flags do not cite them.
CATEGORY_TEST_PREFIXES = ("TEKUN_", "RIGID_", "INCOME_OVER_DISPOSABLE")
REVIEW_REASONS = ("SOURCE_UNAVAILABLE", "NO_COUNTED_MEMBERS", "MEMBER_DECEASED", "MATCH_UNCERTAIN")
_OUTCOME_BY_STATUS = {  # status → (flag when eligible, flag when not eligible)
    "recipient": ("KEEP", "REMOVE"),
    "applicant": ("ADD", "REJECT"),
    "monitored": ("ADD", "KEEP"),
}


class FlagInvariantError(AssertionError):
    pass


@dataclass(frozen=True)
class FlagFrames:
    flags: pd.DataFrame  # FLAG_COLUMNS
    reasons: pd.DataFrame  # household_id, code, value, limit, parameter, reference
    evidence: pd.DataFrame  # household_id + evidence columns + match_grade


def decide_flags(households: pd.DataFrame, results: pd.DataFrame, reasons: pd.DataFrame,
                 evidence: pd.DataFrame, as_of: dt.date) -> FlagFrames:
    """households indexed by household_id; results/reasons from ``assess``; evidence matched."""
    hh = households[["status", "street_code", "community_code"]].join(results["decision"])
    review = _review_reasons(hh, reasons, evidence)
    eligible = hh["decision"].eq("eligible").to_numpy()
    outcome = hh["status"].map(lambda s: _OUTCOME_BY_STATUS[s]).to_numpy()
    kind = np.where(eligible, [o[0] for o in outcome], [o[1] for o in outcome])
    needs_review = hh.index.isin(review["household_id"])
    kind = np.where(needs_review, "REVIEW", kind)
    flags = pd.DataFrame({"household_id": hh.index.to_numpy(), "kind": kind,
                          "street_code": hh["street_code"].to_numpy(),
                          "community_code": hh["community_code"].to_numpy()})
    flag_reasons = _flag_reasons(flags, hh["decision"], reasons, review)
    flag_evidence = _flag_evidence(flag_reasons, evidence)
    flags["due_date"] = _due_dates(flags["kind"], as_of)
    flags["evidence_digest"] = _digests(flags, flag_reasons)
    frames = FlagFrames(flags[FLAG_COLUMNS], flag_reasons.drop(columns=["passed"]), flag_evidence)
    check_invariants(frames, results, evidence)
    return frames


def _review_reasons(hh: pd.DataFrame, reasons: pd.DataFrame,
                    evidence: pd.DataFrame) -> pd.DataFrame:
    """Reasons that force REVIEW: data gaps, uncertain matches, a death in the household."""
    found = reasons[reasons["code"].isin(REVIEW_REASONS)]
    found = found[(found["code"] != "MATCH_UNCERTAIN") | found["passed"]]
    deaths = evidence[(evidence["item"] == "death")
                      & evidence["match_grade"].map(grade_supports_removal)]
    death_rows = pd.DataFrame({
        "household_id": deaths["household_id"].to_numpy(), "code": "MEMBER_DECEASED",
        "passed": False, "value": 1.0, "limit": 0.0, "parameter": "dynamic.death_recheck",
        "reference": "关于进一步做好最低生活保障等社会救助兜底工作的通知（2022）一(三)：死亡后3个月内复核",
        "evidence_refs": _refs_of(deaths),
    })
    undetermined = hh.index[hh["decision"].eq("undetermined")]
    found = found[found["household_id"].isin(hh.index)]
    if len(death_rows):
        found = pd.concat([found, death_rows], ignore_index=True) if len(found) else death_rows
    missing_reason = undetermined.difference(found["household_id"])
    if len(missing_reason):
        raise FlagInvariantError(f"{len(missing_reason)} undetermined households carry no reason")
    return found


def _flag_reasons(flags: pd.DataFrame, decision: pd.Series, reasons: pd.DataFrame,
                  review: pd.DataFrame) -> pd.DataFrame:
    kinds = flags.set_index("household_id")["kind"]
    code = reasons["code"].astype(str)
    general = ~code.isin(REVIEW_REASONS) & ~code.str.startswith(CATEGORY_TEST_PREFIXES)
    ordinary = reasons[general].copy()
    ordinary["kind"] = ordinary["household_id"].map(kinds)
    not_eligible = ordinary["household_id"].map(decision).eq("not_eligible")
    failing = ~ordinary["passed"].astype(bool)
    met = ordinary["passed"].astype(bool) & ordinary["code"].astype(str).str.startswith("ELIGIBLE")
    # A household that is not eligible shows the tests it failed; an eligible one the test it met.
    show = ordinary["kind"].ne("REVIEW") & np.where(not_eligible, failing, met)
    chosen = ordinary[show]
    under_review = review.assign(kind="REVIEW")
    under_review = under_review[under_review["household_id"].map(kinds).eq("REVIEW")]
    out = pd.concat([f for f in (chosen, under_review) if len(f)], ignore_index=True)
    out["code"] = out["code"].astype(str)
    out = out.drop_duplicates(["household_id", "code", "evidence_refs"])
    return out[["household_id", "code", "passed", "value", "limit", "parameter", "reference",
                "evidence_refs"]].reset_index(drop=True)


def _refs_of(evidence: pd.DataFrame) -> pd.Series:
    return (evidence["source_kind"].astype(str) + ":" + evidence["feed_id"].astype(str) + ":"
            + evidence["record_ref"].astype(str)).to_numpy()


def _flag_evidence(flag_reasons: pd.DataFrame, evidence: pd.DataFrame) -> pd.DataFrame:
    """The evidence rows the reasons cite (kind:feed:record), one row per household and record."""
    cited = flag_reasons[["household_id", "evidence_refs"]].dropna()
    cited = cited.assign(ref=cited["evidence_refs"].astype(str).str.split(";")).explode("ref")
    cited = cited[cited["ref"].str.count(":") >= 2][["household_id", "ref"]].drop_duplicates()
    keyed = evidence.assign(ref=_refs_of(evidence))
    joined = cited.merge(keyed.drop(columns=["household_id"]), on="ref", how="inner")
    return joined.drop(columns=["ref"]).drop_duplicates(["household_id", "source_kind", "feed_id",
                                                         "record_ref", "item"])


def _due_dates(kind: pd.Series, as_of: dt.date) -> pd.Series:
    days = kind.map(lambda k: codes.flags()[k]["due_days"])
    due = pd.Timestamp(as_of) + pd.to_timedelta(days, unit="D")
    return due.where(days > 0).dt.date


def _digests(flags: pd.DataFrame, flag_reasons: pd.DataFrame) -> list[str]:
    """Same flag, same reasons, same evidence → same digest (so a resolved flag is not raised
    again on the same evidence, and is raised again on new evidence)."""
    keyed = flag_reasons.assign(key=flag_reasons["code"] + "@" + flag_reasons["evidence_refs"]
                                .fillna("").astype(str))
    keys = keyed.groupby("household_id")["key"].agg(lambda s: "|".join(sorted(s)))
    text = flags["kind"] + "#" + flags["household_id"].map(keys).fillna("")
    return [hashlib.sha256(t.encode()).hexdigest() for t in text]


def check_invariants(frames: FlagFrames, results: pd.DataFrame, evidence: pd.DataFrame) -> None:
    flags = frames.flags
    without = set(flags["household_id"]) - set(frames.reasons["household_id"])
    if without:
        raise FlagInvariantError(f"{len(without)} flags have no reason, e.g. household "
                                 f"{sorted(without)[0]}")
    decisions = results["decision"].reindex(flags["household_id"]).to_numpy()
    acting = flags["kind"].isin(["ADD", "REMOVE", "REJECT"]).to_numpy()
    if (acting & (decisions == "undetermined")).any():
        raise FlagInvariantError("ADD/REMOVE/REJECT raised on missing or stale data")
    removes = flags.loc[flags["kind"].eq("REMOVE"), "household_id"]
    certain = frames.evidence[frames.evidence["match_grade"].map(grade_supports_removal)]
    unsupported = set(removes) - set(certain["household_id"])
    if unsupported:
        raise FlagInvariantError(f"{len(unsupported)} REMOVE flags lack certain-match evidence")
