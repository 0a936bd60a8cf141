"""Columns as comparable text and as integer codes, worked out once per match.

One definition of a column as text (``arrow_text``: missing and blank alike missing, dates as
YYYYMMDD, in Arrow — a roster of millions of values never becomes Python strings). A match
compares one roster with its records many times over (the training sample, random pairs, each
chunk of records, the token pairs, the calibration sample): ``RightValues`` codes every roster
column once, *together with the run's records* (``records``, whose rows ``KEYED_ROW`` numbers),
so a record frame drawn from those rows takes its codes by position instead of hashing the
roster's million distinct values again on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# A record frame's rows in ``RightValues.records``. A frame carrying it holds, per row, that
# row's values or missing ones (a field blanked because it was read off the ID): never others.
KEYED_ROW = "_keyed_row"


def arrow_text(values: pd.Series) -> pa.Array:
    """A column as comparable text: an Arrow string array, null where missing or blank; dates
    as YYYYMMDD, numbers and categories as their text. Arrow-backed string columns are taken
    as they are (no Python strings)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        values = values.dt.strftime("%Y%m%d")
    dtype = values.dtype
    if (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") or (
            isinstance(dtype, pd.ArrowDtype) and pa.types.is_string(dtype.pyarrow_dtype)
            or isinstance(dtype, pd.ArrowDtype) and pa.types.is_large_string(dtype.pyarrow_dtype)):
        text = pa.array(values.array)
    else:
        if not pd.api.types.is_object_dtype(dtype) and not isinstance(dtype, pd.StringDtype):
            values = values.astype("string")  # numbers and categories as text
        try:
            text = pa.array(values.to_numpy(dtype=object), pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers held as objects: as text
            text = pa.array(values.astype("string").to_numpy(dtype=object), pa.string(),
                            from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if text.type != pa.string():
        text = text.cast(pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def arrow_transform(values: pa.Array, transform: str, width: int) -> pa.Array:
    """A comparison level's transform in Arrow's kernels: ``prefix`` (the first ``width``
    characters; null when shorter), ``swap`` (YYYYMMDD → YYYYDDMM), or none."""
    if transform == "prefix":
        long_enough = pc.greater_equal(pc.utf8_length(values), width)
        return pc.if_else(long_enough, pc.utf8_slice_codeunits(values, 0, width),
                          pa.scalar(None, pa.string()))
    if transform == "swap":
        return pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(values, 0, 4), pc.utf8_slice_codeunits(values, 6, 8),
            pc.utf8_slice_codeunits(values, 4, 6), "")
    return values


def split_lists(column: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """The values of a space-separated list column, split in Arrow: each value's row position
    and the values (missing and blank rows give none)."""
    lists = pc.split_pattern(arrow_text(column), " ")
    positions = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    return positions, pc.list_flatten(lists)


def _blanked(values: pd.Series) -> np.ndarray:
    """Rows of a frame of the run's records (``KEYED_ROW``) whose value is missing. Only
    missing ones: such a frame holds each row's own values or blanks, and a blank ("") one is
    missing in the records' codes already — no need to make text of the column again."""
    return values.isna().to_numpy(dtype=bool)


def _int_codes(indices: pa.Array) -> np.ndarray:
    return pc.fill_null(indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)


def _mapped(codes: np.ndarray | None, mapping: np.ndarray) -> np.ndarray | None:
    """Codes renumbered through ``mapping`` (-1 stays -1; a value mapped to -1 becomes -1)."""
    if codes is None:
        return None
    return np.where(codes >= 0, mapping[np.maximum(codes, 0)], -1).astype(np.int32)


@dataclass
class Coded:
    """One column (and transform) coded for the roster and the run's records in one numbering:
    ``right[i]`` the roster row's code, ``records[j]`` the record row's (None without records),
    -1 where missing; ``dictionary[c]`` the value of code c. Codes below ``right_values`` are
    the values some roster row holds."""

    right: np.ndarray
    records: np.ndarray | None
    dictionary: pa.Array
    right_values: int


def _slot_matrix(positions: np.ndarray, codes: np.ndarray, rows: int) -> np.ndarray:
    """(rows × most values) codes of a list column, -1 padding (positions in row order)."""
    slot = np.arange(len(positions)) - np.searchsorted(positions, positions, side="left")
    out = np.full((rows, int(slot.max(initial=0)) + 1), -1, dtype=np.int32)
    out[positions, slot] = codes
    return out


class RightValues:
    """The right frame's (the roster's) codes, kept across every comparison and blocking call
    of one match; with ``records`` (the run's record rows, numbered by ``KEYED_ROW``) coded in
    the same numbering, so a frame of those rows looks nothing up."""

    def __init__(self, records: pd.DataFrame | None = None) -> None:
        self.records = records
        self._coded: dict[tuple[str, str, int], Coded] = {}
        self._slots: dict[str, tuple[np.ndarray, np.ndarray | None, int]] = {}
        self.frequencies: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.blocks: Any = None  # the right frame blocked under the rules (_blocking.BlockIndex)
        self._characters: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _records_have(self, column: str) -> bool:
        return self.records is not None and column in self.records.columns

    def coded(self, right: pd.DataFrame, column: str, transform: str = "",
              width: int = 0) -> Coded:
        """``column`` (under ``transform``) coded for the roster and the records; a transform
        is worked out on the distinct values only."""
        key = (column, transform, width)
        if key not in self._coded:
            self._coded[key] = (self._plain(right, column) if not transform
                                else self._transformed(right, column, transform, width))
        return self._coded[key]

    def _plain(self, right: pd.DataFrame, column: str) -> Coded:
        parts = [arrow_text(right[column])]
        if self._records_have(column):
            parts.append(arrow_text(self.records[column]))
        encoded = pc.dictionary_encode(pa.concat_arrays(parts))
        codes = _int_codes(encoded.indices)
        n = len(right)
        right_values = int(codes[:n].max(initial=-1)) + 1  # right's values are numbered first
        return Coded(codes[:n], codes[n:] if len(parts) > 1 else None, encoded.dictionary,
                     right_values)

    def _transformed(self, right: pd.DataFrame, column: str, transform: str,
                     width: int) -> Coded:
        base = self.coded(right, column)
        if transform == "swap":  # the record's swapped form against the roster's as written
            n = len(base.dictionary)
            both = pc.dictionary_encode(pa.concat_arrays(
                [base.dictionary, arrow_transform(base.dictionary, "swap", 0)]))
            mapping = _int_codes(both.indices)
            right_codes = _mapped(base.right, mapping[:n])
            return Coded(right_codes, _mapped(base.records, mapping[n:]), both.dictionary,
                         int(right_codes.max(initial=-1)) + 1)
        encoded = pc.dictionary_encode(arrow_transform(base.dictionary, transform, width))
        mapping = _int_codes(encoded.indices)
        right_codes = _mapped(base.right, mapping)
        return Coded(right_codes, _mapped(base.records, mapping), encoded.dictionary,
                     int(right_codes.max(initial=-1)) + 1)

    def left_codes(self, right: pd.DataFrame, left: pd.DataFrame, column: str,
                   transform: str = "", width: int = 0) -> np.ndarray:
        """Codes of ``left``'s values in the roster's numbering, -1 where missing: by position
        for a frame of the run's records, else by lookup (a value the roster and the records
        lack gets one code of its own that no roster row carries)."""
        coded = self.coded(right, column, transform, width)
        if coded.records is not None and KEYED_ROW in left.columns:
            codes = coded.records[left[KEYED_ROW].to_numpy(dtype=np.int64)]
            return np.where(_blanked(left[column]), -1, codes).astype(np.int32)
        text = arrow_transform(arrow_text(left[column]), transform, width)
        found = pc.index_in(text, value_set=coded.dictionary)
        codes = pc.fill_null(found, len(coded.dictionary)).to_numpy(zero_copy_only=False)
        return np.where(text.is_null().to_numpy(zero_copy_only=False), -1, codes).astype(
            np.int32)

    def slots(self, right: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray | None,
                                                                int]:
        """A list column as (rows × most values) codes for the roster and the records (None
        without records), one numbering, -1 padding; and how many values the roster holds."""
        if column not in self._slots:
            r_at, r_values = split_lists(right[column])
            parts = [r_values]
            if self._records_have(column):
                l_at, l_values = split_lists(self.records[column])
                parts.append(l_values)
            encoded = pc.dictionary_encode(pa.concat_arrays(parts))
            codes = _int_codes(encoded.indices)
            n = len(r_values)
            right_slots = _slot_matrix(r_at, codes[:n], len(right))
            record_slots = (_slot_matrix(l_at, codes[n:], len(self.records))
                            if len(parts) > 1 else None)
            self._slots[column] = (right_slots, record_slots,
                                   int(codes[:n].max(initial=-1)) + 1)
        return self._slots[column]

    def left_slots(self, right: pd.DataFrame, left: pd.DataFrame, column: str) -> np.ndarray:
        """``left``'s list codes in the roster's numbering (a value the roster lacks: -1)."""
        right_slots, record_slots, right_values = self.slots(right, column)
        if record_slots is not None and KEYED_ROW in left.columns:
            out = record_slots[left[KEYED_ROW].to_numpy(dtype=np.int64)]
            out[_blanked(left[column])] = -1
        else:
            at, values = split_lists(left[column])
            # the roster's values in code order (numbered first, by first appearance)
            dictionary = pc.unique(split_lists(right[column])[1])
            codes = pc.fill_null(pc.index_in(values, value_set=dictionary), -1).to_numpy(
                zero_copy_only=False)
            out = _slot_matrix(at, codes.astype(np.int32), len(left))
        return np.where(out < right_values, out, -1)

    def characters(self, right: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
        """The code points of each value of ``column``'s dictionary (``coded``), one row per
        code, zero-padded, and each value's length (-1: test it as text): an edit test on a
        pair's two codes then needs no string of its own."""
        if column not in self._characters:
            dictionary = self.coded(right, column).dictionary
            values = dictionary.to_numpy(zero_copy_only=False)
            text = values.astype(str) if len(values) else np.array([""], dtype="U1")
            points = text.view(np.uint32).reshape(len(text), -1)
            lengths = np.full(len(points), -1, dtype=np.int64)  # none: -1, left to rapidfuzz
            lengths[:len(values)] = pc.utf8_length(dictionary).to_numpy(zero_copy_only=False)
            # a value holding a NUL character is no zero-padded text: -1 as well
            inside = np.arange(points.shape[1]) < lengths[:, None]
            lengths[np.any((points == 0) & inside, axis=1)] = -1
            self._characters[column] = (points, lengths)
        return self._characters[column]

    def frequency(self, right: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Each right row's value code and the share of right rows holding each value."""
        if column not in self.frequencies:
            codes = self.coded(right, column).right
            counts = np.bincount(codes[codes >= 0], minlength=int(codes.max(initial=-1)) + 1)
            self.frequencies[column] = (codes, counts / max(len(right), 1))
        return self.frequencies[column]
