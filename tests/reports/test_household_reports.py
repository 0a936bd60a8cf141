"""The 核对报告: written in bulk for applicants and every flag that needs action (not for KEEP),
with masked identities and the assessment's figures; rendered on demand for any flag of the run,
the same page as the bulk one; clear errors when it cannot be; `hedui reports household`."""

import datetime as dt
import re

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from verification import codes
from verification.reports import household_report as hr
from verification.storage import session_scope
from verification.storage.models import Assessment, Flag, Household, Member

FULL_ID = re.compile(r"(?<![\d*])\d{17}[\dXx](?![\d*])")


def _flags(settings, run_id) -> pd.DataFrame:
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Flag.id, Flag.kind, Flag.household_id, Household.household_code,
                   Household.status, Assessment.per_capita_income, Assessment.benefit,
                   Assessment.household_size)
            .join(Household, Household.id == Flag.household_id)
            .join(Assessment, (Assessment.household_id == Flag.household_id)
                  & (Assessment.run_id == Flag.run_id))
            .where(Flag.run_id == run_id)).all()
    return pd.DataFrame(rows, columns=["flag_id", "kind", "household_id", "household_code",
                                       "status", "per_capita_income", "benefit",
                                       "household_size"]).set_index("household_code")


def _bulk(report_run) -> dict:
    return {p.stem: p for p in report_run.out.rglob("核对报告/*.html")}


def _figure(page: str, label: str) -> str:
    found = re.search(rf"<th[^>]*>{re.escape(label)}</th><td class=\"num\">([^<]*)</td>", page)
    assert found, label
    return found.group(1)


def _issued(page: str) -> dt.date:
    return dt.date.fromisoformat(re.search(r"出具日期：(\d{4}-\d{2}-\d{2})", page).group(1))


def test_action_kinds_are_every_kind_with_a_due_date():
    assert set(codes.action_kinds()) == set(codes.flags()) - {"KEEP"}
    assert "REMOVE" in codes.action_kinds() and "REVIEW" in codes.action_kinds()


def test_bulk_reports_for_applicants_and_flags_that_need_action_not_for_keep(report_run):
    flags = _flags(report_run.settings, report_run.run_id)
    wanted = flags[(flags["status"] == "applicant") | (flags["kind"] != "KEEP")]
    kept = flags[(flags["status"] != "applicant") & (flags["kind"] == "KEEP")]
    assert len(kept) and len(wanted) > (flags["status"] == "applicant").sum()  # a real split
    assert set(_bulk(report_run)) == set(wanted.index)
    for folder in report_run.out.rglob("核对报告"):  # each in its own community's folder
        community = folder.parent.name.split("-")[0]
        with session_scope(report_run.settings.database_url) as session:
            homes = set(session.scalars(select(Household.household_code).where(
                Household.community_code == community)))
        assert {p.stem for p in folder.glob("*.html")} <= homes


def test_reports_show_masked_ids_only_and_the_assessment_s_figures(report_run, district_dir):
    flags = _flags(report_run.settings, report_run.run_id)
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str)
    raw_ids = set(roster["id_number"])
    with session_scope(report_run.settings.database_url) as session:
        masked = pd.DataFrame(session.execute(select(Household.household_code, Member.id_masked)
                                              .join(Member)).all(), columns=["code", "id"])
    for code, path in _bulk(report_run).items():
        page = path.read_text("utf-8")
        assert not FULL_ID.search(page) and not any(i in page for i in raw_ids), path
        assert set(masked.loc[masked["code"] == code, "id"]) <= set(
            re.findall(r"\d{6}\*{8}\d{3}[\dX]", page))
        row = flags.loc[code]
        assert _figure(page, "家庭人均月收入(元)") == f"{row['per_capita_income']:,.2f}"
        assert _figure(page, "测算保障金额(元/月)") == f"{row['benefit']:,.2f}"
        assert _figure(page, "共同生活家庭成员人数") == str(row["household_size"])
        assert codes.label("flags", row["kind"]) in page


def test_on_demand_report_is_the_bulk_one(report_run):
    flags = _flags(report_run.settings, report_run.run_id)
    bulk = _bulk(report_run)
    for _, group in flags[flags.index.isin(list(bulk))].groupby("kind"):  # each kind written
        for code, row in group.head(2).iterrows():
            written = bulk[code].read_text("utf-8")
            page = hr.household_report(report_run.settings, report_run.run_id,
                                       int(row["flag_id"]), _issued(written))
            assert page == written, code


def test_on_demand_report_for_a_keep_household(report_run):
    flags = _flags(report_run.settings, report_run.run_id)
    keep = flags[(flags["kind"] == "KEEP") & (flags["status"] != "applicant")]
    code, row = next(keep.iterrows())
    page = hr.household_report(report_run.settings, report_run.run_id, int(row["flag_id"]))
    assert code not in _bulk(report_run)
    assert f"报告编号：{code}-{report_run.run_id}" in page and "继续保障" in page
    assert not FULL_ID.search(page)


