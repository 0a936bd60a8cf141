"""The demo flow through real Airflow: partner DAGs pull over HTTP from the reference server,
dynamic_review assesses and flags; every household's flag equals the generator's truth, and
running it again duplicates nothing."""

import sqlite3

import pytest

from verification.config import load_settings
from verification.localtime import local_today
from verification.synthetic.demo import run_demo

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_demo_through_airflow_matches_ground_truth_and_reruns_cleanly(tmp_path):
    settings = load_settings()  # the session's HEDUI_HOME (Airflow is configured for it)
    messages: list[str] = []
    first = run_demo(settings, households=150, seed=5, say=messages.append)
    assert first.households == 150
    assert first.truth_matched == 150, first.mismatches
    assert {f["status"] for f in first.feeds} == {"accepted"}
    assert sum(f["quarantined"] for f in first.feeds) > 0
    assert any("dynamic_review" in m for m in messages)
    # a readable summary (issue 17: ~2,100 lines before), every line of it counted
    assert len("\n".join(messages).splitlines()) <= 60
    # due dates count from the day raised: nothing of a fresh demo is overdue on day one
    db = sqlite3.connect(settings.home / "hedui.db")
    try:
        dues = [d for (d,) in db.execute("select due_date from flags where kind != 'KEEP' "
                                         "and status != 'resolved' and due_date is not null")]
    finally:
        db.close()
    assert dues and min(dues) >= local_today().isoformat()
    streets = sorted(p.name for p in first.reports_dir.iterdir() if p.is_dir())
    assert len(streets) == 6
    assert all((first.reports_dir / s / "flags.xlsx").exists() for s in streets)

    def counts():
        db = sqlite3.connect(settings.home / "hedui.db")
        try:
            return {t: db.execute(f"select count(*) from {t}").fetchone()[0]  # noqa: S608
                    for t in ("feeds", "households", "members", "runs", "flags", "flag_reasons")}
        finally:
            db.close()

    before = counts()
    second = run_demo(settings, households=150, seed=5, say=messages.append)
    assert second.flags == first.flags and second.truth_matched == 150
    assert counts() == before
