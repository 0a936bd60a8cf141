"""policy_simulation through real Airflow (``dag.test()``): the form's percents become scenario
folders, the latest review is re-assessed under them, the simulation is written and no flag is."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from tests.conftest import review_in_process
from tests.orchestration.conftest import district_as_of, run_state
from verification.intake.roster import load_roster
from verification.storage import session_scope
from verification.storage.models import Flag, Run

pytestmark = pytest.mark.airflow


def _counts(settings) -> tuple[int, int]:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        return (session.scalar(select(func.count(Flag.id))),
                session.scalar(select(func.count(Run.id))))


def test_the_dag_simulates_the_latest_review(dag_bag, fed_home, district_dir):
    load_roster(fed_home, district_dir / "roster.csv")
    run_id = review_in_process(fed_home, dt.date.fromisoformat(district_as_of(district_dir)))
    before = _counts(fed_home)
    run = dag_bag.get_dag("policy_simulation").test(
        run_conf={"raise_standard": "7,10", "parameters": [], "from_run": None})
    assert run_state(run) == "success"
    assert _counts(fed_home) == before
    (found,) = (fed_home.home / "simulations").glob("sim-*/simulation.json")
    record = json.loads(found.read_text("utf-8"))
    assert record["run"]["id"] == run_id
    assert [s["name"] for s in record["scenarios"]] == ["standard+7pct", "standard+10pct"]
    assert (found.parent / "政策测算.xlsx").exists() and (found.parent / "summary.html").exists()
