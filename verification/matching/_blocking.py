"""Candidate pairs: only pairs that agree exactly on some blocking rule are compared.

The right side (the roster) is blocked once per match (``BlockIndex``): under each rule its
columns are factorised into one block number per row, its rows sorted by block. A left row finds
its block by hash lookups of its values in the right's distinct values, and its pairs are that
block's rows (a block of more right rows than the rule's bound proposes nothing). The union of
all rules' pairs is de-duplicated as int64 pair numbers. Rows missing any column of a rule take
no part in that rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from verification.matching.settings import DERIVED_COLUMNS, LIST_COLUMNS, LISTED_AGAINST


def with_derived(frame: pd.DataFrame, rules: tuple[tuple[str, ...], ...]) -> pd.DataFrame:
    """The frame with every ``DERIVED_COLUMNS`` column the rules name and it lacks, cut in
    Arrow from its source column (missing where the source is)."""
    wanted = {c for rule in rules for c in rule if c in DERIVED_COLUMNS and c not in frame}
    cut = {}
    for column in sorted(wanted):
        source, start, stop = DERIVED_COLUMNS[column]
        if source not in frame.columns:
            continue
        values = frame[source]
        text = pa.array(values.astype(object).where(values.notna(), None).to_numpy(dtype=object),
                        pa.string(), from_pandas=True)
        part = pc.utf8_slice_codeunits(text, start, stop if stop is not None else 2**31 - 1)
        part = pc.if_else(pc.equal(part, ""), pa.scalar(None, pa.string()), part)
        cut[column] = pd.array(part.to_numpy(zero_copy_only=False), dtype=object)
    return with_columns(frame, cut)


def with_columns(frame: pd.DataFrame, columns: dict[str, object]) -> pd.DataFrame:
    """``frame`` with ``columns`` added; the frame's own data are not copied (``assign`` copies
    every column: a roster of millions of rows, once per call)."""
    if not columns:
        return frame
    out = frame.copy(deep=False)
    for column, values in columns.items():
        out[column] = values
    return out


def rule_keys(left: pd.DataFrame, right: pd.DataFrame, rule: tuple[str, ...]):
    """Integer keys for both sides under one rule; -1 where a column is missing."""
    n_left = len(left)
    combined = np.zeros(n_left + len(right), dtype=np.int64)
    missing = np.zeros(n_left + len(right), dtype=bool)
    for column in rule:
        sides = [side[column] for side in (left, right) if len(side)]  # no empty side's dtype
        values = pd.concat(sides, ignore_index=True) if sides else left[column]
        codes, uniques = pd.factorize(_texts(values))
        missing |= codes < 0
        combined = combined * (len(uniques) + 1) + codes
        combined, _ = pd.factorize(combined)  # keep the mixed-radix key small
    combined = np.where(missing, -1, combined)
    return combined[:n_left], combined[n_left:]


# A bound on block size: one for every rule, or per rule name (a rule not named: no bound).
BlockBound = int | None | Mapping[str, int | None]


def _limit(max_block: BlockBound, rule: tuple[str, ...]) -> int | None:
    if isinstance(max_block, Mapping):
        return max_block.get(rule_name(rule))
    return max_block


def _list_column(rule: tuple[str, ...]) -> str | None:
    listed = [c for c in rule if c in LIST_COLUMNS]
    return listed[0] if listed else None


def split_lists(column: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """The values of a space-separated list column, split in Arrow: each value's row position
    and the values (missing and blank rows give none)."""
    text = column.astype(object).where(column.notna(), None).to_numpy(dtype=object)
    data = pa.array(text, pa.string(), from_pandas=True)
    data = pc.if_else(pc.equal(data, ""), pa.scalar(None, pa.string()), data)
    lists = pc.split_pattern(data, " ")
    positions = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    return positions, pc.list_flatten(lists)


def _exploded_rows(frame: pd.DataFrame, rule: tuple[str, ...],
                   column: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The rule's columns with one row per value of the list ``column`` (which then holds that
    value), and each row's position in ``frame``."""
    positions, values = split_lists(frame[column])
    table = frame[list(rule)].iloc[positions].reset_index(drop=True)
    table[column] = values.to_numpy(zero_copy_only=False)
    return table, positions


