"""The reports of a run: layout, jurisdiction routing, workbooks that open in openpyxl, CSV that
opens in Excel, printable HTML with charts, and a 核对报告 per applicant household (and per flag
that needs action: tests/reports/test_household_reports.py)."""

import re

import pandas as pd
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from verification import jurisdictions
from verification.reports import folders_for, safe_cell
from verification.reports.flag_reports import (
    EVIDENCE_HEADERS,
    HEADERS,
    SheetContext,
    evidence_table,
    flag_table,
    write_evidence_csv,
    write_tables,
)
from verification.security.access import AccessDenied, principal
from verification.storage import session_scope
from verification.storage.models import Flag, Household

FULL_ID = re.compile(r"(?<![\d*])\d{17}[\dXx](?![\d*])")
MASKED_ID = re.compile(r"^\d{6}\*{8}\d{3}[\dX]$")


def _households(settings, run_id) -> pd.DataFrame:
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(Household.household_code, Household.status,
                                      Flag.street_code, Flag.community_code)
                               .join(Flag).where(Flag.run_id == run_id)).all()
    return pd.DataFrame(rows, columns=["household_code", "status", "street_code",
                                       "community_code"]).set_index("household_code")


def _csv(path) -> pd.DataFrame:
    return pd.read_csv(path, encoding="utf-8-sig", dtype=str)


def test_layout_one_folder_per_street_and_community(report_run):
    out = report_run.out
    streets = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert streets == sorted(f"{c}-{n}" for c, n in jurisdictions.streets().items())
    assert {"summary.html", "summary.csv", "run.json"} <= {p.name for p in out.iterdir()}
    for street in out.iterdir():
        if street.is_dir():
            assert {"flags.xlsx", "flags.csv", "summary.html"} <= {p.name for p in street.iterdir()}
            communities = [p for p in street.iterdir() if p.is_dir()]
            assert communities and all((c / "flags.xlsx").exists() for c in communities)
            assert all((c / "evidence.csv").exists() for c in communities)
            assert not (street / "evidence.csv").exists()


def test_every_folder_holds_only_its_own_jurisdiction(report_run):
    households = _households(report_run.settings, report_run.run_id)
    seen = set()
    for csv in report_run.out.rglob("flags.csv"):
        folder = csv.parent
        codes = _csv(csv)["家庭编号"]
        assert len(codes), folder
        level = "community_code" if folder.parent != report_run.out else "street_code"
        own = folder.name.split("-")[0]
        assert set(households.loc[codes, level]) == {own}, folder
        expected = households.index[households[level] == own]
        assert set(codes) == set(expected)  # and nothing of its own is missing
        assert "证据" not in load_workbook(folder / "flags.xlsx").sheetnames
        if level == "community_code":
            assert set(_csv(folder / "evidence.csv")["家庭编号"]) <= set(codes)
        html = (folder / "summary.html").read_text("utf-8")
        others = set(households.index) - set(codes)
        assert not [c for c in others if c in html]
        for report in (folder / "核对报告").glob("*.html"):
            assert report.stem in set(codes)
        seen |= set(codes) if level == "street_code" else set()
    assert seen == set(households.index)


def test_an_officer_receives_only_their_folders(report_run):
    out = report_run.out
    assert folders_for(out, principal("officer_wusan")) == [out / "210112001-五三街道"]
    assert folders_for(out, principal("officer_taoxian1")) == [
        out / "210112003-桃仙街道" / "210112003001-桃仙社区"]
    assert folders_for(out, principal("admin")) == [out]
    with pytest.raises(AccessDenied):
        folders_for(out, principal("partner_hrss"))


