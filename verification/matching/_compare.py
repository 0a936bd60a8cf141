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

from verification.matching._blocking import BlockIndex, exploded, split_lists
from verification.matching.settings import LISTED_AGAINST, Comparison, ComparisonLevel

NULL_LEVEL = -1


class RightValues:
    """The right frame's per-row codes and strings, kept across the comparison_matrix calls of
    one match (the roster is compared with the training sample, random pairs, every chunk of
    records and the token pairs: its values are worked out once, not once per call)."""

    def __init__(self) -> None:
        self.codes: dict[tuple[str, str], tuple[np.ndarray, pa.Array]] = {}
        self.strings: dict[str, np.ndarray] = {}
        self.frequencies: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.slots: dict[str, tuple[np.ndarray, pa.Array]] = {}
        self.blocks: BlockIndex | None = None  # the right frame blocked under the rules

    def frequency(self, right: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Each right row's value code and the share of right rows holding each value."""
        if column not in self.frequencies:
            codes, uniques = pd.factorize(_as_text(right[column]))
            counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
            self.frequencies[column] = (codes, counts / max(len(right), 1))
        return self.frequencies[column]


class FrameValues:
    """Per-row values of both frames, computed once per column and transform, shared by the
    chunks of pairs of one comparison_matrix call (and the right side's by every call given the
    same ``RightValues``)."""

    def __init__(self, left: pd.DataFrame, right: pd.DataFrame,
                 shared: RightValues | None = None):
        self.left, self.right = left, right
        self.shared = shared if shared is not None else RightValues()
        self._codes: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._strings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._slots: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def codes(self, column: str, transform: str = "", width: int = 0) -> tuple[np.ndarray, ...]:
        """Integer codes of each row's (transformed) value, shared between sides; -1 = missing.
        Codes number the right side's distinct values; a left value the right never has gets
        one code of its own that no right row carries."""
        cache_key = (column, f"{transform}{width}")
        if cache_key not in self._codes:
            if cache_key not in self.shared.codes:
                # the left's swapped form is compared with the right as written
                right = _arrow_text(self.right[column])
                right = right if transform == "swap" else _arrow_transform(right, transform,
                                                                             width)
                encoded = pc.dictionary_encode(right)
                codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
                self.shared.codes[cache_key] = (codes.astype(np.int64), encoded.dictionary)
            right_codes, uniques = self.shared.codes[cache_key]
            left = _arrow_transform(_arrow_text(self.left[column]), transform, width)
            found = pc.index_in(left, value_set=uniques)
            # a left value no right row holds: one code of its own that no right row carries
            left_codes = pc.fill_null(found, len(uniques)).to_numpy(zero_copy_only=False)
            left_codes = np.where(left.is_null().to_numpy(zero_copy_only=False), -1,
                                  left_codes).astype(np.int64)
            self._codes[cache_key] = (left_codes, right_codes)
        return self._codes[cache_key]

    def slots(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """A list column (space-separated values) as (rows × most values) integer codes per
        side, shared between sides; -1 pads, and a left value no right row holds is -1 too
        (it can agree with nothing)."""
        if column not in self._slots:
            if column not in self.shared.slots:
                self.shared.slots[column] = slot_matrix(self.right[column])
            right, uniques = self.shared.slots[column]
            left, _ = slot_matrix(self.left[column], uniques)
            self._slots[column] = (left, right)
        return self._slots[column]

    def strings(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Each row's string value ("" where missing)."""
        if column not in self._strings:
            if column not in self.shared.strings:
                self.shared.strings[column] = _as_text(self.right[column]).fillna("").to_numpy(
                    dtype=object)
            left = _as_text(self.left[column]).fillna("").to_numpy(dtype=object)
            self._strings[column] = (left, self.shared.strings[column])
        return self._strings[column]


class PairColumns:
    """Column values of both sides of some pairs, looked up once per column and transform and
    reused by the levels of every comparison."""

    def __init__(self, left: pd.DataFrame, right: pd.DataFrame, li: np.ndarray, ri: np.ndarray,
                 values: FrameValues | None = None):
        self.left, self.right, self.li, self.ri = left, right, li, ri
        self.values = values or FrameValues(left, right)
        self._codes: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._strings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._scores: dict[tuple[str, str], np.ndarray] = {}

    def scores(self, column: str, scorer: Callable[..., float], rows: np.ndarray) -> np.ndarray:
        """String scores for ``rows``; computed once per column and scorer, on the rows of the
        first request (later levels only ever ask about rows earlier levels left undecided)."""
        cache_key = (column, scorer.__qualname__)
        if cache_key not in self._scores:
            left, right = self.strings(column)
            full = np.full(len(self.li), np.nan)
            full[rows] = process.cpdist(left[rows], right[rows], scorer=scorer, workers=-1)
            self._scores[cache_key] = full
        return self._scores[cache_key][rows]

    def strings(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-pair string values ("" where missing)."""
        if column not in self._strings:
            left, right = self.values.strings(column)
            self._strings[column] = (left[self.li], right[self.ri])
        return self._strings[column]

    def codes(self, column: str, transform: str = "", width: int = 0) -> tuple[np.ndarray, ...]:
        """Per-pair integer codes of (transformed) values, shared between sides; -1 = missing."""
        cache_key = (column, f"{transform}{width}")
        if cache_key not in self._codes:
            left, right = self.values.codes(column, transform, width)
            self._codes[cache_key] = (left[self.li], right[self.ri])
        return self._codes[cache_key]

    def slots(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-pair list codes of both sides (see ``FrameValues.slots``)."""
        left, right = self.values.slots(column)
        return left[self.li], right[self.ri]

    def missing(self, column: str) -> np.ndarray:
        left, right = self.codes(column)
        return (left < 0) | (right < 0)


def slot_matrix(column: pd.Series, uniques: pa.Array | None = None
                ) -> tuple[np.ndarray, pa.Array]:
    """(rows × most values) int64 codes of a space-separated list column, -1 padding, and the
    values coded. With ``uniques`` the codes number those values (-1 for any other)."""
    positions, values = split_lists(column)
    if uniques is None:
        encoded = pc.dictionary_encode(values)
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        uniques = encoded.dictionary
    else:
        codes = pc.fill_null(pc.index_in(values, value_set=uniques), -1).to_numpy(
            zero_copy_only=False).astype(np.int64)
    # the n-th value of its row: positions are in row order
    slot = np.arange(len(positions)) - np.searchsorted(positions, positions, side="left")
    width = int(slot.max(initial=0)) + 1
    out = np.full((len(column), width), -1, dtype=np.int64)
    out[positions, slot] = codes
    return out, uniques


def _as_text(values: pd.Series) -> pd.Series:
    """Strings for comparison: dates as YYYYMMDD, blanks as missing."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y%m%d")
    text = values.astype(object)
    if not pd.api.types.is_object_dtype(values.dtype) and not isinstance(
            values.dtype, pd.StringDtype):
        text = values.astype("string").astype(object)  # numbers and categories as text
    return text.where(text.notna() & (text != ""), None)


def _arrow_text(values: pd.Series) -> pa.Array:
    """``_as_text`` as an Arrow string array (null where missing or blank): string columns
    go to Arrow as they are, others through ``_as_text``."""
    if pd.api.types.is_object_dtype(values.dtype) or isinstance(values.dtype, pd.StringDtype):
        try:
            text = pa.array(values.to_numpy(dtype=object), pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers held as objects: as text
            values = values.astype("string")
        else:
            return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    return pa.array(_as_text(values).to_numpy(dtype=object), pa.string(), from_pandas=True)


def _arrow_transform(values: pa.Array, transform: str, width: int) -> pa.Array:
    """``_transform`` in Arrow's kernels (the roster's millions of values)."""
    if transform == "prefix":
        long_enough = pc.greater_equal(pc.utf8_length(values), width)
        return pc.if_else(long_enough, pc.utf8_slice_codeunits(values, 0, width),
                          pa.scalar(None, pa.string()))
    if transform == "swap":  # YYYYMMDD → YYYYDDMM
        return pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(values, 0, 4), pc.utf8_slice_codeunits(values, 6, 8),
            pc.utf8_slice_codeunits(values, 4, 6), "")
    return values


def _distance_level(
    scorer: Callable[..., float], accept: Callable[[np.ndarray], np.ndarray]
) -> Callable[[PairColumns, str, ComparisonLevel, np.ndarray], np.ndarray]:
    def holds(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
        return accept(cols.scores(column, scorer, rows), level.threshold)

    return holds


def _exact(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left, right = cols.codes(column)
    return (left[rows] == right[rows]) & (left[rows] >= 0)


def _prefix(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left, right = cols.codes(column, "prefix", int(level.threshold or 0))
    return (left[rows] == right[rows]) & (left[rows] >= 0)


def _month_day_swapped(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left, right = cols.codes(column, "swap")
    return (left[rows] == right[rows]) & (left[rows] >= 0)


def _abs_diff(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    left = pd.to_numeric(cols.left[column], errors="coerce").to_numpy(dtype=float)[cols.li[rows]]
    right = pd.to_numeric(cols.right[column], errors="coerce").to_numpy(dtype=float)[cols.ri[rows]]
    return np.abs(left - right) <= float(level.threshold or 0)


def _listed(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    """The member's value (``LISTED_AGAINST[column]``) is among the record's listed values."""
    owner, values = exploded(cols.left[column])
    listed = pd.MultiIndex.from_arrays([owner, values])
    against = pd.to_numeric(cols.right[LISTED_AGAINST[column]], errors="coerce").astype(
        "Int64").to_numpy(dtype=np.int64, na_value=-1)
    asked = pd.MultiIndex.from_arrays([cols.li[rows], against[cols.ri[rows]]])
    return asked.isin(listed)


def _overlap(cols: PairColumns, column: str, level: ComparisonLevel, rows: np.ndarray):
    """The two sides' lists (space-separated values) share a value."""
    left, right = cols.slots(column)
    left, right = left[rows], right[rows]
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
    "osa": _distance_level(OSA.distance, lambda s, t: s <= t),
    "jaro_winkler": _distance_level(JaroWinkler.similarity, lambda s, t: s >= t),
    "listed": _listed,
    "overlap": _overlap,
}


def comparison_levels(cols: PairColumns, comparison: Comparison) -> np.ndarray:
    """Level index per pair: 0 = strongest level, len(levels) = else, -1 = null."""
    levels = np.full(len(cols.li), len(comparison.levels), dtype=np.int8)
    if comparison.column in LISTED_AGAINST:  # only the record lists; the member has a token
        undecided = cols.codes(comparison.column)[0] >= 0
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
