"""`hedui batch submit/status` (verification/cli/batch.py) and the Airflow REST client: local
validation with row errors, an in-process run, and the REST trigger as Airflow 3 expects it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import responses
from sqlalchemy import func, select
from typer.testing import CliRunner

from verification.batches import check as batches
from verification.batches.airflow_api import AirflowApi, AirflowApiConfig, AirflowApiError
from verification.cli.batch import app
from verification.storage import session_scope
from verification.storage.models import Batch

AIRFLOW = "http://airflow.test:8080"


def _batch_file(district_dir: Path, folder: Path, statuses=("applicant",)) -> Path:  # noqa: ANN001
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "batch.csv"
    roster[roster["status"].isin(statuses)].to_csv(path, index=False, encoding="utf-8-sig")
    return path


def _batches(settings) -> int:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(Batch))


def test_invalid_file_lists_row_errors_and_sends_nothing(hedui_home, district_dir, tmp_path):
    path = _batch_file(district_dir, tmp_path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "street_code"] = "21011"
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    result = CliRunner().invoke(app, ["submit", str(path), "--local"])
    assert result.exit_code == 1
    assert "nothing was sent" in result.output and "未发送任何数据" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("batch.csv:2:"))
    assert frame.loc[0, "household_code"] in line and "「街道代码」应为 9 位数字" in line
    assert "street_code:" in line
    assert _batches(hedui_home) == 0


def test_submit_local_runs_every_stage_and_status_shows_where_results_are(
        fed_home, district_dir, tmp_path):
    path = _batch_file(district_dir, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["submit", str(path), "--local", "--category", "edge",
                                 "--requester", "李科员", "--as-of", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert "done — stage reported" in result.output and "reports:" in result.output
    code = result.output.split("batch ", 2)[1].split(" ", 1)[0]
    status = runner.invoke(app, ["status", code[:8]])
    assert status.exit_code == 0 and "reported" in status.output and "低保边缘" in status.output
    for stage in ("validated", "loaded", "evidence", "assessed"):
        assert stage in status.output
    stage_lines = [x for x in status.output.splitlines() if "validated" in x]
    assert stage_lines and all("UTC+8" in x for x in stage_lines)  # one clock, zone written


def test_submit_without_a_server_asks_for_one_or_local(hedui_home, district_dir, tmp_path,
                                                       monkeypatch):
    monkeypatch.delenv("HEDUI_AIRFLOW_URL", raising=False)
    result = CliRunner().invoke(app, ["submit", str(_batch_file(district_dir, tmp_path))])
    assert result.exit_code != 0 and "HEDUI_AIRFLOW_URL" in result.output


@responses.activate
def test_submit_to_airflow_stores_the_file_and_triggers_batch_check(hedui_home, district_dir,
                                                                    tmp_path, monkeypatch):
    monkeypatch.setenv("HEDUI_AIRFLOW_URL", AIRFLOW + "/")
    monkeypatch.setenv("HEDUI_AIRFLOW_USER", "admin")
    monkeypatch.setenv("HEDUI_AIRFLOW_PASSWORD", "s3cret")
    responses.post(f"{AIRFLOW}/auth/token", json={"access_token": "tok-1"}, status=201)
    responses.get(f"{AIRFLOW}/api/v2/dags/batch_check", json={"is_paused": True})
    unpause = responses.patch(f"{AIRFLOW}/api/v2/dags/batch_check", json={"is_paused": False})
    trigger = responses.post(f"{AIRFLOW}/api/v2/dags/batch_check/dagRuns",
                             json={"dag_run_id": "manual__1", "state": "queued"})
    path = _batch_file(district_dir, tmp_path)
    result = CliRunner().invoke(app, ["submit", str(path), "--requester", "王主任",
                                      "--notes", "复核"])
    assert result.exit_code == 0, result.output
    assert "batch_check run manual__1 (queued)" in result.output
    assert "原处于暂停状态，已恢复" in result.output
    login = json.loads(responses.calls[0].request.body)
    assert login == {"username": "admin", "password": "s3cret"}
    assert json.loads(unpause.calls[0].request.body) == {"is_paused": False}
    body = json.loads(trigger.calls[0].request.body)
    assert body["logical_date"] is None
    assert trigger.calls[0].request.headers["Authorization"] == "Bearer tok-1"
    stored = Path(body["conf"]["batch_file"])
    assert stored.is_relative_to(hedui_home.home) and stored.suffix == ".sealed"
    with batches.opened(hedui_home, stored) as plain:  # sealed: the same bytes once opened
        assert plain.read_bytes() == path.read_bytes()
    assert body["conf"]["requester"] == "王主任" and body["conf"]["notes"] == "复核"
    with session_scope(hedui_home.database_url) as session:
        assert session.scalars(select(Batch.dag_run_id)).one() == "manual__1"


@responses.activate
def test_api_client_logs_in_again_when_the_token_expires_and_reports_errors():
    api = AirflowApi(AirflowApiConfig(AIRFLOW, "admin", "pw"))
    responses.post(f"{AIRFLOW}/auth/token", json={"access_token": "old"})
    responses.get(f"{AIRFLOW}/api/v2/dags/x/dagRuns/r", status=401)
    responses.get(f"{AIRFLOW}/api/v2/dags/x/dagRuns/r", json={"state": "success"})
    assert api.wait_for_run("x", "r", sleep=lambda _s: None)["state"] == "success"
    assert sum(c.request.url.endswith("/auth/token") for c in responses.calls) == 2
    responses.get(f"{AIRFLOW}/api/v2/dags/missing/details", status=404, json={"detail": "nope"})
    with pytest.raises(AirflowApiError, match="HTTP 404"):
        api.dag_details("missing")
    responses.post(f"{AIRFLOW}/auth/token", status=401, json={"detail": "bad"})
    with pytest.raises(AirflowApiError, match="login"):
        AirflowApi(AirflowApiConfig(AIRFLOW, "admin", "wrong")).login()


def _airflow_env(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HEDUI_AIRFLOW_URL", AIRFLOW)
    monkeypatch.setenv("HEDUI_AIRFLOW_USER", "admin")
    monkeypatch.setenv("HEDUI_AIRFLOW_PASSWORD", "wrong")


@responses.activate
def test_a_refused_login_registers_no_batch(hedui_home, district_dir, tmp_path, monkeypatch):
    _airflow_env(monkeypatch)
    responses.post(f"{AIRFLOW}/auth/token", status=401, json={"detail": "bad credentials"})
    result = CliRunner().invoke(app, ["submit", str(_batch_file(district_dir, tmp_path))])
    assert result.exit_code == 1
    assert "未登记批次" in result.output and "用户名或密码错误" in result.output
    assert "Traceback" not in result.output
    assert _batches(hedui_home) == 0


def test_an_unreachable_airflow_registers_no_batch(hedui_home, district_dir, tmp_path,
                                                   monkeypatch):
    monkeypatch.setenv("HEDUI_AIRFLOW_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("HEDUI_AIRFLOW_USER", "admin")
    monkeypatch.setenv("HEDUI_AIRFLOW_PASSWORD", "pw")
    result = CliRunner().invoke(app, ["submit", str(_batch_file(district_dir, tmp_path))])
    assert result.exit_code == 1 and "无法连接调度平台" in result.output
    assert _batches(hedui_home) == 0


@responses.activate
def test_a_trigger_that_fails_marks_the_batch_failed_with_the_reason(hedui_home, district_dir,
                                                                     tmp_path, monkeypatch):
    from verification.batches.check import batch_status

    _airflow_env(monkeypatch)
    responses.post(f"{AIRFLOW}/auth/token", json={"access_token": "tok"})
    responses.get(f"{AIRFLOW}/api/v2/dags/batch_check", json={"is_paused": True})
    responses.patch(f"{AIRFLOW}/api/v2/dags/batch_check", status=403,
                    json={"detail": "not allowed"})
    result = CliRunner().invoke(app, ["submit", str(_batch_file(district_dir, tmp_path))])
    assert result.exit_code == 1 and "已标记为失败" in result.output
    with session_scope(hedui_home.database_url) as session:
        code = session.scalars(select(Batch.batch_code)).one()
    found = batch_status(hedui_home, code)
    assert found["status"] == "failed" and not found["dag_run_id"]
    assert "核对任务未能启动" in found["progress"][-1]["error"]
    assert "HTTP 403" in found["progress"][-1]["error"]


@responses.activate
def test_a_paused_dag_is_reported_not_triggered_into_a_queue():
    from verification.batches.airflow_api import DagPaused

    api = AirflowApi(AirflowApiConfig(AIRFLOW, "admin", "pw"))
    responses.post(f"{AIRFLOW}/auth/token", json={"access_token": "tok"})
    responses.get(f"{AIRFLOW}/api/v2/dags/batch_check", json={"is_paused": True})
    with pytest.raises(DagPaused, match="处于暂停状态"):
        api.trigger("batch_check", {}, unpause=False)
    responses.patch(f"{AIRFLOW}/api/v2/dags/batch_check", json={"is_paused": True})
    with pytest.raises(DagPaused, match="is paused"):  # the unpause did not take
        api.trigger("batch_check", {})
    assert not any(c.request.url.endswith("/dagRuns") for c in responses.calls)
