"""Which evidence rows a reason cites, as integers: lists of row positions in the evidence frame.

A reason row carries ``cites``, the number of one list here (-1: it cites no evidence row, e.g.
``wages::missing``); a list holds the positions of the rows it cites, in citation order. Rules
and signals build the lists from the arrays they already select with, and the flags join the
cited records to the evidence on integers. The ``kind:feed_id:record_ref`` text, the form stored
on a flag reason and shown to officers, is made from the lists once per list, in Arrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NO_CITATION = -1


@dataclass(frozen=True)
class Citations:
    """Lists of evidence row positions: list ``i`` is ``rows[offsets[i]:offsets[i + 1]]``.
    ``evidence_rows`` is the length of the frame the positions point into."""

    offsets: np.ndarray  # int64, one more than there are lists
    rows: np.ndarray  # int64
    evidence_rows: int

    @classmethod
    def empty(cls, evidence_rows: int) -> Citations:
        return cls(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), evidence_rows)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def check_frame(self, evidence: pd.DataFrame) -> None:
        if len(evidence) != self.evidence_rows:
            raise ValueError(f"citations point into {self.evidence_rows} evidence rows, the "
                             f"frame given has {len(evidence)}: pass the frame assessed")

    def flat(self, cites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each cites entry in turn (-1 skipped), its rows: (entry index per row, row)."""
        cites = np.asarray(cites, dtype=np.int64)
        listed = np.flatnonzero(cites >= 0)
        lists = cites[listed]
        starts, counts = self.offsets[lists], self.offsets[lists + 1] - self.offsets[lists]
        owner = np.repeat(listed, counts)
        run_start = np.repeat(np.cumsum(counts) - counts, counts)
        within = np.arange(int(counts.sum()), dtype=np.int64) - run_start
        return owner, self.rows[np.repeat(starts, counts) + within]

    def ref_texts(self, evidence: pd.DataFrame, cites: np.ndarray) -> np.ndarray:
        """``kind:feed_id:record_ref;…`` per cites entry ("" for -1), each list's text made
        once however many reasons cite it."""
        cites = np.asarray(cites, dtype=np.int64)
        out = np.full(len(cites), "", dtype=object)
        lists, at = np.unique(cites, return_inverse=True)
        wanted = lists >= 0
        if not wanted.any():
            return out
        owner, rows = self.flat(lists[wanted])
        cited, row_at = np.unique(rows, return_inverse=True)
        texts = ref_text(evidence, cited).take(pa.array(row_at, pa.int64()))
        counts = np.bincount(owner, minlength=int(wanted.sum()))
        runs = pa.LargeListArray.from_arrays(
            pa.array(np.r_[0, np.cumsum(counts)], pa.int64()), texts.cast(pa.large_string()))
        joined = np.full(len(lists), "", dtype=object)
        joined[wanted] = pc.binary_join(runs, pa.scalar(";", pa.large_string())).to_numpy(
            zero_copy_only=False)
        return joined[at.reshape(-1)]


def concat(parts: list[Citations]) -> tuple[Citations, list[int]]:
    """One table of every part's lists, and the number each part's first list now has (add it
    to that part's cites)."""
    firsts = np.r_[0, np.cumsum([len(p) for p in parts])].astype(np.int64)
    shifts = np.r_[0, np.cumsum([len(p.rows) for p in parts])].astype(np.int64)
    offsets = np.concatenate([np.zeros(1, dtype=np.int64)]
                             + [p.offsets[1:] + s for p, s in zip(parts, shifts, strict=False)])
    rows = np.concatenate([np.zeros(0, dtype=np.int64)] + [p.rows for p in parts])
    return Citations(offsets, rows, parts[0].evidence_rows if parts else 0), firsts[:-1].tolist()


def shifted(cites: np.ndarray, first: int) -> np.ndarray:
    """A part's cites renumbered after ``concat`` (-1 stays -1)."""
    cites = np.asarray(cites, dtype=np.int64)
    return np.where(cites >= 0, cites + first, NO_CITATION)


class CitationBuilder:
    """Collects lists as runs of positions in ``evidence`` (one run per household) and numbers
    them."""

    def __init__(self, evidence: pd.DataFrame) -> None:
        self.evidence = evidence
        self.evidence_rows = len(evidence)
        self._rows: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._lists = 0

    def add(self, rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Lists ``rows[starts[i]:starts[i + 1]]`` (the last to the end); returns their
        numbers."""
        counts = np.diff(np.r_[starts, len(rows)]).astype(np.int64)
        self._rows.append(np.asarray(rows, dtype=np.int64))
        self._counts.append(counts)
        numbers = np.arange(self._lists, self._lists + len(counts), dtype=np.int64)
        self._lists += len(counts)
        return numbers

    def text(self, rows: np.ndarray) -> np.ndarray:
        """``kind:feed_id:record_ref`` of the evidence rows at ``rows``, as Python strings."""
        return ref_text(self.evidence, np.asarray(rows, dtype=np.int64)).to_numpy(
            zero_copy_only=False).astype(object)

    def build(self) -> Citations:
        if not self._lists:
            return Citations.empty(self.evidence_rows)
        counts = np.concatenate(self._counts)
        return Citations(np.r_[0, np.cumsum(counts)].astype(np.int64),
                         np.concatenate(self._rows), self.evidence_rows)


def ref_text(evidence: pd.DataFrame, rows: np.ndarray) -> pa.Array:
    """``kind:feed_id:record_ref`` of the evidence rows at ``rows`` (missing parts as "")."""
    # taken before turned into numpy: a column of Python strings would be copied whole first
    parts = [_arrow_text(np.asarray(evidence[column].array.take(rows)))
             for column in ("source_kind", "feed_id", "record_ref")]
    return pc.binary_join_element_wise(*parts, ":")


def _arrow_text(values: np.ndarray) -> pa.Array:
    array = pa.array(values, from_pandas=True)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    text = array if pa.types.is_string(array.type) else array.cast(pa.string())
    return pc.fill_null(text, "")
