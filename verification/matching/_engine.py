"""The matcher: exact on tokens, then Fellegi–Sunter on name, birth date, gender and region.

``link`` is the general probabilistic linker (two frames, settings → scored pairs); it knows
nothing about households and is what the FEBRL benchmark runs. ``match_records`` is the
household pipeline step built on it and on ``exact_pairs``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from verification.intake.tokens import TokenKey
from verification.matching._blocking import (
    BlockIndex,
    candidate_pairs,
    exploded,
    listed_pairs,
    pairs_per_rule,
    rows_agree,
    with_columns,
    with_derived,
)
from verification.matching._codes import KEYED_ROW
from verification.matching._compare import NULL_LEVEL, RightValues, comparison_matrix
from verification.matching._em import U_FLOOR, FellegiSunter, fit, initial_m, level_frequencies
from verification.matching._exact import MEMBER_KEY, exact_pairs
from verification.matching._grades import GRADE_DTYPE, GRADES, NONE, POSSIBLE, PROBABLE
from verification.matching.names import NAME_KEY_COLUMNS, NAME_KEY_VERSION, name_keys
from verification.matching.settings import LISTED_AGAINST, MatchSettings, default_settings
from verification.sorting import difference, distinct, union

log = logging.getLogger(__name__)


@dataclass
class LinkResult:
    """Every candidate pair with its comparison levels, weight, probability and grade."""

    pairs: pd.DataFrame  # left_row, right_row (positions), one level column per comparison, …
    model: FellegiSunter
    settings: MatchSettings

    def model_log(self) -> dict[str, Any]:
        labels = [(c.name, c.level_labels) for c in self.settings.comparisons]
        return self.model.to_dict(labels)


def _ensure_columns(frame: pd.DataFrame, columns: set[str]) -> pd.DataFrame:
    """Absent comparison columns become all-missing: they then give no evidence either way."""
    return with_columns(frame, {c: pd.NA for c in columns if c not in frame.columns})


def _grades(probability: np.ndarray, settings: MatchSettings) -> np.ndarray:
    """Codes into GRADES: 1 probable, 2 possible, 3 none (0, certain, is never given here)."""
    return np.select(
        [probability >= settings.probable_threshold, probability >= settings.possible_threshold],
        [1, 2],
        default=3,
    ).astype(np.int8)


def _fit_unlabelled(gamma, li, training_rows, n_levels, settings: MatchSettings):
    train = np.isin(li, training_rows)
    # Nearly all candidate pairs are non-matches, so their level frequencies start u well.
    u_start = level_frequencies(gamma[train], n_levels, np.ones(int(train.sum())))
    # start: one match per training record among its candidates
    prior_start = float(np.clip(len(np.unique(li[train])) / max(train.sum(), 1), 1e-6, 0.5))
    iterations = settings.em_max_iterations if train.any() else 0
    model = fit(gamma[train], n_levels, u_start, prior_start, iterations, settings.em_tolerance)
    model.method = "em"
    return model


def _random_pair_u(left, right, n_levels, settings: MatchSettings,
                   right_values: RightValues | None = None,
                   known_match: np.ndarray | None = None) -> list[np.ndarray]:
    """u as level frequencies among random pairs: almost all of them are non-matches. The pairs
    the token says are the same person (``known_match``) are left out, every pair is taken when
    there are fewer than ``settings.random_pairs_for_u``, and ``settings.population_u`` is
    blended in (``_with_population``): a batch of one family has a handful of pairs, mostly of
    the record and its own person."""
    if len(left) * len(right) <= settings.random_pairs_for_u:
        li = np.repeat(np.arange(len(left)), len(right))
        ri = np.tile(np.arange(len(right)), len(left))
    else:
        rng = np.random.default_rng(settings.seed)
        li = rng.integers(0, len(left), settings.random_pairs_for_u)
        ri = rng.integers(0, len(right), settings.random_pairs_for_u)
    if known_match is not None:
        other = known_match[li] != ri
        li, ri = li[other], ri[other]
    gamma = comparison_matrix(left, right, li, ri, settings.comparisons,
                              right_values=right_values)
    population = dict(settings.population_u)
    u = []
    for k, comparison in enumerate(settings.comparisons):
        estimate = None
        if comparison.column in LISTED_AGAINST:
            estimate = _listed_u(left, right, comparison.column, n_levels[k])
        elif comparison.name in settings.fallback_only:
            estimate = _frequency_u(left, right, comparison, n_levels[k], right_values)
        if estimate is None:
            levels = gamma[:, k]
            counts = np.bincount(levels[levels != NULL_LEVEL], minlength=n_levels[k])
            share = np.maximum(counts / max(counts.sum(), 1), U_FLOOR)
            estimate = (share / share.sum(), float(counts.sum()))
        u.append(_with_population(*estimate, population.get(comparison.name), settings))
    return u


def _with_population(u: np.ndarray, pairs: float, population: tuple[float, ...] | None,
                     settings: MatchSettings) -> np.ndarray:
    """The run's u over ``pairs`` pairs and the population's u counted as
    ``settings.population_u_pairs`` pairs, pooled."""
    if population is None:
        return u
    weight = settings.population_u_pairs
    u = (u * pairs + np.asarray(population) * weight) / (pairs + weight)
    return u / u.sum()


def _value_counts(left: pd.DataFrame, right: pd.DataFrame, column: str, on_left: np.ndarray,
                  on_right: np.ndarray, listed: bool,
                  values: RightValues) -> tuple[np.ndarray, np.ndarray]:
    """How many of the ``on_left`` left rows and of the ``on_right`` right rows hold each value
    of ``column`` the right holds (each value of its space-separated list when ``listed``), by
    the right's codes."""
    if listed:
        right_slots, _, size = values.slots(right, column)
        lc, rc = values.left_slots(right, left, column)[on_left], right_slots[on_right]
    else:
        coded = values.coded(right, column)
        lc, rc = values.left_codes(right, left, column)[on_left], coded.right[on_right]
        size = coded.right_values
    lc, rc = lc[(lc >= 0) & (lc < size)], rc[rc >= 0]
    return np.bincount(lc, minlength=size), np.bincount(rc, minlength=size)


