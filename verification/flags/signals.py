"""Change signals: what has changed in a household, each with the partner records that show it.

A signal explains a flag; it is never a verdict on its own. Signals are read from evidence
matched with grade ``certain`` only (uncertain matches become MATCH_UNCERTAIN in the assessment).

    MEMBER_DECEASED   a death record (the member leaves the household; re-check within
                      dynamic.recheck.after_death_months)
    SOURCES_CONFLICT  income or contributions for months after a member's recorded death (REVIEW)
    MARRIAGE_CHANGED  a marriage or divorce registration within dynamic.change_window_months
    HOUSEHOLD_CHANGED a birth, move-in or move-out in the household registration (户籍) within the
                      change window (a 户籍 death is a death record like the funeral one)
    NEW_VEHICLE       a counted vehicle (not exempt) registered within the change window
    NEW_PROPERTY      a home or non-residential property registered within the change window
    NEW_EMPLOYMENT    social-insurance or provident-fund contributions that began within
                      dynamic.new_employment_months
    EMPLOYMENT_WITHOUT_WAGE  such a new contributor of whom no feed reports a wage, labour
                      remuneration or business income (a provident-fund account opened by an
                      employer the wage feed does not cover): the job's income is unknown

A recipient's or a monitored household's MARRIAGE_CHANGED, HOUSEHOLD_CHANGED or
EMPLOYMENT_WITHOUT_WAGE sends the household to REVIEW (入户复核): the roster, or the income, the
caseload was assessed on is no longer known to be the household's — a stop on a son's wage when
the 户籍 says he moved out, a full benefit to a recipient whose new job pays an unknown wage, or
a lone elder proposed for 特困 who married last month, would all be decided on the wrong facts.
For an applicant they explain the flag (the roster was declared with the application).

The other signals an officer sees — business registration, public payroll, assets over the limit,
income over the standard or 1.5 × the standard — are the assessment's own failing rules
(verification/assessment/assess.py) and reach the flag as its reasons.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from verification import codes
from verification.assessment.assess import NO_SUPPORT_DUTY, datetime_values
from verification.assessment.citations import CitationBuilder, Citations
from verification.assessment.evidence import dated_by
from verification.assessment.policy import Policy
from verification.matching import grade_supports_removal

SIGNAL_CODES = ("MEMBER_DECEASED", "SOURCES_CONFLICT", "MARRIAGE_CHANGED", "HOUSEHOLD_CHANGED",
                "NEW_VEHICLE", "NEW_PROPERTY", "NEW_EMPLOYMENT", "EMPLOYMENT_WITHOUT_WAGE")
# Disagreeing sources send any household to REVIEW; a certain death is applied by the
# assessment (the member leaves the household) and MEMBER_DECEASED explains the flag.
REVIEW_SIGNALS = ("SOURCES_CONFLICT",)
# ... and a recipient's changed roster or unknown new income (above)
RECIPIENT_REVIEW_SIGNALS = ("MARRIAGE_CHANGED", "HOUSEHOLD_CHANGED", "EMPLOYMENT_WITHOUT_WAGE")
# what a job's income is reported as (wages feed; the tax feed's 劳务报酬 and 经营所得)
_EARNED_ITEMS = ("wage", "labour_remuneration", "business_income")
REASON_COLUMNS = ["household_id", "code", "passed", "value", "limit", "parameter", "reference",
                  "evidence_refs"]
# and ``cites``: the list of evidence rows a signal cites (verification/assessment/citations.py)
CITED_REASON_COLUMNS = [*REASON_COLUMNS, "cites"]
# the evidence items any signal reads
_SIGNAL_ITEMS = frozenset(codes.items("event") + codes.items("income") + codes.items("contribution")
                          + codes.items("vehicle") + codes.items("property"))
# 户籍 changes of household composition (deaths are read as ``death`` items)
_HOUSEHOLD_ITEMS = ("hukou_birth", "hukou_move_in", "hukou_move_out")
_DEATH_PARAMETER = "dynamic.recheck.after_death_months"
_WINDOW_PARAMETER = "dynamic.change_window_months"
_EMPLOYMENT_PARAMETER = "dynamic.new_employment_months"


def evidence_refs(evidence: pd.DataFrame) -> np.ndarray:
    """``kind:feed_id:record_ref`` per evidence row: how reasons cite their records (joined in
    Arrow, one C loop instead of three string concatenations)."""
    return evidence_ref_array(evidence).to_numpy(zero_copy_only=False).astype(object)


def evidence_ref_array(evidence: pd.DataFrame) -> pa.Array:
    """``evidence_refs`` as an Arrow array, for callers that stay in Arrow."""
    parts = [_arrow_text(evidence[c]) for c in ("source_kind", "feed_id", "record_ref")]
    return pc.binary_join_element_wise(*parts, ":")


def _arrow_text(column: pd.Series) -> pa.Array:
    array = pa.array(column.astype(object) if isinstance(column.dtype, pd.CategoricalDtype)
                     else column, from_pandas=True)
    return pc.fill_null(array if pa.types.is_string(array.type) else array.cast(pa.string()), "")


def empty_reasons() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("value", "limit") else
                                      "int64" if c == "cites" else object)
                         for c in CITED_REASON_COLUMNS})


def lodgers_of(members: pd.DataFrame) -> pd.MultiIndex:
    """(household_id, person_token) of the roster's people recorded without a support duty
    (a lodger, 审核确认办法 第七条): no family member, so their death is no member's death (no
    MEMBER_DECEASED, no re-check within dynamic.recheck.after_death_months; audit 9)."""
    lodging = members["exclusion"].fillna("").astype(str).eq(NO_SUPPORT_DUTY).to_numpy()
    return pd.MultiIndex.from_frame(
        members.loc[lodging, ["household_id", "person_token"]].astype("int64"))


def change_signals(evidence: pd.DataFrame, policy: Policy, as_of: dt.date,
                   lodgers: pd.MultiIndex | None = None) -> pd.DataFrame:
    """One reason row per household and signal (REASON_COLUMNS and ``cites``), citing its
    evidence."""
    return cited_signals(evidence, policy, as_of, lodgers)[0]


def cited_signals(evidence: pd.DataFrame, policy: Policy, as_of: dt.date,
                  lodgers: pd.MultiIndex | None = None) -> tuple[pd.DataFrame, Citations]:
    """``change_signals`` and the lists of evidence rows (positions in ``evidence``) that its
    ``cites`` number; ``lodgers`` (``lodgers_of``): people whose death is no member's."""
    certain = _without_lodger_deaths(_certain(evidence), lodgers)
    cited = CitationBuilder(evidence)
    parts = [_deaths(certain, policy, as_of, cited), _conflicts(certain, policy, cited),
             _registered(certain, ("marriage", "divorce"), "MARRIAGE_CHANGED", policy, as_of,
                         cited),
             _registered(certain, _HOUSEHOLD_ITEMS, "HOUSEHOLD_CHANGED", policy, as_of, cited),
             _registered(certain, _counted_vehicles(policy), "NEW_VEHICLE", policy, as_of,
                         cited),
             _registered(certain, tuple(codes.items("property")), "NEW_PROPERTY", policy, as_of,
                         cited),
             _new_employment(certain, policy, as_of, cited)]
    found = [p for p in parts if len(p)]
    return (pd.concat(found, ignore_index=True) if found else empty_reasons()), cited.build()


