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

from verification.matching._codes import RightValues, arrow_text, split_lists
from verification.matching.settings import DERIVED_COLUMNS, LIST_COLUMNS, LISTED_AGAINST


def with_derived(frame: pd.DataFrame, rules: tuple[tuple[str, ...], ...]) -> pd.DataFrame:
    """The frame with every ``DERIVED_COLUMNS`` column the rules name and it lacks, cut in
    Arrow from its source column (missing where the source is) and kept Arrow-backed (a
    roster's millions of values never become Python strings)."""
    wanted = {c for rule in rules for c in rule if c in DERIVED_COLUMNS and c not in frame}
    cut = {}
    for column in sorted(wanted):
        source, start, stop = DERIVED_COLUMNS[column]
        if source not in frame.columns:
            continue
        text = arrow_text(frame[source])
        part = pc.utf8_slice_codeunits(text, start, stop if stop is not None else 2**31 - 1)
        part = pc.if_else(pc.equal(part, ""), pa.scalar(None, pa.string()), part)
        cut[column] = pd.array(part, dtype="string[pyarrow]")
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
        encoded = pc.dictionary_encode(pa.concat_arrays([arrow_text(left[column]),
                                                         arrow_text(right[column])]))
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        missing |= codes < 0
        combined = combined * (len(encoded.dictionary) + 1) + codes
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
    """Positions and int64 values of a space-separated list column (missing rows give none),
    split and parsed in Arrow; a value Arrow cannot read as a number is read by Python's int
    (which raises as before on one that is none)."""
    positions, values = split_lists(column)
    try:
        numbers = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        numbers = np.array([int(v) for v in values.to_pylist()], dtype=np.int64)
    return positions, numbers.astype(np.int64)


def rule_name(rule: tuple[str, ...]) -> str:
    return " & ".join(rule)


def _codes_of(values: np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """int64 tokens (-1: none) coded, kept exact (no floats)."""
    codes = np.full(len(values), -1, dtype=np.int64)
    valid = values != -1
    codes[valid], uniques = pd.factorize(values[valid])
    return codes, pd.Index(uniques)


def _lookup(index: pd.Index, values: np.ndarray) -> np.ndarray:
    found = index.get_indexer(values) if len(index) else np.full(len(values), -1)
    return np.where(values == -1, -1, found).astype(np.int64)


class _RuleBlocks:
    """The right side's blocks under one rule: its rows sorted by block and where each block
    starts; a left row finds its block from its codes in the right's numbering
    (``RightValues``: one coding per column for every rule and comparison of a match) and the
    hashed combination steps."""

    def __init__(self, right: pd.DataFrame, rule: tuple[str, ...], bound: int | None,
                 values: RightValues) -> None:
        self.rule, self.right, self.values = rule, right, values
        self.tokens: pd.Index | None = None  # a LISTED_AGAINST rule: the right's tokens
        positions, codes, self.radices = self._rule_codes(right, "right")
        self.steps: list[pd.Index] = []
        block = codes[0]
        for k, code in enumerate(codes[1:]):
            raw = np.where((block >= 0) & (code >= 0), block * self.radices[k + 1] + code, -1)
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

    def _rule_codes(self, frame: pd.DataFrame, side: str
                    ) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
        """One side's rows under the rule: each row's position in ``frame`` and its code per
        rule column in the right's numbering (-1: missing, or a value no right row holds) —
        one row per listed value for a list column (``LIST_COLUMNS`` on both sides;
        ``LISTED_AGAINST`` on the left, matched against the right's own column) — and each
        column's radix (the right's values + 1)."""
        rule, right = self.rule, self.right
        if len(rule) == 1 and rule[0] in LISTED_AGAINST:
            if side == "left":
                owner, values = exploded(frame[rule[0]])
                return owner, [_lookup(self.tokens, values)], [0]
            against = pd.to_numeric(frame[LISTED_AGAINST[rule[0]]], errors="coerce")
            codes, self.tokens = _codes_of(against.astype("Int64").to_numpy(np.int64,
                                                                            na_value=-1))
            return np.arange(len(frame)), [codes], [len(self.tokens) + 1]
        listed = _list_column(rule)
        positions = np.arange(len(frame))
        codes, radices = [], []
        if listed is not None:
            slots = (self.values.slots(right, listed)[0] if side == "right"
                     else self.values.left_slots(right, frame, listed))
            row, slot = np.nonzero(slots >= 0)  # row-major: in row order, values in order
            positions = row.astype(np.int64)
        for column in rule:
            if column == listed:
                codes.append(slots[row, slot].astype(np.int64))
                radices.append(self.values.slots(right, listed)[2] + 1)
                continue
            coded = self.values.coded(right, column)
            code = (coded.right if side == "right"
                    else self.values.left_codes(right, frame, column)).astype(np.int64)
            code = np.where(code < coded.right_values, code, -1)
            codes.append(code[positions] if listed is not None else code)
            radices.append(coded.right_values + 1)
        return positions, codes, radices

    def left_blocks(self, left: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each left row's (position, block), rows in no allowed block left out."""
        positions, codes, _ = self._rule_codes(left, "left")
        block = codes[0]
        for k, code in enumerate(codes[1:]):
            raw = np.where((block >= 0) & (code >= 0), block * self.radices[k + 1] + code, -1)
            block = np.where(raw >= 0, self.steps[k].get_indexer(raw) if len(self.steps[k])
                             else -1, -1).astype(np.int64)
        ok = (block >= 0) & (block < len(self.allowed))
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
                 max_block: BlockBound = None, values: RightValues | None = None) -> None:
        self.right = right
        self.width = len(right)
        values = values if values is not None else RightValues()  # a column two rules name: once
        self.rules = {rule_name(rule): _RuleBlocks(right, rule, _limit(max_block, rule), values)
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