def test_workbooks_open_with_summary_flags_and_evidence(report_run):
    table = flag_table(report_run.settings, report_run.run_id)
    for path in report_run.out.rglob("flags.xlsx"):
        book = load_workbook(path)
        community = path.parent.parent != report_run.out
        assert book.sheetnames == ["汇总", "核对结论"]
        flags = pd.DataFrame(book["核对结论"].values)
        assert flags.iloc[0].tolist() == list(HEADERS.values())
        rows = flags.iloc[1:].set_axis(list(HEADERS), axis=1)
        assert rows["head_id"].map(lambda v: bool(MASKED_ID.match(v))).all()
        assert rows["reasons"].str.len().gt(0).all()
        acting = rows[rows["flag"].isin(["应退出", "需人工复核", "应纳入", "不符合条件"])]
        assert acting["due_date"].str.match(r"^\d{4}-\d{2}-\d{2}$").all()
        summary = [r for r in book["汇总"].values]
        where = next(r[1] for r in summary if r[0] == "证据明细 / evidence")
        assert "evidence.csv" in where and ("同一文件夹" if community else "社区") in where
        if community:
            assert _csv(path.parent / "evidence.csv").columns.tolist() == list(
                EVIDENCE_HEADERS.values())
        total = next(r for r in summary if r[0] == "合计")
        assert total[2] == len(rows)
    assert len(table) == sum(
        len(_csv(p)) for p in report_run.out.glob("*/flags.csv"))


def test_each_cited_record_is_written_once_in_its_community_s_evidence_file(report_run):
    """The evidence is not repeated per level: the communities' evidence.csv hold every record
    the run's flags cite, each once, with its amount and period; no workbook repeats them."""
    cited = evidence_table(report_run.settings, report_run.run_id)
    written = pd.concat([_csv(p) for p in report_run.out.glob("*/*/evidence.csv")])
    assert len(written) == len(cited) > 0
    assert sorted(written["记录编号"]) == sorted(cited["record_ref"].astype(str))
    order = ["家庭编号", "数据来源", "记录编号", "起始日期", "截止日期", "项目"]
    database = cited[list(EVIDENCE_HEADERS)].rename(columns=EVIDENCE_HEADERS).astype(
        {"记录编号": str, "数据批次号": str})
    files = written.fillna({"起始日期": "", "截止日期": ""})
    database, files = (t.sort_values(order, kind="stable").reset_index(drop=True)
                       for t in (database, files))
    same = order + ["核对结论", "数据批次号"]
    assert (files[same] == database[same]).all().all()
    amounts = pd.to_numeric(files["金额(元)"]).fillna(0) - database["金额(元)"].fillna(0)
    assert amounts.abs().max() < 0.005
    assert not list(report_run.out.glob("*/evidence.csv"))
    assert not [p for p in report_run.out.rglob("flags.xlsx")
                if "证据" in load_workbook(p, read_only=True).sheetnames]


def test_evidence_csv_keeps_text_as_written_and_neutralises_formulas(report_run, tmp_path):
    evidence = evidence_table(report_run.settings, report_run.run_id).head(5).copy()
    evidence["record_ref"] = ["<r>&</r>", "=cmd|'/C calc'!A0", "a,b\"c\"", "正常 文本", "+1"]
    evidence["amount"] = [750.0, 1812.6, 0.1 + 0.2, float("nan"), 12345678.91]
    assert write_evidence_csv(evidence, tmp_path / "e.csv") == 5
    assert (tmp_path / "e.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(tmp_path / "e.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert back["记录编号"].tolist() == ["<r>&</r>", "'=cmd|'/C calc'!A0", "a,b\"c\"", "正常 文本",
                                     "'+1"]
    assert back["金额(元)"].tolist() == ["750", "1812.6", "0.3", "", "12345678.91"]


def test_evidence_beyond_excel_s_row_limit_goes_on_to_further_sheets(report_run, tmp_path,
                                                                      monkeypatch):
    from verification.reports import flag_reports

    monkeypatch.setattr(flag_reports, "EVIDENCE_ROWS_PER_SHEET", 3)
    rows = flag_table(report_run.settings, report_run.run_id).head(2)
    evidence = evidence_table(report_run.settings, report_run.run_id).head(7)
    write_tables(rows, evidence, tmp_path / "t", SheetContext("t"))
    book = load_workbook(tmp_path / "t.xlsx")
    assert book.sheetnames == ["汇总", "核对结论", "证据", "证据(2)", "证据(3)"]
    parts = [list(book[name].values) for name in book.sheetnames[2:]]
    assert all(p[0] == tuple(EVIDENCE_HEADERS.values()) for p in parts)
    assert [len(p) - 1 for p in parts] == [3, 3, 1]
    assert [r[4] for p in parts for r in p[1:]] == evidence["record_ref"].tolist()


def test_csv_opens_in_excel_and_no_file_holds_a_full_id_number(report_run):
    for csv in report_run.out.rglob("*.csv"):
        assert csv.read_bytes().startswith(b"\xef\xbb\xbf"), csv
    for path in report_run.out.rglob("*"):
        if path.suffix in (".csv", ".html", ".json"):
            assert not FULL_ID.search(path.read_text("utf-8")), path
        if path.suffix == ".xlsx":
            for sheet in load_workbook(path).worksheets:
                for row in sheet.values:
                    assert not any(FULL_ID.search(str(v)) for v in row if v), path


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://x\")", "+1", "-1+2", "@SUM(A1)",
                                   "\tcmd"])
