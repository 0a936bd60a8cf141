"""Assess every household at once: income, assets, category, benefit, and the reasons for each.

Input and output frames are the seams in docs/architecture.md. All numbers come from the policy
parameters (verification/assessment/policy/parameters); this module holds only the arithmetic.
Everything is
vectorised: households are addressed by their position in the households index and per-household
sums are ``np.bincount`` over those positions, so there is no per-household Python loop.

Rules of evidence:
- only evidence matched with grade ``certain`` decides; other grades are reported as
  MATCH_UNCERTAIN, and where they would change the outcome were they certain, left to a
  caseworker (flags turn them into REVIEW);
- a member with a certain death record dated on or before the as-of date is no longer counted
  (household size, income and benefit are recomputed without them);
- a household is assessed for the category it applied for or receives; another category it
  meets is reported (ALSO_ELIGIBLE_*), never switched to;
- evidence of members who are not counted (prison, missing, …) is ignored;
- a household whose required sources are missing or stale is ``undetermined``, never decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from verification.assessment import citations as cited
from verification.assessment.citations import NO_CITATION, CitationBuilder, Citations
from verification.assessment.evidence import dated_by, standing_on
from verification.assessment.policy import ParameterTree, Policy
from verification.assessment.registers import CANCELLED as CANCELLED_CERTIFICATE
from verification.assessment.registers import members_with_disability_register

CATEGORIES = ("tekun", "dibao", "edge", "rigid")
# a member recorded without a support duty (codes.yaml exclusion): never a legal supporter
NO_SUPPORT_DUTY = "no_support_duty"
_RULE_SOURCES = ("income", "deductions", "assets", "homes", "vehicles", "business", "payroll",
                 "rigid", "tekun_school", "tekun_capacity", "business_exemption")
# Rules whose sources can only count against a household (an asset, a registration, the
# payroll): their absence matters to a household that passes, and to a recipient, whose support
# never stops while a source is missing; an applicant already failing on certain records is
# declined on them. Those whose sources can only make it look poorer (a deduction, a rigid
# cost) matter only to a household that does not pass (``_waiting``); the income sources do
# both (the tax feed reports income and tax paid) and always matter.
_AGAINST_RULES = ("assets", "homes", "vehicles", "business", "payroll")

RESULT_COLUMNS = [
    "category", "eligible", "decision", "benefit", "household_size", "income_monthly",
    "deductions_monthly", "per_capita_income", "financial_assets", "financial_assets_per_capita",
    "homes", "commercial_properties", "vehicles", "businesses", "public_payroll",
    "rigid_spending_12m", "missing_sources", "standard", "other_category", "other_benefit",
    "deceased_members", "recheck_due",
]
REASON_COLUMNS = [
    "household_id", "code", "passed", "value", "limit", "parameter", "reference", "evidence_refs",
]
# ``assess`` adds ``cites``: the number of the list in ``Assessment.citations`` of the evidence
# rows the reason cites (-1: none), the integers the flags join on.
CITED_REASON_COLUMNS = [*REASON_COLUMNS, "cites"]


@dataclass(frozen=True)
class Assessment:
    """Results (index household_id) and long-form reasons; ``policy_versions`` per region;
    ``citations`` the lists of evidence rows (positions in the evidence frame assessed) that the
    reasons' ``cites`` number."""

    results: pd.DataFrame
    reasons: pd.DataFrame
    policy_versions: dict[str, str]
    citations: Citations = field(default_factory=lambda: Citations.empty(0))


def assess(
    households: pd.DataFrame,
    members: pd.DataFrame,
    evidence: pd.DataFrame,
    sources: pd.DataFrame,
    policy: Policy | ParameterTree,
    as_of: date,
    with_reasons: bool = True,
) -> Assessment:
    """Assess all households on ``as_of``.

    ``policy`` is either one resolved Policy for every household, or the ParameterTree, which
    resolves each household's ``area_code`` (with fall-back) on ``as_of``. Results follow the
    order of ``households``. An ``undetermined`` household has category ``none``, ``eligible``
    false and benefit NaN, with a SOURCE_UNAVAILABLE (or NO_COUNTED_MEMBERS) reason; its measured
    values are still filled in. Reason rows with ``passed`` false are the rules that count against
    eligibility. MATCH_UNCERTAIN rows are ``passed`` true where the records not certainly
    matched would change the outcome (the household needs a caseworker) and false where they
    would change nothing. ALSO_ELIGIBLE_* rows (passed true) name a category the household meets
    besides the one it is assessed for (its ``category``; ``none`` takes the first met).
    A parameter the rules need but that has no value in force raises ParameterError.
    ``with_reasons=False`` leaves the reasons empty (a policy simulation needs the results only,
    and the reasons are most of the time).
    """
    households = _indexed(households)
    members = members_with_disability_register(members, evidence, as_of)  # 残联 over roster
    groups = _policy_groups(households, policy, as_of)
    parts = [
        _assess_group(households.loc[ids] if len(groups) > 1 else households,
                      members, evidence, sources, group_policy, as_of, with_reasons)
        for group_policy, ids in groups
    ]
    results = pd.concat([part[0] for part in parts]) if parts else _empty_results()
    reasons = pd.concat([part[1] for part in parts], ignore_index=True) if parts else _no_reasons()
    citations, firsts = cited.concat([part[2] for part in parts] or [
        Citations.empty(len(evidence))])
    if len(parts) > 1:  # categories differ between regions; concat fell back to object
        for column in ("code", "parameter", "reference"):
            reasons[column] = reasons[column].astype("category")
        reasons["cites"] = np.concatenate([cited.shifted(part[1]["cites"], first)
                                           for part, first in zip(parts, firsts, strict=True)])
    versions = {group_policy.region: group_policy.version for group_policy, _ in groups}
    results.attrs["policy_versions"] = versions
    return Assessment(results.reindex(households.index), reasons, versions, citations)


def _indexed(households: pd.DataFrame) -> pd.DataFrame:
    if households.index.name != "household_id" and "household_id" in households.columns:
        households = households.set_index("household_id")
    households = households.copy(deep=False)  # never re-index the caller's frame
    households.index = households.index.astype(np.int64).rename("household_id")
    return households


def _policy_groups(
    households: pd.DataFrame, policy: Policy | ParameterTree, as_of: date
) -> list[tuple[Policy, pd.Index]]:
    if isinstance(policy, Policy):
        return [(policy, households.index)]
    areas = households["area_code"].astype(str)
    return [
        (policy.at(area, as_of), households.index[(areas == area).to_numpy()])
        for area in sorted(areas.unique())
    ]


# --------------------------------------------------------------------------- one region


class _Rows(dict):
    """Evidence rows as named numpy arrays, sorted by household position (``pos``).

    Plain arrays instead of a DataFrame: selecting millions of rows then costs one ``take`` per
    column, with no block consolidation. The text columns are not taken: reasons cite rows by
    their position in the evidence frame (``ref_rows[ref_at]``), and the text is made once per
    list of cited rows (verification/assessment/citations.py).
    """

    evidence: pd.DataFrame  # the frame the rows come from

    @classmethod
    def take(cls, evidence: pd.DataFrame, rows: np.ndarray, pos: np.ndarray) -> _Rows:
        picked = cls(pos=pos[rows])
        picked.evidence = evidence
        for column in ("person_token", "amount"):
            picked[column] = evidence[column].to_numpy()[rows]
        # a property's key (evidence.py ``holding_of``), -1 for none: most items have none
        picked["holding"] = (evidence["holding"].to_numpy(dtype=np.int64, na_value=-1)[rows]
                             if "holding" in evidence else np.full(len(rows), -1, np.int64))
        for column in ("period_start", "period_end"):
            picked[column] = datetime_values(evidence[column])[rows]
        picked["amount"] = picked["amount"].astype(np.float64)
        return picked

    def __len__(self) -> int:
        return len(self["pos"])


