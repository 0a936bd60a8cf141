"""Task logs carry the business counts, in Chinese with English beside (issue 17): rows
received / accepted / quarantined per feed, households checked, flags by kind. The batch DAG
runs in real Airflow (``dag.test()``); the partner pull and the review run their tasks' calls."""

from __future__ import annotations

import logging
import re

import pandas as pd
import pytest

from tests.conftest import pull_everything, review_in_process
from tests.orchestration.conftest import district_as_of, run_state
from tests.orchestration.test_batch_check import _batch_file
from verification import codes
from verification.batches import check as batches
from verification.intake.roster import load_roster
from verification.storage import session_scope
from verification.storage.models import Run

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hedui.tasks"]


def _kinds_zh(counts: dict[str, int]) -> str:
    return "，".join(f"{codes.flags()[k]['zh']} {n}" for k, n in counts.items())


def test_feed_and_review_tasks_log_rows_households_and_flags(sqlite_settings, district_dir,
                                                             caplog):
    settings = sqlite_settings
    caplog.set_level(logging.INFO, logger="hedui.tasks")
    results = pull_everything(settings, district_dir)
    lines = _lines(caplog)
    assert results
    for r in results:
        said = next(line for line in lines if f"数据 {r.kind} 第 {r.sequence} 批" in line)
        assert (f"收到 {r.received} 行，接收 {r.accepted} 行，隔离 {r.quarantined} 行" in said
                and f"{r.received} rows received, {r.accepted} accepted, "
                    f"{r.quarantined} quarantined" in said), said
    assert any(r.quarantined for r in results), "the district has rows to quarantine"

    load_roster(settings, district_dir / "roster.csv")
    caplog.clear()
    run_id = review_in_process(settings, pd.Timestamp(district_as_of(district_dir)).date())
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        households, counts = run.households, dict(run.counts)
    lines = _lines(caplog)
    streets = [line for line in lines if " 街道 " in line and "核对" in line]
    checked = sum(int(re.search(r"核对 (\d+) 户", line).group(1)) for line in streets)
    assert streets and checked == households
    total = next(line for line in lines if f"运行 {run_id}：核对" in line)
    assert f"核对 {households} 户；核查结论 {_kinds_zh(counts)}" in total, total
    assert (f"{households} households checked; flags by kind: "
            + ", ".join(f"{k} {n}" for k, n in counts.items())) in total
    assert any("比对证据" in line and "evidence rows" in line for line in lines)
    assert any("写出报告" in line for line in lines) is False  # reports are the next task


def test_batch_dag_tasks_log_rows_households_and_flags(dag_bag, fed_home, district_dir,
                                                       tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hedui.tasks")
    path = _batch_file(district_dir, tmp_path / "submitted")
    conf = {"batch_file": str(path), "category": "dibao", "requester": "核对中心 张科员",
            "as_of": district_as_of(district_dir)}
    assert run_state(dag_bag.get_dag("batch_check").test(run_conf=conf)) == "success"
    status = batches.batch_status(fed_home, batches.batch_code_for(batches.file_sha256(path),
                                                                     "dibao"))
    with session_scope(fed_home.database_url) as session:
        counts = dict(session.get(Run, status["run_id"]).counts)
    lines = _lines(caplog)
    code, rows = status["code"], len(pd.read_csv(path, dtype=str))
    assert any(f"批次 {code}：收到 {rows} 行，0 处错误" in line for line in lines), lines
    assert any(f"批次 {code}：载入 {status['households']} 户" in line for line in lines)
    assert any(f"批次 {code}（运行 {status['run_id']}）" in line and "比对证据" in line
               for line in lines)
    flagged = next(line for line in lines if f"运行 {status['run_id']}：核对" in line)
    assert f"核对 {status['households']} 户；核查结论 {_kinds_zh(counts)}" in flagged
    assert any(f"运行 {status['run_id']}：写出报告" in line for line in lines)
