"""What changed between two accepted feeds of one kind: the persons whose evidence differs.

Set-based, in DuckDB straight off Parquet (no loop over rows, no frame of ten million rows in
Python). Each feed's per-person digests — the sum of the 64-bit digests of a person's rows, a
multiset hash, with its row count — are written beside the staged file when the feed is accepted
(verification/intake/digests.py), so the diff joins two files of a line per person. Only the few
persons whose digests differ are then read back from both staged files (a filtered scan) and
compared keyed by (person token, period), to tell added, removed and changed rows apart.

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
from verification.intake.digests import (
    digest_columns,
    person_digests,
    row_digest_sql,
    source_sql,
)


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


def period_column(contract: Contract) -> str | None:
    """The field that says which months (or which day) a row is about, if the contract has one."""
    for mapping in contract.evidence:
        for key in ("period", "date"):
            if key in mapping:
                return mapping[key]
    return None


def _changed_rows(path: Path, columns: list[str], period: str | None) -> str:
    """SQL for the rows of the persons in table ``c`` as (t: token, p: period, h: row digest)."""
    present = set(pq.read_schema(path).names)
    key = f'"{period}"' if period in present else "NULL"
    return (f"SELECT person_token AS t, {key} AS p, {row_digest_sql(path, columns)} AS h "
            f"FROM {source_sql(path)} WHERE person_token IN (SELECT t FROM c)")


def diff_feeds(old_path: Path | None, new_path: Path, contract: Contract) -> FeedDiff:
    """Compare the staged rows of two feeds of ``contract``'s kind (no old feed: every row of
    the new one is added)."""
    columns = digest_columns(contract)
    period = period_column(contract)
    new = source_sql(person_digests(new_path, contract))
    old = (source_sql(person_digests(old_path, contract)) if old_path is not None else
           "(SELECT NULL::BIGINT AS t, NULL::UBIGINT AS s, NULL::BIGINT AS n WHERE false)")
    with duckdb.connect() as db:
        db.execute(f"CREATE TEMP TABLE old AS SELECT * FROM {old}")
        db.execute(f"CREATE TEMP TABLE new AS SELECT * FROM {new}")
        db.execute("""
            CREATE TEMP TABLE persons AS
            WITH o AS (SELECT t, s, n FROM old WHERE t IS NOT NULL),
                 n AS (SELECT t, s, n FROM new WHERE t IS NOT NULL)
            SELECT coalesce(o.t, n.t) AS t, o.s IS NOT DISTINCT FROM n.s
                   AND o.n IS NOT DISTINCT FROM n.n AS same
            FROM o FULL JOIN n ON o.t = n.t""")
        db.execute("CREATE TEMP TABLE c AS SELECT t FROM persons WHERE NOT same")
        changed = db.execute("SELECT t FROM c ORDER BY t").fetchnumpy()["t"]
        unchanged = db.execute("SELECT count(*) FROM persons WHERE same").fetchone()[0]
        added = removed = differ = 0
        if len(changed):
            # of the persons that changed, rows keyed by (token, period): keys only in the new
            # feed (added), only in the old (removed), in both with other rows (changed)
            older = (_changed_rows(old_path, columns, period) if old_path is not None else
                     "SELECT NULL::BIGINT AS t, NULL AS p, NULL::UBIGINT AS h WHERE false")
            added, removed, differ = db.execute(f"""
                WITH o AS (SELECT t, p, sum(h::HUGEINT) AS s FROM ({older}) GROUP BY t, p),
                     n AS (SELECT t, p, sum(h::HUGEINT) AS s
                           FROM ({_changed_rows(new_path, columns, period)}) GROUP BY t, p)
                SELECT count(*) FILTER (WHERE o.s IS NULL), count(*) FILTER (WHERE n.s IS NULL),
                       count(*) FILTER (WHERE o.s <> n.s)
                FROM o FULL JOIN n ON o.t = n.t AND o.p IS NOT DISTINCT FROM n.p""").fetchone()
        # rows with no token (one digest line per distinct row): how many of the new feed's are
        # not in the old, and the other way
        more, fewer = db.execute("""
            WITH o AS (SELECT s AS h, n AS k FROM old WHERE t IS NULL),
                 n AS (SELECT s AS h, n AS k FROM new WHERE t IS NULL),
                 gap AS (SELECT coalesce(n.k, 0) - coalesce(o.k, 0) AS g
                         FROM o FULL JOIN n ON o.h = n.h)
            SELECT coalesce(sum(g) FILTER (WHERE g > 0), 0),
                   coalesce(-sum(g) FILTER (WHERE g < 0), 0) FROM gap""").fetchone()
        rows_old, rows_new = (db.execute(f"SELECT coalesce(sum(n), 0) FROM {name}").fetchone()[0]
                              for name in ("old", "new"))
    return FeedDiff(np.asarray(changed, dtype=np.int64), int(added), int(removed), int(differ),
                    int(unchanged), int(more), int(fewer), int(rows_old), int(rows_new), columns)