def test_formula_cells_are_neutralised(value, tmp_path, report_run):
    assert safe_cell(value) == "'" + value
    assert safe_cell("正常文本") == "正常文本" and safe_cell(12.5) == 12.5
    rows = flag_table(report_run.settings, report_run.run_id).head(1).assign(household_code=value)
    write_tables(rows, pd.DataFrame(columns=list(EVIDENCE_HEADERS)), tmp_path / "t",
                 SheetContext("t"))
    assert _csv(tmp_path / "t.csv")["家庭编号"].tolist() == ["'" + value]
    assert load_workbook(tmp_path / "t.xlsx")["核对结论"]["A2"].value == "'" + value


@pytest.mark.parametrize("value", ["<r>&</r>", "<r><t>x</t></r>", " <r> & </r> ",
                                   "http://x.example/a", "12.50", "_x0041_", "a\x01b"])
def test_text_cells_are_written_as_the_same_text(value, tmp_path, report_run):
    """Whatever a feed's text holds, the workbook shows it as that text: not raw XML (xlsxwriter
    writes <r>…</r> unescaped in constant-memory mode), a link, a number or an Excel escape."""
    rows = flag_table(report_run.settings, report_run.run_id).head(1).assign(household_code=value)
    evidence = evidence_table(report_run.settings, report_run.run_id).head(2).assign(
        record_ref=value)
    write_tables(rows, evidence, tmp_path / "t", SheetContext(value, [("fact", value)]))
    book = load_workbook(tmp_path / "t.xlsx")
    assert book["核对结论"]["A2"].data_type == "s" and not book["核对结论"]["A2"].hyperlink
    shown = [book["核对结论"]["A2"].value, book["汇总"]["A1"].value, book["汇总"]["B2"].value]
    shown += [r[4] for r in list(book["证据"].values)[1:]]
    assert [_as_excel_shows(v) for v in shown] == [value] * 5


