"""Comparison vectors: for every candidate pair, the level each comparison falls into.

Levels are evaluated strongest first and only on pairs no earlier level claimed. Equality-like
levels work on integer codes (both sides factorised together once); string-distance levels call
rapidfuzz's element-wise ``cpdist`` on the remaining pairs only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import process
from rapidfuzz.distance import OSA, JaroWinkler

from verification.matching._blocking import exploded
from verification.matching._codes import RightValues, arrow_text
from verification.matching.settings import LISTED_AGAINST, Comparison, ComparisonLevel

NULL_LEVEL = -1

__all__ = ["NULL_LEVEL", "FrameValues", "PairColumns", "RightValues", "comparison_matrix"]


class FrameValues:
    """Per-row codes of both frames, worked out once per column and transform and shared by
    the chunks of pairs of one comparison_matrix call (the right side's, and the run's records',
    by every call given the same ``RightValues``)."""

    def __init__(self, left: pd.DataFrame, right: pd.DataFrame,
                 shared: RightValues | None = None):
        self.left, self.right = left, right
        self.shared = shared if shared is not None else RightValues()
        self._codes: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._strings: dict[str, np.ndarray] = {}
        self._slots: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def codes(self, column: str, transform: str = "", width: int = 0) -> tuple[np.ndarray, ...]:
        """Integer codes of each row's (transformed) value, one numbering for both sides;
        -1 = missing. A left value no right row holds never has a right row's code."""
        cache_key = (column, transform, width)
        if cache_key not in self._codes:
            right = self.shared.coded(self.right, column, transform, width).right
            left = self.shared.left_codes(self.right, self.left, column, transform, width)
            self._codes[cache_key] = (left, right)
        return self._codes[cache_key]

    def slots(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """A list column (space-separated values) as (rows × most values) integer codes per
        side, one numbering; -1 pads, and a left value no right row holds is -1 too (it can
        agree with nothing)."""
        if column not in self._slots:
            right = self.shared.slots(self.right, column)[0]
            self._slots[column] = (self.shared.left_slots(self.right, self.left, column), right)
        return self._slots[column]

    def left_strings(self, column: str) -> np.ndarray:
        """Each left row's string value ("" where missing)."""
        if column not in self._strings:
            self._strings[column] = pc.fill_null(arrow_text(self.left[column]), "").to_numpy(
                zero_copy_only=False)
        return self._strings[column]

    def right_strings(self, column: str, rows: np.ndarray) -> np.ndarray:
        """The string values ("" where missing) of the right rows ``rows``, each distinct value
        taken from the dictionary once (the roster's column never becomes Python strings)."""
        coded = self.shared.coded(self.right, column)
        inverse, distinct = pd.factorize(coded.right[rows])
        taken = coded.dictionary.take(pa.array(np.maximum(distinct, 0))).to_numpy(
            zero_copy_only=False)
        taken[distinct < 0] = ""
        return taken[inverse]


class PairColumns:
    """Column values of both sides of some pairs, looked up once per column and transform and
    reused by the levels of every comparison."""

    def __init__(self, left: pd.DataFrame, right: pd.DataFrame, li: np.ndarray, ri: np.ndarray,
                 values: FrameValues | None = None):
        self.left, self.right, self.li, self.ri = left, right, li, ri
        self.values = values or FrameValues(left, right)
        self._codes: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._strings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._scores: dict[tuple[str, str], np.ndarray] = {}

    def scores(self, column: str, scorer: Callable[..., float], rows: np.ndarray) -> np.ndarray:
        """String scores for ``rows``; computed once per column and scorer, on the rows of the
        first request (later levels only ever ask about rows earlier levels left undecided)."""
        cache_key = (column, scorer.__qualname__)
        if cache_key not in self._scores:
            full = np.full(len(self.li), np.nan)
            full[rows] = self.distances(column, scorer, rows)
            self._scores[cache_key] = full
        return self._scores[cache_key][rows]

    def distances(self, column: str, scorer: Callable[..., float], rows: np.ndarray
                  ) -> np.ndarray:
        """String scores for ``rows`` (not kept)."""
        left = self.values.left_strings(column)[self.li[rows]]
        right = self.values.right_strings(column, self.ri[rows])
        return process.cpdist(left, right, scorer=scorer, workers=-1)

    def codes(self, column: str, transform: str = "", width: int = 0) -> tuple[np.ndarray, ...]:
        """Per-pair integer codes of (transformed) values, shared between sides; -1 = missing."""
        cache_key = (column, transform, width)
        if cache_key not in self._codes:
            left, right = self.values.codes(column, transform, width)
            self._codes[cache_key] = (left[self.li], right[self.ri])
        return self._codes[cache_key]

    def codes_at(self, column: str, rows: np.ndarray, transform: str = "",
                 width: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Both sides' codes of the pairs ``rows`` only: a level on another column than its
        comparison's (a name's sound, a phone's last digits) or on a transform (a prefix) is
        asked about the pairs earlier levels left undecided, often a small part of them."""
        cache_key = (column, transform, width)
        if cache_key in self._codes:
            left, right = self._codes[cache_key]
            return left[rows], right[rows]
        left, right = self.values.codes(column, transform, width)
        return left[self.li[rows]], right[self.ri[rows]]

    def slots(self, column: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """List codes of both sides of the pairs ``rows`` (see ``FrameValues.slots``)."""
        left, right = self.values.slots(column)
        return left[self.li[rows]], right[self.ri[rows]]

    def missing(self, column: str) -> np.ndarray:
        left, right = self.codes(column)
        return (left < 0) | (right < 0)


def _distance_level(
    scorer: Callable[..., float], accept: Callable[[np.ndarray], np.ndarray]
) -> Callable[[PairColumns, str, ComparisonLevel, np.ndarray], np.ndarray]:
    def holds(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
        return accept(cols.scores(column, scorer, rows), level.threshold)

    return holds


def _replaced_or_swapped(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Code points of equal-length values: at most one differs, or two neighbours swapped."""
    differ = a != b
    count = differ.sum(axis=1)
    within = count <= 1
    two = np.flatnonzero(count == 2)
    if len(two):
        first = differ[two].argmax(axis=1)
        second = np.minimum(first + 1, a.shape[1] - 1)
        within[two] = (differ[two, second] & (a[two, first] == b[two, second])
                       & (a[two, second] == b[two, first]))
    return within


def _one_deleted(longer: np.ndarray, shorter: np.ndarray, short_len: np.ndarray) -> np.ndarray:
    """Code points of values one apart in length: the shorter is the longer less one
    character. Past the first difference (at the shorter's end at the latest: zero padding)
    the longer, moved back one, must equal the shorter."""
    first = (longer != shorter).argmax(axis=1)
    moved = longer[:, 1:] == shorter[:, :-1]
    at = np.arange(moved.shape[1])
    checked = (at >= first[:, None]) & (at < short_len[:, None])
    return np.all(moved | ~checked, axis=1)


def _within_one_edit(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    """OSA distance at most 1, on the code points of both values where both are in the
    dictionary of the roster's and records' values (``RightValues.characters``): equal
    lengths — one character replaced, or two neighbours swapped (an insertion there costs a
    deletion too); lengths one apart — one character deleted; further apart — never. Other
    pairs (a value outside the dictionary, or missing) go to rapidfuzz."""
    left, right = cols.codes_at(column, rows)
    points, lengths = cols.values.shared.characters(cols.right, column)
    in_dictionary = (left >= 0) & (left < len(points))  # len(points): a value none holds
    left_len = np.where(in_dictionary, lengths[np.where(in_dictionary, left, 0)], -1)
    right_len = np.where(right >= 0, lengths[np.maximum(right, 0)], -1)
    known = (left_len >= 0) & (right_len >= 0)
    hit = np.zeros(len(rows), dtype=bool)
    same = known & (left_len == right_len)
    hit[same] = _replaced_or_swapped(points[left[same]], points[right[same]])
    for longer, shorter, short_len in ((left, right, right_len), (right, left, left_len)):
        apart = known & (left_len + right_len == 2 * short_len + 1)  # the other one longer
        hit[apart] = _one_deleted(points[longer[apart]], points[shorter[apart]],
                                  short_len[apart])
    rest = ~known
    if rest.any():
        hit[rest] = cols.distances(column, OSA.distance, rows[rest]) <= 1
    return hit


def _osa(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    if level.threshold == 1:
        return _within_one_edit(cols, column, level, rows)
    return cols.scores(column, OSA.distance, rows) <= level.threshold


def _exact(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left, right = cols.codes_at(column, rows)
    return (left == right) & (left >= 0)


def _prefix(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left, right = cols.codes_at(column, rows, "prefix", int(level.threshold or 0))
    return (left == right) & (left >= 0)


def _month_day_swapped(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left, right = cols.codes_at(column, rows, "swap")
    return (left == right) & (left >= 0)


def _abs_diff(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left = pd.to_numeric(cols.left[column], errors="coerce").to_numpy(dtype=float)[cols.li[rows]]
    right = pd.to_numeric(cols.right[column], errors="coerce").to_numpy(dtype=float)[cols.ri[rows]]
    return np.abs(left - right) <= float(level.threshold or 0)


def _listed(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    """The member's value (``LISTED_AGAINST[column]``) is among the record's listed values."""
    owner, values = exploded(cols.left[column])
    against = pd.to_numeric(cols.right[LISTED_AGAINST[column]], errors="coerce").astype(
        "Int64").to_numpy(dtype=np.int64, na_value=-1)[cols.ri[rows]]
    # (row, value) pairs as one int64 each: the values coded together (tokens span all of
    # int64, a row number times a token would overflow)
    codes, distinct = pd.factorize(np.concatenate([values, against]))
    width = np.int64(len(distinct) + 1)
    listed = owner.astype(np.int64) * width + codes[:len(values)]
    asked = cols.li[rows].astype(np.int64) * width + codes[len(values):]
    return np.isin(asked, listed)


def _overlap(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    """The two sides' lists (space-separated values) share a value."""
    left, right = cols.slots(column, rows)
    hit = np.zeros(len(rows), dtype=bool)
    for a in range(left.shape[1]):
        present = left[:, a] >= 0
        for b in range(right.shape[1]):
            hit |= present & (left[:, a] == right[:, b])
    return hit


_LEVEL_TESTS = {
    "exact": _exact,
    "prefix": _prefix,
    "month_day_swapped": _month_day_swapped,
    "abs_diff": _abs_diff,
    "osa": _osa,
    "jaro_winkler": _distance_level(JaroWinkler.similarity, lambda s, t: s >= t),
    "listed": _listed,
    "overlap": _overlap,
}


def comparison_levels(cols: PairColumns, comparison: Comparison) -> np.ndarray:
    """Level index per pair: 0 = strongest level, len(levels) = else, -1 = null."""
    levels = np.full(len(cols.li), len(comparison.levels), dtype=np.int8)
    if comparison.column in LISTED_AGAINST:  # only the record lists; the member has a token
        undecided = cols.values.codes(comparison.column)[0][cols.li] >= 0
    else:
        undecided = ~cols.missing(comparison.column)
    levels[~undecided] = NULL_LEVEL
    for index, level in enumerate(comparison.levels):
        rows = np.flatnonzero(undecided)
        if not len(rows):
            break
        column = level.column or comparison.column
        hit = _LEVEL_TESTS[level.kind](cols, column, level, rows)
        levels[rows[hit]] = index
        undecided[rows[hit]] = False
    return levels


def comparison_matrix(
    left: pd.DataFrame,
    right: pd.DataFrame,
    li: np.ndarray,
    ri: np.ndarray,
    comparisons: tuple[Comparison, ...],
    chunk_pairs: int = 2_000_000,
    right_values: RightValues | None = None,
) -> np.ndarray:
    """(pairs × comparisons) int8 matrix of levels.

    Pairs are compared in chunks of ``chunk_pairs``: a pair's levels depend on that pair alone,
    and the per-pair arrays of a comparison (codes, strings, scores of every column) would
    otherwise need gigabytes when a province's blocks give tens of millions of pairs."""
    values = FrameValues(left, right, right_values)
    matrix = np.empty((len(li), len(comparisons)), dtype=np.int8)
    for start in range(0, len(li), chunk_pairs):
        end = min(start + chunk_pairs, len(li))
        cols = PairColumns(left, right, li[start:end], ri[start:end], values)
        for k, comparison in enumerate(comparisons):
            matrix[start:end, k] = comparison_levels(cols, comparison)
    return matrix