def test_errors_say_what_is_wrong_in_chinese_and_english(report_run, monkeypatch, tmp_path):
    settings, run_id = report_run.settings, report_run.run_id
    earlier = _flags(settings, report_run.earlier_run_id)
    with pytest.raises(hr.NotInRun, match=r"运行 \d+ 中没有核对结论 .* is not in run"):
        hr.household_report(settings, run_id, int(earlier["flag_id"].iloc[0]))
    with pytest.raises(hr.NotInRun, match="不在运行 .* is not in run"):
        hr.flag_of_household(settings, run_id, "HB-NO-SUCH")
    with pytest.raises(hr.NotInRun, match="没有运行 999 / no run 999"):
        hr.flag_of_household(settings, 999, "HB-NO-SUCH")
    with pytest.raises(hr.NotInRun, match="没有运行 999 / no run 999"):
        hr.household_report(settings, 999, int(earlier["flag_id"].iloc[0]))
    code = earlier.index[0]
    assert hr.flag_of_household(settings, run_id, code) == int(
        _flags(settings, run_id).loc[code, "flag_id"])
    monkeypatch.setattr(hr, "_evidence_path", lambda *_: tmp_path / "purged.parquet")
    with pytest.raises(hr.EvidencePurged, match="已按保留期限清理.*purged by housekeeping"):
        hr.household_report(settings, run_id, hr.flag_of_household(settings, run_id, code))


def test_cli_writes_one_household_s_report(report_run, tmp_path):
    from verification.cli.reports import app

    flags = _flags(report_run.settings, report_run.run_id)
    with session_scope(report_run.settings.database_url) as session:
        streets = dict(session.execute(select(Flag.id, Flag.street_code).where(
            Flag.run_id == report_run.run_id)).all())
    flags["street_code"] = flags["flag_id"].map(streets)
    keep = flags[(flags["kind"] == "KEEP") & (flags["status"] != "applicant")
                 & (flags["street_code"] != "210112001")].index[0]  # not officer_wusan's
    env = {"HEDUI_HOME": str(report_run.settings.home),
           "HEDUI_DATABASE_URL": report_run.settings.database_url}

    def hedui(code: str, out, user: str = "admin"):  # noqa: ANN001, ANN202
        return CliRunner().invoke(app, ["household", str(report_run.run_id), code, "--out",
                                        str(out), "--user", user], env=env)

    out = tmp_path / "one" / f"{keep}.html"
    done = hedui(keep, out)
    assert done.exit_code == 0, done.output
    assert out.exists() and f"报告编号：{keep}-{report_run.run_id}" in out.read_text("utf-8")
    missing = hedui("HB-NO-SUCH", tmp_path / "missing.html")
    assert missing.exit_code == 1 and "is not in run" in missing.output
    refused = hedui(keep, tmp_path / "refused.html", "officer_wusan")
    assert refused.exit_code == 1 and "辖区" in refused.output
    assert not (tmp_path / "refused.html").exists() and not (tmp_path / "missing.html").exists()


def test_one_household_s_evidence_is_read_from_its_own_small_row_groups(
        tmp_path, district_dir, monkeypatch):
    """The run's matched evidence is written in small row groups sorted by household within each
    shard, so the on-demand 核对报告 decodes only the groups whose statistics hold its household
    (a province's street has thousands of rows per feed block) and finds every row it has."""
    import pyarrow.parquet as pq

    from tests.conftest import pulled_district, review_in_process
    from verification import pipeline

    monkeypatch.setattr(pipeline, "HOUSEHOLD_GROUP_ROWS", 16)
    settings = pulled_district(tmp_path / "home", district_dir)
    run_id = review_in_process(settings, dt.date(2026, 11, 1), run_key="small-groups")
    path = hr._evidence_path(settings, run_id)
    everything = pq.read_table(path).to_pandas()
    source = pq.ParquetFile(path)
    assert source.num_row_groups > 20 and max(
        source.metadata.row_group(g).num_rows for g in range(source.num_row_groups)) <= 16
    with session_scope(settings.database_url) as session:
        street, = session.execute(select(Flag.street_code).where(Flag.run_id == run_id)).first()
        households = session.scalars(select(Flag.household_id).where(
            Flag.run_id == run_id, Flag.street_code == street)).all()
    of_street = hr._street_groups(source, street)
    footer, found, decoded = hr._footer(path), 0, 0
    for household_id in households:
        rows = hr._household_rows(path, street, household_id).to_pandas()
        expected = everything[everything["household_id"].eq(household_id)]
        assert sorted(rows["record_ref"]) == sorted(expected["record_ref"]), household_id
        found += len(rows)
        decoded += sum(footer.low[g] <= household_id <= footer.high[g] for g in of_street)
    assert found > 100
    # most of the street's groups are not decoded for one household (a small feed's are few
    # and span the street, a large feed's many and narrow)
    assert decoded < len(households) * len(of_street) / 2