def _exploded_keys(left: pd.DataFrame, right: pd.DataFrame, rule: tuple[str, ...],
                   column: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per side, one row per value of the list ``column``: its rule key (``key``, missing
    values left out) and its row's position (``at``)."""
    left_rows, left_at = _exploded_rows(left, rule, column)
    right_rows, right_at = _exploded_rows(right, rule, column)
    if not len(left_rows) or not len(right_rows):
        empty = pd.DataFrame({"key": np.zeros(0, np.int64), "at": np.zeros(0, np.int64)})
        return empty, empty
    left_key, right_key = rule_keys(left_rows, right_rows, rule)
    lk = pd.DataFrame({"key": left_key, "at": left_at})
    rk = pd.DataFrame({"key": right_key, "at": right_at})
    return lk[lk["key"] >= 0], rk[rk["key"] >= 0]


def rows_agree(left: pd.DataFrame, right: pd.DataFrame, rule: tuple[str, ...]) -> np.ndarray:
    """Per position, whether ``left``'s row and ``right``'s row at the same position agree on
    ``rule`` (the two frames aligned: a record and the member its token names)."""
    column = _list_column(rule)
    if column is None:
        left_key, right_key = rule_keys(left, right, rule)
        return (left_key >= 0) & (left_key == right_key)
    lk, rk = _exploded_keys(left, right, rule, column)
    agree = np.zeros(len(left), dtype=bool)
    agree[lk.merge(rk, on=["key", "at"])["at"].to_numpy(np.int64)] = True
    return agree


def listed_pairs(left: pd.DataFrame, right: pd.DataFrame,
                 column: str) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) positions of the pairs where the right row's ``LISTED_AGAINST[column]``
    value is among the left row's listed values (space-separated), in left-row order."""
    owner, values = exploded(left[column])
    against = pd.Index(pd.to_numeric(right[LISTED_AGAINST[column]], errors="coerce")
                       .astype("Int64").to_numpy(dtype=np.int64, na_value=-1))
    if not against.is_unique:  # a person in two households: one pair per household
        joined = pd.DataFrame({"li": owner, "v": values}).merge(
            pd.DataFrame({"v": against.to_numpy(), "ri": np.arange(len(right))}), on="v")
        return joined["li"].to_numpy(np.int64), joined["ri"].to_numpy(np.int64)
    at = against.get_indexer(values)
    return owner[at >= 0], at[at >= 0].astype(np.int64)


