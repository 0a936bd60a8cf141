"""The chaos suite's invariants, checked after every fault: no feed lost, none doubled, and the
books of every feed balance (received = accepted + quarantined, the staged file holds exactly the
accepted rows, the quarantine one row per quarantined line)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import func, select

from verification.config import Settings
from verification.storage import session_scope
from verification.storage.models import Feed, Partner, QuarantinedRow


def feeds(settings: Settings) -> list[Feed]:
    with session_scope(settings.database_url) as session:
        return list(session.scalars(select(Feed).order_by(Feed.id)))


def assert_books_balance(settings: Settings) -> None:
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(Partner.code, Feed).join(Partner)).all()
        keys = Counter((code, f.kind, f.sequence) for code, f in rows)
        assert all(n == 1 for n in keys.values()), f"a feed was doubled: {keys}"
        for _code, feed in rows:
            lines = session.scalar(select(func.count(func.distinct(QuarantinedRow.line)))
                                   .where(QuarantinedRow.feed_id == feed.id))
            if feed.status == "accepted":
                assert feed.rows_received == feed.rows_accepted + feed.rows_quarantined, feed.id
                assert lines == feed.rows_quarantined, (feed.id, lines, feed.rows_quarantined)
                staged = Path(feed.staged_path)
                assert staged.exists(), f"feed {feed.id}: its staged file is lost"
                assert pq.ParquetFile(staged).metadata.num_rows == feed.rows_accepted
            else:
                assert feed.rows_accepted == 0 and lines == 0, feed.id


def assert_taken_in_once(settings: Settings, partner: str, kind: str, sequence: int,
                         receipts: list[dict]) -> Feed:
    """The feed is accepted, once, and the partner got exactly one receipt saying so."""
    [feed] = [f for f in feeds(settings) if (f.kind, f.sequence) == (kind, sequence)]
    assert feed.status == "accepted", feed.reason
    assert feed.receipt_sent_at is not None
    told = [r for r in receipts if (r["kind"], r["sequence"]) == (kind, sequence)
            and r["status"] == "accepted"]
    assert len(told) == 1, told
    assert told[0]["received"] == told[0]["accepted"] + told[0]["quarantined"]
    assert not [f for f in feeds(settings) if f.status == "received"], "a feed was left behind"
    assert_books_balance(settings)
    return feed
