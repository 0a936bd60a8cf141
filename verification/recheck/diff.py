"""What changed between two accepted feeds of one kind: the persons whose evidence differs.

Set-based on integer keys, no loop over rows. Each staged row gets a 64-bit digest of the fields
its evidence and its matching are made of (the contract's evidence fields, the record id, the
keyed name forms, birth date, gender — not the line number, which moves when a partner re-sorts
its file). A person's rows are a multiset: the sum of the mixed (period, row digest) values per
person token is the same in both feeds exactly when the person's rows are the same, whatever
their order. Only the few persons whose sums differ are then compared row by row, keyed by
(person token, period), to tell added, removed and changed rows apart.

Rows whose identity is unresolved (token <NA>) name no person: they are counted (added or
removed), and placed by the matcher only in the next full review (docs/architecture.md,
"The incremental path").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import Contract
from verification.assessment.evidence import staged_columns
from verification.matching.run import IDENTITY_COLUMNS

# splitmix64's constants: a cheap, well-mixing 64-bit finaliser (numpy uint64 arithmetic wraps)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_NULL = np.uint64(0x5BD1E9955BD1E995)  # what a missing value contributes


def _mix(values: np.ndarray) -> np.ndarray:
    z = values.astype(np.uint64, copy=True) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class FeedDiff:
    """The persons whose rows differ, and how many rows were added, removed or changed (keyed by
    person token and period) and how many persons and rows stayed the same."""

    changed_tokens: np.ndarray  # int64, sorted
    added: int
    removed: int
    changed: int
    unchanged_persons: int
    unresolved_added: int
    unresolved_removed: int
    rows_old: int
    rows_new: int
    columns: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"persons_changed": len(self.changed_tokens), "rows_added": self.added,
                "rows_removed": self.removed, "rows_changed": self.changed,
                "persons_unchanged": self.unchanged_persons,
                "unresolved_added": self.unresolved_added,
                "unresolved_removed": self.unresolved_removed,
                "rows_old": self.rows_old, "rows_new": self.rows_new}


def diff_columns(contract: Contract) -> list[str]:
    """The staged fields a row's evidence and its match are made of (besides the token)."""
    wanted = [*staged_columns(contract), *IDENTITY_COLUMNS]
    return [c for c in dict.fromkeys(wanted) if c != "person_token"]


def period_column(contract: Contract) -> str | None:
    """The field that says which months (or which day) a row is about, if the contract has one."""
    for mapping in contract.evidence:
        for key in ("period", "date"):
            if key in mapping:
                return mapping[key]
    return None