def exploded(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Positions and int64 values of a space-separated list column (missing rows give none)."""
    text = column.astype("string")
    present = np.flatnonzero(text.notna().to_numpy() & (text.str.len() > 0).fillna(False)
                             .to_numpy(bool))
    if not len(present):
        return np.array([], np.int64), np.array([], np.int64)
    parts = text.iloc[present].str.split(" ")
    lengths = parts.str.len().to_numpy(dtype=np.int64)
    values = np.array([int(v) for p in parts for v in p], dtype=np.int64)
    return np.repeat(present, lengths).astype(np.int64), values


def rule_name(rule: tuple[str, ...]) -> str:
    return " & ".join(rule)


def _texts(values: pd.Series) -> pd.Series:
    """A column as comparable text, blank and missing alike missing."""
    if pd.api.types.is_datetime64_any_dtype(values):
        values = values.dt.strftime("%Y%m%d")
    text = values.astype("string")
    return text.where(text.str.len() > 0)


def _rule_rows(frame: pd.DataFrame, rule: tuple[str, ...], side: str
               ) -> tuple[np.ndarray, list[pd.Series | np.ndarray]]:
    """One side's rows under a rule: each row's position in ``frame`` and its value per rule
    column — one row per listed value for a list column (``LIST_COLUMNS`` on both sides;
    ``LISTED_AGAINST`` on the left, matched against the right's own column)."""
    if len(rule) == 1 and rule[0] in LISTED_AGAINST:
        if side == "left":
            owner, values = exploded(frame[rule[0]])
            return owner, [values]
        against = pd.to_numeric(frame[LISTED_AGAINST[rule[0]]], errors="coerce")
        return np.arange(len(frame)), [against.astype("Int64").to_numpy(np.int64, na_value=-1)]
    column = _list_column(rule)
    if column is None:
        return np.arange(len(frame)), [_texts(frame[c]) for c in rule]
    positions, listed = split_lists(frame[column])
    values = [pd.Series(listed.to_numpy(zero_copy_only=False), dtype="string") if c == column
              else _texts(frame[c]).iloc[positions].reset_index(drop=True) for c in rule]
    return positions, values


def _codes_of(values: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.Index]:
    if isinstance(values, np.ndarray):  # int64 tokens (-1: none), kept exact (no floats)
        codes = np.full(len(values), -1, dtype=np.int64)
        valid = values != -1
        codes[valid], uniques = pd.factorize(values[valid])
        return codes, pd.Index(uniques)
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), pd.Index(uniques)


def _lookup(index: pd.Index, values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        found = index.get_indexer(values) if len(index) else np.full(len(values), -1)
        return np.where(values == -1, -1, found).astype(np.int64)
    found = index.get_indexer(values) if len(index) else np.full(len(values), -1)
    return np.where(values.isna().to_numpy(), -1, found).astype(np.int64)


class _RuleBlocks:
    """The right side's blocks under one rule: the distinct values of each column and of each
    combination step (so a left row's values find their block by hash lookup), the right rows
    sorted by block, and where each block starts."""

    def __init__(self, right: pd.DataFrame, rule: tuple[str, ...], bound: int | None,
                 coded: dict[str, tuple[np.ndarray, pd.Index]] | None = None) -> None:
        self.rule = rule
        positions, values = _rule_rows(right, rule, "right")
        plain = _list_column(rule) is None and rule[0] not in LISTED_AGAINST
        coded = coded if coded is not None and plain else {}  # a plain rule's columns: shared
        self.columns: list[pd.Index] = []
        self.steps: list[pd.Index] = []
        block = np.zeros(len(positions), dtype=np.int64)
        for k, value in enumerate(values):
            if rule[k] not in coded:
                coded[rule[k]] = _codes_of(value)
            codes, uniques = coded[rule[k]]
            self.columns.append(uniques)
            if k == 0:
                block = codes
                continue
            raw = np.where((block >= 0) & (codes >= 0), block * (len(uniques) + 1) + codes, -1)
            block = np.full(len(raw), -1, dtype=np.int64)
            valid = raw >= 0
            block[valid], step = pd.factorize(raw[valid])
            self.steps.append(pd.Index(step))
        sizes = np.bincount(block[block >= 0], minlength=1).astype(np.int64)
        self.allowed = sizes <= bound if bound is not None else np.ones(len(sizes), bool)
        sizes = np.where(self.allowed, sizes, 0)
        keep = (block >= 0) & self.allowed[np.maximum(block, 0)]
        order = np.argsort(block[keep], kind="stable")
        self.rows = positions[keep][order].astype(np.int64)
        self.sizes = sizes
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def left_blocks(self, left: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each left row's (position, block), rows in no allowed block left out."""
        positions, values = _rule_rows(left, self.rule, "left")
        block = _lookup(self.columns[0], values[0]) if len(positions) else \
            np.zeros(0, np.int64)
        for k, value in enumerate(values[1:]):
            codes = _lookup(self.columns[k + 1], value)
            raw = np.where((block >= 0) & (codes >= 0),
                           block * (len(self.columns[k + 1]) + 1) + codes, -1)
            block = np.where(raw >= 0, self.steps[k].get_indexer(raw) if len(self.steps[k])
                             else -1, -1).astype(np.int64)
        ok = block >= 0
        ok[ok] = self.allowed[block[ok]]
        return positions[ok].astype(np.int64), block[ok]

    def pair_count(self, left: pd.DataFrame) -> int:
        _, block = self.left_blocks(left)
        return int(self.sizes[block].sum())

    def pairs(self, left: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        at, block = self.left_blocks(left)
        counts = self.sizes[block]
        total = int(counts.sum())
        li = np.repeat(at, counts)
        first = np.repeat(self.starts[block], counts)
        offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        return li, self.rows[first + offset]


class BlockIndex:
    """The right side (the roster) blocked once under every rule: a match blocks the same
    roster against the training sample, every chunk of records and the calibration sample, and
    factorising millions of roster values each time was most of the fallback's cost."""

    def __init__(self, right: pd.DataFrame, rules: tuple[tuple[str, ...], ...],
                 max_block: BlockBound = None) -> None:
        self.right = right
        self.width = len(right)
        coded: dict[str, tuple[np.ndarray, pd.Index]] = {}  # a column two rules name: once
        self.rules = {rule_name(rule): _RuleBlocks(right, rule, _limit(max_block, rule), coded)
                      for rule in rules}

    def counts(self, left: pd.DataFrame) -> dict[str, int]:
        """How many pairs each rule proposes (before the union removes pairs proposed twice);
        pairs sharing several listed values count once."""
        counts = {}
        for name, blocks in self.rules.items():
            if _list_column(blocks.rule) is not None or blocks.rule[0] in LISTED_AGAINST:
                li, ri = blocks.pairs(left)  # small blocks (a flat, a typing slip): formed
                counts[name] = len(np.unique(li * max(self.width, 1) + ri))
            else:
                counts[name] = blocks.pair_count(left)
        return counts

    def pairs(self, left: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Positional (left, right) arrays of every pair some rule accepts, each pair once,
        ordered by left row then right row."""
        width = np.int64(max(self.width, 1))
        found = [li * width + ri for li, ri in (b.pairs(left) for b in self.rules.values())]
        if not found:
            return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
        pair_numbers = np.sort(pd.unique(np.concatenate(found)))  # hashed, then one sort
        return pair_numbers // width, pair_numbers % width


def pairs_per_rule(left: pd.DataFrame, right: pd.DataFrame, rules: tuple[tuple[str, ...], ...],
                   max_block: BlockBound = None, index: BlockIndex | None = None
                   ) -> dict[str, int]:
    """How many pairs each rule proposes, counted from the block sizes without forming the pairs
    — what to look at before comparing. ``index``: the right side blocked already."""
    return (index if index is not None else BlockIndex(right, rules, max_block)).counts(left)


def candidate_pairs(
    left: pd.DataFrame, right: pd.DataFrame, rules: tuple[tuple[str, ...], ...],
    max_block: BlockBound = None, index: BlockIndex | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positional (left, right) index arrays of every pair some rule accepts, each pair once;
    with ``max_block``, blocks of more right rows than that are left out of their rule.
    ``index``: the right side blocked already under these rules (``BlockIndex``)."""
    return (index if index is not None else BlockIndex(right, rules, max_block)).pairs(left)
