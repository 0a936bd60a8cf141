"""Per-person digests of a staged feed, written beside it when the feed is accepted: what the
re-check's feed diff (verification/recheck/diff.py) compares, so that a re-check after a feed of
ten million rows reads two files of a person each instead of hashing both feeds again.

A row's digest is DuckDB's 64-bit ``hash`` of the staged fields its evidence and its match are
made of (``digest_columns``: the contract's evidence fields, the record id, the keyed name forms,
birth date, gender — not the line number, which moves when a partner re-sorts its file). A
person's digest is the sum of its rows' digests modulo 2^64 — a multiset hash: the same whatever
the rows' order — with the person's row count. Rows whose identity is unresolved (token missing)
name no person: they are kept as one line per distinct row digest with how many rows carry it.

The file (``feed-<id>.persons.parquet``) holds tokens and digests only, no identifying text; it
lives and goes with its staged feed (retention, orphan clean-up).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from schemas import Contract
from verification.assessment.evidence import staged_columns
from verification.matching.run import IDENTITY_COLUMNS

SUFFIX = ".persons.parquet"


def digest_columns(contract: Contract) -> list[str]:
    """The staged fields a row's evidence and its match are made of (besides the token)."""
    wanted = [*staged_columns(contract), *IDENTITY_COLUMNS]
    return [c for c in dict.fromkeys(wanted) if c != "person_token"]


def digests_path(staged: Path) -> Path:
    """Where the digests of the staged file ``staged`` live (``feed-7.parquet`` →
    ``feed-7.persons.parquet``)."""
    return staged.with_name(staged.stem + SUFFIX)


def source_sql(path: Path) -> str:
    return "read_parquet('" + str(path).replace("'", "''") + "')"


def row_digest_sql(path: Path, columns: list[str]) -> str:
    """The SQL of a row's digest over ``columns``; a column the file lacks (a file staged before
    it was kept) is missing on every row, so files of two versions still compare."""
    present = set(pq.read_schema(path).names)
    return "hash(" + ", ".join(f'"{c}"' if c in present else "NULL" for c in columns) + ")"


def write_person_digests(staged: Path, contract: Contract) -> Path:
    """Write the per-person digests of ``staged`` (a ``.partial`` renamed when complete)."""
    target = digests_path(staged)
    partial = target.with_name(target.name + ".partial")
    digest = row_digest_sql(staged, digest_columns(contract))
    quoted = str(partial).replace("'", "''")
    with duckdb.connect() as db:
        db.execute(f"""
            COPY (
              WITH r AS (SELECT person_token AS t, {digest} AS h FROM {source_sql(staged)})
              SELECT t, (sum(h::HUGEINT) % 18446744073709551616)::UBIGINT AS s, count(*) AS n
              FROM r WHERE t IS NOT NULL GROUP BY t
              UNION ALL
              SELECT NULL::BIGINT, h, count(*) FROM r WHERE t IS NULL GROUP BY h
            ) TO '{quoted}' (FORMAT parquet)""")
    partial.replace(target)
    return target


def person_digests(staged: Path, contract: Contract) -> Path:
    """The digests of ``staged``: the file intake wrote, or written now (a feed accepted before
    digests were kept, or a digest file older than its feed)."""
    target = digests_path(staged)
    if target.exists() and target.stat().st_mtime >= staged.stat().st_mtime:
        return target
    return write_person_digests(staged, contract)