def _as_excel_shows(text: str) -> str:
    """Excel reads _xHHHH_ in a cell's text as that character (openpyxl leaves it as stored)."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def test_summaries_have_charts_and_print_styles(report_run):
    district = (report_run.out / "summary.html").read_text("utf-8")
    street = (report_run.out / "210112001-五三街道" / "summary.html").read_text("utf-8")
    # flags by kind is in the cards (a bar each), not drawn again as a chart
    assert district.count("<svg") == 3 and street.count("<svg") == 3
    assert district.count('class="bar"') == 7
    assert "@media print" in street and "@page" in street and "<script" not in street
    assert "各街道核对结论" in district and "各社区核对结论" in street
    assert "2026-10-01" in district and "2026-11-01" in district  # trend across both runs
    assert "待办核对结论" in street and "待办核对结论" not in district  # households by street only
    community = next((report_run.out / "210112001-五三街道").glob("*/summary.html"))
    assert community.read_text("utf-8").count("<svg") == 2


def test_open_flags_age_from_the_first_run_that_raised_them(report_run, district_dir):
    table = flag_table(report_run.settings, report_run.run_id)
    waiting = table[table["days_open"].notna()]
    assert set(waiting["kind"]) <= {"ADD", "REJECT", "REMOVE", "REVIEW", "ADJUST",
                                    "GRADUAL_EXIT"}
    # a member who died between the two runs changes the household from the later run on, so
    # its flag may be new in November
    truth = pd.read_csv(district_dir / "truth.csv", dtype=str)
    died = set(truth.loc[truth["scenario"] == "death", "household_code"])
    older = waiting[~waiting["household_code"].isin(died)]
    assert (older["days_open"] == 31).sum() >= len(older) - 2  # raised on 2026-10-01 too
    resolved = table[table["flag_status"].str.startswith("已办结")]
    assert len(resolved) == 1 and resolved["days_open"].isna().all()  # carried from October


def test_a_verification_report_per_applicant_household(report_run):
    households = _households(report_run.settings, report_run.run_id)
    applicants = households[households["status"] == "applicant"]
    reports = {p.stem: p for p in report_run.out.rglob("核对报告/*.html")}
    assert set(applicants.index) <= set(reports)  # and every flag that needs action: see
    page = reports[applicants.index[0]].read_text("utf-8")  # tests/reports/test_household_reports
    for part in ("委托方", "家庭成员", "授权书编号", "SQ-210112-", "收入情况（按来源和成员）",
                 "财产情况（核对基准日）", "家庭人均月收入", "未反馈的数据来源", "核对结果",
                 "不替代审核确认决定"):
        assert part in page, part
    assert re.search(r"\d{6}\*{8}\d{3}[\dX]", page)


def test_sources_that_did_not_answer_are_named_in_the_verification_report():
    from verification.reports.household_report import _missing
    from verification.reports.html import RunFacts

    facts = RunFacts(run={}, history=pd.DataFrame(), requester="",
                     feeds=[{"label": "死亡（殡葬）信息", "missing": True},
                            {"label": "机动车登记", "missing": False}])
    named = _missing({"missing_sources": "deposits,wages"}, facts)
    assert [n.split("：")[0] for n in named] == ["存款、证券及商业保险", "工资及社会保险缴费",
                                                "死亡（殡葬）信息"]
    assert _missing({"missing_sources": ""}, RunFacts({}, [], pd.DataFrame(), "")) == []


def test_reasons_carry_the_figures_an_officer_acts_on():
    from verification.reports.flag_reports import reason_text

    assert reason_text("BENEFIT_CHANGED", {"value": 1812.64, "limit": 2250.0}) == (
        "保障金额变化（现2,250.00元→核定1,812.64元/月）")
    assert reason_text("GRADUAL_EXIT_PERIOD", {"value": 6.0, "limit": 6.0}).endswith("（6个月）")
    assert reason_text("VEHICLE_OWNED", {"value": 1.0, "limit": 0.0}) == "拥有机动车辆"
    assert reason_text("NEAR_BOUNDARY", {"value": None, "limit": 950.0}) == "接近认定边界"


def test_formula_text_in_every_column_is_neutralised_in_the_files_as_opened(tmp_path,
                                                                            report_run):
    """Partner text such as an employer name beginning with = + - @ reaches the evidence sheet;
    every text cell of every CSV and workbook, opened as a reader would, starts harmless."""
    import csv as csvlib

    starts = ("=", "+", "-", "@", "\t", "\r")
    rows = flag_table(report_run.settings, report_run.run_id).head(3).copy()
    for i, column in enumerate(c for c in rows.columns if rows[c].dtype == object):
        rows[column] = f"{starts[i % 4]}HYPERLINK(\"http://x\",\"{column}\")"
    evidence = evidence_table(report_run.settings, report_run.run_id).head(3).copy()
    for i, column in enumerate(c for c in evidence.columns if evidence[c].dtype == object):
        evidence[column] = f"{starts[i % 4]}cmd|'/C calc'!A{i}"
    write_tables(rows, evidence, tmp_path / "t", SheetContext("=title", [("@fact", "-1+2")]))
    write_evidence_csv(evidence, tmp_path / "evidence.csv")
    for written in ("t.csv", "evidence.csv"):
        with open(tmp_path / written, encoding="utf-8-sig", newline="") as handle:
            cells = [cell for record in csvlib.reader(handle) for cell in record]
        assert cells and not [c for c in cells if c.startswith(starts)], written
    book = load_workbook(tmp_path / "t.xlsx")
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str) and sheet.title != "汇总":
                    assert not cell.value.startswith(starts), (sheet.title, cell.value)
    assert book["汇总"]["A1"].value == "'=title"


def test_reports_killed_midway_leave_the_earlier_folder_whole_and_none_half_written(
        report_run, monkeypatch):
    """Written under a temporary name, moved into place only when complete: a failure (a
    killed worker) after the streets' files leaves the run's earlier folder as it was."""
    from verification.reports import run_reports

    before = sorted(p.relative_to(report_run.out) for p in report_run.out.rglob("*"))
    partial = report_run.out.with_name(report_run.out.name + ".partial")

    def killed(*args, **kwargs):
        assert any(partial.rglob("*.xlsx"))  # the streets' workbooks were being written
        raise KeyboardInterrupt

    monkeypatch.setattr(run_reports, "_write_district", killed)
    with pytest.raises(KeyboardInterrupt):
        run_reports.write_run_reports(report_run.settings, report_run.run_id)
    assert sorted(p.relative_to(report_run.out) for p in report_run.out.rglob("*")) == before
    monkeypatch.undo()
    assert run_reports.write_run_reports(report_run.settings, report_run.run_id) == \
        report_run.out
    assert not partial.exists()
    assert sorted(p.relative_to(report_run.out) for p in report_run.out.rglob("*")) == before


def test_a_runs_reports_are_read_and_written_a_street_at_a_time(report_run, monkeypatch):
    """A province's flag and evidence tables held for every street at once ran a 1M review's
    reports out of memory (23.6 GB): each street's are read, written and let go. The files are
    the same as from the run's tables read whole (a batch's way)."""
    from verification.reports import run_reports

    whole = run_reports.report_tables(report_run.settings, report_run.run_id)
    streets = sorted(whole.flags["street_code"].unique())
    assert len(streets) >= 2
    read = []
    real = run_reports.report_tables

    def one_street(settings, run_id, street_code=None):
        assert street_code is not None  # never the whole run's
        read.append(street_code)
        part = real(settings, run_id, street_code)
        assert set(part.flags["street_code"]) == {street_code}
        assert set(part.evidence["street_code"]) <= {street_code}
        return part

    monkeypatch.setattr(run_reports, "report_tables", one_street)
    out = run_reports.write_run_reports(report_run.settings, report_run.run_id)
    assert read == streets
    streamed = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.csv")}
    monkeypatch.undo()
    run_reports.write_run_reports(report_run.settings, report_run.run_id, whole)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.csv")} == streamed
    summary = pd.read_csv(out / "summary.csv", encoding="utf-8-sig", index_col=0)
    assert int(summary.to_numpy().sum()) == len(whole.flags)
    assert sum(len(r) for r in (pd.read_csv(p, encoding="utf-8-sig") for p in
               out.glob("*/flags.csv"))) == len(whole.flags)


def test_the_report_folder_is_kept_relative_to_the_home(report_run, tmp_path):
    """A restored or moved copy of the home finds its own reports (the folder was stored as an
    absolute path: the copy pointed at the old home; second outside probe)."""
    from dataclasses import replace

    from verification.storage.models import Run

    with session_scope(report_run.settings.database_url) as session:
        stored = session.get(Run, report_run.run_id).reports_dir
    assert stored == f"reports/run-{report_run.run_id}"
    assert report_run.settings.at_home(stored) == report_run.out
    moved = replace(report_run.settings, home=tmp_path / "restored")
    assert moved.at_home(stored) == tmp_path / "restored" / stored
    assert moved.at_home(str(report_run.out)) == report_run.out  # a row from before
