"""What changed between two accepted feeds of one kind: the persons whose evidence differs.

Set-based, in DuckDB straight off the two staged Parquet files (no loop over rows, no frame of
ten million rows in Python). Each staged row gets a 64-bit digest (DuckDB's ``hash``) of the
fields its evidence and its matching are made of (the contract's evidence fields, the record id,
the keyed name forms, birth date, gender — not the line number, which moves when a partner
re-sorts its file). A person's rows are a multiset: the exact (128-bit) sum of its row digests is
the same in both feeds when the person's rows are the same, whatever their order. Only the few
persons whose sums differ are then compared keyed by (person token, period), to tell added,
removed and changed rows apart.

Rows whose identity is unresolved (token <NA>) name no person: they are counted (added or
removed), and placed by the matcher only in the next full review (docs/architecture.md,
"The incremental path").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq

from schemas import Contract
from verification.assessment.evidence import staged_columns
from verification.matching.run import IDENTITY_COLUMNS


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


def _rows(path: Path | None, columns: list[str], period: str | None, like: Path) -> str:
    """SQL for a feed's rows as (t: token, p: period, h: row digest); a column the file lacks is
    missing on every row; no file: no rows (with the other file's shape)."""
    present = set(pq.read_schema(path if path is not None else like).names)
    source = "'" + str(path if path is not None else like).replace("'", "''") + "'"
    fields = ", ".join(f'"{c}"' if c in present else "NULL" for c in columns)
    key = f'"{period}"' if period in present else "NULL"
    empty = " WHERE false" if path is None else ""
    return (f"SELECT person_token AS t, {key} AS p, hash({fields}) AS h "
            f"FROM read_parquet({source}){empty}")


def diff_feeds(old_path: Path | None, new_path: Path, contract: Contract) -> FeedDiff:
    """Compare the staged rows of two feeds of ``contract``'s kind (no old feed: every row of
    the new one is added)."""
    columns = diff_columns(contract)
    period = period_column(contract)
    with duckdb.connect() as db:
        db.execute(f"CREATE TEMP TABLE old AS {_rows(old_path, columns, period, new_path)}")
        db.execute(f"CREATE TEMP TABLE new AS {_rows(new_path, columns, period, new_path)}")
        # per person: the exact sum of its rows' digests (a multiset hash)
        db.execute("""
            CREATE TEMP TABLE persons AS
            WITH o AS (SELECT t, sum(h::HUGEINT) AS s FROM old WHERE t IS NOT NULL GROUP BY t),
                 n AS (SELECT t, sum(h::HUGEINT) AS s FROM new WHERE t IS NOT NULL GROUP BY t)
            SELECT coalesce(o.t, n.t) AS t, o.s IS NOT DISTINCT FROM n.s AS same
            FROM o FULL JOIN n ON o.t = n.t""")
        changed = db.execute("SELECT t FROM persons WHERE NOT same ORDER BY t").fetchnumpy()["t"]
        unchanged = db.execute("SELECT count(*) FROM persons WHERE same").fetchone()[0]
        # of the persons that changed, rows keyed by (token, period): keys only in the new feed
        # (added), only in the old (removed), in both with other rows (changed)
        added, removed, differ = db.execute("""
            WITH c AS (SELECT t FROM persons WHERE NOT same),
                 o AS (SELECT t, p, sum(h::HUGEINT) AS s FROM old SEMI JOIN c USING (t)
                       GROUP BY t, p),
                 n AS (SELECT t, p, sum(h::HUGEINT) AS s FROM new SEMI JOIN c USING (t)
                       GROUP BY t, p)
            SELECT count(*) FILTER (WHERE o.s IS NULL), count(*) FILTER (WHERE n.s IS NULL),
                   count(*) FILTER (WHERE o.s <> n.s)
            FROM o FULL JOIN n ON o.t = n.t AND o.p IS NOT DISTINCT FROM n.p""").fetchone()
        # rows with no token: how many of the new feed's are not in the old, and the other way
        more, fewer = db.execute("""
            WITH o AS (SELECT h, count(*) AS k FROM old WHERE t IS NULL GROUP BY h),
                 n AS (SELECT h, count(*) AS k FROM new WHERE t IS NULL GROUP BY h),
                 gap AS (SELECT coalesce(n.k, 0) - coalesce(o.k, 0) AS g
                         FROM o FULL JOIN n ON o.h = n.h)
            SELECT coalesce(sum(g) FILTER (WHERE g > 0), 0),
                   coalesce(-sum(g) FILTER (WHERE g < 0), 0) FROM gap""").fetchone()
        rows_old, rows_new = (db.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                              for name in ("old", "new"))
    return FeedDiff(np.asarray(changed, dtype=np.int64), int(added), int(removed), int(differ),
                    int(unchanged), int(more), int(fewer), int(rows_old), int(rows_new), columns)
