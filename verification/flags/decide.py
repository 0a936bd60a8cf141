"""Flags: what an officer must do about each household, from its assessment and current status.

A flag is a signal for a caseworker, not a verdict. Each one carries reason codes (labels in
codes.yaml), the evidence behind them, a due date (codes.yaml ``due_days`` per kind; a death
also sets a re-check date from the policy) and the jurisdiction that must act. Kinds:

    ADD / REJECT     applicant (or monitored household) eligible / not eligible
    KEEP             nothing to change
    ADJUST           recipient still eligible, benefit differs from the current one by more than
                     dynamic.adjust_threshold
    GRADUAL_EXIT     recipient whose income rose above the standard through new work (and who
                     fails no other rule): keeps receiving for dynamic.gradual_exit_months
    REMOVE           recipient no longer eligible
    REVIEW           data missing or stale, records not certainly matched that would change
                     the outcome, sources in conflict (income after a recorded death), or —
                     where a region sets dynamic.near_boundary_margin above 0 — the deciding
                     figure within that margin of its limit

A certain death removes the member from the household from the date of death (the assessment
recomputes size, income and benefit): the only member died → REMOVE (REJECT for an applicant);
others remain → ADJUST or KEEP, due no later than dynamic.recheck.after_death_months after the
death. A household meeting another category than its own carries ALSO_ELIGIBLE_* on its flag.

Safety rules, enforced here and by ``check_invariants``:
- a household whose data is missing or stale, or whose evidence not certainly matched would
  change its outcome, gets REVIEW — never ADD, REMOVE, REJECT, ADJUST or GRADUAL_EXIT;
- REMOVE and GRADUAL_EXIT need certain-match evidence from a source that was fresh;
- every flag has at least one reason, and every reason that counts against a household cites
  evidence.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from verification import codes
from verification.assessment import citations as cited
from verification.assessment.citations import NO_CITATION, CitationBuilder, Citations
from verification.assessment.policy import Policy
from verification.flags.signals import (
    CITED_REASON_COLUMNS,
    RECIPIENT_REVIEW_SIGNALS,
    REVIEW_SIGNALS,
    SIGNAL_CODES,
    cited_signals,
    death_recheck_due,
    evidence_ref_array,
    signals_if_certain,
    supports_removal,
)
from verification.intake.textcheck import arrow_strings
from verification.sorting import difference, distinct

FLAG_COLUMNS = ["household_id", "kind", "street_code", "community_code", "due_date",
                "evidence_digest"]
# Tests of one category only (特困, 刚性支出): failing them does not explain a household's
# ineligibility when the general tests decide it, so flags do not cite them.
CATEGORY_TEST_PREFIXES = ("TEKUN_", "RIGID_", "INCOME_OVER_DISPOSABLE")
REVIEW_REASONS = ("SOURCE_UNAVAILABLE", "NO_COUNTED_MEMBERS", "MATCH_UNCERTAIN",
                  "SOURCES_CONFLICT", "NEAR_BOUNDARY", "STOP_WITHOUT_RECORDS",
                  "TEKUN_DISABILITY_UNCLEAR", "DISABILITY_CERTIFICATE_CANCELLED")
# 主动发现: another category the household meets; shown on its flag whatever the kind.
OTHER_CATEGORY_PREFIX = "ALSO_ELIGIBLE_"
INCOME_RULES = ("INCOME_OVER_STANDARD", "INCOME_OVER_1_5X")
# Rules whose measured value can sit close to its limit: code → the rules that must all pass
# for this one to decide the outcome.
BOUNDARY_RULES = ("INCOME_OVER_STANDARD", "INCOME_OVER_1_5X", "TEKUN_INCOME_OVER_STANDARD",
                  "FINANCIAL_ASSETS_OVER_LIMIT")
# the income line that decides a household of each category (its outcome when eligible, the
# category it was assessed for when not): 1,010 for an 边缘 family is near the 低保 standard
# but far from its own line; a 特困 person's income is the 特困 test's (audit 6)
_DECIDING_INCOME = {"edge": "INCOME_OVER_1_5X", "tekun": "TEKUN_INCOME_OVER_STANDARD"}
_INCOME_LINES = ("INCOME_OVER_STANDARD", "INCOME_OVER_1_5X", "TEKUN_INCOME_OVER_STANDARD")
_ACTING = ("ADD", "REMOVE", "REJECT", "ADJUST", "GRADUAL_EXIT")
_NEEDS_CERTAIN = ("REMOVE", "GRADUAL_EXIT")
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
    reasons: pd.DataFrame  # household_id, code, value, limit, parameter, reference, evidence_refs
    evidence: pd.DataFrame  # household_id + evidence columns + match_grade


def decide_flags(households: pd.DataFrame, results: pd.DataFrame, reasons: pd.DataFrame,
                 evidence: pd.DataFrame, as_of: dt.date, policy: Policy,
                 raised_on: dt.date | None = None,
                 citations: Citations | None = None,
                 lodgers: pd.MultiIndex | None = None) -> FlagFrames:
    """households indexed by household_id (status, street_code, community_code,
    current_benefit); results/reasons from ``assess``; evidence matched (the frame assessed);
    ``policy`` in force; ``citations`` the assessment's, which the reasons' ``cites`` number
    (without them, as for reasons built by hand, the rows are found from ``evidence_refs``);
    ``lodgers`` (``signals.lodgers_of`` the members) the people whose death is no member's.

    Due dates count from ``raised_on``, the day the flags are raised (default ``as_of``): a
    review of a past as-of date does not hand officers flags that are overdue on arrival."""
    hh = households[["status", "street_code", "community_code", "current_benefit"]].join(
        results[["decision", "benefit"]])
    hh["category"] = (households["category"].astype(str) if "category" in households
                      else "none")
    hh["outcome_category"] = (results["category"].astype(str) if "category" in results
                              else "none")
    if citations is None or "cites" not in reasons:
        reasons, citations = cite_refs(reasons, evidence)
    citations.check_frame(evidence)
    signals, signal_citations = cited_signals(evidence, policy, as_of, lodgers)
    citations, (_, first) = cited.concat([citations, signal_citations])
    signals = signals.assign(cites=cited.shifted(signals["cites"], first))
    general = _general(reasons)
    failing = _failing(reasons, general)  # read by several steps: computed once
    reasons = _uncertain_signals(hh, reasons, failing, signals,
                                 signals_if_certain(evidence, policy, as_of, lodgers,
                                                    among=_roster_not_declared(hh)))
    review = _review_reasons(hh, reasons, failing, signals, policy)
    kind = _kinds(hh, failing, signals, review, policy)
    flags = pd.DataFrame({"household_id": hh.index.to_numpy(), "kind": kind,
                          "street_code": hh["street_code"].to_numpy(),
                          "community_code": hh["community_code"].to_numpy()})
    flag_reasons = _flag_reasons(flags, hh, reasons, general, review, signals, policy)
    flag_evidence = _flag_evidence(flag_reasons, evidence, citations)
    unsupported = _unsupported_stops(flags, flag_evidence, results)
    if len(unsupported):
        # A stop no certain partner record supports (a 特困 test that the caseload alone
        # decides: an age, a member moved in): an officer checks it, the review goes on.
        flags = flags.assign(kind=np.where(flags["household_id"].isin(unsupported), "REVIEW",
                                           flags["kind"]))
        chosen = _flag_reasons_of(unsupported, flags, hh, reasons, general,
                                  _unevidenced_stops(reasons, unsupported), signals, policy)
        flag_reasons = _replaced(flag_reasons, unsupported, chosen)
        flag_evidence = _replaced(flag_evidence, unsupported,
                                  _flag_evidence(chosen, evidence, citations))
    flags["due_date"] = _due_dates(flags, raised_on or as_of,
                                   death_recheck_due(evidence, policy, as_of, lodgers),
                                   results.get("recheck_due"))
    flags["evidence_digest"] = _digests(flags, flag_reasons)
    frames = FlagFrames(flags[FLAG_COLUMNS], flag_reasons.drop(columns=["passed", "cites"]),
                        flag_evidence)
    check_invariants(frames, results, evidence)
    return frames


# ---- which kind ------------------------------------------------------------------------------
def code_mask(code: pd.Series, test: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """``test(code.astype(str))`` as a boolean array. Codes from ``assess`` are categorical (a
    few dozen labels for about a million rows), so the test runs on the labels, not the rows."""
    if isinstance(code.dtype, pd.CategoricalDtype):
        # code -1 (missing) reads the appended "nan", as astype(str) would write it
        labels = pd.Series([*code.cat.categories.astype(str), "nan"], dtype=object)
        return test(labels).to_numpy(dtype=bool)[code.cat.codes.to_numpy()]
    return test(code.astype(str)).to_numpy(dtype=bool)


def _general(reasons: pd.DataFrame) -> np.ndarray:
    """Mask of the rules every category shares (not data gaps, not one category's own tests)."""
    return code_mask(reasons["code"], lambda code: ~code.isin(REVIEW_REASONS)
                     & ~code.str.startswith(CATEGORY_TEST_PREFIXES))


def _failing(reasons: pd.DataFrame, general: np.ndarray) -> pd.DataFrame:
    """household_id and code (as text) of the shared rules each household fails."""
    failing = general & ~reasons["passed"].astype(bool).to_numpy() & ~code_mask(
        reasons["code"], lambda code: code.str.startswith(("ELIGIBLE", "NOT_ELIGIBLE")))
    return pd.DataFrame({"household_id": reasons["household_id"].to_numpy()[failing],
                         "code": reasons["code"].to_numpy()[failing].astype(str)})


def _kinds(hh: pd.DataFrame, failing: pd.DataFrame, signals: pd.DataFrame,
           review: pd.DataFrame, policy: Policy) -> np.ndarray:
    eligible = hh["decision"].eq("eligible").to_numpy()
    status = hh["status"].astype(str)
    if not status.isin(_OUTCOME_BY_STATUS).all():  # as the lookup per row raised before
        raise KeyError(sorted(set(status) - set(_OUTCOME_BY_STATUS))[0])
    kind = np.where(eligible, status.map({s: o[0] for s, o in _OUTCOME_BY_STATUS.items()}),
                    status.map({s: o[1] for s, o in _OUTCOME_BY_STATUS.items()}))
    recipient = hh["status"].eq("recipient").to_numpy()
    threshold = float(policy.require("dynamic.adjust_threshold"))
    changed = (hh["benefit"] - hh["current_benefit"].astype(float)).abs().gt(threshold)
    kind = np.where(recipient & eligible & changed.to_numpy(), "ADJUST", kind)
    # 渐退 is for 低保 families (审核确认办法 第三十三条); a 特困 or edge recipient's support ends
    # by its own rules (特困人员认定办法 第二十四条)
    dibao = hh["category"].eq("dibao").to_numpy()
    kind = np.where(recipient & dibao & hh.index.isin(_lifted_by_work(failing, signals)),
                    "GRADUAL_EXIT", kind)
    return np.where(hh.index.isin(review["household_id"]), "REVIEW", kind)


def _lifted_by_work(failing: pd.DataFrame, signals: pd.DataFrame) -> pd.Index:
    """Households over the income standard, failing no other rule, with new employment."""
    over_income = set(failing.loc[failing["code"] == "INCOME_OVER_STANDARD", "household_id"])
    other = set(failing.loc[~failing["code"].isin(INCOME_RULES), "household_id"])
    working = set(signals.loc[signals["code"] == "NEW_EMPLOYMENT", "household_id"])
    return pd.Index(sorted((over_income - other) & working))


def _roster_not_declared(hh: pd.DataFrame) -> pd.Index:
    """Households whose roster no application has just declared: recipients, and monitored
    households (主动发现 proposes them from data: a 70-year-old who married in September is
    not a lone elder to propose for 特困 unchecked; audit 9). An applicant declared it."""
    return hh.index[hh["status"].isin(["recipient", "monitored"])]


def _uncertain_signals(hh: pd.DataFrame, reasons: pd.DataFrame, failing: pd.DataFrame,
                       signals: pd.DataFrame, would: pd.DataFrame) -> pd.DataFrame:
    """``reasons`` with MATCH_UNCERTAIN passed (the household goes to REVIEW) where records
    not certainly matched would, as the household's, raise a signal that changes its flag
    (``would``: ``signals_if_certain``): a recipient's changed roster or unknown new income
    (RECIPIENT_REVIEW_SIGNALS), or a 低保 recipient's new job that would turn a stop into 渐退.
    The assessment marks the records that would change the outcome itself; this adds what
    only the signals read."""
    if not len(would):
        return reasons
    known = pd.MultiIndex.from_frame(signals[["household_id", "code"]].astype({"code": str}))
    new = would[~pd.MultiIndex.from_frame(would[["household_id", "code"]].astype(
        {"code": str})).isin(known)]
    roster = new.loc[new["code"].isin(RECIPIENT_REVIEW_SIGNALS)
                     & new["household_id"].isin(_roster_not_declared(hh)), "household_id"]
    dibao = hh.index[hh["status"].eq("recipient") & hh["category"].eq("dibao")]
    lifted = _lifted_by_work(failing, pd.concat([signals, new], ignore_index=True)).difference(
        _lifted_by_work(failing, signals)).intersection(dibao)
    changing = pd.Index(roster.unique()).union(lifted)
    if not len(changing):
        return reasons
    mark = code_mask(reasons["code"], lambda code: code == "MATCH_UNCERTAIN") & reasons[
        "household_id"].isin(changing).to_numpy()
    reasons = reasons.copy(deep=False)
    reasons["passed"] = reasons["passed"].to_numpy(dtype=bool) | mark
    return reasons


def _review_reasons(hh: pd.DataFrame, reasons: pd.DataFrame, failing: pd.DataFrame,
                    signals: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Reasons that force REVIEW: data gaps, uncertain matches, a death, sources in conflict,
    a recipient's changed roster or unknown new income (signals.RECIPIENT_REVIEW_SIGNALS), a
    deciding figure close to its limit."""
    found = reasons[reasons["code"].isin(REVIEW_REASONS)]
    found = found[(found["code"] != "MATCH_UNCERTAIN") | found["passed"]]
    found = found[found["household_id"].isin(hh.index)]
    parts = [found, signals[signals["code"].isin(REVIEW_SIGNALS)],
             signals[signals["code"].isin(RECIPIENT_REVIEW_SIGNALS)
                     & signals["household_id"].isin(_roster_not_declared(hh))],
             _near_boundary(hh, reasons, failing, policy)]
    out = pd.concat([p.astype({"code": str}) for p in parts if len(p)] or [found],
                    ignore_index=True)
    undetermined = hh.index[hh["decision"].eq("undetermined")]
    missing_reason = undetermined.difference(out["household_id"])
    if len(missing_reason):
        raise FlagInvariantError(f"{len(missing_reason)} undetermined households carry no reason")
    return out


def _near_boundary(hh: pd.DataFrame, reasons: pd.DataFrame, failing: pd.DataFrame,
                   policy: Policy) -> pd.DataFrame:
    """A decided household whose deciding figure is within the margin of its limit: a small
    error in one record could turn the outcome, so a caseworker looks first. The margin is a
    regional choice (the national rules set none); 0 turns the check off. Each NEAR_BOUNDARY
    row comes with the deciding rule's own row (its code, value and limit) beside it."""
    margin = float(policy.require("dynamic.near_boundary_margin"))
    if margin <= 0:
        return reasons.iloc[:0]
    decided = hh.index[hh["decision"].isin(["eligible", "not_eligible"])]
    rows = reasons[reasons["code"].isin(BOUNDARY_RULES) & reasons["household_id"].isin(decided)]
    category = np.where(hh["decision"].eq("eligible"), hh["outcome_category"], hh["category"])
    deciding = pd.Series(category, index=hh.index).map(_DECIDING_INCOME).fillna(
        "INCOME_OVER_STANDARD")
    code = rows["code"].astype(str)
    income = code.isin(_INCOME_LINES).to_numpy()
    rows = rows[~income | (code == rows["household_id"].map(deciding)).to_numpy()]
    limit = rows["limit"].astype(float)
    close = rows[(limit > 0) & ((rows["value"].astype(float) - limit).abs() <= margin * limit)]
    for rule in BOUNDARY_RULES:  # the figure decides only if every other rule passes
        others = failing[~failing["code"].isin(
            (*INCOME_RULES, rule) if rule in _INCOME_LINES else (rule,))]
        close = close[(close["code"].astype(str) != rule)
                      | ~close["household_id"].isin(others["household_id"])]
    near = close.assign(code="NEAR_BOUNDARY", passed=False,
                        parameter="dynamic.near_boundary_margin",
                        reference=policy.reference("dynamic.near_boundary_margin"))
    return pd.concat([near, close.astype({"code": str})], ignore_index=True)


# ---- which reasons ---------------------------------------------------------------------------
def _flag_reasons(flags: pd.DataFrame, hh: pd.DataFrame, reasons: pd.DataFrame,
                  general: np.ndarray, review: pd.DataFrame, signals: pd.DataFrame,
                  policy: Policy) -> pd.DataFrame:
    kinds = flags.set_index("household_id")["kind"]
    ordinary = reasons[general]
    kind = ordinary["household_id"].map(kinds)
    not_eligible = ordinary["household_id"].map(hh["decision"]).eq("not_eligible")
    passed = ordinary["passed"].astype(bool)
    met = passed & code_mask(ordinary["code"], lambda code: code.str.startswith("ELIGIBLE"))
    # A household that is not eligible shows the tests it failed; an eligible one the test it
    # met; a gradual exit both the income it now has and the category it may still meet. One
    # under REVIEW shows, beside why, the tests its certain records fail (the business, the
    # deposits an officer visiting must see; audit 10) — never a category it meets.
    decision = ordinary["household_id"].map(hh["decision"])
    show = np.where(kind.eq("REVIEW"), ~passed & decision.ne("eligible"),
                    np.where(not_eligible | kind.eq("GRADUAL_EXIT"), ~passed, met))
    chosen = ordinary[show & _income_line_of_category(ordinary, hh)]
    under_review = review[review["household_id"].map(kinds).eq("REVIEW")]
    informative = signals[~signals["code"].isin(REVIEW_SIGNALS)]
    other_category = ordinary[code_mask(ordinary["code"],
                                        lambda code: code.str.startswith(OTHER_CATEGORY_PREFIX))]
    # Income the rules exclude or deduct is shown with its records on every flag of the
    # household: received and set aside, never silently absent (审核确认办法 第十三条).
    income_set_aside = ordinary[code_mask(ordinary["code"],
                                          lambda code: code.isin(INCOME_SET_ASIDE))]
    parts = [chosen, under_review, informative, other_category, income_set_aside,
             _own_category_tests(reasons, hh, kinds),
             _benefit_changes(kinds, hh, reasons, policy), _exit_periods(kinds, signals, policy)]
    filled = [p.astype({"code": str}) for p in parts if len(p)]
    if not filled:  # no households in this shard
        return pd.DataFrame(columns=CITED_REASON_COLUMNS)
    out = pd.concat(filled, ignore_index=True)
    return out[~_repeated(out)][CITED_REASON_COLUMNS].reset_index(drop=True)


def _income_line_of_category(reasons: pd.DataFrame, hh: pd.DataFrame) -> np.ndarray:
    """Per reason row: not a 低保 income line (INCOME_RULES) of a household assessed for a
    category that line does not decide. An 边缘 family is refused over 1.5 × the standard, not
    over the standard (审核确认办法 第八条: 边缘 means not meeting 低保); 特困 has its own income
    test (第六条: 高龄津贴 not counted) and 刚性支出 the disposable-income test — a 低保 line on
    their flags would give a reason that is not theirs (audit 10)."""
    line = code_mask(reasons["code"], lambda code: code.isin(INCOME_RULES))
    if not line.any():
        return np.ones(len(reasons), dtype=bool)
    category = reasons["household_id"].map(hh["category"]).fillna("none").to_numpy()
    keep = ~line | ~np.isin(category, list(_OWN_INCOME_LINES))
    for name, lines in _OWN_INCOME_LINES.items():
        keep |= line & (category == name) & code_mask(
            reasons["code"], lambda code, lines=lines: code.isin(lines))
    return keep


# the 低保 income lines a category's refusal may cite (none: its own test says it)
_OWN_INCOME_LINES = {"dibao": INCOME_RULES, "edge": ("INCOME_OVER_1_5X",),
                     "tekun": (), "rigid": ()}


# Informative rows of the income test: excluded items and deductions (passed, never against).
INCOME_SET_ASIDE = ("INCOME_EXCLUDED", "DEDUCTION_APPLIED", "TRANSFER_SPENDING_DEDUCTED")


# The tests only one category has: shown where the household applied for (or receives) that
# category and is not eligible, as they are then why.
_OWN_TESTS = {"tekun": ("TEKUN_",), "rigid": ("RIGID_", "INCOME_OVER_DISPOSABLE")}


def _own_category_tests(reasons: pd.DataFrame, hh: pd.DataFrame,
                        kinds: pd.Series) -> pd.DataFrame:
    applied = reasons["household_id"].map(hh["category"]).fillna("none").to_numpy()
    failing_here = (~reasons["passed"].astype(bool)
                    & reasons["household_id"].map(hh["decision"]).eq("not_eligible")).to_numpy()
    show = np.zeros(len(reasons), dtype=bool)
    for category, prefixes in _OWN_TESTS.items():
        own = code_mask(reasons["code"], lambda code, p=prefixes: code.str.startswith(p))
        show |= own & (applied == category)
    return reasons[show & failing_here]


def _repeated(reasons: pd.DataFrame) -> np.ndarray:
    """``reasons.duplicated(["household_id", "code", "evidence_refs"])``. Only rows that share
    household and code with another can repeat, so the long ref strings are hashed for those
    few rows only."""
    repeated = np.zeros(len(reasons), dtype=bool)
    same_code = np.flatnonzero(reasons.duplicated(["household_id", "code"], keep=False))
    repeated[same_code] = reasons.iloc[same_code].duplicated(
        ["household_id", "code", "evidence_refs"]).to_numpy()
    return repeated


def _benefit_changes(kinds: pd.Series, hh: pd.DataFrame, reasons: pd.DataFrame,
                     policy: Policy) -> pd.DataFrame:
    """ADJUST: the new benefit (value) against the current one (limit), citing the income."""
    adjusted = kinds.index[kinds.eq("ADJUST").to_numpy()]
    if not len(adjusted):
        return pd.DataFrame(columns=CITED_REASON_COLUMNS)
    is_income = code_mask(reasons["code"], lambda code: code == "INCOME_OVER_STANDARD")
    income = reasons[is_income].set_index("household_id")[["evidence_refs", "cites"]]
    income = income.reindex(adjusted)
    rows = hh.loc[adjusted]
    return pd.DataFrame({
        "household_id": adjusted.to_numpy(), "code": "BENEFIT_CHANGED", "passed": False,
        "value": rows["benefit"].astype(float).to_numpy(),
        "limit": rows["current_benefit"].astype(float).to_numpy(),
        "parameter": "dynamic.adjust_threshold",
        "reference": policy.reference("dynamic.adjust_threshold"),
        "evidence_refs": income["evidence_refs"].fillna("").to_numpy(),
        "cites": income["cites"].fillna(NO_CITATION).astype(np.int64).to_numpy(),
    })


def _exit_periods(kinds: pd.Series, signals: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """GRADUAL_EXIT: how many months the benefit continues, citing the new employment."""
    leaving = kinds.index[kinds.eq("GRADUAL_EXIT").to_numpy()]
    work = signals[(signals["code"] == "NEW_EMPLOYMENT") & signals["household_id"].isin(leaving)]
    months = float(policy.require("dynamic.gradual_exit_months"))
    return work.assign(code="GRADUAL_EXIT_PERIOD", value=months, limit=months,
                       parameter="dynamic.gradual_exit_months",
                       reference=policy.reference("dynamic.gradual_exit_months"))


def _flag_evidence(flag_reasons: pd.DataFrame, evidence: pd.DataFrame,
                   citations: Citations) -> pd.DataFrame:
    """The evidence rows the reasons cite, one row per household and record.

    The same rows, in the same order, as an inner merge of the cited (household_id, ref) pairs
    with the evidence on both keys (each cited pair once, in order of first citation, with its
    evidence rows in evidence order) followed by ``drop_duplicates`` on household_id,
    source_kind, feed_id, record_ref and item — a reason citing one row of a record brings the
    record's other items too. Joined on integers: the cited rows come from ``cites``, and each
    evidence row of the cited households gets one integer per (household, record).
    """
    owner, rows = citations.flat(flag_reasons["cites"].to_numpy())
    cited_households = flag_reasons["household_id"].to_numpy()[owner]
    ev_households = evidence["household_id"].to_numpy()
    if (ev_households[rows] != cited_households).any():
        raise FlagInvariantError("a reason cites evidence of another household")
    keyed = np.flatnonzero(np.isin(ev_households, distinct(cited_households)))
    records, unambiguous = _record_codes(evidence, keyed)
    # by household too: a record matched to two households is cited by each for itself
    household_codes, households = pd.factorize(ev_households[keyed])
    width = int(records.max()) + 1 if len(records) else 1
    if width * len(households) >= 2**62:  # numbered densely only where the product would not fit
        records = np.unique(records, return_inverse=True)[1].reshape(-1)
        width = int(records.max()) + 1
    # one dense number per (household, record) among the keyed rows
    pairs = pd.factorize(household_codes.astype(np.int64) * width + records)[0]
    at = np.full(len(evidence), -1, dtype=np.int64)
    at[keyed] = np.arange(len(keyed))
    first, matches, counts = _cited_runs(pairs[at[rows]], pairs)
    picked = keyed[matches]
    keep = ~_repeated_records(evidence, picked, counts, unambiguous)
    taken = picked[keep]
    owners = np.repeat(cited_households[first], counts)[keep]
    columns = {"household_id": owners if owners.dtype != evidence["household_id"].dtype
               else evidence["household_id"].array.take(taken)}  # the merge took the key from
    columns.update({c: evidence[c].array.take(taken)  # the left; each column taken once
                    for c in evidence.columns if c != "household_id"})
    # merge numbering; the columns just taken are the frame's own (a copy would double them)
    return pd.DataFrame(columns, index=pd.Index(np.flatnonzero(keep)), copy=False)


def _record_codes(evidence: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, bool]:
    """One integer per distinct ``kind:feed:record`` among the evidence rows at ``rows``, and
    whether the ref spells kind, feed and record unambiguously there (then the integers come
    from the three columns, with no ref text made; otherwise from the text itself, so that
    equal text is the same record as a join on the text would have it)."""
    every = len(rows) == len(evidence)  # most often: the columns as they are, not a copy

    def column(name: str) -> pd.Series:
        return evidence[name] if every else evidence[name].take(rows)

    kinds, kind_names = pd.factorize(column("source_kind"), use_na_sentinel=False)
    feeds = column("feed_id")
    record = arrow_strings(column("record_ref"))
    unambiguous = (pd.api.types.is_integer_dtype(feeds.dtype)
                   and all(isinstance(k, str) and ":" not in k for k in kind_names)
                   and not (record.null_count and pc.any(pc.equal(record, "")).as_py()))
    if not unambiguous:
        text = evidence_ref_array(evidence[["source_kind", "feed_id", "record_ref"]].iloc[rows])
        return _codes(text), False
    feed_codes, feed_names = pd.factorize(feeds.to_numpy())
    source = kinds.astype(np.int64) * max(len(feed_names), 1) + feed_codes
    return source * (len(record) + 1) + _codes(record), True


def _codes(text: pa.Array) -> np.ndarray:
    """Dictionary codes of a string array (missing values share one code)."""
    encoded = pc.dictionary_encode(text, null_encoding="encode").indices
    return encoded.to_numpy(zero_copy_only=False).astype(np.int64)


def _repeated_records(evidence: pd.DataFrame, rows: np.ndarray, counts: np.ndarray,
                      unambiguous: bool) -> np.ndarray:
    """``evidence.iloc[rows].duplicated`` on household, kind, feed, record and item, for rows in
    runs of ``counts`` that share a cited (household, ref). Rows of different runs differ in
    household or in the ref made from kind, feed and record, so only rows within a run can
    repeat; and where the ref spells kind, feed and record unambiguously, rows of one run share
    them, so they repeat on item alone."""
    run = np.repeat(np.arange(len(counts)), counts)
    shared = np.flatnonzero(counts[run] > 1)  # rows whose run has others
    repeated = np.zeros(len(rows), dtype=bool)
    if not len(shared):
        return repeated
    keys = ["source_kind", "feed_id", "record_ref", "item"]  # only these: taking every column
    if not unambiguous:  # taking every column was a second's work
        repeated[shared] = evidence[keys].iloc[rows[shared]].assign(run=run[shared]).duplicated(
            ["run", *keys]).to_numpy()
        return repeated
    items = pd.factorize(evidence["item"].take(rows[shared]))[0] + 1  # missing → 0
    _, first = np.unique(run[shared] * (int(items.max()) + 1) + items, return_index=True)
    repeated[shared] = True
    repeated[shared[first]] = False
    return repeated


def _cited_runs(cited: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """For dense pair numbers ``cited`` (in citation order) and ``pairs`` (one per row): where
    each pair is first cited (in that order), the rows of each such pair in turn (in row
    order), and how many rows each has — the right-hand rows of an inner join that keeps the
    left order. Arrays indexed by pair number instead of sorting the keys."""
    positions = np.arange(len(cited), dtype=np.int64)
    first_at = np.full(int(pairs.max()) + 1 if len(pairs) else 0, -1, dtype=np.int64)
    first_at[cited[::-1]] = positions[::-1]  # the last write wins: the first citation
    is_first = np.zeros(len(cited), dtype=bool)
    is_first[first_at[first_at >= 0]] = True
    first = np.flatnonzero(is_first)
    rank = np.full(len(first_at), -1, dtype=np.int64)  # a pair's place among those cited
    wanted = first_at >= 0
    rank[wanted] = (np.cumsum(is_first) - 1)[first_at[wanted]]
    row_rank = rank[pairs]
    chosen = np.flatnonzero(row_rank >= 0)
    order = chosen[np.argsort(row_rank[chosen], kind="stable")]
    return first, order, np.bincount(row_rank[chosen], minlength=len(first))


def cite_refs(reasons: pd.DataFrame, evidence: pd.DataFrame) -> tuple[pd.DataFrame, Citations]:
    """``reasons`` with ``cites``, and the lists they number, found from the ``evidence_refs``
    text alone (reasons built by hand): each ref cites one evidence row of the reason's
    household with that text (the flag evidence then takes every row of its record); a ref
    with no such row cites nothing, as an inner join on the text would have it."""
    owner, refs = _cited_refs(reasons)
    cited_households = reasons["household_id"].to_numpy()[owner]
    households = distinct(cited_households)
    ev_households = evidence["household_id"].to_numpy()
    keyed = np.flatnonzero(np.isin(ev_households, households))
    ev_refs = evidence_ref_array(evidence[["source_kind", "feed_id", "record_ref"]].iloc[keyed])
    both = _codes(pa.concat_arrays([refs.cast(pa.large_string()),
                                    ev_refs.cast(pa.large_string())]))
    width = int(both.max()) + 1 if len(both) else 1
    cited_key = np.searchsorted(households, cited_households) * width + both[:len(refs)]
    ev_key = np.searchsorted(households, ev_households[keyed]) * width + both[len(refs):]
    order = np.argsort(ev_key, kind="stable")
    at = np.searchsorted(ev_key[order], cited_key)
    found = at < len(order)
    found[found] = ev_key[order[at[found]]] == cited_key[found]
    rows, owner = keyed[order[at[found]]], owner[found]
    cites = np.full(len(reasons), NO_CITATION, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if len(owner) else owner
    builder = CitationBuilder(evidence)
    cites[owner[starts]] = builder.add(rows, starts)
    return reasons.assign(cites=cites), builder.build()


def _cited_refs(flag_reasons: pd.DataFrame) -> tuple[np.ndarray, pa.Array]:
    """The reason (position) and ref of every record a reason cites, split in Arrow; refs
    without a record (``kind::missing``) are not records and are left out."""
    refs = pa.array(flag_reasons["evidence_refs"].astype(object), type=pa.string(),
                    from_pandas=True)
    lists = pc.split_pattern(pc.fill_null(refs, ""), ";")
    owners = pc.list_parent_indices(lists).to_numpy()
    flat = pc.list_flatten(lists)
    is_record = pc.invert(pc.match_substring_regex(flat, r"^[^:]*::|^$"))
    return owners[is_record.to_numpy(zero_copy_only=False)], pc.filter(flat, is_record)


# ---- when, and whether it is the same flag as before -----------------------------------------
def _due_dates(flags: pd.DataFrame, raised_on: dt.date, death_due: pd.Series,
               periodic: pd.Series | None = None) -> pd.Series:
    """Due per kind (codes.yaml) from the day raised; a household with a death no later than
    its re-check date, unless that date had passed before the flag was raised (then the kind's
    own period, from the day raised); a KEEP or ADJUST after a death is due on that date; any
    other KEEP on its next periodic re-check (``periodic``: household id → ISO date, the
    assessment's ``recheck_due``), which asks nothing of the officer before then."""
    days = flags["kind"].map({k: v["due_days"] for k, v in codes.flags().items()})
    if days.isna().any():  # a kind codes.yaml does not define: as the lookup per row raised
        raise KeyError(str(flags["kind"][days.isna()].iloc[0]))
    due = (pd.Timestamp(raised_on) + pd.to_timedelta(days, unit="D")).where(days > 0)
    after_death = pd.to_datetime(flags["household_id"].map(death_due))
    recheck = after_death.where(after_death >= pd.Timestamp(raised_on))
    due = due.where(recheck.isna() | (due <= recheck), recheck)
    # others remain after a death: the flag is the re-check the rules set (2022通知 一（三））;
    # one already overdue on the day raised is due within REVIEW's own period from that day
    overdue = pd.Timestamp(raised_on) + pd.Timedelta(days=codes.flags()["REVIEW"]["due_days"])
    rechecked = flags["kind"].isin(["KEEP", "ADJUST"]) & after_death.notna()
    due = due.where(~rechecked, recheck.fillna(overdue))
    if periodic is not None:
        kept = flags["kind"].eq("KEEP") & after_death.isna()
        due = due.where(~kept, pd.to_datetime(flags["household_id"].map(periodic)))
    return due.dt.date.astype(object).where(due.notna(), None)


def _stable_refs(refs: pd.Series) -> np.ndarray:
    """``kind:feed:record;…`` without feed ids: the same partner record delivered again in a
    newer feed is the same evidence. ``re.sub(r":\\d*:", ":")`` per ref: in Arrow (RE2) for
    ASCII refs, where ``\\d`` is [0-9] for both; in Python for the rest, whose ``\\d`` also
    matches other scripts' digits."""
    text = refs.fillna("").astype(str).to_numpy(dtype=object)
    array = pa.array(text, type=pa.string())
    out = pc.replace_substring_regex(array, r":[0-9]*:", ":").to_numpy(zero_copy_only=False)
    out = out.astype(object)
    other = ~pc.string_is_ascii(array).to_numpy(zero_copy_only=False)
    if other.any():
        out[other] = pd.Series(text[other]).str.replace(r":\d*:", ":", regex=True).to_numpy()
    return out


def _digests(flags: pd.DataFrame, flag_reasons: pd.DataFrame) -> list[str]:
    """Same flag, same reasons, same records → same digest (so a resolved flag is not raised
    again on the same evidence, and is raised again on new evidence). A changed benefit amount
    is new evidence too. The income set aside (excluded items, deductions) explains a flag
    but decides nothing: its monthly records do not make the flag a new one."""
    flag_reasons = flag_reasons[~flag_reasons["code"].isin(INCOME_SET_ASIDE).to_numpy()]
    changed = (flag_reasons["code"] == "BENEFIT_CHANGED").to_numpy(dtype=bool)
    amount = np.full(len(flag_reasons), "", dtype=object)
    amount[changed] = "=" + flag_reasons["value"][changed].astype(float).round(2).astype(str)
    key = (flag_reasons["code"].to_numpy(dtype=object) + amount + "@"
           + _stable_refs(flag_reasons["evidence_refs"]))
    joined = _joined_per_household(flag_reasons["household_id"].to_numpy(), key)
    text = flags["kind"] + "#" + flags["household_id"].map(joined).fillna("")
    return [hashlib.sha256(t.encode()).hexdigest() for t in text]


def _joined_per_household(households: np.ndarray, keys: np.ndarray) -> pd.Series:
    """household_id → its keys in order, joined by "|". Sorted in Arrow: its byte order of
    UTF-8 is the code point order Python sorts strings in."""
    if not len(households):
        return pd.Series(dtype=object)
    table = pa.table({"household_id": households, "key": pa.array(keys, type=pa.large_string())})
    order = pc.sort_indices(table, sort_keys=[("household_id", "ascending"),
                                              ("key", "ascending")]).to_numpy()
    ids = households[order]
    first = np.r_[True, ids[1:] != ids[:-1]]
    starts = np.flatnonzero(first)
    runs = pa.ListArray.from_arrays(np.r_[starts, len(ids)].astype(np.int32),
                                    table["key"].combine_chunks().take(order))
    joined = pc.binary_join(runs, pa.scalar("|", pa.large_string()))
    return pd.Series(joined.to_numpy(zero_copy_only=False), index=ids[starts])


# ---- invariants ------------------------------------------------------------------------------
def check_invariants(frames: FlagFrames, results: pd.DataFrame, evidence: pd.DataFrame) -> None:
    """Raise FlagInvariantError if a flag could harm a family without evidence."""
    flags = frames.flags
    without = set(flags["household_id"]) - set(frames.reasons["household_id"])
    if without:
        raise FlagInvariantError(f"{len(without)} flags have no reason, e.g. household "
                                 f"{sorted(without)[0]}")
    uncited = frames.reasons[frames.reasons["evidence_refs"].fillna("").astype(str).eq("")
                             & frames.reasons["code"].isin(_MUST_CITE)]
    if len(uncited):
        raise FlagInvariantError(f"{len(uncited)} reasons against a household cite no evidence, "
                                 f"e.g. {uncited['code'].iloc[0]}")
    decisions = results["decision"].reindex(flags["household_id"]).to_numpy()
    acting = flags["kind"].isin(_ACTING).to_numpy()
    if (acting & (decisions == "undetermined")).any():
        raise FlagInvariantError("ADD/REMOVE/REJECT/ADJUST/GRADUAL_EXIT raised on missing or "
                                 "stale data")
    _check_certain_and_fresh(frames, results)


# Reasons that count against a household, or report a change: each must cite its records.
_MUST_CITE = ("INCOME_OVER_STANDARD", "INCOME_OVER_1_5X", "FINANCIAL_ASSETS_OVER_LIMIT",
              "VEHICLE_OWNED", "PROPERTY_COUNT_EXCEEDED", "COMMERCIAL_PROPERTY",
              "BUSINESS_REGISTERED", "PUBLIC_PAYROLL", "SOURCE_UNAVAILABLE", "MATCH_UNCERTAIN",
              "GRADUAL_EXIT_PERIOD", *SIGNAL_CODES)


def _check_certain_and_fresh(frames: FlagFrames, results: pd.DataFrame) -> None:
    """REMOVE and GRADUAL_EXIT rest on certain matches from a source that was not stale."""
    unsupported = _unsupported_stops(frames.flags, frames.evidence, results)
    if len(unsupported):
        raise FlagInvariantError(f"{len(unsupported)} REMOVE/GRADUAL_EXIT flags lack "
                                 "certain-match evidence from a fresh source")


def _unsupported_stops(flags: pd.DataFrame, ev: pd.DataFrame,
                       results: pd.DataFrame) -> np.ndarray:
    """Households whose REMOVE or GRADUAL_EXIT cites no certain match from a fresh source."""
    stopping = flags.loc[flags["kind"].isin(_NEEDS_CERTAIN), "household_id"]
    # only these households' rows need the check, and only three of their columns
    rows = np.flatnonzero(ev["household_id"].isin(stopping).to_numpy())
    households = ev["household_id"].to_numpy()[rows]
    certain = supports_removal(ev["match_grade"].iloc[rows])
    # only where some household lacks a source (a review with every feed fresh has none)
    if ("missing_sources" in results and certain.any()
            and results["missing_sources"].fillna("").astype(bool).any()):
        kept = rows[certain]
        missing = pd.Series(households[certain]).map(results["missing_sources"])
        certain[certain] = ~_listed(ev["source_kind"].iloc[kept].reset_index(drop=True),
                                    missing.fillna("").astype(str))
    return difference(stopping.to_numpy(), households[certain])


def _flag_reasons_of(households: np.ndarray, flags: pd.DataFrame, hh: pd.DataFrame,
                     reasons: pd.DataFrame, general: np.ndarray, review: pd.DataFrame,
                     signals: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """``_flag_reasons`` of ``households`` only (a few flags chosen again, not the shard's)."""
    theirs = reasons["household_id"].isin(households).to_numpy()
    return _flag_reasons(flags[flags["household_id"].isin(households).to_numpy()],
                         hh[hh.index.isin(households)], reasons[theirs], general[theirs],
                         review, signals[signals["household_id"].isin(households).to_numpy()],
                         policy)


def _replaced(frame: pd.DataFrame, households: np.ndarray, rows: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the rows of ``households`` replaced by ``rows``."""
    return pd.concat([frame[~frame["household_id"].isin(households).to_numpy()], rows],
                     ignore_index=True)


# the review reason of a stop that no partner record supports (codes.yaml)
UNEVIDENCED_STOP = "STOP_WITHOUT_RECORDS"


def _unevidenced_stops(reasons: pd.DataFrame, households: np.ndarray) -> pd.DataFrame:
    """Review rows for stops that no certain partner record supports: STOP_WITHOUT_RECORDS,
    with each failed test that proposed the stop beside it (as NEAR_BOUNDARY has its rule's)."""
    mine = reasons[reasons["household_id"].isin(households).to_numpy()]
    failed = mine[~mine["passed"].astype(bool).to_numpy() & ~code_mask(
        mine["code"], lambda code: code.isin(REVIEW_REASONS)
        | code.str.startswith(("ELIGIBLE", "NOT_ELIGIBLE")))]
    stop = pd.DataFrame({"household_id": households, "code": UNEVIDENCED_STOP,
                         "passed": False, "value": np.nan, "limit": np.nan, "parameter": "",
                         "reference": _UNEVIDENCED_REFERENCE, "evidence_refs": "",
                         "cites": NO_CITATION})
    return pd.concat([stop, failed.astype({"code": str})], ignore_index=True)


_UNEVIDENCED_REFERENCE = ("最低生活保障审核确认办法 第三十二条（停发须书面说明理由）；"
                          "特困人员认定办法 第二十五、二十六条（终止前调查核实、公示）")


def _listed(kinds: pd.Series, lists: pd.Series) -> np.ndarray:
    """Per row: whether the kind (as text) is one of the comma-separated kinds in ``lists``.
    Checked once per distinct (kind, list) pair: there are few, and rows are many."""
    kind_codes, kind_names = pd.factorize(kinds, use_na_sentinel=False)
    list_codes, list_names = pd.factorize(lists, use_na_sentinel=False)
    kind_text = pd.Series(kind_names).astype(str).to_numpy()  # as astype(str) reads each row
    pairs, row_pair = np.unique(list_codes.astype(np.int64) * len(kind_names) + kind_codes,
                                return_inverse=True)
    listed = np.array([kind_text[pair % len(kind_names)]
                       in str(list_names[pair // len(kind_names)]).split(",")
                       for pair in pairs], dtype=bool)
    return listed[row_pair]
