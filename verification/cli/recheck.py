"""`hedui recheck`: the narrow re-check after a partner delivered (动态、实时核查).

    hedui recheck --kind wages        the households whose wage records changed
    hedui recheck                     every kind with a feed newer than the current outcome's
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from verification.config import load_settings

app = typer.Typer()


@app.command()
def recheck(
    kind: Annotated[str | None, typer.Option(
        help="数据类别，如 wages / feed kind (default: every kind with a newer feed)")] = None,
    as_of: Annotated[str | None, typer.Option(
        help="基准日 / as-of date (default today)")] = None,
    run_key: Annotated[str | None, typer.Option(
        help="运行标识 / run key (default recheck-<kind><feed id>)")] = None,
    reports: Annotated[bool, typer.Option(
        help="写出变化结论的报告 / write the reports of the flags written")] = True,
) -> None:
    """Re-assess only the households whose evidence changed since the current outcome; write a
    flag only where the outcome changed (the monthly full review is unchanged)."""
    from schemas import feed_kinds
    from verification.recheck import recheck as run_recheck
    from verification.reports import write_run_reports

    if kind is not None and kind not in feed_kinds():
        raise typer.BadParameter(f"未知数据类别 / unknown feed kind {kind!r}; "
                                 f"known: {', '.join(feed_kinds())}")
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise typer.BadParameter(f"日期格式应为 YYYY-MM-DD / not a date: {as_of!r}") from None
    settings = load_settings()
    outcome = run_recheck(settings, kind, day, run_key)
    if outcome.run_id is None:
        typer.echo("当前结论已基于最新数据，无需复核 / the current outcome already rests on the "
                   "newest feeds: nothing to re-check")
        return
    for name, diff in outcome.diffs.items():
        typer.echo(f"{name}: 变化人员 / persons changed {diff['persons_changed']} (新增 added "
                   f"{diff['rows_added']}, 删除 removed {diff['rows_removed']}, 变更 changed "
                   f"{diff['rows_changed']}; 身份未明 unresolved +{diff['unresolved_added']}"
                   f"/-{diff['unresolved_removed']})")
    typer.echo(f"run {outcome.run_id}: 复核家庭 / households re-checked "
               f"{outcome.households_rechecked}; 结论变化 / flags written {outcome.flags_written}")
    if reports:
        typer.echo(f"reports → {write_run_reports(settings, outcome.run_id)}")
