"""HTML pages of the reports: the run summaries (district, street, community) with charts, drawn
from Jinja2 templates in verification/reports/templates/ (autoescaped; only our own SVG is marked
safe)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import func, select

from verification import codes, jurisdictions
from verification.config import Settings
from verification.localtime import to_local
from verification.reports import charts
from verification.storage import session_scope
from verification.storage.models import Flag, Partner, Run

TEMPLATES = Path(__file__).resolve().with_name("templates")


@cache
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        ["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


@cache
def css() -> Markup:
    """The reports' stylesheet, inserted as it is (escaped, its quoted font names would not
    parse as CSS inside <style>)."""
    return Markup((TEMPLATES / "report_base.css").read_text("utf-8"))


@dataclass(frozen=True)
class RunFacts:
    """What every page says about the run: its identity, data versions and history."""

    run: dict[str, Any]
    feeds: list[dict[str, Any]]
    history: pd.DataFrame  # _HISTORY
    requester: str


_HISTORY = ["run_id", "as_of", "run_key", "kind", "street_code", "community_code", "n",
            "run_label"]


def run_facts(settings: Settings, run_id: int, history: bool = True) -> RunFacts:
    """``history`` False: without the flag counts of earlier runs (a 核对报告 shows none, and at
    a province's size they are a group-by over millions of flags)."""
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        partners = dict(session.execute(select(Partner.code, Partner.name_zh)).all())
        facts = {"id": run.id, "run_key": run.run_key, "as_of": run.as_of.isoformat(),
                 "policy_version": run.policy_version, "kind": run.kind, "region": run.region}
        feeds = [_feed_row(kind, version, partners)
                 for kind, version in sorted(run.feed_versions.items())]
        counts = _history(session, run) if history else pd.DataFrame(columns=_HISTORY)
        requester = _requester(session, run)
    return RunFacts(facts, feeds, counts, requester)


def _feed_row(kind: str, version: dict, partners: dict[str, str]) -> dict[str, Any]:
    missing = not version.get("feed_id")
    return {"label": codes.label("feed_kinds", kind),
            "partner": partners.get(version.get("partner", ""), version.get("partner", "—")),
            "period": version.get("period", "—"), "feed_id": version.get("feed_id") or "—",
            "missing": missing, "state": "未提供 / missing" if missing else "已使用 / used"}


def _history(session, run: Run) -> pd.DataFrame:  # noqa: ANN001
    """Flag counts per kind and jurisdiction for this run and the finished runs before it."""
    rows = session.execute(
        select(Run.id, Run.as_of, Run.run_key, Flag.kind, Flag.street_code, Flag.community_code,
               func.count(Flag.id))
        .join(Flag, Flag.run_id == Run.id)
        .where(Run.kind == run.kind, (Run.id == run.id) | ((Run.status == "done")
                                                           & (Run.as_of <= run.as_of)))
        .group_by(Run.id, Run.as_of, Run.run_key, Flag.kind, Flag.street_code,
                  Flag.community_code)).all()
    frame = pd.DataFrame(rows, columns=_HISTORY[:-1])
    frame = frame.sort_values(["as_of", "run_id"], kind="stable")
    frame["run_label"] = frame["as_of"].astype(str) + "\n#" + frame["run_id"].astype(str)
    return frame


def _requester(session, run: Run) -> str:  # noqa: ANN001
    from verification.storage.models import Batch

    if run.batch_id:
        batch = session.get(Batch, run.batch_id)
        if batch is not None and batch.requester:
            return f"{batch.requester}（批次 {batch.batch_code}）"
    return f"核对中心 · 定期核对（{run.run_key}）/ verification centre, periodic review"


def render_summary(path: Path, title: str, table: pd.DataFrame, facts: RunFacts,
                   level: str, fairness: dict[str, Any] | None = None) -> None:
    """One summary page: ``level`` is district, street or community (what it breaks down by
    and whether it lists households); ``fairness`` the run's audit as presented
    (verification/fairness), shown on the district page."""
    area = {"district": "street", "street": "community", "community": None}[level]
    scope = _scope(table, facts.history, level)
    page = environment().get_template("report_summary.html.j2").render(
        title=title, css=css(), district=jurisdictions.district()[1], run=facts.run,
        generated=to_local(dt.datetime.now(dt.UTC)), cards=_cards(table),
        charts=_charts(table, scope, area), kinds=_kinds(),
        areas=_area_rows(table, area) if area else None,
        actions=None if level == "district" else _actions(table), feeds=facts.feeds,
        fairness=fairness)
    path.write_text(page, "utf-8")


def _scope(table: pd.DataFrame, history: pd.DataFrame, level: str) -> pd.DataFrame:
    """The history rows of this page's jurisdiction."""
    if level == "district" or table.empty:
        return history
    column = "street_code" if level == "street" else "community_code"
    return history[history[column].isin(table[column].unique())]


def _kinds() -> list[dict[str, str]]:
    return [{"kind": k, "label": codes.label("flags", k)} for k in charts.KIND_ORDER]


def _cards(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A card per kind: count, action, overdue, and a bar of the count against the largest
    kind's (the cards are the flags-by-kind chart: a drawn one said the same again)."""
    counts = table["kind"].value_counts()
    overdue = table.loc[table["overdue"].astype(bool), "kind"].value_counts()
    most = max(int(counts.max()) if len(counts) else 0, 1)
    return [{"label": codes.label("flags", kind), "n": int(counts.get(kind, 0)),
             "action": codes.flags()[kind]["action_zh"], "colour": charts.KIND_COLOURS[kind],
             "overdue": int(overdue.get(kind, 0)),
             "share": round(100 * int(counts.get(kind, 0)) / most, 1)}
            for kind in charts.KIND_ORDER]


def _charts(table: pd.DataFrame, history: pd.DataFrame, area: str | None) -> list[dict]:
    """Ageing of open flags, flags by area (district and street pages), the trend."""
    waiting = table[table["days_open"].notna()]
    drawn = [{"svg": charts.ageing(waiting["days_open"], waiting["overdue"]), "css": ""}]
    if area:
        named = table.assign(name=table[f"{area}_code"].map(
            jurisdictions.street_name if area == "street" else jurisdictions.community_name))
        title = "各街道核对结论 / flags by street" if area == "street" else (
            "各社区核对结论 / flags by community")
        drawn.append({"svg": charts.flags_by_area(named, "name", title), "css": "wide"})
    drawn.append({"svg": charts.trend(history), "css": "wide"})
    return drawn


def _area_rows(table: pd.DataFrame, area: str) -> dict[str, Any]:
    name = jurisdictions.street_name if area == "street" else jurisdictions.community_name
    rows = []
    for code, part in table.groupby(f"{area}_code"):
        counts = part["kind"].value_counts()
        rows.append({"name": f"{name(code)}（{code}）",
                     "counts": [int(counts.get(k, 0)) for k in charts.KIND_ORDER],
                     "total": len(part), "waiting": int(part["days_open"].notna().sum()),
                     "overdue": int(part["overdue"].sum())})
    header = "街道" if area == "street" else "社区"
    return {"title": f"按{header}统计 / by {area}", "header": header, "rows": rows}


def _actions(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Flags still waiting for an officer, soonest due first (KEEP needs no action)."""
    waiting = table[table["days_open"].notna()].sort_values(["due_date", "household_code"])
    return [{**row, "colour": charts.KIND_COLOURS[row["kind"]],
             "evidence_short": _shortened(row["evidence"])}
            for row in waiting.to_dict("records")]


def _shortened(evidence: str, keep: int = 3) -> str:
    """The first few evidence records; the community's evidence.csv lists them all."""
    items = [e for e in str(evidence).split("；") if e]
    more = " 等（见 evidence.csv / more in evidence.csv）" if len(items) > keep else ""
    return "；".join(items[:keep]) + more
