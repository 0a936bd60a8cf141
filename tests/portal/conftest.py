"""Fixtures for the portal tests: a hedui home with a reviewed district, Airflow logins, clients.

``build_portal_home`` is also what the browser tests serve from a real Airflow API server, so the
pages the unit tests check and the pages a browser sees hold the same data: the session's
district with every partner feed taken in, its caseload loaded, and two monthly reviews (so the
dashboard has a trend), with reports written for the latest.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import pull_everything, review_in_process
from verification.config import Settings, load_settings


def build_portal_home(home: Path, district: Path) -> Settings:
    """A migrated hedui home under ``home`` with feeds, caseload and two reviews."""
    from verification.intake.roster import load_roster
    from verification.reports import write_run_reports
    from verification.storage import upgrade

    settings = load_settings(home)
    upgrade(settings.database_url)
    results = pull_everything(settings, district)
    assert {r.status for r in results} == {"accepted"}
    load_roster(settings, district / "roster.csv")
    as_of = dt.date.fromisoformat(district_as_of(district))
    review_in_process(settings, as_of - dt.timedelta(days=30), run_key="review-previous")
    run_id = review_in_process(settings, as_of, run_key="review-latest")
    write_run_reports(settings, run_id)
    return settings


def district_as_of(district: Path) -> str:
    return json.loads((district / "district.json").read_text("utf-8"))["as_of"]


def batch_file(district: Path, folder: Path, statuses: tuple[str, ...] = ("applicant",),
               name: str = "申请批次.csv") -> Path:
    """A valid batch file: the district's households of ``statuses``, as staff would send it."""
    roster = pd.read_csv(district / "roster.csv", dtype=str, keep_default_na=False)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    roster[roster["status"].isin(statuses)].to_csv(path, index=False, encoding="utf-8-sig")
    return path


def broken_batch_file(district: Path, folder: Path) -> tuple[Path, dict[int, str]]:
    """Three whole households with one bad member row each (never the head, so no household
    check is disturbed); returns the file and {line: field that is wrong}."""
    roster = pd.read_csv(district / "roster.csv", dtype=str, keep_default_na=False)
    applicants = roster[roster["status"] == "applicant"]
    with_members = applicants.loc[applicants["relation"] != "户主", "household_code"].unique()[:3]
    rows = applicants[applicants["household_code"].isin(with_members)].reset_index(drop=True)
    damage = [("id_number", lambda v: v[:17] + ("0" if v[17] != "0" else "1")),  # check char
              ("disability_grade", lambda _v: "7"),
              ("authorisation_signed_on", lambda _v: "2026-13-45")]
    bad: dict[int, str] = {}
    for code, (field, spoil) in zip(with_members, damage, strict=True):
        index = rows.index[(rows["household_code"] == code) & (rows["relation"] != "户主")][0]
        rows.loc[index, field] = spoil(rows.loc[index, field])
        bad[int(index) + 2] = field  # line 1 is the header
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "有错误的批次.csv"
    rows.to_csv(path, index=False, encoding="utf-8-sig")
    return path, bad


@pytest.fixture(scope="session")
def portal_settings(tmp_path_factory: pytest.TempPathFactory, district_dir: Path) -> Settings:
    return build_portal_home(tmp_path_factory.mktemp("portal") / "home", district_dir)


@pytest.fixture(scope="session")
def airflow_tokens() -> Callable[[str], str]:
    """Issue Airflow JWTs as the API server would after a login (migrated metadata database)."""
    from verification.airflow_env import migrate_airflow_db

    migrate_airflow_db()
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    manager = init_auth_manager()

    def token_for(username: str) -> str:
        return manager.generate_jwt(SimpleAuthManagerUser(username=username, role="user"))

    return token_for