def _codes(old: pa.ChunkedArray, new: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Equal values → equal uint64 codes, across both feeds."""
    both = pa.chunked_array(old.chunks + new.chunks, type=old.type)
    if pa.types.is_string(both.type) or pa.types.is_large_string(both.type) or (
            pa.types.is_boolean(both.type)):
        encoded = pc.dictionary_encode(both).combine_chunks()
        codes = encoded.indices.cast(pa.int64()).fill_null(-1).to_numpy()
    elif pa.types.is_floating(both.type):  # -0.0 == 0.0; NaN and null alike
        values = pc.fill_null(both, np.nan).to_numpy()
        values = np.where(values == 0, 0.0, values)
        codes = np.where(np.isnan(values), -1, values.view(np.int64))
    else:  # integers, dates and timestamps: their integer value
        ints = both.cast(pa.int64()) if not pa.types.is_timestamp(both.type) else (
            pc.cast(both, pa.int64()))
        nulls = pc.is_null(both).to_numpy(zero_copy_only=False)
        codes = np.where(nulls, 0, ints.fill_null(0).to_numpy())
        codes = codes.astype(np.int64)
        codes[nulls] = -1
    codes = codes.astype(np.int64).view(np.uint64)
    codes = np.where(codes == np.uint64(2**64 - 1), _NULL, codes)
    return codes[:len(old)], codes[len(old):]


def _read(path: Path, columns: list[str]) -> pa.Table:
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=["person_token", *[c for c in columns if c in present]])
    for name in columns:  # a column a file lacks is missing on every row
        if name not in present:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    return table


def diff_feeds(old_path: Path | None, new_path: Path, contract: Contract) -> FeedDiff:
    """Compare the staged rows of two feeds of ``contract``'s kind (no old feed: every row of
    the new one is added)."""
    columns = diff_columns(contract)
    new = _read(new_path, columns)
    old = _read(old_path, columns) if old_path is not None else new.slice(0, 0)
    digest_old = np.zeros(old.num_rows, dtype=np.uint64)
    digest_new = np.zeros(new.num_rows, dtype=np.uint64)
    for name in columns:
        a, b = _codes(old.column(name), new.column(name).cast(old.column(name).type))
        digest_old = _mix(digest_old ^ _mix(a))
        digest_new = _mix(digest_new ^ _mix(b))
    period = period_column(contract)
    if period is not None:
        period_old, period_new = _codes(old.column(period),
                                        new.column(period).cast(old.column(period).type))
    else:
        period_old = np.zeros(old.num_rows, np.uint64)
        period_new = np.zeros(new.num_rows, np.uint64)
    token_old, token_new = _tokens(old), _tokens(new)
    del old, new
    unresolved_added, unresolved_removed = _unresolved(
        digest_old[token_old.isna().to_numpy()], digest_new[token_new.isna().to_numpy()])
    # per person: the sum of their rows' digests, each mixed with its period (a multiset hash)
    sums = []
    for token, digest in ((token_old, digest_old), (token_new, digest_new)):
        known = token.notna().to_numpy()
        # int64 views: the sums wrap alike in both feeds; masked Int64 keeps every bit when a
        # person is in one feed only (a float NaN would round the others)
        sums.append(pd.Series(digest[known].view(np.int64)).groupby(
            token.to_numpy(dtype=np.int64, na_value=0)[known], sort=False).sum().astype("Int64"))
    both = pd.concat(sums, axis=1, keys=["old", "new"])
    differ = both["old"].ne(both["new"]) | both.isna().any(axis=1)
    changed_tokens = np.sort(both.index[differ.to_numpy()].to_numpy(dtype=np.int64))
    added, removed, changed = _rows_of(changed_tokens, (token_old, period_old, digest_old),
                                       (token_new, period_new, digest_new))
    return FeedDiff(changed_tokens, added, removed, changed, int((~differ).sum()),
                    unresolved_added, unresolved_removed, len(token_old), len(token_new),
                    columns)


def _tokens(table: pa.Table) -> pd.Series:
    """The token column as Int64 straight from Arrow (through float64 a 64-bit token would lose
    its low bits)."""
    return table.column("person_token").cast(pa.int64()).to_pandas(
        types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def _unresolved(old: np.ndarray, new: np.ndarray) -> tuple[int, int]:
    """Rows with no token: how many of the new feed's are not in the old, and the other way."""
    a = pd.Series(old, dtype="uint64").value_counts()
    b = pd.Series(new, dtype="uint64").value_counts()
    gap = b.sub(a, fill_value=0)
    return int(gap[gap > 0].sum()), int(-gap[gap < 0].sum())


def _rows_of(tokens: np.ndarray, old: tuple, new: tuple) -> tuple[int, int, int]:
    """Of the persons that changed, rows keyed by (token, period): keys only in the new feed
    (added), only in the old (removed), in both with other rows (changed)."""
    keyed = []
    for token, period, digest in (old, new):
        mine = token.isin(tokens).to_numpy(dtype=bool)
        keyed.append(pd.DataFrame({
            "token": token.to_numpy(dtype=np.int64, na_value=0)[mine],
            "period": period[mine].view(np.int64), "digest": digest[mine].view(np.int64)})
            .groupby(["token", "period"], sort=False)["digest"].sum().astype("Int64"))
    both = pd.concat(keyed, axis=1, keys=["old", "new"])
    only_new = both["old"].isna() & both["new"].notna()
    only_old = both["new"].isna() & both["old"].notna()
    differ = both["old"].notna() & both["new"].notna() & both["old"].ne(both["new"])
    return int(only_new.sum()), int(only_old.sum()), int(differ.sum())
