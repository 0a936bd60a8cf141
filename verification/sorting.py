"""Distinct integers by sorting.

NumPy 2.3+ answers a plain ``np.unique(values)`` with a hash table: on a million distinct
64-bit integers that is about 0.7 CPU-s, against 6 ms for its sort and a comparison of
neighbours. A review asks it for tokens, households and hashes by the million.
"""

from __future__ import annotations

import numpy as np


def distinct(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of integers (sorted, each once), by sorting."""
    ordered = np.sort(np.asarray(values).ravel())
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def difference(values: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """``np.setdiff1d(values, removed)`` of integers: the distinct ``values`` not in
    ``removed``, sorted (np.setdiff1d takes both through the hash-table unique: 4.7 CPU-s for
    three million rows, against 0.07 here)."""
    kept = distinct(values)
    return kept[np.isin(kept, distinct(removed), assume_unique=True, invert=True)]


def union(*arrays: np.ndarray) -> np.ndarray:
    """``np.union1d`` of integers, of any number of arrays: sorted, each value once."""
    return distinct(np.concatenate([np.asarray(a).ravel() for a in arrays]))
