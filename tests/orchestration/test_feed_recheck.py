"""feed_recheck through real Airflow (``dag.test()``): after a new wages feed, the households of
the persons whose records changed are re-checked and only changed outcomes are flagged."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests.conftest import review_in_process
from tests.orchestration.conftest import district_as_of, run_state
from tests.recheck.test_recheck import changed_wages, deliver_wages
from verification.intake.roster import load_roster
from verification.storage import session_scope
from verification.storage.models import Flag, Run

pytestmark = pytest.mark.airflow


def test_the_dag_rechecks_after_a_feed(dag_bag, fed_home, district_dir):
    load_roster(fed_home, district_dir / "roster.csv")
    as_of = district_as_of(district_dir)
    base = review_in_process(fed_home, dt.date.fromisoformat(as_of))
    frame, chosen = changed_wages(district_dir, share=0.03)
    deliver_wages(fed_home, district_dir, frame, bump=1)
    run = dag_bag.get_dag("feed_recheck").test(run_conf={"kind": "", "as_of": as_of})
    assert run_state(run) == "success"
    with session_scope(fed_home.database_url) as session:
        (recheck,) = session.scalars(select(Run).where(Run.kind == "recheck")).all()
        assert recheck.status == "done" and recheck.id > base
        assert recheck.feed_versions["wages"]["diff"]["persons_changed"] == len(chosen)
        assert recheck.households > 0
        written = session.scalars(select(Flag.household_id).where(
            Flag.run_id == recheck.id)).all()
        assert len(written) <= recheck.households
        assert recheck.reports_dir
    # nothing newer since: a second run finds nothing to do and writes no run
    assert run_state(dag_bag.get_dag("feed_recheck").test(
        run_conf={"kind": "", "as_of": as_of})) == "success"
    with session_scope(fed_home.database_url) as session:
        assert len(session.scalars(select(Run).where(Run.kind == "recheck")).all()) == 1