def _without_lodger_deaths(rows: pd.DataFrame, lodgers: pd.MultiIndex | None) -> pd.DataFrame:
    """``rows`` less the lodgers' death records (keys built for the death rows only)."""
    if lodgers is None or not len(lodgers) or not len(rows):
        return rows
    deaths = np.flatnonzero((rows["item"] == "death").to_numpy(dtype=bool))
    keys = pd.MultiIndex.from_frame(
        rows.iloc[deaths][["household_id", "person_token"]].astype("int64"))
    keep = np.ones(len(rows), dtype=bool)
    keep[deaths[keys.isin(lodgers)]] = False
    return rows if keep.all() else rows[keep]


def signals_if_certain(evidence: pd.DataFrame, policy: Policy, as_of: dt.date,
                       lodgers: pd.MultiIndex | None = None,
                       among: pd.Index | None = None) -> pd.DataFrame:
    """The signals of the households with records a signal reads that are not certainly
    matched, were those records theirs (every grade taken as certain): a marriage on a
    mistyped ID, the 公积金 that shows a new job. The flags compare them with the signals of
    the certain records (``change_signals``): one that would change a flag is MATCH_UNCERTAIN
    for an officer, never a verdict (audit 9). ``among``: only these households (those a
    signal could change the flag of)."""
    item_codes, labels = _item_labels(evidence["item"])
    doubtful = labels.isin(_SIGNAL_ITEMS)[item_codes] & ~supports_removal(
        evidence["match_grade"])
    if among is not None:
        doubtful &= evidence["household_id"].isin(among).to_numpy()
    if not doubtful.any():
        return empty_reasons()
    theirs = evidence["household_id"].isin(np.unique(
        evidence["household_id"].to_numpy()[doubtful])).to_numpy()
    rows = evidence[theirs]
    promoted = rows.assign(match_grade=pd.Categorical(
        np.full(len(rows), "certain"), categories=rows["match_grade"].cat.categories)
        if isinstance(rows["match_grade"].dtype, pd.CategoricalDtype)
        else np.full(len(rows), "certain"))
    return change_signals(promoted.reset_index(drop=True), policy, as_of, lodgers)