@dataclass
class _Group:
    """One region's households with member and evidence rows placed by household position."""

    policy: Policy
    as_of: date
    households: pd.DataFrame
    members: pd.DataFrame  # counted and not, with ``pos`` and ``age``
    evidence: _Rows  # certain matches of counted members, with months and item codes
    uncertain: _Rows
    items: pd.Index  # the item codes ``evidence["item_code"]`` points into
    cited: CitationBuilder  # the lists of evidence rows the reasons cite
    # per member row: absent as 第八条（五） says (in prison, declared missing) but with property
    # beyond the low-income family rules of his own — still able to support
    absent_with_means: np.ndarray

    @property
    def n(self) -> int:
        return len(self.households)

    def sum_by_household(self, weights: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        pos = self.evidence["pos"]
        if mask is not None:
            pos, weights = pos[mask], weights[mask]
        return np.bincount(pos, weights=weights, minlength=self.n)[: self.n]

    def item_mask(self, items: tuple[str, ...] | None) -> np.ndarray:
        lookup = self.items.isin(list(items or ()))
        return lookup[self.evidence["item_code"]]


def _assess_group(
    households: pd.DataFrame,
    members: pd.DataFrame,
    evidence: pd.DataFrame,
    sources: pd.DataFrame,
    policy: Policy,
    as_of: date,
    with_reasons: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, Citations]:
    group = _prepare(households, members, evidence, policy, as_of)
    missing = _missing_sources(sources, policy, as_of)
    measures = _measures(group)
    tests = _tests(group, measures, missing)
    results = _results(group, measures, tests, missing)
    if not with_reasons:
        return results, _no_reasons(), Citations.empty(len(evidence))
    changing = _uncertain_changes(group, results, tests, members, evidence, missing)
    reasons = _reasons(group, measures, tests, results, missing, changing)
    return results, reasons, group.cited.build()


def _uncertain_changes(group: _Group, results: pd.DataFrame, tests: dict[str, np.ndarray],
                       members: pd.DataFrame, evidence: pd.DataFrame,
                       missing: dict[str, str]) -> np.ndarray:
    """Per household position: whether its evidence that is not certainly matched would change
    its outcome (decision, category, the benefit by more than dynamic.adjust_threshold, or for a
    低保 recipient over the income line whether income is the only rule it fails — 渐退 or a
    stop) were it the household's. Only those households go to REVIEW for it (MATCH_UNCERTAIN);
    records that change nothing are listed as unresolved and decide nothing."""
    changing = np.zeros(group.n, dtype=bool)
    if not len(group.uncertain):
        return changing
    positions = np.unique(group.uncertain["pos"])
    ids = group.households.index[positions]
    subset = evidence[evidence["household_id"].isin(ids).to_numpy()]
    promoted = subset.assign(match_grade=pd.Categorical(
        np.full(len(subset), "certain"), categories=["certain", "probable", "possible", "none"]))
    # a certificate not certainly matched would, as the household's, set the member's grade
    # and type as a certain one does (a grade-1 limb certificate on a mistyped ID; audit 8)
    theirs = members_with_disability_register(members[members["household_id"].isin(ids)],
                                              promoted, group.as_of)
    again = _prepare(group.households.loc[ids], theirs, promoted, group.policy, group.as_of)
    measures = _measures(again)
    tests_would = _tests(again, measures, missing)
    would = _results(again, measures, tests_would, missing)
    now = results.loc[ids]
    threshold = float(group.policy.require("dynamic.adjust_threshold"))
    benefit_now, benefit_would = now["benefit"].fillna(0), would["benefit"].fillna(0)
    # 渐退 (审核确认办法 第三十三条) is for a 低保 family whose income alone now fails: a car or
    # deposits on a mistyped ID would turn it into a stop, a job's 渐退 into none (audit 9)
    exit_now, exit_would = _income_only_failing(tests, positions), _income_only_failing(
        tests_would, np.arange(len(ids)))
    gradual = (_assessed_for(group, "dibao") & _with_status(group, "recipient"))[positions]
    changing[positions] = (
        (now["decision"] != would["decision"]) | (now["category"] != would["category"])
        | ((benefit_now - benefit_would).abs() > threshold)
    ).to_numpy() | (gradual & (exit_now != exit_would))
    # A death record that may be a counted member's always reaches an officer, whatever it
    # would do to the benefit: support paid to someone who has died is the error the check
    # exists to stop (an outside probe: a death under a birth date one digit off stayed KEEP)
    changing[_uncertain_deaths(group, subset)] = True
    return changing


def _income_only_failing(t: dict[str, np.ndarray], positions: np.ndarray) -> np.ndarray:
    """At ``positions``: the household is over the 低保 income line and passes every other
    shared rule — what a 渐退 needs."""
    return (~t["income"] & ~_ruled_out(t))[positions]


def _ruled_out(t: dict[str, np.ndarray]) -> np.ndarray:
    """Failing a shared rule on records no income, deduction or rigid cost could undo: an
    asset, a property, a vehicle, a business registration, the public payroll."""
    return ~(t["financial"] & t["homes"] & t["commercial"] & t["vehicles"] & t["businesses"]
             & t["payroll"])


def _uncertain_deaths(group: _Group, subset: pd.DataFrame) -> np.ndarray:
    """Positions of households with a death record, not certainly matched and dated by the
    as-of date, of one of their counted members."""
    death = (subset["item"].astype(str) == "death").to_numpy() & (
        subset["match_grade"].astype(str) != "certain").to_numpy()
    if not death.any():
        return np.empty(0, dtype=np.int64)
    rows = subset[death]
    rows = rows[dated_by(datetime_values(rows["period_start"]), group.as_of)]
    counted = group.members.loc[group.members["counted"], ["household_id", "person_token"]]
    keys = pd.MultiIndex.from_frame(rows[["household_id", "person_token"]])
    dead = rows[keys.isin(pd.MultiIndex.from_frame(counted))]
    return group.households.index.get_indexer(dead["household_id"].unique())


def _prepare(
    households: pd.DataFrame,
    members: pd.DataFrame,
    evidence: pd.DataFrame,
    policy: Policy,
    as_of: date,
) -> _Group:
    index = households.index
    columns = ["household_id", "person_token", "birth_date", "counted", "exclusion",
               "disability_grade", "disability_type", "labour_capacity"]
    people = members[columns].assign(pos=index.get_indexer(members["household_id"]),
                                      certificate_cancelled=members.get(
                                          "certificate_cancelled", False))
    people["disability_grade"] = pd.to_numeric(people["disability_grade"], errors="coerce")
    people = people[people["pos"].to_numpy() >= 0].reset_index(drop=True)
    people["counted"] = people["counted"].fillna(False).astype(bool)
    people["certificate_cancelled"] = people["certificate_cancelled"].fillna(False).astype(bool)
    people["age"] = _age(people["birth_date"], as_of)
    pos = index.get_indexer(evidence["household_id"])
    certain = (evidence["match_grade"] == "certain").to_numpy()
    codes, items = _item_codes(evidence["item"])
    is_death = np.asarray(items == "death")[codes]  # on the distinct items, not every row
    people["deceased"] = _deceased(people, evidence, pos >= 0, certain & is_death, as_of)
    people.loc[people["deceased"], "counted"] = False
    not_counted = pd.Index(people.loc[~people["counted"], "person_token"])
    # A member not counted brings no evidence, except the death record that removed them and
    # the rigid spending a member who has since died cost the family in its twelve months (a
    # husband's hospital bills before his death: 刚性支出办法 第五条（二）; audit 8).
    deceased = pd.Index(people.loc[people["deceased"], "person_token"])
    spent = np.isin(items, list(policy.value("rigid.spending_items") or ()))[codes]
    keep = (pos >= 0) & (~evidence["person_token"].isin(not_counted).to_numpy() | is_death
                         | (spent & evidence["person_token"].isin(deceased).to_numpy()))
    decided = _by_position(evidence, keep & certain, pos)
    decided["item_code"] = codes[decided.pop("row")]
    decided["start_m"] = _month_index(decided["period_start"], as_of)
    decided["end_m"] = _month_index(decided["period_end"], as_of)
    # a record as it stood on the as-of date: a car registered later, or a balance replaced by
    # a later one of the same account before it, says nothing of that day
    decided["registered"] = standing_on(decided["period_start"], decided["period_end"], as_of)
    uncertain = _by_position(evidence, keep & ~certain, pos)
    return _Group(policy, as_of, households, people, decided, uncertain, items,
                  CitationBuilder(evidence),
                  _absent_with_means(households, people, evidence, certain & (pos >= 0),
                                     policy, as_of))


def _absent_with_means(households: pd.DataFrame, people: pd.DataFrame, evidence: pd.DataFrame,
                       placed: np.ndarray, policy: Policy, as_of: date) -> np.ndarray:
    """Per member row: serving a sentence or declared missing (``tekun.
    supporter_unable_exclusions``) yet owning more than the low-income family property rules
    allow one person — 特困人员认定办法 第八条（五） counts such a supporter unable to support
    only "且其财产符合当地低收入家庭财产状况规定的" (a son in prison with 200,000 in the bank
    still supports his father; a missing person's property keeper pays his duties, 民法典 第四十三
    条). Each such member is assessed as a household of one on his own certain records, with the
    shared property rules (assets, homes, other property, vehicles, business, payroll)."""
    means = np.zeros(len(people), dtype=bool)
    exclusions = tuple(policy.value("tekun.supporter_unable_exclusions") or ())
    absent = (people["exclusion"].fillna("").astype(str).isin(exclusions).to_numpy()
              & ~people["deceased"].to_numpy())
    if not absent.any():
        return means
    rows = np.flatnonzero(absent)
    alone = people.iloc[rows]
    own = placed & evidence["person_token"].isin(alone["person_token"]).to_numpy()
    if not own.any():
        return means
    # household -(k + 1) is the k-th absent member on his own
    number = pd.Series(-(np.arange(len(rows)) + 1), index=pd.MultiIndex.from_frame(
        alone[["household_id", "person_token"]]))
    theirs = evidence[own]
    keys = pd.MultiIndex.from_frame(theirs[["household_id", "person_token"]])
    theirs = theirs[keys.isin(number.index)].assign(
        household_id=number.reindex(keys[keys.isin(number.index)]).to_numpy())
    single = households.loc[alone["household_id"].to_numpy()].set_axis(
        pd.Index(number.to_numpy(), name=households.index.name))
    members = alone.drop(columns=["pos", "age", "deceased"]).assign(
        household_id=number.to_numpy(), counted=True, exclusion="")
    group = _prepare(single, members, theirs.reset_index(drop=True), policy, as_of)
    measures = _measures(group)
    means[rows] = _ruled_out(_tests(group, measures, {}))
    return means


def _deceased(people: pd.DataFrame, evidence: pd.DataFrame, placed: np.ndarray,
              certain_death: np.ndarray, as_of: date) -> np.ndarray:
    """Counted members with a certain death record dated on or before ``as_of``: from the date
    of death they are no longer members (household size, income and benefit are recomputed).
    An uncertain death record changes nothing here; it is MATCH_UNCERTAIN."""
    rows = placed & certain_death
    if not rows.any():
        return np.zeros(len(people), dtype=bool)
    died = datetime_values(evidence["period_start"])[rows]
    dated = dated_by(died, as_of)
    tokens = evidence["person_token"].to_numpy()[rows][dated]
    households = evidence["household_id"].to_numpy()[rows][dated]
    dead = pd.MultiIndex.from_arrays([households, tokens])
    keys = pd.MultiIndex.from_arrays([people["household_id"].to_numpy(),
                                      people["person_token"].to_numpy()])
    return keys.isin(dead) & people["counted"].to_numpy()


def _by_position(evidence: pd.DataFrame, mask: np.ndarray, pos: np.ndarray) -> _Rows:
    in_order = np.flatnonzero(mask)
    by_position = np.argsort(pos[in_order], kind="stable")
    chosen = in_order[by_position]
    rows = _Rows.take(evidence, chosen, pos)
    rows["row"] = chosen
    rows["ref_rows"] = in_order  # the rows in evidence order: what reasons cite
    rows["ref_at"] = by_position  # where each row is among them
    for column in ("period_start", "period_end"):
        rows[column] = rows[column].astype("datetime64[ns]")
    return rows


def _item_codes(items: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer code per evidence row and the item names the codes point into."""
    if isinstance(items.dtype, pd.CategoricalDtype):
        codes = items.cat.codes.to_numpy()
        return codes, pd.Index(list(items.cat.categories) + [""])  # code -1 → ""
    codes, names = pd.factorize(items, sort=False)
    return codes, pd.Index(list(names) + [""])


def datetime_values(column: pd.Series) -> np.ndarray:
    """``pd.to_datetime(column).to_numpy()``; a column that already holds datetime64[ns] is
    read as it is, as to_datetime's cache check would turn thousands of its values into Python
    objects on every call."""
    if column.dtype == np.dtype("datetime64[ns]"):
        return column.to_numpy()
    return pd.to_datetime(column).to_numpy()


def _age(birth_dates: pd.Series, as_of: date) -> np.ndarray:
    births = pd.to_datetime(birth_dates)
    before_birthday = (births.dt.month > as_of.month) | (
        (births.dt.month == as_of.month) & (births.dt.day > as_of.day)
    )
    return (as_of.year - births.dt.year - before_birthday.astype(int)).to_numpy()


def _month_index(stamps: np.ndarray, as_of: date) -> np.ndarray:
    """Months since 1970-01 (January 1970 = 0); a missing date counts as the as-of month."""
    values = stamps.astype("datetime64[M]")
    months = values.astype(np.int64)
    return np.where(np.isnat(values), _month_of(as_of), months)


def _month_of(day: date) -> int:
    """The month index (January 1970 = 0) of ``day``."""
    return (day.year - 1970) * 12 + day.month - 1


def _window_share(group: _Group, months: int) -> np.ndarray:
    """Months each evidence row overlaps the ``months`` full months before the as-of month."""
    last = (group.as_of.year - 1970) * 12 + group.as_of.month - 2
    first = last - months + 1
    start = np.maximum(group.evidence["start_m"], first)
    end = np.minimum(group.evidence["end_m"], last)
    return np.clip(end - start + 1, 0, None).astype(np.float64)


# --------------------------------------------------------------------------- data completeness


def required_sources(policy: Policy) -> dict[str, int]:
    """Feed kind → the oldest (days) it may be, for every kind some rule needs."""
    needed: dict[str, int] = {}
    for rule in _RULE_SOURCES:
        for kind, days in (policy.value(f"requirements.{rule}") or {}).items():
            needed[kind] = min(days, needed.get(kind, days))
    return needed


def _missing_sources(sources: pd.DataFrame, policy: Policy, as_of: date) -> dict[str, str]:
    """Feed kinds the rules need that are missing or stale: kind → 'missing' | 'stale'."""
    needed = required_sources(policy)
    if sources is None or "status" not in sources or not len(sources):
        return {kind: "missing" for kind in sorted(needed)}
    accepted = sources[sources["status"] == "accepted"]
    latest = pd.to_datetime(accepted["period_end"]).groupby(accepted["source_kind"]).max()
    problems = {}
    for kind, max_days in sorted(needed.items()):
        if kind not in latest.index or pd.isna(latest[kind]):
            problems[kind] = "missing"
        elif (pd.Timestamp(as_of) - latest[kind]).days > max_days:
            problems[kind] = "stale"
    return problems


# --------------------------------------------------------------------------- measures


def _measures(group: _Group) -> dict[str, np.ndarray]:
    policy, ev = group.policy, group.evidence
    amount = ev["amount"]
    window = int(policy.require("income.look_back_months"))
    monthly = amount * _window_share(group, window) / window
    registered = ev["registered"]
    counted_income = group.item_mask(policy.require("income.counted_items"))
    size = np.bincount(
        group.members.loc[group.members["counted"], "pos"].to_numpy(), minlength=group.n
    )[: group.n]
    # The rigid-spending category exists only from its rules' start (2025); before that, nothing.
    rigid_window = int(policy.value("rigid.window_months") or 0)
    by_grade, voided = _grade_exempt_businesses(group)
    measures = {
        "size": size,
        "income": group.sum_by_household(monthly, counted_income),
        "excluded": group.sum_by_household(
            monthly, group.item_mask(policy.require("income.excluded_items"))),
        "tekun_excluded": group.sum_by_household(
            monthly, counted_income & group.item_mask(policy.value("tekun.extra_excluded_items"))),
        "spending_deductions": group.sum_by_household(
            monthly, group.item_mask(policy.require("income.deductible_items"))),
        # 转移性支出 (taxes paid, social-insurance contributions): income is net of them
        "transfer_spending": group.sum_by_household(
            monthly, group.item_mask(policy.value("income.transfer_spending_items"))),
        "rigid_12m": group.sum_by_household(
            amount * _window_share(group, rigid_window),
            group.item_mask(policy.value("rigid.spending_items"))),
        # the year's income net of taxes and personal contributions (转移性支出), as the 低保
        # test's: 可支配收入 is net by definition (刚性支出办法 第十三条（四）; audit 8)
        "rigid_income_12m": np.clip(
            _income_over(group, amount, counted_income, rigid_window)
            - _income_over(group, amount, group.item_mask(
                policy.value("income.transfer_spending_items")), rigid_window), 0, None),
        "financial": group.sum_by_household(
            amount, registered & group.item_mask(policy.require("assets.financial_items"))),
        "homes": _count_holdings(group, registered & group.item_mask(("home",))),
        "commercial": _count(group, registered & group.item_mask(("commercial_property",))),
        "vehicles": _count_holdings(group, registered & _counted_vehicles(group)),
        "businesses": _count(group, registered & _counted_businesses(group, by_grade)),
        # businesses exempt only by the holder's disability grade: the register settles them
        "grade_exempt_businesses": _count(group, registered & by_grade),
        # ... and of those, the ones whose holder's certificate the register has cancelled
        "voided_exemptions": _count(group, registered & voided),
        "payroll": _count(group, registered & group.item_mask(("public_payroll",))),
        **_labour_capacity(group),
    }
    measures["deductions"] = measures["spending_deductions"] + measures["transfer_spending"]
    return measures


def _income_over(group: _Group, amount: np.ndarray, counted: np.ndarray,
                 months: int) -> np.ndarray:
    """Per household, the counted income of the ``months`` full months before the as-of month:
    the rigid-spending share's base and the disposable-income test's annual income, the same
    twelve months as the spending (刚性支出办法 第四条（二）（四）). Where the partners report
    fewer months (``rigid.income_months_reported``), the months reported are taken at their
    rate over the whole window, never as months without income. Stated, not read off the
    records: the earliest record of the households assessed together made one family's outcome
    depend on the others (a job that began in August, alone in its district, was scaled to a
    year; audit 6)."""
    if not months:
        return np.zeros(group.n)
    overlap = _window_share(group, months)
    rows = np.flatnonzero(counted & (overlap > 0))
    if not len(rows):
        return np.zeros(group.n)
    last = _month_of(group.as_of) - 1
    reported = int(group.policy.value("rigid.income_months_reported") or months)
    earliest = last - min(reported, months) + 1
    weights = np.zeros(len(amount))
    weights[rows] = amount[rows] * overlap[rows] * months / (last - earliest + 1)
    return group.sum_by_household(weights)


def _count_holdings(group: _Group, mask: np.ndarray) -> np.ndarray:
    """Per household, the distinct properties among the rows of ``mask``: rows with one
    ``holding`` key (co-owners of one flat, each registered; one plate reported twice, or
    moved from husband to wife) count once; a row without a key counts by itself (第十四条:
    the household's homes and cars, not its owners' registrations)."""
    ev = group.evidence
    rows = np.flatnonzero(mask)
    holding, pos = ev["holding"][rows], ev["pos"][rows]
    keyed = holding != -1
    repeat = np.zeros(len(rows), dtype=bool)
    if keyed.any():
        frame = pd.DataFrame({"pos": pos[keyed], "holding": holding[keyed]})
        repeat[np.flatnonzero(keyed)] = frame.duplicated().to_numpy()
    counted = np.zeros(len(ev), dtype=bool)
    counted[rows[~repeat]] = True
    return _count(group, counted)


def _count(group: _Group, mask: np.ndarray) -> np.ndarray:
    return group.sum_by_household(np.ones(len(group.evidence)), mask).astype(np.int64)


def _counted_vehicles(group: _Group) -> np.ndarray:
    from verification import codes

    vehicles = group.item_mask(tuple(codes.items("vehicle")))
    exempt = group.item_mask(group.policy.value("vehicles.exempt_items"))
    return vehicles & ~exempt


def _counted_businesses(group: _Group, by_grade: np.ndarray) -> np.ndarray:
    """Business registrations, less the local exceptions (small capital; disabled holder)."""
    policy, ev = group.policy, group.evidence
    business = group.item_mask(("business",))
    exempt = np.zeros(len(ev), dtype=bool)
    capital_max = policy.value("business.exempt_capital_max")
    if capital_max:
        amount = ev["amount"]
        exempt |= (amount > 0) & (amount <= capital_max)
    return business & ~exempt & ~by_grade


def _grade_exempt_businesses(group: _Group) -> tuple[np.ndarray, np.ndarray]:
    """Per evidence row: the business registrations whose holder's disability grade exempts
    them (``business.exempt_disability_grade_max``), and of those the ones whose holder's
    certificate the register has cancelled (the exemption then rests on a grade nobody now
    certifies)."""
    business = group.item_mask(("business",))
    grade_max = group.policy.value("business.exempt_disability_grade_max") or 0
    by_grade, voided = np.zeros(len(business), dtype=bool), np.zeros(len(business), dtype=bool)
    if not grade_max or not business.any():
        return by_grade, voided
    # Look up only the holders of registrations: a few rows, not every member.
    tokens = group.evidence["person_token"][business]
    people = group.members[group.members["person_token"].isin(tokens)]
    holders = people.drop_duplicates("person_token").set_index("person_token")
    grade = holders["disability_grade"].reindex(tokens).fillna(0).to_numpy()
    rows = np.flatnonzero(business)
    by_grade[rows] = (grade >= 1) & (grade <= grade_max)
    voided[rows] = by_grade[rows] & holders["certificate_cancelled"].reindex(tokens).fillna(
        False).to_numpy(dtype=bool)
    return by_grade, voided


def _labour_capacity(group: _Group) -> dict[str, np.ndarray]:
    """特困 (特困人员认定办法 第五、八条): who lacks labour capacity, and who could support them.

    A member lacks labour capacity by age (60 and over, under 16; a minor of a household already
    supported as 特困 until 18, 第二十四条) or by a listed disability grade. Where some member
    lacks it, every other counted adult member who has it — a spouse, an adult child, another
    member with a support duty living in the household (审核确认办法 第七条) — is a legal
    supporter able to support, unless the register says they cannot work; so is one living apart
    (not counted: clergy) unless serving a sentence or declared missing (第八条（五）,
    ``tekun.supporter_unable_exclusions``). Members with capacity who are not such supporters
    (a 16- or 17-year-old; everyone, where no member lacks capacity) fail the labour-capacity
    test themselves.
    """
    policy, people = group.policy, group.members
    listed = policy.value("tekun.disability_max_grade") or {}
    max_grade = people["disability_type"].map(listed).fillna(0).to_numpy()
    grade = people["disability_grade"].fillna(0).to_numpy()
    disabled = (grade >= 1) & (grade <= max_grade)
    age = people["age"]
    unable = (
        (age >= policy.require("tekun.elderly_age")) | (age < policy.require("tekun.child_age"))
        | disabled
    )
    # a minor already supported as 特困 stays so until this age (第二十四条), though from 16 a
    # minor has labour capacity by 第五条
    continues = policy.value("tekun.minor_continues_until_age")
    if continues is not None:
        supported = _assessed_for(group, "tekun") & _with_status(group, "recipient")
        at_school = _at_school(group)
        unable = unable | (supported[people["pos"].to_numpy()] & ((age < continues) | at_school))
    counted = people["counted"].to_numpy()
    capacity = people["labour_capacity"].fillna(True).astype(bool).to_numpy()
    pos = people["pos"].to_numpy()

    def per_household(mask: np.ndarray) -> np.ndarray:
        return np.bincount(pos[mask], minlength=group.n)[: group.n]

    candidates = per_household(counted & unable)
    in_question = candidates[pos] > 0
    able = counted & ~unable
    supporter = able & in_question & (age >= 18) & capacity
    # a legal supporter not counted in the household (living apart, as clergy do) is still one,
    # unless their exclusion is one that 第八条（五） says leaves no ability to support (serving
    # a sentence, declared missing)
    unable_to_support = tuple(policy.value("tekun.supporter_unable_exclusions") or ())
    exclusion = people["exclusion"].fillna("").astype(str)
    present = ((~exclusion.isin(unable_to_support).to_numpy() | group.absent_with_means)
               & (exclusion != NO_SUPPORT_DUTY).to_numpy() & ~people["deceased"].to_numpy())
    outside = ~counted & present & ~unable & capacity & (age >= 18)
    return {
        # per member (not per household): who has capacity without being a supporter, whose
        # register records the capacity test cites
        "able_member_rows": able & ~supporter,
        "able_members": per_household(able & ~supporter),
        # Members the register marks as unable to work put 特困 in question even where the
        # national tests (age, listed disability) then say otherwise.
        "unable_members": per_household(counted & (unable | ~capacity)),
        "supporters": per_household(supporter | outside),
        "deceased": per_household(people["deceased"].to_numpy()),
        # counted members able to work (the 低保 re-check interval: 审核确认办法 第三十一条)
        "working_members": per_household(able & capacity),
        # 多重残疾 is graded by its most severe disability (GB/T 26341-2010): at a grade some
        # listed type reaches, the certificate alone says neither way whether that type is in it
        "unclear_disabilities": per_household(counted & _unclear_disability(people, listed)),
        # a listed grade the register's cancelled certificate no longer certifies (audit 9)
        "cancelled_certificates": per_household(
            counted & disabled & people["certificate_cancelled"].to_numpy(dtype=bool)),
    }


def _unclear_disability(people: pd.DataFrame, listed: dict) -> np.ndarray:
    """Members with a 多重残疾 (``multiple``) of a grade one of the listed types reaches."""
    worst = max(listed.values(), default=0)
    grade = people["disability_grade"].fillna(0).to_numpy()
    return ((people["disability_type"].astype(str) == "multiple").to_numpy()
            & (grade >= 1) & (grade <= worst) & ("multiple" not in listed))


# --------------------------------------------------------------------------- tests and outcome


def _tests(group: _Group, m: dict[str, np.ndarray],
           missing: dict[str, str]) -> dict[str, np.ndarray]:
    """Each rule as a boolean array (True = passes), plus the limits it was measured against
    and ``waiting``: whether a missing or stale source could change the outcome."""
    policy = group.policy
    urban = (group.households["urban_rural"].astype(str) == "urban").to_numpy()
    standard = _by_area(policy, "dibao.standard", urban)
    size = np.maximum(m["size"], 1)
    net = np.clip(m["income"] - m["deductions"], 0, None)
    # per-capita figures as the reasons show them (at the cent)
    per_capita = np.round(net / size, 2)
    tekun_net = np.clip(net - m["tekun_excluded"], 0, None)
    tekun_per_capita = np.round(tekun_net / size, 2)
    # months of the household's own standard (urban or rural), or of the urban one for every
    # household where a province says so (e.g. 广东: 城镇低保标准)
    asset_standard = (_by_area(policy, "dibao.standard", np.ones(group.n, dtype=bool))
                      if policy.value("assets.financial_limit_standard") == "urban" else standard)
    asset_limit = policy.require("assets.financial_limit_months") * asset_standard
    disposable = _by_area(policy, "rigid.disposable_income_previous_year", urban, required=False)
    threshold = policy.value("rigid.spending_share_threshold")
    # at the cent, as the per-capita figures: 12,000 of spending on a monthly 1999.9999999999998
    # of income is a share of exactly 0.5, which does not exceed ("超出") a threshold of 0.5
    annual_income = np.round(m["rigid_income_12m"], 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(annual_income > 0,
                         np.round(m["rigid_12m"], 2) / annual_income,
                         np.where(m["rigid_12m"] > 0, np.inf, 0.0))
        share = np.where(np.isfinite(share), np.round(share, 6), share)
    limits = {
        "standard": standard, "edge": standard * policy.require("dibao.edge_multiplier"),
        "asset_limit": asset_limit, "disposable": disposable,
        "share_threshold": np.full(group.n, np.nan if threshold is None else threshold),
        "per_capita": per_capita, "tekun_per_capita": tekun_per_capita, "share": share,
        "financial_per_capita": np.round(m["financial"] / size, 2), "net": net,
        "annual_per_capita": np.round(annual_income / size, 2),
    }
    # The tests compare the household's totals at the cent with the limit times its members:
    # 2,999.99 for three is below 3 × 1,000 (999.997 per person, shown rounded as 1,000.00),
    # and float noise (2,699.9999999 for 2,700) still cannot cross a limit.
    # Over the whole window, not per month: the monthly figure rounded to the cent made
    # 8,999.99 in six months 1,500.00 against a 1,500 line (audit 7).
    window = float(policy.require("income.look_back_months"))
    net_total, counted = np.round(net * window, 2), size.astype(np.float64) * window
    tekun_total = np.round(tekun_net * window, 2)
    tests = {
        "income": net_total < np.round(standard * counted, 2),
        "edge_income": net_total < np.round(limits["edge"] * counted, 2),
        "financial": np.round(m["financial"], 2) <= np.round(asset_limit * size, 2),
        "homes": m["homes"] <= policy.require("assets.homes_allowed"),
        "commercial": m["commercial"] <= policy.require("assets.commercial_properties_allowed"),
        "vehicles": m["vehicles"] <= policy.require("vehicles.allowed"),
        "businesses": m["businesses"] <= policy.require("business.allowed"),
        "payroll": m["payroll"] <= policy.require("payroll.allowed"),
        "tekun_capacity": m["able_members"] == 0,
        "tekun_supporter": m["supporters"] == 0,
        "tekun_income": tekun_total < np.round(standard * float(
            policy.require("tekun.no_income_source_ratio")) * counted, 2),
        # the year's income (the twelve months before the as-of month), as the rule reads it:
        # the 低保 window's monthly average times twelve put a family whose pay fell or rose
        # within the year on the wrong side of the line (audit 6)
        "disposable": annual_income < np.round(disposable * size, 2),
        # spending over the threshold's part of the year's income, at the cent: the share
        # rounded to six places made 12,000.02 of 24,000.02 exactly one half (audit 7)
        "share": np.where(annual_income > 0, np.round(m["rigid_12m"], 2) > np.round(
            limits["share_threshold"] * annual_income, 4), share > limits["share_threshold"]),
        "has_members": m["size"] > 0,
        # every member has died (a certain death record): nobody is left to assess or to pay
        "all_deceased": (m["size"] == 0) & (m["deceased"] > 0),
    }
    tests["rigid_excludes_others"] = np.full(
        group.n, bool(policy.value("rigid.other_categories_excluded")))
    # a household assessed for 特困 whose member's 多重残疾 grade leaves capacity open: checked
    # by a caseworker (the types it includes), never added or stopped on it (audit 8)
    tests["disability_unclear"] = (m["unclear_disabilities"] > 0) & _assessed_for(group, "tekun")
    # a 特困 capacity or a business exemption resting on a grade whose certificate the register
    # has cancelled (re-assessed, replaced or withdrawn: it does not say which) — checked by a
    # caseworker, never added or stopped on it (特困人员认定办法 第十条; audit 9)
    tests["certificate_cancelled"] = (((m["cancelled_certificates"] > 0)
                                       & _assessed_for(group, "tekun"))
                                      | (m["voided_exemptions"] > 0))
    tests["grade_exempt_business"] = m["grade_exempt_businesses"] > 0
    tests["deducted"] = m["spending_deductions"] > 0
    tests = {**tests, **{f"limit_{key}": value for key, value in limits.items()}}
    # the category assessed and the best one met, before any source is found missing
    tests["assessed"], tests["best"] = _category(group, tests)
    tests["waiting"] = _waiting(group, tests["assessed"], tests, missing)
    return tests


def _by_area(policy: Policy, path: str, urban: np.ndarray, required: bool = True) -> np.ndarray:
    values = policy.require(path) if required else policy.value(path)
    if values is None:
        return np.full(len(urban), np.nan)
    return np.where(urban, float(values["urban"]), float(values["rural"]))


def _category_tests(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Whether each household meets each category's own test (CATEGORIES order)."""
    assets = t["financial"] & t["homes"] & t["commercial"] & t["vehicles"] & t["businesses"]
    assets &= t["payroll"] & t["has_members"]
    met = {
        "tekun": assets & t["tekun_capacity"] & t["tekun_supporter"] & t["tekun_income"],
        "dibao": assets & t["income"],
        "edge": assets & t["edge_income"],
    }
    # where a locality reads 刚性支出办法 第四条（一） as a test (rigid.other_categories_excluded),
    # a family meeting 低保, 特困 or 边缘 is refused 刚性支出 and told of what it meets
    met["rigid"] = (assets & t["disposable"] & t["share"]
                    & ~(t["rigid_excludes_others"] & _meets_another(met)))
    return met


def _meets_another(met: dict[str, np.ndarray]) -> np.ndarray:
    """Whether each household meets 特困, 低保 or 边缘 (RIGID_OTHER_CATEGORY fails)."""
    return met["tekun"] | met["dibao"] | met["edge"]


def _category(group: _Group, t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The category each household is assessed for, and the best category it meets.

    A household is assessed for what it applied for or receives (its ``category``); one that
    names none (an applicant screened for any help, a monitored household) gets the first
    category it meets in CATEGORIES order. The best category met is returned beside it so that
    a household meeting another category is told so (ALSO_ELIGIBLE_*), never switched silently.
    """
    met = _category_tests(t)
    best = np.select([met[name] for name in CATEGORIES], list(CATEGORIES), default="none")
    if "category" not in group.households:
        return best, best
    applied = group.households["category"].astype(str).to_numpy()
    assessed = best.copy()
    for name in CATEGORIES:
        chosen = applied == name
        assessed[chosen] = np.where(met[name][chosen], name, "none")
    return assessed, best


def _benefit(group: _Group, category: np.ndarray, m: dict, t: dict) -> np.ndarray:
    policy, standard, size = group.policy, t["limit_standard"], m["size"]
    minimum = float(policy.require("benefit.minimum_per_person")) * size
    if policy.require("benefit.method") == "tiers":
        tiers = policy.require("benefit.tiers")
        dibao = _tier_benefit(tiers, np.round(t["limit_net"], 2), standard,
                              size.astype(np.float64)) * size
    else:
        # (standard − per-capita income) × members, computed as standard × members − net income
        # so that a per-capita income rounded to the cent does not shift the benefit.
        dibao = standard * size - t["limit_net"]
    dibao = np.maximum(dibao, minimum)
    tekun = standard * float(policy.require("tekun.support_multiplier")) * size
    raw = np.select([category == "dibao", category == "tekun"], [dibao, tekun], default=0.0)
    return _rounded(raw, float(policy.require("benefit.rounding_unit")),
                    policy.require("benefit.rounding_mode"))


def _tier_benefit(tiers: list[dict], net_total: np.ndarray, standard: np.ndarray,
                  members: np.ndarray) -> np.ndarray:
    """First tier whose income bound the household is under; none → nothing. The household's
    total at the cent against the bound times its members, as the eligibility tests compare:
    2,999.99 for three (999.997 each, shown as 1,000.00) is under a 1,000 standard."""
    conditions = [net_total < np.round(standard * tier["income_below"] * members, 2)
                  for tier in tiers]
    amounts = [standard * tier["benefit"] for tier in tiers]
    return np.select(conditions, amounts, default=0.0)


def _rounded(values: np.ndarray, unit: float, mode: str) -> np.ndarray:
    # Round the quotient first so 1650/0.01 = 165000.00000000003 does not round up a cent.
    steps = np.round(values / unit, 6)
    rounder = {"half_up": lambda x: np.floor(x + 0.5), "up": np.ceil, "down": np.floor}[mode]
    return np.round(rounder(steps) * unit, 2)


def _results(
    group: _Group, m: dict[str, np.ndarray], t: dict[str, np.ndarray], missing: dict[str, str]
) -> pd.DataFrame:
    category, best = t["assessed"], t["best"]
    # A household whose members have all died is decided (nobody left to pay) whatever else is
    # missing; otherwise a missing source that could change its outcome, or no counted member,
    # leaves it undetermined.
    undetermined = ((t["waiting"] | ~t["has_members"] | t["disability_unclear"]
                     | t["certificate_cancelled"]) & ~t["all_deceased"])
    decision = np.where(undetermined, "undetermined",
                        np.where(category != "none", "eligible", "not_eligible"))
    benefit = np.where(undetermined, np.nan, _benefit(group, category, m, t))
    category = np.where(undetermined, "none", category)
    other = np.where(undetermined | (best == category), "none", best)
    # a 特困 household's income as its own test counts it (tekun.extra_excluded_items left out),
    # not the 低保 rules' figure: the 核对报告 shows what decided it
    tekun = category == "tekun"
    income = np.where(tekun, m["income"] - m["tekun_excluded"], m["income"])
    per_capita = np.where(tekun, t["limit_tekun_per_capita"], t["limit_per_capita"])
    return pd.DataFrame(
        {
            "category": category,
            "eligible": decision == "eligible",
            "decision": decision,
            "benefit": benefit,
            "household_size": m["size"],
            "income_monthly": np.round(income, 2),
            "deductions_monthly": np.round(m["deductions"], 2),
            "per_capita_income": np.round(per_capita, 2),
            "financial_assets": np.round(m["financial"], 2),
            "financial_assets_per_capita": np.round(t["limit_financial_per_capita"], 2),
            "homes": m["homes"],
            "commercial_properties": m["commercial"],
            "vehicles": m["vehicles"],
            "businesses": m["businesses"],
            "public_payroll": m["payroll"],
            "rigid_spending_12m": np.round(m["rigid_12m"], 2),
            "missing_sources": ",".join(sorted(missing)),
            "standard": t["limit_standard"],
            "other_category": other,
            "other_benefit": np.where(other == "none", np.nan,
                                      _benefit(group, other, m, t)),
            "deceased_members": m["deceased"],
            "recheck_due": _recheck_due(group, category, m),
        },
        index=group.households.index,
    )[RESULT_COLUMNS]


def _recheck_due(group: _Group, category: np.ndarray, m: dict[str, np.ndarray]) -> np.ndarray:
    """The next periodic re-check of a household that meets its category, from the as-of date
    (this review's data), as ISO dates (None: none due). 审核确认办法 第三十一条: a 低保 family
    with no member able to work (stable income: the old, the severely ill or disabled) yearly,
    one with a member able to work (income not fixed) every six months; 特困 yearly (2020意见
    第7项); 低保边缘 and 刚性支出 as the region sets (刚性支出办法 第十条: a recognition lasts at
    most twelve months). ``dynamic.recheck.*``."""
    def months(name: str) -> int:
        return int(group.policy.value(f"dynamic.recheck.{name}") or 0)

    interval = np.select(
        [category == "tekun", (category == "dibao") & (m["working_members"] > 0),
         category == "dibao", category == "edge", category == "rigid"],
        [months("tekun_months"), months("dibao_irregular_months"),
         months("dibao_stable_months"), months("edge_months"), months("rigid_months")],
        default=0)
    due = np.full(group.n, None, dtype=object)
    for n in np.unique(interval[interval > 0]):  # a handful of intervals: one date each
        due[interval == n] = (pd.Timestamp(group.as_of) + pd.DateOffset(months=int(n))
                              ).date().isoformat()
    return due


def _waiting(group: _Group, category: np.ndarray, t: dict[str, np.ndarray],
             missing: dict[str, str]) -> np.ndarray:
    """Per household: whether a missing or stale source could change its outcome (the rules
    that need the source, ``requirements.*``, and which way the source's records count:
    ``_AGAINST_RULES`` or not)."""
    waiting = np.zeros(group.n, dtype=bool)
    if not missing:
        return waiting
    passing = category != "none"
    recipient = _with_status(group, "recipient")
    # failing a test on records no missing deduction or rigid cost could undo (an asset, a
    # registration, the payroll); a recipient's support still never stops while one is missing
    ruled_out = _ruled_out(t)
    could_pass = ~passing & (~ruled_out | recipient)
    against = passing | recipient
    unnamed = ~np.logical_or.reduce([_assessed_for(group, name) for name in CATEGORIES])
    matters = {
        "deductions": could_pass | (category == "dibao"),
        # the rigid-spending test decides only a household assessed for it, or one screened for
        # any help that meets nothing else (a 刚性支出 family's spending can only add to it)
        "rigid": could_pass & (_assessed_for(group, "rigid") | unnamed),
        # a school record only continues a 特困 person's support past 18 (第二十四条): it
        # matters to a supported household that does not pass and has a member it could cover
        "tekun_school": ~passing & _school_could_continue(group),
        # the register decides a working-age member's capacity either way (第五条): for a
        # household assessed for 特困, and one screened for any help that would be proposed
        # for 特困 on the roster's unverified grade (a monitored household; audit 8)
        "tekun_capacity": (_assessed_for(group, "tekun") | (unnamed & (category == "tekun")))
        & _working_age_member(group),
        # a business exempt on the roster's grade alone: the register would confirm or void it
        "business_exemption": t["grade_exempt_business"] & against,
    }
    # A stale feed's costs (not a missing feed's: it has none) may be what a household passes
    # on — a 刚性支出 family recognised on a stale medical feed's 15,000, a deduction that puts
    # an 边缘 family under the line: an ADD must not rest on them (audit 11).
    rests_on = {"deductions": passing & t["deducted"], "rigid": category == "rigid"}
    stale = _rules_missing(group.policy, {k: v for k, v in missing.items() if v == "stale"})
    for rule in _rules_missing(group.policy, missing):
        waiting |= matters.get(rule, against if rule in _AGAINST_RULES else True)
        if rule in stale and rule in rests_on:
            waiting |= rests_on[rule]
    return waiting


def _school_could_continue(group: _Group) -> np.ndarray:
    """Per household: a 特困 recipient with a counted member of 18 or over and under the
    elderly age — one a school record would keep supported (``_labour``)."""
    policy, people = group.policy, group.members
    continues = policy.value("tekun.minor_continues_until_age")
    if continues is None:
        return np.zeros(group.n, dtype=bool)
    age = people["age"].to_numpy()
    covered = (people["counted"].to_numpy() & (age >= continues)
               & (age < policy.require("tekun.elderly_age")))
    member_of = np.bincount(people["pos"].to_numpy()[covered], minlength=group.n)[: group.n] > 0
    return member_of & _assessed_for(group, "tekun") & _with_status(group, "recipient")


def _working_age_member(group: _Group) -> np.ndarray:
    """Per household: a counted member between the 特困 child and elderly ages, whose labour
    capacity only the disability register can settle."""
    policy, people = group.policy, group.members
    age = people["age"].to_numpy()
    working = (people["counted"].to_numpy() & (age >= policy.require("tekun.child_age"))
               & (age < policy.require("tekun.elderly_age")))
    return np.bincount(people["pos"].to_numpy()[working], minlength=group.n)[: group.n] > 0


def _rules_missing(policy: Policy, missing: dict[str, str]) -> list[str]:
    """The rules (``requirements.*``, _RULE_SOURCES order) that need a missing or stale source."""
    return [rule for rule in _RULE_SOURCES
            if set(policy.value(f"requirements.{rule}") or {}) & set(missing)]


def _empty_results() -> pd.DataFrame:
    return pd.DataFrame(columns=RESULT_COLUMNS, index=pd.Index([], name="household_id"))


def _no_reasons() -> pd.DataFrame:
    return pd.DataFrame(columns=REASON_COLUMNS).assign(cites=pd.Series(dtype=np.int64))


# --------------------------------------------------------------------------- reasons


def _reasons(
    group: _Group, m: dict, t: dict, results: pd.DataFrame, missing: dict[str, str],
    changing: np.ndarray,
) -> pd.DataFrame:
    policy = group.policy
    # the income records every income test cites (one list per household, made once: the 特困
    # and 刚性支出 tests cite the same records as the 低保 line)
    income_refs = _refs(group, group.item_mask(policy.require("income.counted_items"))
                        | group.item_mask(policy.require("income.deductible_items")))
    parts = [
        part
        for part in (
            _income_reasons(group, m, t, income_refs)
            + _asset_reasons(group, m, t)
            + _tekun_reasons(group, m, t, income_refs)
            + _rigid_reasons(group, m, t, income_refs)
            + _outcome_reasons(group, results, t)
            + _other_category_reasons(group, results)
            + _death_reasons(group, m, t)
            + _data_reasons(group, m, t, results, missing, changing)
        )
        if len(part["household_id"])
    ]
    if not parts:
        return _no_reasons()
    columns = {
        column: np.concatenate([part[column] for part in parts])
        for column in ("household_id", "passed", "value", "limit", "evidence_refs", "cites")
    }
    # the text of the cited rows, made once per list (the rows' own text where none are cited)
    listed = columns["cites"] >= 0
    columns["evidence_refs"][listed] = group.cited.build().ref_texts(
        group.evidence.evidence, columns["cites"][listed])
    sizes = [len(part["household_id"]) for part in parts]
    # One label per part: build the categoricals from codes instead of hashing millions of strings.
    for column in ("code", "parameter", "reference"):
        labels = pd.Index(sorted({part[column] for part in parts}))
        codes = np.repeat(labels.get_indexer([part[column] for part in parts]), sizes)
        columns[column] = pd.Categorical.from_codes(codes, categories=labels)
    return pd.DataFrame(columns)[CITED_REASON_COLUMNS]


def _rows(
    group: _Group,
    code: str,
    where: np.ndarray,
    passed: np.ndarray | bool,
    value: np.ndarray | float,
    limit: np.ndarray | float,
    parameter: str,
    cites: np.ndarray | None = None,
    reference: str | None = None,
    refs: np.ndarray | None = None,
) -> dict:
    """Reason rows for the households selected by ``where`` (a boolean array over positions),
    citing the lists ``cites`` (from ``_refs``) or, for references that are not evidence rows,
    the text ``refs``."""
    positions = np.flatnonzero(where)
    pick = (lambda x: np.broadcast_to(x, (group.n,))[positions])  # noqa: E731
    return {
        "household_id": group.households.index.to_numpy()[positions],
        "code": code,
        "passed": pick(passed).astype(bool),
        "value": np.round(pick(np.asarray(value, dtype=np.float64)), 4),
        "limit": pick(np.asarray(limit, dtype=np.float64)),
        "parameter": parameter,
        "reference": group.policy.reference(parameter) if reference is None else reference,
        "evidence_refs": (refs[positions] if refs is not None
                          else np.full(len(positions), "", dtype=object)),
        "cites": (cites[positions] if cites is not None
                  else np.full(len(positions), NO_CITATION, dtype=np.int64)),
    }


def _refs(group: _Group, mask: np.ndarray, rows: _Rows | None = None) -> np.ndarray:
    """Per household position, the number of the list of its rows in ``mask`` (evidence
    positions, in evidence order), -1 without any."""
    rows = group.evidence if rows is None else rows
    chosen = np.flatnonzero(mask)
    cites = np.full(group.n, NO_CITATION, dtype=np.int64)
    if not len(chosen):
        return cites
    pos = rows["pos"][chosen]  # rows are sorted by position, so each household is one run
    starts = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
    cites[pos[starts]] = group.cited.add(rows["ref_rows"][rows["ref_at"][chosen]], starts)
    return cites


def _income_reasons(group: _Group, m: dict, t: dict,
                    income_refs: np.ndarray) -> list[pd.DataFrame]:
    policy = group.policy
    income = group.item_mask(policy.require("income.counted_items"))
    excluded = group.item_mask(policy.require("income.excluded_items"))
    deductible = group.item_mask(policy.require("income.deductible_items"))
    # 转移性支出 are cited by their own row (TRANSFER_SPENDING_DEDUCTED, on every flag): a
    # contribution shares its wage's record, so citing both here would list each record twice
    transfer = group.item_mask(policy.value("income.transfer_spending_items"))
    members = m["size"] > 0
    # a 特困 household's income also sets aside tekun.extra_excluded_items (高龄津贴, 特困人员认定
    # 办法 第六条): shown with the rest, as received and not counted (audit 10)
    tekun = _assessed_for(group, "tekun") | (t["assessed"] == "tekun")
    tekun_items = income & group.item_mask(policy.value("tekun.extra_excluded_items"))
    excluded = excluded | (tekun_items & tekun[group.evidence["pos"]])
    set_aside = m["excluded"] + np.where(tekun, m["tekun_excluded"], 0.0)
    return [
        _rows(group, "INCOME_OVER_STANDARD", members, t["income"], t["limit_per_capita"],
              t["limit_standard"], "dibao.standard", income_refs),
        _rows(group, "INCOME_OVER_1_5X", members & ~t["income"], t["edge_income"],
              t["limit_per_capita"], t["limit_edge"], "dibao.edge_multiplier", income_refs),
        _rows(group, "INCOME_EXCLUDED", set_aside > 0, True, set_aside, np.nan,
              "income.excluded_items", _refs(group, excluded)),
        _rows(group, "DEDUCTION_APPLIED", m["spending_deductions"] > 0, True,
              m["spending_deductions"], m["income"], "income.deductible_items",
              _refs(group, deductible)),
        _rows(group, "TRANSFER_SPENDING_DEDUCTED", m["transfer_spending"] > 0, True,
              m["transfer_spending"], m["income"], "income.transfer_spending_items",
              _refs(group, transfer)),
    ]


def _asset_reasons(group: _Group, m: dict, t: dict) -> list[pd.DataFrame]:
    from verification import codes

    policy = group.policy
    # the balances counted: not one dated later, nor one a later balance replaced
    financial = group.item_mask(policy.require("assets.financial_items")) & group.evidence[
        "registered"]
    vehicles = group.item_mask(tuple(codes.items("vehicle")))
    vehicle_refs = _refs(group, vehicles)
    business = group.item_mask(("business",))
    business_refs = _refs(group, business)
    homes, commercial = group.item_mask(("home",)), group.item_mask(("commercial_property",))
    payroll = group.item_mask(("public_payroll",))
    has = (lambda cites: cites >= 0)  # noqa: E731
    return [
        _rows(group, "FINANCIAL_ASSETS_OVER_LIMIT", m["size"] > 0, t["financial"],
              t["limit_financial_per_capita"], t["limit_asset_limit"],
              "assets.financial_limit_months", _refs(group, financial)),
        _rows(group, "PROPERTY_COUNT_EXCEEDED", m["homes"] > 0, t["homes"], m["homes"],
              policy.require("assets.homes_allowed"), "assets.homes_allowed",
              _refs(group, homes)),
        _rows(group, "COMMERCIAL_PROPERTY", m["commercial"] > 0, t["commercial"], m["commercial"],
              policy.require("assets.commercial_properties_allowed"),
              "assets.commercial_properties_allowed", _refs(group, commercial)),
        _rows(group, "VEHICLE_OWNED", has(vehicle_refs), t["vehicles"], m["vehicles"],
              policy.require("vehicles.allowed"), "vehicles.exempt_items", vehicle_refs),
        _rows(group, "BUSINESS_REGISTERED", has(business_refs), t["businesses"], m["businesses"],
              policy.require("business.allowed"), "business.allowed", business_refs),
        _rows(group, "PUBLIC_PAYROLL", m["payroll"] > 0, t["payroll"], m["payroll"],
              policy.require("payroll.allowed"), "payroll.allowed", _refs(group, payroll)),
    ]


def _tekun_reasons(group: _Group, m: dict, t: dict,
                   income_refs: np.ndarray) -> list[pd.DataFrame]:
    """Only where extreme-poverty support is in question: a member unable to work, or the
    household applied for (or receives) it."""
    candidate = (m["unable_members"] > 0) | _assessed_for(group, "tekun")
    # A stop or refusal on the 特困 income test cites the income records, as the 低保 line's
    # row does (its exclusions, the 高龄津贴, are shown set aside by INCOME_EXCLUDED)
    return [
        _rows(group, "TEKUN_LABOUR_CAPACITY", candidate, t["tekun_capacity"], m["able_members"],
              0, "tekun.elderly_age", _able_certificates(group, m["able_member_rows"])),
        _rows(group, "TEKUN_SUPPORTER", candidate, t["tekun_supporter"], m["supporters"], 0,
              "tekun.elderly_age"),
        _rows(group, "TEKUN_INCOME_OVER_STANDARD", candidate, t["tekun_income"],
              t["limit_tekun_per_capita"], t["limit_standard"], "tekun.extra_excluded_items",
              income_refs),
    ]


def _assessed_for(group: _Group, category: str) -> np.ndarray:
    """Per household: whether it applied for (or receives) ``category``."""
    return _column_is(group, "category", category)


def _with_status(group: _Group, status: str) -> np.ndarray:
    return _column_is(group, "status", status)


def _column_is(group: _Group, column: str, value: str) -> np.ndarray:
    households = group.households
    if column not in households:  # frames built without it (hand-made cases)
        return np.zeros(group.n, dtype=bool)
    return (households[column].astype(str) == value).to_numpy()


def _at_school(group: _Group) -> np.ndarray:
    """Per member: a certain record of the education bureau, within the last twelve months,
    that they are at a school stage ``tekun.school_continues_items`` lists (第二十四条: at 18 and
    over, still in compulsory education, 普通高中 or 中等职业学校)."""
    ev, people = group.evidence, group.members
    stages = group.item_mask(group.policy.value("tekun.school_continues_items"))
    rows = np.flatnonzero(stages & (ev["end_m"] >= _month_of(group.as_of) - 12))
    return _same_member(people["pos"].to_numpy(), people["person_token"].to_numpy(),
                        ev["pos"][rows], ev["person_token"][rows])


def _able_certificates(group: _Group, able: np.ndarray) -> np.ndarray:
    """Per household, the list of the disability-register records (certain) of its members
    with labour capacity (``able``: per member): the partner's word that a member regained it
    (a re-grade), which a stop of 特困 support may rest on; none where the caseload alone says
    so (an age, a member moved in)."""
    from verification import codes

    ev, people = group.evidence, group.members
    # issued on or before the as-of date (registers.members_with_disability_register)
    certificates = group.item_mask(tuple(codes.items("disability"))) & ev["registered"]
    at = np.flatnonzero(certificates)  # only the certificates' rows: a few of the evidence
    theirs = np.zeros(len(certificates), dtype=bool)
    theirs[at] = _same_member(ev["pos"][at], ev["person_token"][at],
                              people["pos"].to_numpy()[able],
                              people["person_token"].to_numpy()[able])
    return _refs(group, theirs)


def _same_member(pos: np.ndarray, tokens: np.ndarray, other_pos: np.ndarray,
                 other_tokens: np.ndarray) -> np.ndarray:
    """Whether each (household position, person token) is among the other pairs."""
    if not len(pos) or not len(other_pos):
        return np.zeros(len(pos), dtype=bool)
    return pd.MultiIndex.from_arrays([pos, tokens]).isin(
        pd.MultiIndex.from_arrays([other_pos, other_tokens]))


def _rigid_reasons(group: _Group, m: dict, t: dict,
                   income_refs: np.ndarray) -> list[pd.DataFrame]:
    """Only for households with rigid spending or assessed for 刚性支出 (a refusal says which of
    its tests failed: 刚性支出办法 第七条), and only where the local figures exist."""
    candidate = (m["rigid_12m"] > 0) | _assessed_for(group, "rigid")
    candidate &= ~np.isnan(t["limit_disposable"])
    candidate &= ~np.isnan(t["limit_share_threshold"])
    spending_refs = _refs(group, group.item_mask(group.policy.value("rigid.spending_items")))
    # Both tests count the year's income: a refusal or a stop on them cites it, as the 低保
    # line's row does; the share cites the spending, or where there is none, the income it is
    # a share of (a recipient whose fresh feeds show no spending left; audit 10).
    share_refs = np.where(spending_refs == NO_CITATION, income_refs, spending_refs)
    return [
        _rows(group, "INCOME_OVER_DISPOSABLE", candidate, t["disposable"],
              t["limit_annual_per_capita"], t["limit_disposable"],
              "rigid.disposable_income_previous_year", income_refs),
        _rows(group, "RIGID_SPENDING_SHARE_LOW", candidate, t["share"],
              np.minimum(t["limit_share"], 1e9), t["limit_share_threshold"],
              "rigid.spending_share_threshold", share_refs),
        _rows(group, "RIGID_OTHER_CATEGORY", candidate & t["rigid_excludes_others"],
              ~_meets_another(_category_tests(t)), np.nan, np.nan,
              "rigid.other_categories_excluded"),
    ]


_OUTCOME_CODES = {
    "tekun": "ELIGIBLE_TEKUN", "dibao": "ELIGIBLE_DIBAO", "edge": "ELIGIBLE_EDGE",
    "rigid": "ELIGIBLE_RIGID", "none": "NOT_ELIGIBLE",
}


def _outcome_reasons(group: _Group, results: pd.DataFrame, t: dict) -> list[pd.DataFrame]:
    decided = (results["decision"] != "undetermined").to_numpy()
    category = results["category"].to_numpy()
    benefit = results["benefit"].to_numpy()
    return [
        _rows(group, code, decided & (category == name), name != "none", benefit,
              t["limit_standard"], "benefit.method")
        for name, code in _OUTCOME_CODES.items()
    ]


_OTHER_CATEGORY = {  # category → (reason code, the rule that defines it)
    "tekun": ("ALSO_ELIGIBLE_TEKUN", "特困人员认定办法（民发〔2021〕43号）第四、五、六、八条："
              "无劳动能力、无生活来源、无法定赡养抚养扶养义务人或其无履行能力 / "
              "no labour capacity, "
              "no means of living, no legal supporter able to support"),
    "dibao": ("ALSO_ELIGIBLE_DIBAO", "最低生活保障审核确认办法（民发〔2021〕57号）第三条：人均收入"
              "低于当地低保标准且财产符合规定 / income under the standard, assets within limits"),
    "edge": ("ALSO_ELIGIBLE_EDGE", "最低生活保障审核确认办法（民发〔2021〕57号）第八条：人均收入"
             "低于低保标准1.5倍且财产符合规定 / income under 1.5 x the standard, "
             "assets within limits"),
    "rigid": ("ALSO_ELIGIBLE_RIGID", "刚性支出困难家庭认定办法 第四条：人均收入低于上年度人均可支配"
              "收入、刚性支出占比达到规定 / income under last year's disposable income, rigid "
              "spending share over the threshold"),
}


def _other_category_reasons(group: _Group, results: pd.DataFrame) -> list[dict]:
    """主动发现 (审核确认办法 第六条第二款): a household that meets another category than the one
    it is assessed for is told so, with the rule and that category's benefit (value) beside the
    one assessed (limit); its category and benefit are not changed."""
    other = results["other_category"].to_numpy()
    benefit = results["benefit"].fillna(0).to_numpy()
    return [
        _rows(group, code, other == name, True, results["other_benefit"].to_numpy(), benefit,
              "benefit.method", reference=rule)
        for name, (code, rule) in _OTHER_CATEGORY.items()
    ]


def _death_reasons(group: _Group, m: dict, t: dict) -> list[dict]:
    """A member died (certain death record): removed from the household from the date of death.
    Fails only where nobody is left (assistance stops); otherwise the household is assessed
    without them and re-checked within dynamic.recheck.after_death_months."""
    deaths = group.item_mask(("death",)) & (m["deceased"] > 0)[group.evidence["pos"]]
    return [_rows(group, "MEMBER_DECEASED", m["deceased"] > 0, ~t["all_deceased"],
                  m["deceased"], m["size"] + m["deceased"], "dynamic.recheck.after_death_months",
                  _refs(group, deaths))]


def _data_reasons(group: _Group, m: dict, t: dict, results: pd.DataFrame,
                  missing: dict[str, str], changing: np.ndarray) -> list[dict]:
    rows = [_rows(group, "NO_COUNTED_MEMBERS", (m["size"] == 0) & ~t["all_deceased"], False, 0,
                  1, "household",
                  reference="最低生活保障审核确认办法（民发〔2021〕57号）第七条 共同生活家庭成员")]
    if missing:
        needing = _rules_missing(group.policy, missing)
        listed = ";".join(f"{kind}::{state}" for kind, state in sorted(missing.items()))
        refs = np.full(group.n, listed, dtype=object)
        # only the households a missing source could change (the others are decided: _waiting)
        waiting = (results["decision"].eq("undetermined").to_numpy() & t["has_members"]
                   & t["waiting"])
        rows.append(_rows(group, "SOURCE_UNAVAILABLE", waiting, False,
                          len(missing), 0, f"requirements.{needing[0]}", refs=refs,
                          reference="；".join(group.policy.reference(f"requirements.{rule}")
                                             for rule in needing)))
    rows.append(_rows(group, "TEKUN_DISABILITY_UNCLEAR",
                      t["disability_unclear"] & ~t["all_deceased"], False,
                      m["unclear_disabilities"], 0, "tekun.disability_max_grade"))
    rows.append(_rows(group, "DISABILITY_CERTIFICATE_CANCELLED",
                      t["certificate_cancelled"] & ~t["all_deceased"], False,
                      np.maximum(m["cancelled_certificates"], m["voided_exemptions"]), 0,
                      "tekun.disability_max_grade",
                      _refs(group, group.item_mask((CANCELLED_CERTIFICATE,)))))
    uncertain = group.uncertain
    if len(uncertain):
        refs = _refs(group, np.ones(len(uncertain), dtype=bool), uncertain)
        counts = np.bincount(uncertain["pos"], minlength=group.n)[: group.n]
        # passed: the records would change the outcome, so a caseworker must resolve them
        # (REVIEW); otherwise they are listed as unresolved and raise nothing.
        rows.append(_rows(group, "MATCH_UNCERTAIN", counts > 0, changing, counts, 0,
                          "match_grade", refs,
                          reference="证据匹配等级非确定，仅供人工复核 / match not certain"))
    return rows
