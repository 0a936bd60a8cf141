"""Candidate pairs: only pairs that agree exactly on some blocking rule are compared.

Each rule's columns are factorised on both sides together into one integer key per row, the
sides are joined on that key, and the union of all rules' pairs is de-duplicated as int64 pair
numbers. Rows missing any column of a rule take no part in that rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from verification.matching.settings import LIST_COLUMNS, LISTED_AGAINST


def rule_keys(left: pd.DataFrame, right: pd.DataFrame, rule: tuple[str, ...]):
    """Integer keys for both sides under one rule; -1 where a column is missing."""
    n_left = len(left)
    combined = np.zeros(n_left + len(right), dtype=np.int64)
    missing = np.zeros(n_left + len(right), dtype=bool)
    for column in rule:
        sides = [side[column] for side in (left, right) if len(side)]  # no empty side's dtype
        values = pd.concat(sides, ignore_index=True) if sides else left[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            values = values.dt.strftime("%Y%m%d")
        values = values.astype("string")
        codes, uniques = pd.factorize(values.where(values.str.len() > 0))
        missing |= codes < 0
        combined = combined * (len(uniques) + 1) + codes
        combined, _ = pd.factorize(combined)  # keep the mixed-radix key small
    combined = np.where(missing, -1, combined)
    return combined[:n_left], combined[n_left:]


def _bounded(left_key: np.ndarray, right_key: np.ndarray,
             max_block: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Keys of blocks holding more than ``max_block`` right rows become -1 (the rule then
    proposes nothing for them: a record in such a block — 王伟 in a province — is left to the
    other rules), so no rule gives a record more than ``max_block`` pairs."""
    if max_block is None or not len(right_key):
        return left_key, right_key
    sizes = np.bincount(right_key[right_key >= 0], minlength=1)
    too_big = np.flatnonzero(sizes > max_block)
    if not len(too_big):
        return left_key, right_key
    return (np.where(np.isin(left_key, too_big), -1, left_key),
            np.where(np.isin(right_key, too_big), -1, right_key))


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


def _exploded_keys(left: pd.DataFrame, right: pd.DataFrame, rule: tuple[str, ...], column: str,
                   max_block: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per side, one row per value of the list ``column``: its rule key (``key``, blocks over
    ``max_block`` right rows and missing values left out) and its row's position (``at``)."""
    left_rows, left_at = _exploded_rows(left, rule, column)
    right_rows, right_at = _exploded_rows(right, rule, column)
    if not len(left_rows) or not len(right_rows):
        empty = pd.DataFrame({"key": np.zeros(0, np.int64), "at": np.zeros(0, np.int64)})
        return empty, empty
    left_key, right_key = _bounded(*rule_keys(left_rows, right_rows, rule), max_block)
    lk = pd.DataFrame({"key": left_key, "at": left_at})
    rk = pd.DataFrame({"key": right_key, "at": right_at})
    return lk[lk["key"] >= 0], rk[rk["key"] >= 0]


def _list_rule_pairs(left: pd.DataFrame, right: pd.DataFrame, rule: tuple[str, ...],
                     column: str, max_block: int | None) -> np.ndarray:
    """Pair numbers (left × len(right) + right) of a rule on a list column (address keys, lists
    on both sides): the rows agree when they share a listed value (and agree on the rule's
    other columns); a value held by more than ``max_block`` right rows proposes nothing."""
    lk, rk = _exploded_keys(left, right, rule, column, max_block)
    joined = lk.merge(rk, on="key", suffixes=("_left", "_right"))
    return np.unique(joined["at_left"].to_numpy(np.int64) * len(right)
                     + joined["at_right"].to_numpy(np.int64))


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


def pairs_per_rule(left: pd.DataFrame, right: pd.DataFrame, rules: tuple[tuple[str, ...], ...],
                   max_block: int | None = None) -> dict[str, int]:
    """How many pairs each rule proposes (before the union removes pairs proposed twice), counted
    from the block sizes without forming the pairs — what to look at before comparing."""
    counts = {}
    for rule in rules:
        if len(rule) == 1 and rule[0] in LISTED_AGAINST:
            counts[rule_name(rule)] = len(listed_pairs(left, right, rule[0])[0])
            continue
        if (column := _list_column(rule)) is not None:  # small blocks (a flat): formed
            counts[rule_name(rule)] = len(_list_rule_pairs(left, right, rule, column, max_block))
            continue
        left_key, right_key = _bounded(*rule_keys(left, right, rule), max_block)
        size = int(max(left_key.max(initial=-1), right_key.max(initial=-1)) + 1)
        on_left = np.bincount(left_key[left_key >= 0], minlength=size).astype(np.int64)
        on_right = np.bincount(right_key[right_key >= 0], minlength=size).astype(np.int64)
        counts[rule_name(rule)] = int((on_left * on_right).sum())
    return counts


def candidate_pairs(
    left: pd.DataFrame, right: pd.DataFrame, rules: tuple[tuple[str, ...], ...],
    max_block: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positional (left, right) index arrays of every pair some rule accepts, each pair once;
    with ``max_block``, blocks of more right rows than that are left out of their rule."""
    found = []
    for rule in rules:
        if len(rule) == 1 and rule[0] in LISTED_AGAINST:
            li, ri = listed_pairs(left, right, rule[0])
            found.append(li * len(right) + ri)
            continue
        if (column := _list_column(rule)) is not None:
            found.append(_list_rule_pairs(left, right, rule, column, max_block))
            continue
        left_key, right_key = _bounded(*rule_keys(left, right, rule), max_block)
        lk = pd.DataFrame({"key": left_key, "li": np.arange(len(left))})
        rk = pd.DataFrame({"key": right_key, "ri": np.arange(len(right))})
        joined = lk[lk["key"] >= 0].merge(rk[rk["key"] >= 0], on="key")
        found.append(joined["li"].to_numpy(np.int64) * len(right) + joined["ri"].to_numpy(np.int64))
    if not found:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    pair_numbers = np.unique(np.concatenate(found))
    return pair_numbers // max(len(right), 1), pair_numbers % max(len(right), 1)