def _frequency_u(left: pd.DataFrame, right: pd.DataFrame, comparison,  # noqa: ANN001
                 size: int, values: RightValues | None = None
                 ) -> tuple[np.ndarray, float] | None:
    """u of a comparison whose levels are nested equalities (kinds ``exact`` and ``overlap``:
    the same room is the same building is the same place; the same number has the same last 8
    digits), exactly from value frequencies: the chance that a random record and a random
    member, both carrying the comparison, agree at a level is Σ over values of the shares of
    records and of members holding it. Random pairs would almost never meet two addresses of
    the same flat (about one pair in the roster's household count). A pair sharing two values
    of a list is counted twice, so a list level's u is at most overstated (its weight
    understated), by at most the list length. Returns u and the number of pairs it is over;
    None when a level is of another kind."""
    if any(level.kind not in ("exact", "overlap") for level in comparison.levels):
        return None
    on_left = left[comparison.column].notna().to_numpy() if comparison.column in left else None
    on_right = right[comparison.column].notna().to_numpy() if comparison.column in right else None
    if on_left is None or on_right is None or not on_left.any() or not on_right.any():
        return np.full(size, 1.0 / size), 0.0
    values = values if values is not None else RightValues()
    cumulative = []
    for level in comparison.levels:
        column = level.column or comparison.column
        lc, rc = _value_counts(left, right, column, on_left, on_right, level.kind == "overlap",
                               values)
        both = float(np.dot(lc.astype(np.int64), rc.astype(np.int64)))  # exact: integers
        cumulative.append(min(both / (on_left.sum() * on_right.sum()), 1.0))
    cumulative = np.maximum.accumulate(np.array(cumulative))
    # a level no pair reaches is floored at half a pair in all (not at zero: it would veto)
    floor = 0.5 / (float(on_left.sum()) * float(on_right.sum()))
    u = np.maximum(np.diff(np.concatenate([[0.0], cumulative, [1.0]])), floor)
    return u / u.sum(), float(on_left.sum()) * float(on_right.sum())


def _fallback_only_m(model: FellegiSunter, gamma: np.ndarray, li: np.ndarray, ri: np.ndarray,
                     known_match: np.ndarray, adjust: np.ndarray,
                     settings: MatchSettings) -> None:
    """m of the ``settings.fallback_only`` comparisons (address, phone), which no
    token-labelled pair carries at intake: from the candidate pairs of the unlabelled records,
    each counted with its posterior match probability on the *other* comparisons (the weights
    learnt from labelled pairs; one record's pairs count at most one match in all), plus the
    labelled pairs that do carry them and the weak prior. One E-step with everything else held:
    the address never weighs its own estimate. Sound as far as address and phone are
    independent of name and birth date given match status — they are, except within a family,
    where a relative who shares the address shares it with the person too and so changes no
    ranking between them."""
    index = [k for k, c in enumerate(settings.comparisons) if c.name in settings.fallback_only]
    if not index or not len(gamma):
        return
    n_levels = [len(c.levels) + 1 for c in settings.comparisons]
    unlabelled = known_match[li] < 0
    true_pair = ~unlabelled & (ri == known_match[li])
    others = gamma[unlabelled].copy()
    others[:, index] = NULL_LEVEL
    weight = model.match_weight(others) + adjust[unlabelled]
    probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))
    owner = li[unlabelled]
    mass = np.bincount(owner, weights=probability, minlength=int(li.max(initial=-1)) + 1)
    probability = probability / np.maximum(mass[owner], 1.0)
    prior = initial_m(n_levels)
    for k in index:
        size = n_levels[k]
        levels = gamma[unlabelled, k]
        present = levels >= 0
        counts = np.bincount(levels[present], weights=probability[present], minlength=size)
        labelled = gamma[true_pair, k]
        counts = counts + np.bincount(labelled[labelled >= 0], minlength=size)
        pseudo = settings.m_prior_strength * prior[k]
        model.m[k] = (counts + pseudo) / (counts + pseudo).sum()
        model.u[k] = _nested_weights(model.m[k], model.u[k])


