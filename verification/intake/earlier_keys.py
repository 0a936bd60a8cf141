"""The keys of a feed's earlier blocks, asked whether a new block's keys are among them.

A large feed is staged block by block (feeds._stage_in_chunks), and a row whose primary key
repeats a row of an earlier block is quarantined. Looking each block up among all the keys read
before it cost the whole feed so far once per block: quadratic in the number of blocks (a
10-million-row wages feed in six blocks spent 3.6 CPU-s there). Here each distinct key has one
integer entry (a hash of its bytes and its row's number), the entries in a few sorted runs of
doubling size (a binary counter: an entry is merged into a bigger run at most log2(blocks)
times), so that a block is looked up in time for its own rows: a binary search of each of at
most log2(blocks) runs. A hash found is checked against the key it stands for, so two keys that
only share a hash are never taken for a repeat."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from verification.sorting import distinct

_NUMBER_BITS = 32  # a row's number, in the low bits of its entry; its key's hash in the others
_NUMBERS = np.uint64((1 << _NUMBER_BITS) - 1)
_HASHES = ~_NUMBERS


class EarlierKeys:
    """The keys of the blocks given so far: each block's key array as it is, and one entry per
    distinct key — its hash (the high 32 bits; keys that share them are told apart by their
    text) and its row's number across the blocks (the low 32 bits) — in a few sorted runs.
    An entry is one integer: sorting, merging and searching them reorder no second array."""

    def __init__(self) -> None:
        self._texts: list[pa.Array] = []  # each block's keys
        self._starts: list[int] = [0]  # number of each block's first row (then of the next)
        self._runs: list[np.ndarray] = []  # entries ascending
        self._db: duckdb.DuckDBPyConnection | None = None  # hashes the keys; opened once (12 ms)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def repeats(self, key: pa.Array) -> np.ndarray:
        """Which rows of ``key`` (text; null: no key) repeat a key of an earlier block; this
        block's keys are then kept for the next."""
        if self._starts[-1] + len(key) > _NUMBERS:
            raise OverflowError(f"more than {int(_NUMBERS)} rows")
        if self._db is None:  # one thread: intake takes feeds in on parallel processes
            self._db = duckdb.connect(config={"threads": 1})
        entries = _entries(self._db, key)
        repeat = np.zeros(len(key), dtype=bool)
        asked, numbers = self._same_hash(entries)
        if len(asked):
            repeat[asked[self._same_text(key, asked, numbers)]] = True
        self._keep(key, entries, repeat)
        return repeat

    def _same_hash(self, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row of ``entries`` paired with every kept key of the same hash (row, number)."""
        asked, numbers = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        if not self._runs:
            return asked[0], numbers[0]
        hashes = entries & _HASHES
        for run in self._runs:
            first = np.searchsorted(run, hashes, side="left")
            probe = run[np.minimum(first, len(run) - 1, out=first)]  # past the end: not found
            probe &= _HASHES
            found = np.flatnonzero(probe == hashes)
            if not len(found):
                continue
            ends = np.searchsorted(run, hashes[found] | _NUMBERS, side="right")
            counts = ends - first[found]
            at = np.arange(counts.sum()) + np.repeat(first[found] - np.cumsum(counts) + counts,
                                                     counts)
            asked.append(np.repeat(entries[found] & _NUMBERS, counts).astype(np.int64))
            numbers.append((run[at] & _NUMBERS).astype(np.int64))
        return np.concatenate(asked), np.concatenate(numbers)

    def _same_text(self, key: pa.Array, rows: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """Whether each row's key is the key of the earlier row of that number, as text."""
        block = np.searchsorted(np.asarray(self._starts), numbers, side="right") - 1
        order = np.argsort(block, kind="stable")
        bounds = np.searchsorted(block[order], np.arange(len(self._texts) + 1))
        same = np.zeros(len(rows), dtype=bool)
        for b, texts in enumerate(self._texts):
            pairs = order[bounds[b]:bounds[b + 1]]
            if len(pairs):
                earlier = texts.take(numbers[pairs] - self._starts[b])
                same[pairs] = pc.equal(key.take(rows[pairs]), earlier).to_numpy(
                    zero_copy_only=False)
        return same

    def _keep(self, key: pa.Array, entries: np.ndarray, repeat: np.ndarray) -> None:
        """Keep ``key`` and an entry for each of its keys not kept before: not a repeat of an
        earlier block, and of a key repeated within the block only the first (rows of one key
        are next to each other in ``entries``, unless another key shares their hash: then the
        key may be kept twice, which costs a comparison later, never a wrong answer)."""
        drop = np.zeros(len(entries), dtype=bool)
        if repeat.any():
            drop |= repeat[(entries & _NUMBERS).astype(np.int64)]
        twin = np.flatnonzero((entries[1:] ^ entries[:-1]) <= _NUMBERS) + 1  # same hash
        if len(twin):
            rows = (entries[twin] & _NUMBERS).astype(np.int64)
            before = (entries[twin - 1] & _NUMBERS).astype(np.int64)
            same = pc.equal(key.take(rows), key.take(before)).to_numpy(zero_copy_only=False)
            drop[twin[same]] = True
        kept = entries[~drop] if drop.any() else entries
        kept += np.uint64(self._starts[-1])  # row in the block → number across blocks
        self._texts.append(key)
        self._starts.append(self._starts[-1] + len(key))
        if not len(kept):
            return
        self._runs.append(kept)
        while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
            newer, older = self._runs.pop(), self._runs.pop()
            merged = np.concatenate([older, newer])
            merged.sort(kind="stable")  # two sorted runs: Timsort merges them in one pass
            self._runs.append(merged)


def _entries(db: duckdb.DuckDBPyConnection, key: pa.Array) -> np.ndarray:
    """hash | row for each row of ``key`` that has a key, ascending."""
    entries = _hashes(db, key)
    entries &= _HASHES
    entries |= np.arange(len(key), dtype=np.uint64)
    if key.null_count:
        entries = entries[key.is_valid().to_numpy(zero_copy_only=False)]
    entries.sort()
    return entries


def _hashes(db: duckdb.DuckDBPyConnection, key: pa.Array) -> np.ndarray:
    """DuckDB's 64-bit hash of each key's bytes (a null's is never looked at), in a new
    array."""
    keys = pa.table({"k": key.view(pa.large_binary()) if pa.types.is_large_string(key.type)
                     else key.view(pa.binary())})
    db.register("keys", keys)
    try:
        hashed = db.sql("SELECT hash(k) AS h FROM keys").to_arrow_table()
    finally:
        db.unregister("keys")
    return np.concatenate([np.empty(0, np.uint64),
                           *(chunk.to_numpy() for chunk in hashed.column("h").chunks)])


def row_hashes(table: pa.Table) -> np.ndarray:
    """DuckDB's 64-bit hash of each row of ``table`` over all its columns (strings, dates,
    numbers as they are; a missing value hashes alike wherever it is): a payment's identity in
    one integer, computed in C++ without a text per row."""
    db = duckdb.connect(config={"threads": 1})  # intake takes feeds in on parallel processes
    try:
        db.register("payments", table)
        columns = ", ".join(f'"{name}"' for name in table.column_names)
        hashed = db.sql(f"SELECT hash({columns}) AS h FROM payments").to_arrow_table()
    finally:
        db.close()
    return hashed.column("h").to_numpy().astype(np.uint64)


class EarlierHashes:
    """The row hashes of a feed's earlier blocks (``row_hashes``), asked whether a new block's
    are among them. A 64-bit hash stands for the row: two different payments share one with a
    chance of about 10⁻⁶ in a 10-million-row feed, and the row would then be quarantined with
    its reason and line, never lost."""

    def __init__(self) -> None:
        self._seen = np.empty(0, dtype=np.uint64)  # ascending, distinct

    def repeats(self, hashes: np.ndarray) -> np.ndarray:
        """Which of ``hashes`` an earlier block had; this block's are then kept."""
        repeat = np.zeros(len(hashes), dtype=bool)
        if len(self._seen):
            at = np.searchsorted(self._seen, hashes)
            inside = at < len(self._seen)
            repeat[inside] = self._seen[at[inside]] == hashes[inside]
        # np.union1d is NumPy's hash-table unique again: 7 CPU-s a block at 10M rows
        self._seen = distinct(np.concatenate([self._seen, hashes[~repeat]]))
        return repeat
