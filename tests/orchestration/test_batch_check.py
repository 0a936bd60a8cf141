"""batch_check through real Airflow (``dag.test()``): a valid batch is checked household by
household against the partner feeds and reported; an invalid one fails with row-level errors
before anything is loaded or queried; the inbox trigger claims each dropped file exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from tests.orchestration.conftest import district_as_of, run_state
from verification.batches import check as batches
from verification.storage import session_scope
from verification.storage.models import Batch, Flag, Household, Run

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _batch_file(district_dir: Path, folder: Path, statuses=("applicant",)) -> Path:  # noqa: ANN001
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    rows = roster[roster["status"].isin(statuses)]
    path = folder / "申请批次.csv"
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def _flags(settings, run_id: int) -> dict[str, str]:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        return dict(session.execute(select(Household.household_code, Flag.kind)
                                    .join(Flag, Flag.household_id == Household.id)
                                    .where(Flag.run_id == run_id)).all())


def _count(settings, model) -> int:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_batch_is_checked_flagged_and_reported_and_a_rerun_duplicates_nothing(
        dag_bag, fed_home, district_dir, tmp_path):
    settings = fed_home
    path = _batch_file(district_dir, tmp_path / "submitted")
    conf = {"batch_file": str(path), "category": "dibao", "requester": "核对中心 张科员",
            "notes": "第一批", "as_of": district_as_of(district_dir)}
    run = dag_bag.get_dag("batch_check").test(run_conf=conf)
    assert run_state(run) == "success"

    status = batches.batch_status(settings, batches.batch_code_for(batches.file_sha256(path),
                                                                     "dibao"))
    assert status["status"] == "done" and status["stage"] == "reported"
    assert [p["stage"] for p in status["progress"]] == [
        "received", "validated", "loaded", "evidence", "assessed", "reported"]
    truth = pd.read_csv(district_dir / "truth.csv")
    expected = dict(truth[truth["status"] == "applicant"][["household_code", "expected_flag"]]
                    .itertuples(index=False))
    assert _flags(settings, status["run_id"]) == expected
    assert status["households"] == len(expected)

    report = Path(status["reports_dir"])
    table = pd.read_csv(report / "batch-report.csv", encoding="utf-8-sig")
    assert sorted(table["家庭编号"]) == sorted(expected)
    assert (report / "batch-report.xlsx").exists()
    meta = json.loads((report / "batch.json").read_text("utf-8"))
    assert meta["requester"] == "核对中心 张科员" and meta["policy_version"]
    assert all(meta["feeds"].values()), "the run names the feed version of every kind"
    reports = {Path(p).stem for p in meta["household_reports"]}
    assert reports == set(expected), "a 核对报告 for every applicant household"
    assert all(Path(p).exists() for p in meta["household_reports"])
    audit = json.loads((Path(meta["run_reports"]) / "fairness.json").read_text("utf-8"))
    assert audit["kind"] == "batch" and audit["households"] == len(expected)  # docs/fairness.md

    before = {m.__name__: _count(settings, m) for m in (Batch, Run, Flag, Household)}
    again = dag_bag.get_dag("batch_check").test(run_conf=conf)
    assert run_state(again) == "success"
    assert {m.__name__: _count(settings, m) for m in (Batch, Run, Flag, Household)} == before
    assert _flags(settings, status["run_id"]) == expected


def test_invalid_batch_fails_with_row_errors_before_anything_is_loaded(
        dag_bag, fed_home, district_dir, tmp_path):
    settings = fed_home
    path = _batch_file(district_dir, tmp_path / "submitted")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    first, second = frame.index[frame["relation"] != "户主"][:2]
    frame.loc[first, "id_number"] = frame.loc[first, "id_number"][:17] + (
        "0" if frame.loc[first, "id_number"][17] != "0" else "1")  # wrong check character
    frame.loc[second, "relation"] = "邻居"
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    run = dag_bag.get_dag("batch_check").test(run_conf={"batch_file": str(path)})
    assert run_state(run) == "failed"

    (batch,) = _all_batches(settings)
    assert batch.status == "invalid" and batch.errors == 2
    errors_file = Path(batch.stored_path).parent / "errors.csv"
    assert errors_file.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads it as UTF-8
    errors = pd.read_csv(errors_file, encoding="utf-8-sig", dtype=str)
    assert list(errors.columns) == ["行号", "家庭编号", "字段", "字段代码", "问题说明",
                                    "说明（英文）", "原因代码"]
    assert sorted(errors["行号"].astype(int)) == [first + 2, second + 2]  # line 1: the header
    assert set(errors["字段代码"]) == {"id_number", "relation"}
    assert set(errors["家庭编号"]) == set(frame.loc[[first, second], "household_code"])
    assert "身份证号校验位不符" in " ".join(errors["问题说明"])
    assert not any(v in errors_file.read_text("utf-8-sig")
                   for v in frame["id_number"]), "no full ID number in errors.csv"
    assert not Path(batch.stored_path).exists(), "the raw upload of a refused file is removed"
    assert _count(settings, Household) == 0, "nothing is loaded from an invalid file"
    assert _count(settings, Run) == 0, "no evidence is collected for an invalid file"
    again = batches.register_batch(settings, path)
    with pytest.raises(batches.BatchInvalid, match=f"line {first + 2}: id_number"):
        batches.validate_batch(settings, again.id)


def _all_batches(settings) -> list[Batch]:  # noqa: ANN001
    with session_scope(settings.database_url) as session:
        found = session.scalars(select(Batch)).all()
        session.expunge_all()
        return list(found)


def test_inbox_trigger_claims_each_settled_file_once(tmp_path):
    from verification.batches.inbox_trigger import BatchInboxTrigger, claim_ready_files

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("x", "utf-8")
    (inbox / "b.csv.part").write_text("uploading", "utf-8")
    (inbox / ".hidden.csv").write_text("x", "utf-8")
    (inbox / "batches").mkdir()
    fresh = inbox / "fresh.csv"
    fresh.write_text("x", "utf-8")
    old = time.time() - 60
    os.utime(inbox / "a.csv", (old, old))

    claimed = claim_ready_files(inbox, settle_seconds=5)
    assert [name for name, _ in claimed] == ["a.csv"]
    assert claimed[0][1].parent == inbox / "claimed" and claimed[0][1].read_text("utf-8") == "x"
    assert claim_ready_files(inbox, settle_seconds=5) == [], "a claimed file never fires twice"

    trigger = BatchInboxTrigger(directory=str(inbox), poke_interval=0.05, settle_seconds=0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "verification.batches.inbox_trigger.BatchInboxTrigger"

    async def first_event():  # noqa: ANN202
        stream = trigger.run()
        try:
            return await asyncio.wait_for(anext(stream), timeout=5)
        finally:
            await stream.aclose()

    event = asyncio.run(first_event())
    assert event.payload["name"] == "fresh.csv"
    assert Path(event.payload["path"]).exists() and not fresh.exists()


def test_batch_check_runs_the_files_named_by_inbox_events(dag_bag, fed_home, district_dir,
                                                          tmp_path):
    """The asset-triggered path: the run reads the claimed paths from its triggering events."""
    from verification.batches.inbox_trigger import claim_ready_files

    inbox = batches.inbox_dir(fed_home)
    path = _batch_file(district_dir, inbox, statuses=("monitored",))
    old = time.time() - 60
    os.utime(path, (old, old))
    ((name, claimed),) = claim_ready_files(inbox, settle_seconds=2)

    class Event:
        extra = {"from_trigger": True, "payload": {"path": str(claimed), "name": name}}

    dag = dag_bag.get_dag("batch_check")
    receive = dag.get_task("receive_batches")
    context = {"params": {"batch_file": "", "category": "edge", "requester": "", "notes": ""},
               "dag_run": type("R", (), {"run_id": "asset_triggered__test", "conf": {}})(),
               "triggering_asset_events": {"hedui://inbox/batches": [Event()]}}
    from unittest import mock

    fn = receive.python_callable  # the task's own code, with the context it would get
    with mock.patch.dict(fn.__globals__, {"get_current_context": lambda: context}):
        (batch_id,) = fn()
    status = batches.batch_status(fed_home, batch_id)
    assert status["file"] == claimed.name and status["category"] == "edge"
    assert status["dag_run_id"] == "asset_triggered__test" and status["stage"] == "received"
    # no plain copy of a file full of ID numbers stays under HEDUI_HOME: the claimed drop is
    # removed once its sealed copy (mode 600) is stored
    assert not claimed.exists()
    stored = Path(status["stored_path"])
    assert stored.suffix == ".sealed" and stored.stat().st_mode & 0o077 == 0
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    ids = roster.loc[roster["status"] == "monitored", "id_number"].head(20)
    for stored_file in (p for p in fed_home.home.rglob("*") if p.is_file()):
        if "district" in stored_file.parts or stored_file.suffix in (".db", ".hedui"):
            continue
        body = stored_file.read_bytes()
        assert not any(i.encode() in body for i in ids), stored_file


@pytest.mark.parametrize(("conf", "said"), [
    ({"asof": "2026-11-01"}, "未知的键：asof"),
    ({"as_of": "2026-13-45"}, "不是有效日期"),
    ({"as_of": "2999-01-01"}, "晚于今天"),
    ({"category": "dibao2"}, "救助类别“dibao2”不存在"),
    ({"batch_file": "/nowhere/批次.csv"}, "找不到批次文件 批次.csv"),
])
def test_trigger_input_no_retry_can_fix_is_refused_in_chinese_and_english(conf, said):
    with pytest.raises(batches.BadTrigger, match=said) as refused:
        batches.check_trigger(conf, dt.date(2026, 12, 1))
    assert " / " in str(refused.value)  # English beside the Chinese
    batches.check_trigger({"as_of": "2026-11-01", "category": "edge"}, dt.date(2026, 12, 1))


def test_an_impossible_as_of_is_refused_by_airflow_at_trigger_time(dag_bag):
    from airflow.sdk.definitions.param import ParamValidationError

    params = dag_bag.get_dag("batch_check").params
    for bad in ("2026-13-45", "20261101", "next week"):
        with pytest.raises(ParamValidationError):
            params.get_param("as_of").resolve(bad)
    assert params.get_param("as_of").resolve("2026-11-01") == "2026-11-01"
    assert params.get_param("as_of").resolve(None) is None
    with pytest.raises(ParamValidationError):
        params.get_param("batch_file").resolve("relative/path.csv")


def test_a_misnamed_key_fails_the_first_task_once_and_the_batch_says_why(
        dag_bag, fed_home, district_dir, tmp_path):
    settings = fed_home
    ref = batches.register_batch(settings, _batch_file(district_dir, tmp_path / "in"),
                                 requester="cli")
    run = dag_bag.get_dag("batch_check").test(
        run_conf={"batch_file": str(ref.stored_path), "asof": "2026-11-01"})
    assert run_state(run) == "failed"
    tries = {ti.task_id: (str(ti.state), ti.try_number) for ti in run.get_task_instances()}
    state, attempts = tries["receive_batches"]
    assert state.endswith("failed") and attempts == 1, tries  # no retries of bad input
    status = batches.batch_status(settings, ref.id)
    assert status["status"] == "failed" and "未知的键：asof" in status["progress"][-1]["error"]
    assert _count(settings, Household) == 0