def _nested_weights(m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """u raised where a weaker level would weigh more than a stronger one (the same building
    more than the same room, when hardly any pair is at it): levels are nested, so agreeing
    only on the building is never more evidence than agreeing on the room too."""
    u = u.copy()
    for level in range(1, len(u) - 1):
        if m[level] / u[level] > m[level - 1] / u[level - 1]:
            u[level] = m[level] * u[level - 1] / m[level - 1]
    return u / u.sum()


def _listed_u(left: pd.DataFrame, right: pd.DataFrame, column: str,
              size: int) -> tuple[np.ndarray, float]:
    """u of a list comparison, exactly: the chance that a random member is among a record's
    listed values is the records' listed values found on the roster over records × members
    (random pairs would almost never meet one); with that number of pairs."""
    listed_rows = len(np.unique(exploded(left[column])[0]))
    hits = len(listed_pairs(left, right, column)[0])
    pairs = float(listed_rows * len(right))
    near = min(max(hits / max(pairs, 1.0), 1e-9), 1.0 - 1e-9)
    return np.array([near, 1.0 - near] + [1e-9] * (size - 2)), pairs


def _fit_labelled(gamma, li, ri, known_match, u, prior, n_levels, settings) -> FellegiSunter:
    """m from the pairs the token says are the same person; u from random pairs; λ given.

    All three then describe *all* record × member pairs (blocking only skips pairs too weak to
    matter), so agreeing on both name and birth date counts as the rare event it is. m is the
    posterior mean under a weak prior (``settings.m_prior_strength`` pseudo-pairs that mostly
    agree fully), so a small roster still gets sensible weights; below
    ``settings.min_labelled_records`` labelled records the method is reported as ``prior``.

    Some token pairs are not the same person (another person's valid ID typed into the record).
    They enter m only when a blocking rule accepts them, which on the record's own fields (a
    birth date read off the ID is blanked for labelled rows) means they resemble the person.
    """
    true_pair = (known_match[li] >= 0) & (ri == known_match[li])
    labelled_records = len(np.unique(li[true_pair]))
    m = []
    for k, size in enumerate(n_levels):
        levels = gamma[true_pair, k]
        counts = np.bincount(levels[levels >= 0], minlength=size).astype(float)
        pseudo = settings.m_prior_strength * initial_m(n_levels)[k]
        m.append((counts + pseudo) / (counts + pseudo).sum())
    method = "labelled" if labelled_records >= settings.min_labelled_records else "prior"
    return FellegiSunter(prior=prior, m=m, u=u, method=method)


def _mixup_rate(gamma: np.ndarray, u: list[np.ndarray], settings: MatchSettings) -> float | None:
    """Share of token matches that are another person's ID, from all of them (``gamma``: their
    comparisons on the records' own fields): among the pairs where every ``certain_agreement``
    comparison with more than one level (name, birth date) is present, the share disagreeing on
    all of them, divided by how often random pairs do (a true pair almost never does). None
    with fewer than ``min_labelled_records`` such pairs."""
    index = {c.name: k for k, c in enumerate(settings.comparisons)}
    ks = [index[name] for name, levels, _ in settings.certain_agreement
          if name in index and len(settings.comparisons[index[name]].levels) > 1]
    if len(ks) < 2:
        return None
    present = np.all(gamma[:, ks] != NULL_LEVEL, axis=1)
    if present.sum() < settings.min_labelled_records:
        return None
    none_agree = np.all([gamma[present, k] == len(settings.comparisons[k].levels) for k in ks],
                        axis=0)
    chance = float(np.prod([u[k][-1] for k in ks]))
    return float(np.clip(none_agree.mean() / chance, 1e-4, 0.5))


def link(
    left: pd.DataFrame,
    right: pd.DataFrame,
    settings: MatchSettings,
    training_rows: np.ndarray | None = None,
    known_match: np.ndarray | None = None,
    match_share: float | None = None,
    right_values: RightValues | None = None,
) -> LinkResult:
    """Score every candidate pair of ``left`` × ``right``.

    Without labels, EM fits λ, m and u on the candidate pairs of ``training_rows`` (positions in
    ``left``; default: a sample of ``settings.training_records`` rows). With ``known_match`` (per
    left row the position in ``right`` of the same person, -1 when unknown), m comes from the
    labelled pairs (with a weak prior), u from random pairs and λ = ``match_share`` /
    len(right), where ``match_share`` is the share of left rows expected to have a match at all.
    The true links of an evaluation are never labels.
    """
    left, right = _prepared(left, right, settings)
    labelled = known_match is not None and len(left) and len(right)
    li, ri = (_labelled_candidates(left, right, settings, known_match, right_values)
              if labelled else candidate_pairs(left, right, settings.blocking_rules,
                                               settings.block_limits,
                                               _blocks(right, settings, right_values)))
    gamma = comparison_matrix(left, right, li, ri, settings.comparisons,
                              right_values=right_values)
    n_levels = [len(c.levels) + 1 for c in settings.comparisons]
    if labelled:
        prior = float(np.clip((match_share or 1.0) / max(len(right), 1), 1e-12, 0.5))
        u = _random_pair_u(left, right, n_levels, settings, right_values, known_match)
        model = _fit_labelled(gamma, li, ri, known_match, u, prior, n_levels, settings)
        if settings.fallback_only:
            adjust = term_frequency_adjustment(right, ri, gamma, model, settings, right_values)
            _fallback_only_m(model, gamma, li, ri, known_match, adjust, settings)
    else:
        if training_rows is None:
            rng = np.random.default_rng(settings.seed)
            size = min(settings.training_records, len(left))
            training_rows = rng.choice(len(left), size=size, replace=False)
        model = _fit_unlabelled(gamma, li, training_rows, n_levels, settings)
    adjust = term_frequency_adjustment(right, ri, gamma, model, settings, right_values)
    return LinkResult(pairs=scored_pairs(li, ri, gamma, model, settings, adjust), model=model,
                      settings=settings)


def _blocks(right: pd.DataFrame, settings: MatchSettings,
            values: RightValues | None) -> BlockIndex | None:
    """The right frame blocked under the settings' rules, built once per match and kept in
    ``values`` (None without a ``RightValues``: the caller blocks afresh)."""
    if values is None:
        return None
    if values.blocks is None or values.blocks.right is not right:
        values.blocks = BlockIndex(right, settings.blocking_rules, settings.block_limits, values)
    return values.blocks


def _labelled_candidates(left: pd.DataFrame, right: pd.DataFrame, settings: MatchSettings,
                         known_match: np.ndarray, values: RightValues | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs when some left rows are labelled (``known_match`` ≥ 0: the token says who
    they are). A labelled row's pairs serve only to count how its true pair compares (m), so it
    gets that pair alone — when some blocking rule accepts it, as blocking the row against every
    member would have found it; the other rows are blocked as usual. m and every unlabelled row's
    pairs are those of blocking everything, in the same order; the labelled sample no longer
    meets every member who shares a birth date, which grows with the roster."""
    rules = settings.blocking_rules
    known = np.flatnonzero(known_match >= 0)
    unknown = np.flatnonzero(known_match < 0)
    li, ri = candidate_pairs(left.iloc[unknown], right, rules, settings.block_limits,
                             _blocks(right, settings, values))
    li = unknown[li]
    members = known_match[known]
    blocked = np.zeros(len(known), dtype=bool)
    for rule in rules:
        blocked |= rows_agree(left.iloc[known], right.iloc[members], rule)
    li = np.concatenate([li, known[blocked]]).astype(np.int64)
    ri = np.concatenate([ri, members[blocked]]).astype(np.int64)
    order = np.lexsort((ri, li))  # as candidate_pairs orders them: by left row, then right row
    return li[order], ri[order]


def term_frequency_adjustment(right: pd.DataFrame, ri: np.ndarray, gamma: np.ndarray,
                              model: FellegiSunter, settings: MatchSettings,
                              values: RightValues | None = None) -> np.ndarray:
    """Per pair, the log2 correction that makes agreement on a common value weaker evidence
    than on a rare one (Splink's term-frequency adjustment): for each (comparison, level) of
    ``settings.term_frequency``, a pair at that level gets log2(u_level) − log2(share of members
    holding the member's value), so its weight is log2(m / u_value). 王伟 agreeing in a roster
    of a million is no longer worth what a rare name agreeing is. Zero elsewhere."""
    adjust = np.zeros(len(ri))
    if not settings.term_frequency or not len(ri):
        return adjust
    values = values if values is not None else RightValues()
    index = {c.name: k for k, c in enumerate(settings.comparisons)}
    population = dict(settings.population_u)
    for name, label in settings.term_frequency:
        k = index[name]
        comparison = settings.comparisons[k]
        level = comparison.level_labels.index(label)
        column = comparison.levels[level].column or comparison.column
        at = gamma[:, k] == level
        if not at.any():
            continue
        codes, share = values.frequency(right, column)
        member = codes[ri[at]]
        held = np.where(member >= 0, share[np.maximum(member, 0)], 0.0)
        # a value a member holds: at least one in the roster, so the share is never zero
        held = np.maximum(held, 1.0 / max(len(right), 1))
        if name in population:  # pooled with the population's share (u), as u is: in a
            # batch of one family every name is held by one member in three
            prior = settings.population_share_members
            held = (held * len(right) + model.u[k][level] * prior) / (len(right) + prior)
        adjust[at] = np.log2(model.u[k][level]) - np.log2(held)
    return adjust


def scored_pairs(li, ri, gamma, model: FellegiSunter, settings: MatchSettings,
                 adjust: np.ndarray | None = None) -> pd.DataFrame:
    """Pairs with their level labels, weight (log2 odds, plus ``adjust``: the term-frequency
    correction), probability and grade code."""
    weight = model.match_weight(gamma)
    if adjust is not None:
        weight = weight + adjust
    probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))
    pairs = pd.DataFrame({"left_row": li, "right_row": ri})
    for k, comparison in enumerate(settings.comparisons):
        # categorical: the pairs of a province are sorted, filtered and concatenated many times,
        # and a label column of Python strings per pair costs far more than one byte per pair
        pairs[f"level_{comparison.name}"] = pd.Categorical.from_codes(
            gamma[:, k].astype(np.int8) + 1, categories=("null", *comparison.level_labels))
    pairs["match_weight"] = weight
    pairs["match_probability"] = probability
    pairs["grade_code"] = _grades(probability, settings)
    return pairs


def score(left, right, model: FellegiSunter, settings: MatchSettings, li=None, ri=None,
          right_values: RightValues | None = None):
    """Score ``left`` × ``right`` with a fitted model: the blocked candidate pairs, or the pairs
    given as positions ``li``/``ri``. Returns the pairs and their comparison matrix."""
    left, right = _prepared(left, right, settings)
    if li is None:
        li, ri = candidate_pairs(left, right, settings.blocking_rules, settings.block_limits,
                                 _blocks(right, settings, right_values))
    gamma = comparison_matrix(left, right, li, ri, settings.comparisons,
                              right_values=right_values)
    adjust = term_frequency_adjustment(right, ri, gamma, model, settings, right_values)
    return scored_pairs(li, ri, gamma, model, settings, adjust), gamma


def _needed_columns(settings: MatchSettings) -> set[str]:
    needed = {col for c in settings.comparisons for col in c.columns}
    return needed | {col for rule in settings.blocking_rules for col in rule}


def _prepared(left, right, settings: MatchSettings):
    needed = _needed_columns(settings)
    return _ensure_columns(left, needed), _ensure_columns(right, needed)


def _ranked(keys: np.ndarray, weight: np.ndarray, missing_first: bool = False) -> np.ndarray:
    """Positions ordering pairs by ``keys`` (a record) ascending, then by weight descending,
    ties in their order — a stable ``sort_values([key, weight], ascending=[True, False])``
    (missing weights last, or first), worked out on the two columns alone: the pair frames
    are then taken once, not moved column by column in every sort."""
    descending = np.where(np.isnan(weight), -np.inf if missing_first else np.inf, -weight)
    return np.lexsort((descending, keys))


def _rank_in_group(sorted_keys: np.ndarray) -> np.ndarray:
    """Each position's rank (0 = first) among the equal keys before it (keys sorted)."""
    return np.arange(len(sorted_keys)) - np.searchsorted(sorted_keys, sorted_keys, side="left")


def best_per_left(pairs: pd.DataFrame, margin: float, by: str = "left_row") -> pd.DataFrame:
    """The highest-weight pair of each left row (or of each value of ``by``); ``ambiguous`` when
    a rival on the right is within ``margin`` log2 units (the officer has to choose)."""
    keys = pairs[by].to_numpy()
    weight = pairs["match_weight"].to_numpy(dtype=float)
    order = _ranked(keys, weight)
    keys, weight = keys[order], weight[order]
    at = np.flatnonzero(_rank_in_group(keys) == 0)
    # the runner-up is the next pair of the same key, when there is one
    after = np.minimum(at + 1, max(len(order) - 1, 0))
    has_rival = (at + 1 < len(order)) & (keys[after] == keys[at])
    best = pairs.take(order[at])
    best["ambiguous"] = has_rival & (weight[after] >= weight[at] - margin)
    return best


# --------------------------------------------------------------------------- household step


@dataclass
class MatchResult:
    """Outcome of ``match_records``.

    ``matched``: records with ``household_id``, ``person_token_matched``, ``match_grade``
    (certain / probable / possible) and ``match_weight`` (log2 odds; NaN for certain).
    ``unmatched``: records with no match at all. ``candidates``: for every record graded
    probable or possible, up to ``max_candidates`` members with the comparison levels that
    explain the weight — what the officer sees on REVIEW.
    """

    matched: pd.DataFrame
    unmatched: pd.DataFrame
    candidates: pd.DataFrame
    settings: MatchSettings
    model: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    # pairs each blocking rule proposes for the records sent to the fallback, before comparing
    blocking: dict[str, int] = field(default_factory=dict)
    # each fallback grade's precision as measured in this run (or the settings' measured table),
    # and the grades gated below ``review_min_precision``
    grade_precision: dict[str, Any] = field(default_factory=dict)

    def run_log(self) -> dict[str, Any]:
        """Settings, fitted parameters and counts: logged with each run. No personal data."""
        return {"settings": self.settings.to_dict(), "model": self.model, "counts": self.counts,
                "blocking": self.blocking, "grade_precision": self.grade_precision,
                "name_key_version": NAME_KEY_VERSION}


def person_keys(frame: pd.DataFrame, key: TokenKey | bytes) -> pd.DataFrame:
    """Comparison columns of a frame of people: keyed name forms from ``name`` (raw, in memory
    only; dropped from the result) and ``birth_ymd``/``birth_ym`` from ``birth_date``."""
    out = frame.drop(columns=["name"], errors="ignore")
    if "name" in frame.columns and "name_chars" not in frame.columns:
        out = pd.concat([out, name_keys(frame["name"], key)], axis=1)
    if "birth_date" in frame.columns and "birth_ymd" not in frame.columns:
        born = pd.to_datetime(frame["birth_date"], errors="coerce")
        # integer arithmetic then one str() per row: several times faster than strftime
        number = (born.dt.year * 10000 + born.dt.month * 100 + born.dt.day).astype("Int64")
        # the digits as Arrow text (no Python string per person)
        text = pc.cast(pa.array(number.array), pa.string())
        out["birth_ymd"] = pd.array(text, dtype="string[pyarrow]")
        out["birth_ym"] = pd.array(pc.utf8_slice_codeunits(text, 0, 6), dtype="string[pyarrow]")
    return out


def _needs_keys(frame: pd.DataFrame) -> bool:
    return "name" in frame.columns and not set(NAME_KEY_COLUMNS) <= set(frame.columns)


def _run_key(records: pd.DataFrame, members: pd.DataFrame, key):
    """The key for names keyed in this run. A fresh random one is only safe when both sides are
    keyed here: codes from different keys never agree, and silently nothing would match."""
    if key is not None or not (_needs_keys(records) or _needs_keys(members)):
        return key
    if _needs_keys(records) != _needs_keys(members):
        raise ValueError(
            "one side carries keyed name columns and the other raw names: pass key= the key the "
            "keyed side was built with"
        )
    return os.urandom(32)


def _graded(grade_codes: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(grade_codes.astype(np.int8), dtype=GRADE_DTYPE)


def _cap(codes: np.ndarray, mask: np.ndarray, grade: str) -> np.ndarray:
    """Lower grades where ``mask`` holds to at most ``grade`` (codes grow as grades weaken)."""
    return np.where(mask, np.maximum(codes, GRADES.index(grade)), codes)


class _Keyed:
    """Record rows with their comparison columns. Raw names are keyed once, for the rows the run
    needs, and live only in memory for the duration of the call."""

    def __init__(self, records: pd.DataFrame, key: TokenKey | bytes | None,
                 needed: np.ndarray, settings: MatchSettings) -> None:
        self.records = records
        needed = distinct(needed)
        # every row needed (a review's run): the records themselves, not a copy of them
        frame = records if len(needed) == len(records) else records.iloc[needed]
        frame = with_derived(person_keys(frame, key) if _needs_keys(frame) else frame,
                             settings.blocking_rules)
        # each row's number, by which the comparison codes of the run's records are taken
        self._frame = with_columns(frame, {KEYED_ROW: np.arange(len(frame))})
        self._at = pd.Series(np.arange(len(needed)), index=needed)

    @property
    def frame(self) -> pd.DataFrame:
        return self._frame

    def rows(self, positions: np.ndarray) -> pd.DataFrame:
        return self._frame.iloc[self._at.loc[positions].to_numpy()]


def match_records(
    records: pd.DataFrame,
    members: pd.DataFrame,
    settings: MatchSettings | None = None,
    *,
    key: TokenKey | bytes | None = None,
    match_share: float | None = None,
) -> MatchResult:
    """Exact token match first (certain), then the probabilistic fallback for the rest.

    ``match_share``: the share of records expected to be of a member, when ``records`` are not
    all the source's (a batch's: the rows of its members' tokens and those without one); by
    default the share of the records with a token that found their member.

    Records and members may carry the keyed comparison columns already (``name_chars`` …,
    ``birth_ymd``, ``gender``, ``community_code``) or raw ``name``/``birth_date``, which are keyed
    here in memory with ``key`` (default: a fresh random key for this run, so nothing keyed here
    can be linked to anything outside it).
    """
    settings = settings or default_settings()
    exact_rows, exact_members = exact_pairs(records, members)
    rest_rows = difference(np.arange(len(records)), exact_rows)
    key = _run_key(records, members, key)
    people = with_derived(person_keys(members, key) if _needs_keys(members) else members,
                          settings.blocking_rules)
    people = _ensure_columns(people, _needed_columns(settings))  # once, not a copy per call
    sample = _training_sample(exact_rows, settings)
    keyed = _Keyed(records, key, np.concatenate([rest_rows, exact_rows]), settings)
    # the roster's codes (with the records') and blocks, worked out once for all below
    values = RightValues(_prepared(keyed.frame, people, settings)[0])
    blocking = _announce_blocking(keyed, rest_rows, people, settings, values)
    linked, pairs, compared = _fallback_pairs(keyed, people, exact_rows, exact_members,
                                              rest_rows, sample, settings, values, match_share)
    if linked.model.method != "labelled":
        # Without token-verified pairs to learn from, a fallback match is at most possible.
        pairs["grade_code"] = np.maximum(pairs["grade_code"], GRADES.index(POSSIBLE))
    exact = _grade_exact(keyed, people, exact_rows, exact_members, linked.model, settings,
                         values)
    doubted = np.unique(exact.loc[exact["grade_code"] > 0, "record_row"])
    if len(doubted):  # a doubted token match: look for the person the other fields describe
        # what the doubted ID number says (birth date, gender) is doubted with it
        extra, _ = score(_own_fields(keyed.rows(doubted).reset_index(drop=True)), people,
                         linked.model, settings, right_values=values)
        extra["record_row"] = doubted[extra["left_row"].to_numpy()]  # our frame: no copy
        pairs = pd.concat([pairs, extra])
    if settings.one_record_per_person:
        pairs = _one_to_one(records, exact, pairs, settings)
    fallback = _fallback_grades(records, pairs, people[MEMBER_KEY].to_numpy(dtype=np.int64),
                                settings)
    precision, measured_on = _calibrate(keyed, people, exact, linked.model, settings, values)
    # the blocks refer back to ``values`` (a cycle): broken here, the roster's codes and blocks
    # go as soon as the match returns instead of at some later garbage collection
    values.blocks = None
    gated = _gated_grades(precision, settings)
    result = _assemble(records, members, exact, fallback, pairs, rest_rows, linked, compared,
                       settings, gated)
    result.blocking = blocking
    result.grade_precision = {"precision": precision, "records": measured_on,
                              "review_min_precision": settings.review_min_precision,
                              "gated": sorted(gated)}
    return result


def _gated_grades(precision: dict[str, float], settings: MatchSettings) -> set[str]:
    """Grades whose precision is below ``settings.review_min_precision``: their links may not
    put a household on REVIEW (they go to the candidates file only)."""
    return {grade for grade, p in precision.items() if not p >= settings.review_min_precision}


def _graded_best(pairs: pd.DataFrame, method: str, settings: MatchSettings) -> pd.DataFrame:
    """Each record's best pair graded as the fallback grades it (a rival within the ambiguity
    margin caps it at possible; without learnt weights everything is at most possible)."""
    best = best_per_left(pairs, settings.ambiguity_margin, by="record_row")
    codes = _cap(best["grade_code"].to_numpy(), best["ambiguous"].to_numpy(), POSSIBLE)
    if method != "labelled":
        codes = np.maximum(codes, GRADES.index(POSSIBLE))
    return best.assign(grade_code=codes)


def _calibrate(keyed: _Keyed, people: pd.DataFrame, exact: pd.DataFrame, model: FellegiSunter,
               settings: MatchSettings, values: RightValues | None = None
               ) -> tuple[dict[str, float], int]:
    """Each fallback grade's precision, measured in this run: records whose token match is
    certain or probable (the token says who they are; their names are as dirty as anyone's) are
    placed again by the fallback as if their ID were unusable — with the fields read off the ID
    blanked — once with their person on the roster, once with the person taken off (an outsider
    who resembles a member: every link is wrong). With s the share of records expected on the
    roster (the model's prior × roster size), precision(g) = s·right(g) / (s·linked(g) +
    (1 − s)·outsider_linked(g)). Fewer than ``min_labelled_records`` such records: the
    measured table of the settings."""
    fallback = dict(settings.measured_grade_precision)
    certain = exact[exact["grade_code"] <= GRADES.index(PROBABLE)].drop_duplicates("record_row")
    if min(len(certain), settings.calibration_records) < settings.min_labelled_records:
        return fallback, 0
    rng = np.random.default_rng(settings.seed + 2)
    chosen = np.sort(rng.choice(len(certain), min(settings.calibration_records, len(certain)),
                                replace=False))
    rows = certain["record_row"].to_numpy()[chosen]
    person = certain["right_row"].to_numpy()[chosen]
    # a field read off the valid ID is right by construction; an unusable ID gives no such help
    fields = _own_fields(keyed.rows(rows).reset_index(drop=True))
    scored, _ = score(fields, people, model, settings, right_values=values)
    scored = scored.rename(columns={"left_row": "record_row"})
    if not len(scored):
        return fallback, 0
    own = person[scored["record_row"].to_numpy()] == scored["right_row"].to_numpy()
    on = _graded_best(scored, model.method, settings)
    off = _graded_best(scored[~own], model.method, settings)
    right = on["right_row"].to_numpy() == person[on["record_row"].to_numpy()]
    share = float(np.clip(model.prior * len(people), 0.0, 1.0))
    precision = {}
    for grade in (PROBABLE, POSSIBLE):
        code = GRADES.index(grade)
        hits = np.count_nonzero((on["grade_code"].to_numpy() == code) & right) / len(rows)
        linked = np.count_nonzero(on["grade_code"].to_numpy() == code) / len(rows)
        wrong_out = np.count_nonzero(off["grade_code"].to_numpy() == code) / len(rows)
        denominator = share * linked + (1 - share) * wrong_out
        precision[grade] = (share * hits / denominator if denominator > 0
                            else fallback.get(grade, float("nan")))
    return precision, len(rows)


def _one_to_one(records: pd.DataFrame, exact: pd.DataFrame, pairs: pd.DataFrame,
                settings: MatchSettings) -> pd.DataFrame:
    """Pairs left once each member is assigned to at most one record per ``source`` (all records
    one source without that column): certain token links keep their member; the others are
    assigned greedily by weight — in each round every unassigned record proposes its best
    member still free, and each member takes its heaviest proposer — so twins or namesakes in one
    monthly file cannot both land on the same person. A record's pairs to members assigned to
    another record are dropped; a record whose candidates were all taken keeps none."""
    source = (pd.factorize(records["source"])[0] if "source" in records.columns
              else np.zeros(len(records), dtype=np.int64)).astype(np.int64)
    width = np.int64(len(source) + 1)
    fixed = exact[exact["grade_code"] == 0]
    taken = set((source[fixed["record_row"].to_numpy()] * width
                 + fixed["right_row"].to_numpy()).tolist())
    pairs = pairs.sort_values("match_weight", ascending=False, kind="stable")
    slot = source[pairs["record_row"].to_numpy()] * width + pairs["right_row"].to_numpy()
    free = ~np.isin(slot, np.fromiter(taken, dtype=np.int64, count=len(taken)))
    record = pairs["record_row"].to_numpy()
    owner = pd.Series(-1, index=pd.unique(slot))  # slot → record assigned to it
    done = np.zeros(len(records), dtype=bool)
    while True:
        open_ = free & ~done[record] & (owner.reindex(slot).to_numpy() < 0)
        if not open_.any():
            break
        at = np.flatnonzero(open_)
        proposals = at[~pd.Series(record[at]).duplicated().to_numpy()]  # best free per record
        winners = proposals[~pd.Series(slot[proposals]).duplicated().to_numpy()]
        owner.loc[slot[winners]] = record[winners]
        done[record[winners]] = True
        # a record whose every free candidate is taken stops proposing
        still = free & ~done[record] & (owner.reindex(slot).to_numpy() < 0)
        done[difference(record[open_], record[still])] = True
    assigned_to = owner.reindex(slot).to_numpy()
    keep = free & ((assigned_to < 0) | (assigned_to == record))
    return pairs[keep].sort_values(["record_row", "match_weight"], ascending=[True, False])


def _announce_blocking(keyed: _Keyed, rest_rows: np.ndarray, people: pd.DataFrame,
                       settings: MatchSettings, values: RightValues) -> dict[str, int]:
    """Count, and log before any comparison, the pairs each blocking rule proposes for the
    records the fallback has to place (as Splink does): a rule that explodes shows here."""
    left, right = _prepared(keyed.rows(rest_rows), people, settings)
    counts = pairs_per_rule(left, right, settings.blocking_rules, settings.block_limits,
                            _blocks(right, settings, values))
    log.info("fallback blocking for %d records x %d members: %s", len(rest_rows), len(people),
             ", ".join(f"{rule}: {pairs:,} pairs" for rule, pairs in counts.items()))
    return counts


def _assemble(records, members, exact, fallback, pairs, rest_rows, linked, compared, settings,
              gated: set[str]):
    """The result frames: a doubted token match the fallback re-placed is dropped; records with
    neither are unmatched; every graded-down record gets its candidates. A link of a gated grade
    is no match (it may not put a household on REVIEW): the record is unmatched and listed in
    the candidates with ``gated`` true."""
    exact = exact[~exact["record_row"].isin(fallback["record_row"])]
    linked_exact = exact[exact["grade_code"] < GRADES.index(NONE)]
    gated_codes = [GRADES.index(g) for g in gated]
    kept_exact = linked_exact[~linked_exact["grade_code"].isin(gated_codes)]
    kept_fallback = fallback[~fallback["grade_code"].isin(gated_codes)]
    matched = pd.concat([_matched_frame(records, members, kept_exact),
                         _matched_frame(records, members, kept_fallback)])
    refuted = exact.loc[exact["grade_code"] == GRADES.index(NONE), "record_row"].to_numpy()
    held = union(difference(linked_exact["record_row"], kept_exact["record_row"]),
                 difference(fallback["record_row"], kept_fallback["record_row"]))
    unmatched_rows = union(difference(union(rest_rows, refuted),
                                      fallback["record_row"].to_numpy()), held)
    doubted = exact[exact["grade_code"] > 0]
    reviewed = pd.concat([doubted, fallback], ignore_index=True)
    shown = pd.concat([doubted, pairs], ignore_index=True)
    counts = {"records": len(records), "candidate_pairs": compared}
    counts |= matched["match_grade"].value_counts().reindex(GRADES[:3], fill_value=0).to_dict()
    counts[NONE] = len(unmatched_rows)
    counts["gated"] = len(held)
    candidates = _candidates(records, members, shown, reviewed, settings)
    candidates["gated"] = candidates["record_grade"].astype(str).isin(gated).to_numpy()
    return MatchResult(
        matched=matched,
        unmatched=records.iloc[unmatched_rows],
        candidates=candidates,
        settings=settings,
        model=linked.model_log(),
        counts={k: int(v) for k, v in counts.items()},
    )


def _grade_exact(keyed: _Keyed, people, exact_rows, exact_members, model, settings,
                 values: RightValues | None = None):
    """Exact pairs graded ``certain`` only when the record's own fields agree with the person
    the token names.

    Two checks, both on the record's own fields (a birth date or gender read off the ID number
    itself is no evidence that the number belongs to this record: it agrees by construction):

    * ``settings.certain_agreement`` — the name agrees (exact, homophone, near-homophone) and so
      do birth date and gender when the record carries them;
    * the fitted log2 Bayes factor of the non-ID comparisons is at least
      ``settings.exact_contradiction_weight`` — once the weights were learnt from labelled
      pairs (``model.method == "labelled"``); prior weights decide nothing here.

    A pair failing either is graded by its posterior — the prior that a valid token is right
    (1 − the run's estimated mix-up share, ``_mixup_rate``; ``settings.token_error_rate`` when
    it cannot be estimated) times that Bayes factor — and is at most ``probable``
    (REVIEW); below ``possible_threshold`` (a valid ID typed into someone else's record: name and
    birth date wholly different) it is no link (code 3): the fallback then looks for the person
    the fields describe, and the token's owner is still shown among the record's candidates.
    Without learnt weights a plain rule stands in: name or birth date agreeing at no level makes
    the pair ``possible``.
    """
    pairs = pd.DataFrame({"record_row": exact_rows, "right_row": exact_members,
                          "grade_code": np.zeros(len(exact_rows), dtype=np.int8),
                          "match_weight": np.nan, "match_probability": 1.0})
    if not len(pairs) or not _comparable(keyed.records, people, settings):
        return pairs
    own = _without_fallback_only(_own_fields(keyed.rows(exact_rows).reset_index(drop=True)),
                                 settings)
    scored, gamma = score(own, people, model, settings, np.arange(len(exact_rows)), exact_members,
                          right_values=values)
    evidence = model.contributions(gamma).sum(axis=1) + term_frequency_adjustment(
        people, exact_members, gamma, model, settings, values)
    threshold = settings.exact_contradiction_weight
    doubted = ~_agrees(gamma, settings)
    # The learnt weights may doubt a pair only when they were learnt (enough labelled pairs):
    # on a small run u comes from a handful of random pairs — one family's members share a
    # surname — and an agreeing name could weigh against the very person the ID names.
    if threshold is not None and model.method == "labelled":
        doubted |= evidence < threshold
    scored = scored.drop(columns=["left_row", "right_row", "grade_code"])
    pairs = pd.concat([pairs[["record_row", "right_row", "grade_code"]], scored], axis=1)
    if model.method == "labelled":
        model.mixup_rate = _mixup_rate(gamma, model.u, settings)
        error = model.mixup_rate if model.mixup_rate is not None else settings.token_error_rate
        token_odds = np.log2(1 - error) - np.log2(error)
        weight = token_odds + evidence
        probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))
        posterior = np.maximum(_grades(probability, settings), GRADES.index(PROBABLE))
        pairs["match_weight"], pairs["match_probability"] = weight, probability
    else:
        posterior = np.where(_contradicted(gamma, model, settings), GRADES.index(POSSIBLE),
                             GRADES.index(PROBABLE))
    pairs["grade_code"] = np.where(doubted, posterior, 0).astype(np.int8)
    pairs.loc[pairs["grade_code"] == 0, ["match_weight", "match_probability"]] = [np.nan, 1.0]
    return pairs


# Columns a record may carry to say that a field was read off its ID number, not sent by the
# partner (verification/intake.py stages them): such a field cannot confirm the ID's owner.
FROM_ID_FLAGS = {"birth_date_from_id": ("birth_ymd", "birth_ym", "birth_year", "birth_date"),
                 "gender_from_id": ("gender",)}


def _own_fields(rows: pd.DataFrame, where: np.ndarray | None = None) -> pd.DataFrame:
    """The rows (those of ``where``) with every field read off the ID number blanked."""
    blank = {}
    for flag, columns in FROM_ID_FLAGS.items():
        if flag not in rows.columns:
            continue
        from_id = rows[flag].fillna(False).to_numpy(dtype=bool)
        if where is not None:
            from_id &= where
        for column in (c for c in columns if c in rows.columns):
            values = rows[column]
            # a date stays a date (NaT where blanked), Arrow-backed text stays so (NA where
            # blanked): as objects it is a Timestamp or a Python string per row
            kept = (pd.api.types.is_datetime64_any_dtype(values)
                    or isinstance(values.dtype, pd.StringDtype))
            blank[column] = (values.where(~from_id) if kept
                             else values.astype(object).where(~from_id, None))
    return with_columns(rows, blank)


def _without_fallback_only(rows: pd.DataFrame, settings: MatchSettings) -> pd.DataFrame:
    """The rows with the columns of ``settings.fallback_only`` comparisons blanked: address and
    phone are no evidence on a token match (they can neither make nor unmake a certain link)."""
    columns = {col for c in settings.comparisons if c.name in settings.fallback_only
               for col in c.columns}
    present = [c for c in columns if c in rows.columns]
    return with_columns(rows, dict.fromkeys(present, None))


def _agrees(gamma: np.ndarray, settings: MatchSettings) -> np.ndarray:
    """Pairs meeting ``settings.certain_agreement`` (see ``_grade_exact``)."""
    ok = np.ones(len(gamma), dtype=bool)
    index = {c.name: k for k, c in enumerate(settings.comparisons)}
    for name, levels, required in settings.certain_agreement:
        if name not in index:
            continue
        comparison = settings.comparisons[index[name]]
        accepted = [comparison.level_labels.index(level) for level in levels]
        level = gamma[:, index[name]]
        ok &= np.isin(level, accepted) | ((level == NULL_LEVEL) & (not required))
    return ok


def _contradicted(gamma: np.ndarray, model: FellegiSunter, settings: MatchSettings) -> np.ndarray:
    """Without weights learnt from token-verified pairs (EM can settle on a wrong mode when
    only a few fields are compared): name or birth date agree at no level."""
    doubted = np.zeros(len(gamma), dtype=bool)
    for k, comparison in enumerate(settings.comparisons):
        if comparison.name in ("name", "birth_date"):
            doubted |= gamma[:, k] == len(comparison.levels)
    return doubted


def _comparable(records: pd.DataFrame, people: pd.DataFrame, settings: MatchSettings) -> bool:
    """Both sides carry something to compare (raw names count: they are keyed on demand)."""
    def has(frame: pd.DataFrame, column: str) -> bool:
        return column in frame.columns or (column in NAME_KEY_COLUMNS and "name" in frame.columns)

    return any(has(records, c.column) and has(people, c.column) for c in settings.comparisons)


def _training_sample(exact_rows: np.ndarray, settings: MatchSettings) -> np.ndarray:
    rng = np.random.default_rng(settings.seed)
    labelled = distinct(exact_rows)
    return rng.choice(labelled, size=min(settings.training_records, len(labelled)), replace=False)


def _fallback_pairs(keyed, people, exact_rows, exact_members, rest_rows, sample, settings,
                    values: RightValues | None = None, match_share: float | None = None):
    """Candidate pairs of the records left over, scored with weights learnt from labelled pairs
    of exactly matched records (their token says which candidate is the person).

    The model is fitted once on a sample; the records left over are then scored in chunks and
    only each record's best few candidates are kept, so memory stays bounded however many
    records lack a valid ID. Returns the fitted link result, the kept pairs and the number of
    candidate pairs compared.
    """
    labelled = distinct(exact_rows)
    rng = np.random.default_rng(settings.seed + 1)
    rest_sample = rng.choice(rest_rows, size=min(settings.training_records, len(rest_rows)),
                             replace=False)
    pool = union(rest_sample, sample)
    first_member = pd.Series(exact_members).groupby(exact_rows).first()
    known = first_member.reindex(pool).fillna(-1).to_numpy(dtype=np.int64)
    known[~np.isin(pool, sample)] = -1
    # Records without a valid ID are assumed to be on the roster as often as those with one.
    with_token = int(keyed.records[MEMBER_KEY].notna().sum())
    share = len(labelled) / with_token if with_token else 1.0
    share = share if match_share is None else match_share
    # the labelled rows learn m from their own fields only: a birth date read off the ID agrees
    # with the ID's owner by construction and would teach that birth dates always agree
    training = _own_fields(keyed.rows(pool).reset_index(drop=True), where=known >= 0)
    linked = link(training, people, settings,
                  training_rows=np.arange(len(pool)), known_match=known, match_share=share,
                  right_values=values)
    in_rest = np.isin(pool[linked.pairs["left_row"].to_numpy()], rest_rows)
    first = linked.pairs[in_rest]
    first = first.copy(deep=False)  # a column added to our frame: ``assign`` copies every column
    first["record_row"] = pool[first["left_row"].to_numpy()]
    kept = [_top_candidates(first, settings)]
    compared = len(first)
    remaining = difference(rest_rows, rest_sample)
    chunks = max(1, -(-len(remaining) // settings.score_chunk_records))
    for chunk in (c for c in np.array_split(remaining, chunks) if len(c)):
        scored, _ = score(keyed.rows(chunk).reset_index(drop=True), people, linked.model,
                          settings, right_values=values)
        compared += len(scored)
        scored["record_row"] = chunk[scored["left_row"].to_numpy()]
        kept.append(_top_candidates(scored, settings))
    return linked, pd.concat(kept, ignore_index=True), compared


def _top_candidates(pairs: pd.DataFrame, settings: MatchSettings) -> pd.DataFrame:
    """Each record's best candidates: enough to grade (best and runner-up) and to show."""
    keep = max(settings.max_candidates, 2)
    keys = pairs["record_row"].to_numpy()
    order = _ranked(keys, pairs["match_weight"].to_numpy(dtype=float))
    return pairs.take(order[_rank_in_group(keys[order]) < keep])


def _fallback_grades(records: pd.DataFrame, pairs: pd.DataFrame, member_tokens: np.ndarray,
                     settings) -> pd.DataFrame:
    """Best candidate per record, graded, capped, and kept if probable or possible."""
    # record_row, not left_row: pairs come from several scoring passes with their own positions
    best = best_per_left(pairs, settings.ambiguity_margin, by="record_row")
    codes = best["grade_code"].to_numpy()
    own = records[MEMBER_KEY].astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    has_id = records[MEMBER_KEY].notna().to_numpy()
    record_rows = best["record_row"].to_numpy()
    candidate = member_tokens[best["right_row"].to_numpy()]
    # a valid ID naming someone else: two people may share name and birth date
    other_id = has_id[record_rows] & (own[record_rows] != candidate)
    codes = _cap(codes, other_id, settings.valid_id_mismatch_grade)
    codes = _cap(codes, best["ambiguous"].to_numpy(), POSSIBLE)
    best = best.assign(grade_code=codes)
    return best[np.isin(codes, [GRADES.index(PROBABLE), GRADES.index(POSSIBLE)])]


def _matched_frame(records, members, graded: pd.DataFrame) -> pd.DataFrame:
    member_rows = graded["right_row"].to_numpy()
    out = records.iloc[graded["record_row"].to_numpy()].copy(deep=False)
    out["household_id"] = members["household_id"].to_numpy()[member_rows]
    out["person_token_matched"] = members[MEMBER_KEY].to_numpy(dtype=np.int64)[member_rows]
    out["match_grade"] = _graded(graded["grade_code"].to_numpy())
    out["match_weight"] = graded["match_weight"].to_numpy()
    return out


def _candidates(records, members, pairs, reviewed, settings: MatchSettings) -> pd.DataFrame:
    """Top candidates of every record sent to REVIEW, best first, with the levels that explain
    the weight (e.g. name homophone, birth date exact, same street)."""
    record_rows = pairs["record_row"].to_numpy()
    at = np.flatnonzero(np.isin(record_rows, reviewed["record_row"].to_numpy()))
    at = at[_ranked(record_rows[at], pairs["match_weight"].to_numpy(dtype=float)[at],
                    missing_first=True)]
    met = pd.Series(record_rows[at] * np.int64(len(members) + 1)
                    + pairs["right_row"].to_numpy()[at]).duplicated().to_numpy()
    at = at[~met]  # a token match met again
    rank = _rank_in_group(record_rows[at])
    at, rank = at[rank < settings.max_candidates], rank[rank < settings.max_candidates]
    shown = pairs.take(at)
    grade = reviewed.drop_duplicates("record_row").set_index("record_row")["grade_code"]
    member_rows = shown["right_row"].to_numpy()
    out = pd.DataFrame(
        {
            "record_index": records.index.to_numpy()[shown["record_row"].to_numpy()],
            "rank": rank + 1,
            "household_id": members["household_id"].to_numpy()[member_rows],
            "person_token": members[MEMBER_KEY].to_numpy(dtype=np.int64)[member_rows],
            "match_weight": shown["match_weight"].to_numpy(),
            "match_probability": shown["match_probability"].to_numpy(),
            "record_grade": _graded(shown["record_row"].map(grade).to_numpy()),
        }
    )
    for column in (c for c in shown.columns if c.startswith("level_")):
        out[column] = shown[column].to_numpy(dtype=object)  # the labels as text
    return out
