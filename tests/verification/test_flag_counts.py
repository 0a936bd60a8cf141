"""flag_counts (migration 0004) follows every write to flags, on both backends: a bulk insert,
a resolution, a changed due date and kind, and a run's flags deleted by cascade."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, insert, select, update

from verification.storage import session_scope
from verification.storage.models import NO_DUE_KEY, Flag, FlagCount, Household, Run


def _expected(session) -> dict[tuple, int]:  # noqa: ANN001
    keys = (Flag.run_id, Flag.status == "resolved", Flag.kind, Flag.street_code,
            Flag.community_code, func.coalesce(Flag.due_date, NO_DUE_KEY))
    return {tuple(row[:-1]): row[-1] for row in
            session.execute(select(*keys, func.count()).group_by(*keys)).all()}


def _kept(session) -> dict[tuple, int]:  # noqa: ANN001
    return {(c.run_id, c.resolved, c.kind, c.street_code, c.community_code, c.due_key): c.n
            for c in session.scalars(select(FlagCount))}


def test_flag_counts_follow_inserts_updates_and_cascaded_deletes(database_url: str):
    with session_scope(database_url) as session:
        session.execute(insert(Household), [
            {"id": i, "household_code": f"HH{i:04d}", "area_code": "210112",
             "street_code": f"21011200{i % 2 + 1}", "community_code": f"21011200{i % 2 + 1}001",
             "status": "recipient", "category": "dibao", "urban_rural": "urban",
             "current_benefit": 750.0} for i in range(1, 41)])
        session.add_all([Run(id=1, run_key="r1", kind="review", as_of=dt.date(2026, 11, 1),
                             region="210112", status="done"),
                         Run(id=2, run_key="r2", kind="review", as_of=dt.date(2026, 12, 1),
                             region="210112", status="done")])
        session.flush()
        session.execute(insert(Flag), [
            {"run_id": 1 + i % 2, "household_id": i, "kind": ("REMOVE", "REVIEW")[i % 3 % 2],
             "street_code": f"21011200{i % 2 + 1}", "community_code": f"21011200{i % 2 + 1}001",
             "due_date": dt.date(2026, 12, 1 + i % 4) if i % 5 else None}
            for i in range(1, 41)])
    with session_scope(database_url) as session:
        assert sum(_kept(session).values()) == 40
        assert _kept(session) == _expected(session)
        session.execute(update(Flag).where(Flag.household_id <= 10)
                        .values(status="resolved", resolution="confirmed"))
        session.execute(update(Flag).where(Flag.household_id.between(11, 15))
                        .values(due_date=dt.date(2027, 1, 1), kind="ADJUST"))
        session.execute(update(Flag).where(Flag.household_id == 16).values(resolution_note="x"))
    with session_scope(database_url) as session:
        assert _kept(session) == _expected(session)
        assert any(key[1] for key in _kept(session))  # resolved flags counted as such
        session.execute(delete(Run).where(Run.id == 2))  # its flags go by cascade
    with session_scope(database_url) as session:
        assert _kept(session) == _expected(session)
        assert {key[0] for key in _kept(session)} == {1}
        assert 0 not in _kept(session).values()