def death_recheck_due(evidence: pd.DataFrame, policy: Policy, as_of: dt.date,
                      lodgers: pd.MultiIndex | None = None) -> pd.Series:
    """household_id → the date by which a household with a member's death (on or before
    ``as_of``) must be re-checked."""
    item_codes, labels = _item_labels(evidence["item"])
    deaths = _without_lodger_deaths(evidence[(labels == "death")[item_codes]], lodgers)
    deaths = _by_as_of(deaths[supports_removal(deaths["match_grade"])], as_of)
    months = int(policy.require(_DEATH_PARAMETER))
    first = pd.Series(datetime_values(deaths["period_start"]), index=deaths.index).groupby(
        deaths["household_id"]).min()
    return (first + pd.DateOffset(months=months)).dt.date


def supports_removal(grades: pd.Series) -> np.ndarray:
    """``grade_supports_removal`` for a whole column: each distinct grade is checked once (an
    unknown grade raises), then rows are compared in one pass."""
    if isinstance(grades.dtype, pd.CategoricalDtype):
        fast = _supports_removal_by_category(grades)
        if fast is not None:
            return fast
    distinct = pd.unique(grades.astype(object))
    return grades.isin([g for g in distinct if grade_supports_removal(g)]).to_numpy()


def _supports_removal_by_category(grades: pd.Series) -> np.ndarray | None:
    """``supports_removal`` on category codes, without converting millions of rows to objects.
    Only the categories rows use are checked (an unused unknown category is not a grade of any
    row, as before); None (so the caller takes the row-wise path, which raises the same error
    as before) when a row's grade is missing or unknown."""
    grade_codes = grades.cat.codes.to_numpy()
    used = np.bincount(grade_codes.astype(np.int64) + 1,
                       minlength=len(grades.cat.categories) + 1)
    if used[0]:  # a missing grade
        return None
    categories = grades.cat.categories
    lookup = np.zeros(len(categories), dtype=bool)
    for code in np.flatnonzero(used[1:]):
        try:
            lookup[code] = grade_supports_removal(categories[code])
        except ValueError:
            return None
    return lookup[grade_codes]


