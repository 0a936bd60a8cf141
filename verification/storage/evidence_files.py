"""A run's flag evidence: one Parquet file per run, not millions of rows in the database.

A review cites about nineteen evidence records per household (19 M at a province's 1 M
households). As database rows they were most of the write's time and of the database's size,
and nothing ever queries them but "the evidence of these flags". So they are written once, by
``finish_review``, to ``$HEDUI_HOME/evidence/run-<id>.parquet``:

- sorted by ``flag_id`` in row groups of ``ROW_GROUP`` rows, so reading one flag's evidence
  (the portal's flag page, a 核对报告) opens the footer and decodes one row group, whatever the
  run's size;
- its SHA-256 and row count recorded on the run (``runs.evidence_digest``/``evidence_rows``),
  in the same transaction as the flags: `hedui audit verify` checks every run's file against
  its digest, so a changed or missing file shows;
- kept as long as the run's flags (runs are never purged; a rerun replaces the file together
  with the flags);
- holding no identities: record references, feed ids, items, amounts, periods, match grades.

Flags, reasons and assessments stay in the database. Runs finished before revision 0005 keep
their evidence in the ``flag_evidence`` table, read from there (``evidence_file`` is empty).
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.digests import sha256_file

ROW_GROUP = 65_536
_CODED = pa.dictionary(pa.int32(), pa.string())  # a handful of distinct values per column
SCHEMA = pa.schema([
    ("flag_id", pa.int64()), ("source_kind", _CODED), ("feed_id", pa.int64()),
    ("record_ref", pa.string()), ("item", _CODED), ("amount", pa.float64()),
    ("period_start", pa.date32()), ("period_end", pa.date32()), ("match_grade", _CODED),
])
COLUMNS = SCHEMA.names
# Columns of evidence whose values are nearly all distinct (a record's reference, an amount):
# written plain. Parquet's writer tries a dictionary for every column and gives up on these
# after building it: at 100,000 households a third of writing the run's matched evidence.
PLAIN_COLUMNS = ("record_ref", "amount")


def dictionary_columns(names: Iterable[str]) -> list[str]:
    """The columns of an evidence table to write dictionary-encoded (``use_dictionary``)."""
    return [name for name in names if name not in PLAIN_COLUMNS]


class EvidenceFileError(RuntimeError):
    """A run's evidence file is missing or is not the file the run recorded."""


@dataclass(frozen=True)
class EvidenceFile:
    path: Path
    digest: str
    rows: int


def evidence_path(home: Path, run_id: int) -> Path:
    return home / "evidence" / f"run-{run_id:08d}.parquet"


class RunEvidenceWriter:
    """Appends each shard's evidence (flag ids ascending from shard to shard, as the flags are
    inserted) to a temporary file; ``finish`` sorts nothing more, moves it into place and
    returns its digest. ``abort`` leaves the run's earlier file as it was."""

    def __init__(self, home: Path, run_id: int) -> None:
        self.path = evidence_path(home, run_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_suffix(".parquet.partial")
        self._writer = pq.ParquetWriter(self._partial, SCHEMA, compression="zstd",
                                        use_dictionary=dictionary_columns(COLUMNS))
        self._rows, self._last_flag = 0, -1

    def write(self, rows: pd.DataFrame | pa.Table) -> None:
        """``rows`` hold ``COLUMNS`` (``flag_id`` set; the coded columns as text, pandas
        categoricals or Arrow dictionaries; periods as dates or timestamps at midnight), as a
        frame or an Arrow table; rows in any order."""
        if not len(rows):
            return
        if isinstance(rows, pa.Table):  # a shard's frame read as Arrow: no Python strings
            table = rows.select(COLUMNS).cast(SCHEMA)
        else:
            table = pa.Table.from_pandas(rows[COLUMNS], schema=SCHEMA, preserve_index=False)
        # flag id order only (a stable sort): within a flag the rows keep the order the
        # decision listed them in
        table = table.take(pc.sort_indices(table["flag_id"]))
        first = table["flag_id"][0].as_py()
        if first <= self._last_flag:
            raise ValueError("evidence shards must arrive in ascending flag id order")
        self._last_flag = table["flag_id"][-1].as_py()
        self._writer.write_table(table, row_group_size=ROW_GROUP)
        self._rows += table.num_rows

    def finish(self) -> EvidenceFile:
        self._writer.close()
        digest = sha256_file(self._partial)
        os.replace(self._partial, self.path)
        return EvidenceFile(self.path, digest, self._rows)

    def abort(self) -> None:
        self._writer.close()
        self._partial.unlink(missing_ok=True)


def read_evidence(path: Path, flag_ids: Iterable[int] | None = None,
                  columns: list[str] | None = None) -> pd.DataFrame:
    """The evidence rows of ``flag_ids`` (all of the run's when None), in flag id order;
    only the row groups whose flag id range holds one of them are decoded."""
    if not path.exists():
        raise EvidenceFileError(f"核对证据文件缺失 / the run's evidence file is missing: {path}")
    wanted = columns or COLUMNS
    if flag_ids is None:
        return _plain(pq.read_table(path, columns=wanted))
    ids = sorted({int(i) for i in flag_ids})
    if not ids:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in wanted})
    file = pq.ParquetFile(path)
    groups = [g for g in range(file.num_row_groups) if _may_hold(file, g, ids)]
    if not groups:
        return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in wanted})
    table = file.read_row_groups(groups, columns=list(dict.fromkeys(["flag_id", *wanted])))
    table = table.filter(pc.is_in(table["flag_id"], pa.array(ids, pa.int64())))
    return _plain(table.select(wanted))


