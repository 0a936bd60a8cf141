"""Safe to repeat: rerunning a step, a DAG run, or the whole review for the same period gives the
same flags and no duplicate rows — also after a process is SIGKILLed in the middle of a shard or
inside the final database transaction. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from tests.conftest import flags_by_household, pull_everything, review_in_process
from tests.orchestration.conftest import district_as_of, run_state
from verification import pipeline
from verification.intake.roster import load_roster
from verification.storage import session_scope
from verification.storage.evidence_files import run_evidence
from verification.storage.models import (
    Assessment,
    AuditEvent,
    Flag,
    FlagReason,
    Household,
    Member,
    Run,
)

AS_OF = dt.date(2026, 11, 1)
CHILD = Path(__file__).with_name("crash_child.py")
TABLES = (Household, Member, Run, Assessment, Flag, FlagReason)


def _counts(settings) -> dict[str, int]:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        return {m.__tablename__: session.scalar(select(func.count()).select_from(m))
                for m in TABLES}


def _run_rows(settings, run_id: int) -> dict[str, int]:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        flags = session.scalar(select(func.count()).where(Flag.run_id == run_id))
        reasons = session.scalar(select(func.count()).select_from(FlagReason).join(Flag)
                                 .where(Flag.run_id == run_id))
        evidence = len(run_evidence(session, settings.home, run_id))
        assessed = session.scalar(select(func.count()).where(Assessment.run_id == run_id))
    return {"flags": flags, "reasons": reasons, "evidence": evidence, "assessments": assessed}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    key = ["household_code", "kind"]
    left = a.sort_values(key).reset_index(drop=True).assign(code=lambda f: f["code"].map(sorted))
    right = b.sort_values(key).reset_index(drop=True).assign(code=lambda f: f["code"].map(sorted))
    return left.equals(right)


@pytest.fixture
def loaded(settings, district_dir):  # noqa: ANN001, ANN201
    load_roster(settings, district_dir / "roster.csv")
    pull_everything(settings, district_dir)
    return settings


def test_rerunning_each_step_and_the_whole_review_changes_nothing(loaded):
    settings = loaded
    run_id = review_in_process(settings, AS_OF, run_key="review-2026-11")
    reference, rows, counts = flags_by_household(settings, run_id), _run_rows(settings, run_id), \
        _counts(settings)
    assert rows["flags"] == rows["assessments"] == counts["households"]

    # one task again: a shard, then the gather step
    plan_shards = sorted(pipeline.load_households(settings)["street_code"].unique())
    dirs = [pipeline.review_shard(settings, run_id, s) for s in plan_shards]
    pipeline.review_shard(settings, run_id, plan_shards[0])
    pipeline.finish_review(settings, run_id, dirs)
    pipeline.finish_review(settings, run_id, dirs)
    assert _run_rows(settings, run_id) == rows and _counts(settings) == counts
    assert _same(flags_by_household(settings, run_id), reference)

    # the whole review for the same period, from the start
    again = review_in_process(settings, AS_OF, run_key="review-2026-11")
    assert again == run_id
    assert _run_rows(settings, run_id) == rows and _counts(settings) == counts
    assert _same(flags_by_household(settings, run_id), reference)


def _child(settings, *args: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    env = {**os.environ, "HEDUI_HOME": str(settings.home),
           "HEDUI_DATABASE_URL": settings.database_url}
    return subprocess.run([sys.executable, str(CHILD), *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False, cwd=Path(__file__).parents[2])


def test_a_shard_killed_midway_and_rerun_gives_the_same_flags(loaded):
    settings = loaded
    reference_id = review_in_process(settings, AS_OF, run_key="reference")
    reference, rows = flags_by_household(settings, reference_id), _run_rows(settings, reference_id)

    run_id = pipeline.start_review(settings, "crashed", AS_OF)
    plan = pipeline.prepare_evidence(settings, run_id)
    victim = plan.shards[len(plan.shards) // 2]
    killed = _child(settings, "shard", str(run_id), victim)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    broken = settings.runs_dir / f"run-{run_id}" / f"shard-{victim}" / "flag_reasons.parquet"
    assert broken.read_bytes() == b"PAR1-half-written", "the kill hit the middle of the shard"

    dirs = [pipeline.review_shard(settings, run_id, shard) for shard in plan.shards]  # retry
    before_finish = _counts(settings)
    killed = _child(settings, "finish", str(run_id), *dirs)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _counts(settings) == before_finish, "the killed transaction left nothing behind"
    assert _run_rows(settings, run_id)["flags"] == 0

    pipeline.finish_review(settings, run_id, dirs)  # the retry of the gather step
    assert _run_rows(settings, run_id) == rows
    assert _same(flags_by_household(settings, run_id), reference)
    with session_scope(settings.database_url) as session:
        assert session.get(Run, run_id).status == "done"
        assert session.scalar(select(func.count()).where(AuditEvent.action == "run.flagged")) == 2


@pytest.mark.airflow
@pytest.mark.slow
def test_the_review_dag_run_twice_for_the_same_period_is_the_same(dag_bag, fed_home,
                                                                  district_dir):
    settings = fed_home
    load_roster(settings, district_dir / "roster.csv")
    reference_id = review_in_process(settings, AS_OF, run_key="in-process")
    reference = flags_by_household(settings, reference_id)
    dag = dag_bag.get_dag("dynamic_review")
    conf = {"as_of": district_as_of(district_dir)}
    first = dag.test(logical_date=pd.Timestamp("2026-11-05T06:00", tz="UTC"), run_conf=conf)
    assert run_state(first) == "success"
    counts = _counts(settings)
    second = dag.test(logical_date=pd.Timestamp("2026-11-20T06:00", tz="UTC"), run_conf=conf)
    assert run_state(second) == "success"
    assert _counts(settings) == counts, "the second run of the month replaced the first"
    with session_scope(settings.database_url) as session:
        run = session.scalar(select(Run).where(Run.run_key == "review-2026-11"))
        assert run.status == "done" and run.policy_version and all(
            v.get("feed_id") for v in run.feed_versions.values())
        run_id = run.id
    assert _same(flags_by_household(settings, run_id), reference)