def _certain(evidence: pd.DataFrame) -> pd.DataFrame:
    """Certain matches of the items a signal reads, with their items as categories (the
    signals test them many times, and a test on a few dozen labels costs less than one on
    every row's text) and ``row``, their position in ``evidence``: the text of a ref is made
    from that, for the few rows a signal cites."""
    item_codes, labels = _item_labels(evidence["item"])
    keep = labels.isin(_SIGNAL_ITEMS)[item_codes] & supports_removal(evidence["match_grade"])
    rows = np.flatnonzero(keep)
    certain = pd.DataFrame({c: evidence[c].array.take(rows) for c in (
        "household_id", "person_token", "amount") if c in evidence})
    return certain.assign(item=pd.Categorical.from_codes(item_codes[rows], categories=labels),
                          period_start=datetime_values(evidence["period_start"])[rows],
                          row=rows)


def _item_labels(items: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each row's item as a code into its distinct texts, each made once: a missing item reads
    "<NA>" or "nan", numbers and other values their text (1 and "1" alike)."""
    item_codes, names = pd.factorize(items, use_na_sentinel=False)
    text_codes, labels = pd.factorize(pd.Index(names).astype(str))
    return text_codes[item_codes], labels


def _per_household(rows: pd.DataFrame, code: str, limit: float, parameter: str,
                   policy: Policy, cited: CitationBuilder,
                   value: pd.Series | None = None) -> pd.DataFrame:
    """Group signal rows by household: the value (default: how many records) and their refs,
    each distinct ref once in text order (one of its rows cited)."""
    if rows.empty:
        return empty_reasons()
    if "ref" not in rows:
        rows = rows.assign(ref=cited.text(rows["row"]))
    distinct = rows[["household_id", "ref", "row"]].drop_duplicates(["household_id", "ref"])
    distinct = distinct.sort_values(["household_id", "ref"], kind="stable")
    households = distinct["household_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, households[1:] != households[:-1]])
    runs = pa.LargeListArray.from_arrays(
        pa.array(np.r_[starts, len(distinct)], pa.int64()),
        pa.array(distinct["ref"].to_numpy(dtype=object), pa.large_string()))
    refs = pc.binary_join(runs, pa.scalar(";", pa.large_string())).to_numpy(zero_copy_only=False)
    grouped = rows.groupby("household_id")
    values = grouped.size() if value is None else value.groupby(rows["household_id"]).max()
    return pd.DataFrame({
        "household_id": households[starts], "code": code, "passed": False,
        "value": values.reindex(households[starts]).astype("float64").to_numpy(),
        "limit": float(limit), "parameter": parameter,
        "reference": policy.reference(parameter), "evidence_refs": refs.astype(object),
        "cites": cited.add(distinct["row"].to_numpy(), starts),
    })


def _by_as_of(deaths: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The death records dated on or before ``as_of`` (or undated): a death after it is not
    yet one for this review — the assessment counts the member (``assess._deceased``), so the
    flag does not say they died; the review of a later date will."""
    return deaths[dated_by(datetime_values(deaths["period_start"]), as_of)]


def _deaths(certain: pd.DataFrame, policy: Policy, as_of: dt.date,
            cited: CitationBuilder) -> pd.DataFrame:
    deaths = _by_as_of(certain[certain["item"] == "death"], as_of)
    return _per_household(deaths, "MEMBER_DECEASED", policy.require(_DEATH_PARAMETER),
                          _DEATH_PARAMETER, policy, cited)


def _conflicts(certain: pd.DataFrame, policy: Policy, cited: CitationBuilder) -> pd.DataFrame:
    """Income or contributions for a month that starts after the person's recorded death: one
    of the two sources is wrong, and only a caseworker can tell which."""
    deaths = certain[certain["item"] == "death"]
    if deaths.empty:
        return empty_reasons()
    paid = certain[certain["item"].isin(codes.items("income") + codes.items("contribution"))
                   & certain["person_token"].isin(deaths["person_token"])]
    died = deaths[["household_id", "person_token", "period_start", "row"]].assign(
        death_ref=cited.text(deaths["row"])).rename(columns={"period_start": "died_on",
                                                         "row": "death_row"})
    after = paid.merge(died, on=["household_id", "person_token"])
    after = after[after["period_start"] > after["died_on"]]
    if after.empty:
        return empty_reasons()
    after = after.assign(ref=cited.text(after["row"]))
    both = pd.concat([after[["household_id", "ref", "row"]],
                      after[["household_id", "death_ref", "death_row"]].rename(
                          columns={"death_ref": "ref", "death_row": "row"})])
    rows = _per_household(both, "SOURCES_CONFLICT", 0, _DEATH_PARAMETER, policy, cited)
    counts = after.groupby("household_id").size()
    return rows.assign(value=rows["household_id"].map(counts).astype("float64"),
                       reference="死亡登记与收入、缴费记录相互矛盾，须入户核实 / a death "
                                 "record and later income or contributions disagree")


def _counted_vehicles(policy: Policy) -> tuple[str, ...]:
    exempt = set(policy.value("vehicles.exempt_items") or ())
    return tuple(v for v in codes.items("vehicle") if v not in exempt)


def _registered(certain: pd.DataFrame, items: tuple[str, ...], code: str, policy: Policy,
                as_of: dt.date, cited: CitationBuilder) -> pd.DataFrame:
    """Registrations of ``items`` dated within the change window before ``as_of``."""
    months = int(policy.require(_WINDOW_PARAMETER))
    since = pd.Timestamp(as_of) - pd.DateOffset(months=months)
    dated = certain["period_start"]
    rows = certain[certain["item"].isin(items) & (dated >= since) & (dated <= pd.Timestamp(as_of))]
    return _per_household(rows, code, months, _WINDOW_PARAMETER, policy, cited)


def _new_employment(certain: pd.DataFrame, policy: Policy, as_of: dt.date,
                    cited: CitationBuilder) -> pd.DataFrame:
    """Members whose first contribution month is within the last N months: they have started
    work recently (a long-standing job is not news, however high its wage)."""
    months = int(policy.require(_EMPLOYMENT_PARAMETER))
    # social-insurance and housing-provident-fund contributions alike show a job
    paid = certain[certain["item"].isin(codes.items("contribution")) & (certain["amount"] > 0)]
    if paid.empty:
        return empty_reasons()
    started = paid["period_start"].groupby(
        [paid["household_id"], paid["person_token"]]).transform("min")
    cutoff = pd.Timestamp(as_of).to_period("M").start_time - pd.DateOffset(months=months)
    recent = paid[(started >= cutoff).to_numpy()]
    worked = recent["period_start"].dt.to_period("M")
    months_worked = worked.groupby(recent["household_id"]).transform("nunique")
    new_work = _per_household(recent, "NEW_EMPLOYMENT", months, _EMPLOYMENT_PARAMETER, policy,
                              cited, value=months_worked)
    earning = certain.loc[certain["item"].isin(_EARNED_ITEMS) & (certain["amount"] > 0),
                          ["household_id", "person_token"]]
    earners = pd.MultiIndex.from_frame(earning)
    unpaid = recent[~pd.MultiIndex.from_frame(recent[["household_id", "person_token"]]).isin(
        earners)]
    if unpaid.empty:
        return new_work
    members = unpaid["person_token"].groupby(unpaid["household_id"]).transform("nunique")
    return pd.concat([new_work, _per_household(unpaid, "EMPLOYMENT_WITHOUT_WAGE", months,
                                               _EMPLOYMENT_PARAMETER, policy, cited,
                                               value=members)], ignore_index=True)
