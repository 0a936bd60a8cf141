"""One reviewed district with reports, shared by the report tests: two monthly runs (so the trend
and ageing charts have history), an officer's resolution in between, and the reports of run 2."""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import pulled_district, review_in_process
from verification.config import Settings


@dataclass(frozen=True)
class ReportRun:
    settings: Settings
    run_id: int
    earlier_run_id: int
    out: Path


@pytest.fixture(scope="session")
def report_run(tmp_path_factory, district_dir) -> ReportRun:
    from verification.flags.actions import list_flags, resolve_flag
    from verification.reports import write_run_reports
    from verification.security.access import principal

    settings = pulled_district(tmp_path_factory.mktemp("report-home"), district_dir)
    earlier = review_in_process(settings, dt.date(2026, 10, 1), run_key="review-2026-10")
    admin = principal("admin")
    removal = next(f for f in list_flags(settings, admin, run_id=earlier) if f["kind"] == "REMOVE")
    resolve_flag(settings, admin, removal["id"], "confirmed", "已停发")
    run_id = review_in_process(settings, dt.date(2026, 11, 1), run_key="review-2026-11")
    return ReportRun(settings, run_id, earlier, write_run_reports(settings, run_id))
