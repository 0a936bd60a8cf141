"""All reports of one run, routed by jurisdiction so an officer receives only their own:

    reports/run-<id>/
      summary.html  summary.csv  run.json             district: counts only, no households
      fairness.json                                 the run's fairness audit (docs/fairness.md)
      <street>-<name>/
        flags.xlsx  flags.csv  summary.html           the street's flags and charts
        <community>-<name>/
          flags.xlsx  flags.csv  summary.html         the community's flags and charts
          evidence.csv                                every record its flags cite
          核对报告/<household>.html                    a verification report per applicant and
                                                      per flag that needs action

Writing replaces the run's folder, so a rerun leaves exactly one set. Each cited record is
written once, in its community's evidence.csv (the officers who act on the flags); the street's
and community's workbooks list the flags and say where their evidence is
(docs/flags-and-reports.md).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from verification import jurisdictions, tasklog
from verification.config import Settings
from verification.reports.flag_reports import (
    EVIDENCE_BESIDE,
    EVIDENCE_CSV,
    EVIDENCE_ELSEWHERE,
    SheetContext,
    evidence_table,
    flag_table,
    safe_cell,
    write_evidence_csv,
    write_tables,
)
from verification.reports.household_report import write_household_reports
from verification.reports.html import RunFacts, render_summary, run_facts
from verification.security.access import Principal
from verification.storage import session_scope
from verification.storage.models import Flag, Run

log = logging.getLogger(__name__)


def street_folder(street_code: str) -> str:
    return f"{street_code}-{jurisdictions.street_name(street_code)}"


def community_folder(community_code: str) -> str:
    return f"{community_code}-{jurisdictions.community_name(community_code)}"


@dataclass(frozen=True)
class ReportTables:
    """What the reports of a run (or of one street of it) are drawn from, read once:
    ``flag_table`` and ``evidence_table``."""

    flags: pd.DataFrame
    evidence: pd.DataFrame


def report_tables(settings: Settings, run_id: int, street_code: str | None = None
                  ) -> ReportTables:
    return ReportTables(flag_table(settings, run_id, street_code=street_code),
                        evidence_table(settings, run_id, street_code))


# what the district's page and summary.csv need of every flag: a province's flag tables with
# reasons and evidence text, held for every street at once, were most of 23 GB
DISTRICT_COLUMNS = ["household_code", "street_code", "community_code", "street", "flag", "kind",
                    "days_open", "overdue"]


def write_run_reports(settings: Settings, run_id: int,
                      tables: ReportTables | None = None) -> Path:
    """Write every report of the run (layout above); returns the run's report folder.
    ``tables``: the run's report tables when the caller has read them already (a batch);
    otherwise each street's are read, written and let go before the next street's (a
    province's reports never hold more than one street's flags and evidence)."""
    facts = run_facts(settings, run_id)
    done = settings.reports_dir / f"run-{run_id}"
    # Written under a temporary name and moved into place when complete: a review killed while
    # writing its reports leaves no half folder under the run's name (the run then shows no
    # reports; `hedui report` writes them), and a rewrite keeps the earlier ones until then.
    out = done.with_name(done.name + ".partial")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    streets = (_streets_of(tables) if tables is not None
               else ((code, lambda code=code: report_tables(settings, run_id, code))
                     for code in _street_codes(settings, run_id)))
    district = []
    for street_code, read in streets:
        street = read()
        _write_street(settings, run_id, out, street_code, street, facts)
        district.append(street.flags[DISTRICT_COLUMNS])
        log.info("run %s reports: street %s, %d flags, %d evidence records", run_id,
                 street_code, len(street.flags), len(street.evidence))
        del street
    table = (pd.concat(district, ignore_index=True) if district
             else pd.DataFrame(columns=DISTRICT_COLUMNS))
    _write_district(out, table, facts, _fairness(settings, run_id))
    shutil.rmtree(done, ignore_errors=True)
    os.replace(out, done)
    with session_scope(settings.database_url) as session:
        session.get(Run, run_id).reports_dir = settings.home_relative(done)
    tasklog.reports_written(run_id, sum(1 for p in done.rglob("*") if p.is_file()), str(done))
    return done


def _street_codes(settings: Settings, run_id: int) -> list[str]:
    with session_scope(settings.database_url) as session:
        return sorted(session.scalars(select(Flag.street_code).where(Flag.run_id == run_id)
                                      .distinct()))


def _streets_of(tables: ReportTables) -> list[tuple[str, Callable[[], ReportTables]]]:
    """A run's tables read whole (a batch's few households), split by street."""
    cited = dict(iter(tables.evidence.groupby("street_code", sort=False)))
    none_cited = tables.evidence.iloc[:0]
    return [(str(code), lambda rows=rows, code=code: ReportTables(
                rows, cited.get(code, none_cited)))
            for code, rows in tables.flags.groupby("street_code")]


def _write_street(settings: Settings, run_id: int, out: Path, street_code: str,
                  tables: ReportTables, facts: RunFacts) -> None:
    """A street's workbook and page, its communities' (each cited record once, in its
    community's workbook) and the 核对报告 of its households that need one."""
    rows = tables.flags
    folder = out / street_folder(street_code)
    _write_jurisdiction(folder, rows, None, facts, "street",
                        jurisdictions.street_name(street_code))
    cited = dict(iter(tables.evidence.groupby("community_code", sort=False)))
    none_cited = tables.evidence.iloc[:0]
    community_dirs: dict[str, Path] = {}
    for community_code, part in rows.groupby("community_code"):
        community_dirs[community_code] = folder / community_folder(community_code)
        _write_jurisdiction(community_dirs[community_code], part,
                            cited.get(community_code, none_cited), facts, "community",
                            jurisdictions.community_name(community_code))
    write_household_reports(settings, run_id, rows, facts, community_dirs)


def _write_jurisdiction(folder: Path, rows: pd.DataFrame, evidence: pd.DataFrame | None,
                        facts: RunFacts, level: str, name: str) -> None:
    """A street's or community's workbook, CSV and summary; a community's cited records
    (``evidence``, None for a street's) in evidence.csv beside them, which the workbook names."""
    folder.mkdir(parents=True, exist_ok=True)
    context = SheetContext(title=f"{name} 核对结论（{facts.run['as_of']}）", facts=[
        ("辖区 / jurisdiction", name), ("核对基准日 / as of", facts.run["as_of"]),
        ("运行 / run", f"{facts.run['run_key']}（#{facts.run['id']}）"),
        ("政策版本 / policy version", facts.run["policy_version"]),
        ("数据来源 / sources", "；".join(
            f"{f['label']} {f['period']} #{f['feed_id']}" for f in facts.feeds))]
        + [EVIDENCE_ELSEWHERE if evidence is None else EVIDENCE_BESIDE])
    write_tables(rows, None, folder / "flags", context)
    if evidence is not None:
        write_evidence_csv(evidence, folder / EVIDENCE_CSV)
    render_summary(folder / "summary.html", f"{name} · 核对结论汇总", rows, facts, level)


def _fairness(settings: Settings, run_id: int) -> dict | None:
    """The run's fairness audit for the district page (also copied beside it), if it has one."""
    from verification.fairness import load_fairness
    from verification.fairness.audit import presented

    record = load_fairness(settings, run_id)
    return None if record is None else {"record": record, "shown": presented(record)}


def _write_district(out: Path, table: pd.DataFrame, facts: RunFacts,
                    fairness: dict | None = None) -> None:
    district = jurisdictions.district()[1]
    render_summary(out / "summary.html", f"{district} · 核对结论汇总", table, facts, "district",
                   fairness["shown"] if fairness else None)
    if fairness:
        (out / "fairness.json").write_text(json.dumps(fairness["record"], ensure_ascii=False,
                                                      indent=1), "utf-8")
    summary = table.pivot_table(index="street", columns="flag", values="household_code",
                                aggfunc="count", fill_value=0)
    summary.index = summary.index.map(safe_cell)
    summary.columns = summary.columns.map(safe_cell)
    summary.to_csv(out / "summary.csv", encoding="utf-8-sig")
    meta = {**facts.run, "counts": table["kind"].value_counts().to_dict(),
            "feeds": {f["label"]: f["feed_id"] for f in facts.feeds}}
    (out / "run.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")


def folders_for(run_dir: Path, who: Principal) -> list[Path]:
    """The report folders ``who`` may receive: their streets, or their communities; the whole
    run for district-wide roles. Officers are never given a folder outside their jurisdiction."""
    who.require("reports.read")
    if who.district_wide:
        return [run_dir]
    found = [run_dir / street_folder(s) for s in sorted(who.streets)]
    for community in sorted(who.communities):
        street = next(code for code in jurisdictions.streets()
                      if community in jurisdictions.communities(code))
        found.append(run_dir / street_folder(street) / community_folder(community))
    return [f for f in found if f.is_dir()]


__all__ = ["ReportTables", "folders_for", "report_tables", "write_run_reports"]
