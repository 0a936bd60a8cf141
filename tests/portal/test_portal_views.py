"""The portal's summaries that need no server: batch stages, delivery expectations, evidence
grouping, ageing buckets, and the trend chart's geometry."""

from __future__ import annotations

import datetime as dt

from verification.portal import views
from verification.portal.row_errors import explain
from verification.portal.submit import safe_name


def test_batch_steps_follow_the_progress_log():
    log = [{"stage": "received", "at": "2026-11-29T08:00:00"},
           {"stage": "validated", "at": "2026-11-29T08:00:01"}]
    steps = views.batch_steps("validated", log)
    assert [s["state"] for s in steps] == ["done", "done", "running", "waiting", "waiting",
                                           "waiting"]
    failed = views.batch_steps("failed", [*log, {"stage": "failed", "at": "x"}])
    assert [s["state"] for s in failed][:3] == ["done", "done", "failed"]
    invalid = views.batch_steps("invalid", [log[0], {"stage": "invalid", "at": "x"}])
    assert [s["state"] for s in invalid][:2] == ["done", "failed"]
    done = views.batch_steps("reported", [{"stage": s, "at": "t"} for s in views.BATCH_STEPS])
    assert {s["state"] for s in done} == {"done"}


def test_expected_next_delivery_and_lateness():
    now = dt.datetime(2026, 11, 29, 0, 0)  # UTC: 08:00 in Shenyang
    on_time = views.expected_next("0 2 3 * *", 35, dt.datetime(2026, 11, 3, 0, 0), now)
    assert on_time["next_pull"].strftime("%Y-%m-%d %H:%M") == "2026-12-03 02:00"
    assert on_time["late_days"] == 0
    late = views.expected_next("0 2 3 * *", 35, dt.datetime(2026, 9, 3, 0, 0), now)
    assert late["late_days"] == (now - dt.datetime(2026, 9, 3)).days - 35
    never = views.expected_next("0 1 * * *", 10, None, now)
    assert never["late_days"] == 0 and never["next_pull"].day == 30


def test_evidence_is_grouped_by_source_and_item_with_every_record_kept():
    months = [{"source_kind": "wages", "item": "wage", "match_grade": "certain",
               "record_ref": f"WA{m:03d}", "amount": 4000.0 + m,
               "period_start": f"2026-{m:02d}-01", "period_end": f"2026-{m:02d}-28"}
              for m in (3, 1, 2)]
    car = {"source_kind": "vehicles", "item": "vehicle", "match_grade": "probable",
           "record_ref": "VE1", "amount": 0.0, "period_start": "2025-05-01",
           "period_end": "2025-05-01"}
    groups = views.evidence_groups([*months, car])
    assert [(g["source_kind"], g["count"]) for g in groups] == [("vehicles", 1), ("wages", 3)]
    wages = groups[1]
    assert [r["record_ref"] for r in wages["records"]] == ["WA001", "WA002", "WA003"]
    assert (wages["amount_min"], wages["amount_max"]) == (4001.0, 4003.0)
    assert (wages["period_start"], wages["period_end"]) == ("2026-01-01", "2026-03-28")


def test_ageing_buckets_by_due_date():
    today = dt.date(2026, 11, 29)
    dues = [dt.date(2026, 11, 1), dt.date(2026, 11, 29), dt.date(2026, 12, 6),
            dt.date(2026, 12, 7), None]
    assert views._ageing(dues, today) == {"overdue": 1, "due_week": 2, "due_later": 1,
                                          "no_due": 1}


def test_days_open_buckets_by_when_the_flag_was_raised():
    today = dt.date(2026, 11, 29)
    raised = [dt.datetime(2026, 11, 29, 8), dt.datetime(2026, 11, 22), dt.datetime(2026, 11, 21),
              dt.datetime(2026, 9, 30), dt.datetime(2026, 9, 29)]
    assert views._days_open(raised, today) == {"d0_7": 2, "d8_30": 1, "d31_60": 1, "d61": 1}


def test_trend_chart_stacks_actionable_kinds_per_run():
    trend = [{"run_id": 1, "as_of": dt.date(2026, 10, 1), "run_key": "a",
              "counts": {"REMOVE": 4, "ADD": 2, "KEEP": 50}},
             {"run_id": 2, "as_of": dt.date(2026, 11, 1), "run_key": "b",
              "counts": {"REMOVE": 8}}]
    chart = views.trend_chart(trend)
    assert [b["kind"] for b in chart["bars"]] == ["REMOVE", "ADD", "REMOVE"]
    tallest = max(chart["bars"], key=lambda b: b["h"])
    assert tallest["n"] == 8 and tallest["y"] == chart["height"] - 28 - tallest["h"]
    assert [label["text"] for label in chart["labels"]] == ["2026-10", "2026-11"]


def test_uploaded_file_names_are_made_safe():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\Users\\张\\申请批次 (1).csv") == "申请批次_(1).csv"
    assert safe_name("...") == "batch.csv"


def test_feed_problems_are_explained_with_the_feed_contract():
    text = explain("BELOW_MINIMUM", "amount", "", "zh", "fallback", kind="pensions")
    assert text.startswith("「") and "不能小于 0" in text
    assert explain("REQUIRED", "amount", "", "en", kind="pensions").endswith("is required")


def test_every_airflow_run_state_reads_in_chinese_and_english():
    """The batch page and `hedui batch status` name the Airflow run's state in words (issue 17:
    they showed Airflow's own English); every state a DAG run can be in has both labels."""
    from airflow.utils.state import DagRunState

    from verification.portal.i18n import airflow_state

    for state in DagRunState:
        zh, en = airflow_state(str(state), "zh"), airflow_state(str(state), "en")
        assert zh != str(state) and any("\u4e00" <= ch <= "\u9fff" for ch in zh), state
        assert en and en.isascii(), state
    assert airflow_state("DagRunState.QUEUED", "zh") == "排队等待"
    assert airflow_state("up_for_retry", "en") == "waiting to retry"
