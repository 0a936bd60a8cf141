"""Candidate pairs: only pairs that agree exactly on some blocking rule are compared.

Each rule's columns are factorised on both sides together into one integer key per row, the
sides are joined on that key, and the union of all rules' pairs is de-duplicated as int64 pair
numbers. Rows missing any column of a rule take no part in that rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rule_keys(left: pd.DataFrame, right: pd.DataFrame, rule: tuple[str, ...]):
    """Integer keys for both sides under one rule; -1 where a column is missing."""
    n_left = len(left)
    combined = np.zeros(n_left + len(right), dtype=np.int64)
    missing = np.zeros(n_left + len(right), dtype=bool)
    for column in rule:
        values = pd.concat([left[column], right[column]], ignore_index=True)
        if pd.api.types.is_datetime64_any_dtype(values):
            values = values.dt.strftime("%Y%m%d")
        values = values.astype("string")
        codes, uniques = pd.factorize(values.where(values.str.len() > 0))
        missing |= codes < 0
        combined = combined * (len(uniques) + 1) + codes
        combined, _ = pd.factorize(combined)  # keep the mixed-radix key small
    combined = np.where(missing, -1, combined)
    return combined[:n_left], combined[n_left:]


def candidate_pairs(
    left: pd.DataFrame, right: pd.DataFrame, rules: tuple[tuple[str, ...], ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Positional (left, right) index arrays of every pair some rule accepts, each pair once."""
    found = []
    for rule in rules:
        left_key, right_key = rule_keys(left, right, rule)
        lk = pd.DataFrame({"key": left_key, "li": np.arange(len(left))})
        rk = pd.DataFrame({"key": right_key, "ri": np.arange(len(right))})
        joined = lk[lk["key"] >= 0].merge(rk[rk["key"] >= 0], on="key")
        found.append(joined["li"].to_numpy(np.int64) * len(right) + joined["ri"].to_numpy(np.int64))
    if not found:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    pair_numbers = np.unique(np.concatenate(found))
    return pair_numbers // max(len(right), 1), pair_numbers % max(len(right), 1)