def _plain(table: pa.Table) -> pd.DataFrame:
    """The rows as the database gave them: coded columns as plain strings, not categoricals."""
    return table.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type)
                                 else f for f in table.schema])).to_pandas()


def verify(path: Path, digest: str) -> str:
    """"" when the file is there and is the one recorded, else what is wrong (Chinese/English)."""
    if not path.exists():
        return f"核对证据文件缺失 / evidence file missing: {path.name}"
    if sha256_file(path) != digest:
        return f"核对证据文件与记录的摘要不符 / evidence file changed since the run: {path.name}"
    return ""


def _may_hold(file: pq.ParquetFile, group: int, ids: list[int]) -> bool:
    stats = file.metadata.row_group(group).column(0).statistics
    if stats is None or not stats.has_min_max:
        return True
    at = bisect_left(ids, stats.min)
    return at < len(ids) and ids[at] <= stats.max


def _dtype(column: str) -> str:
    return {"flag_id": "int64", "feed_id": "int64", "amount": "float64"}.get(column, "object")


def run_evidence(session: Session, home: Path, run_id: int,
                 flag_ids: Iterable[int] | None = None,
                 columns: list[str] | None = None) -> pd.DataFrame:
    """The evidence of a run's flags (``flag_ids`` of them, or all): from the run's file, or,
    for a run finished before revision 0005, from the ``flag_evidence`` table."""
    from verification.storage.models import Flag, FlagEvidence, Run

    wanted = columns or COLUMNS
    run = session.get(Run, run_id)
    if run is not None and run.evidence_file:
        return read_evidence(home / run.evidence_file, flag_ids, wanted)
    query = (select(*(getattr(FlagEvidence, c) for c in wanted))
             .join(Flag, Flag.id == FlagEvidence.flag_id).where(Flag.run_id == run_id)
             .order_by(FlagEvidence.flag_id, FlagEvidence.id))
    if flag_ids is not None:
        query = query.where(FlagEvidence.flag_id.in_([int(i) for i in flag_ids]))
    rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=wanted).astype(
        {c: _dtype(c) for c in wanted if _dtype(c) != "object"})


def verify_runs(session: Session, home: Path) -> list[str]:
    """What is wrong with any run's evidence file (empty when every file is as recorded)."""
    from verification.storage.models import Run

    problems = []
    for run_id, file, digest in session.execute(
            select(Run.id, Run.evidence_file, Run.evidence_digest)
            .where(Run.evidence_file != "").order_by(Run.id)):
        problem = verify(home / file, digest)
        if problem:
            problems.append(f"运行 {run_id} / run {run_id}: {problem}")
    return problems
