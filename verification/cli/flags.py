"""`hedui flags`: officers list, open, acknowledge and resolve flags from the command line.

The acting user comes from ``--user`` or ``HEDUI_USER`` and is mapped to a role and jurisdiction
by verification/security/access.yaml: an officer sees and acts on their own streets or communities
only.
Identities are shown masked. Refusals and mistakes print a message and exit with status 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from verification import codes
from verification.config import load_settings
from verification.flags import actions as flag_actions
from verification.security.access import AccessDenied, Principal, principal

app = typer.Typer(help="核对结论 / flags: list, show, acknowledge and resolve.",
                  no_args_is_help=True, add_completion=False)

User = Annotated[str, typer.Option("--user", envvar="HEDUI_USER",
                                   help="操作人（登录名）/ acting user (or HEDUI_USER)")]
STATUSES = ("unresolved", "open", "acknowledged", "resolved", "all")


@contextmanager
def _acting(user: str) -> Iterator[Principal]:
    """The user's principal; refusals and bad requests become a message and exit status 1."""
    try:
        yield principal(user)
    except (AccessDenied, flag_actions.FlagActionError) as err:
        typer.echo(f"错误 / error: {err}", err=True)
        raise typer.Exit(1) from None


@app.command("list")
def list_command(
    user: User,
    status: Annotated[str, typer.Option(help=f"状态 / one of {', '.join(STATUSES)}")] =
        "unresolved",
    kind: Annotated[str | None, typer.Option(help="类型 / flag kind, e.g. REMOVE")] = None,
    street: Annotated[str | None, typer.Option(help="街道代码 / street code")] = None,
    run: Annotated[int | None, typer.Option(help="运行编号 / run id (default latest)")] = None,
    with_keep: Annotated[bool, typer.Option(
        "--with-keep", help="含“继续保障”（无须办理）/ include KEEP (needs no action)")] = False,
) -> None:
    """Flags in your jurisdiction, soonest due first (KEEP, which needs no action, only when
    asked for)."""
    if status not in STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(STATUSES)}")
    if kind and kind not in codes.flags():
        raise typer.BadParameter(f"kind must be one of {', '.join(codes.flags())}")
    with _acting(user) as who:
        rows = flag_actions.list_flags(load_settings(), who, run_id=run,
                                       status=None if status == "all" else status,
                                       kind=kind, street=street)
    if not (with_keep or kind):
        quiet = set(codes.no_action_kinds())
        rows = [row for row in rows if row["kind"] not in quiet]
    for row in rows:
        typer.echo(_line(row))
    typer.echo(f"共 {len(rows)} 条 / {len(rows)} flags")


def _line(row: dict[str, Any]) -> str:
    reasons = "；".join(r["zh"] for r in row["reasons"])
    return (f"#{row['id']:<6} {row['due_date'] or '—':<10} {row['kind_zh']}({row['kind']}) "
            f"[{row['status']}] {row['street']}/{row['community']} {row['household_code']} "
            f"{row['head_name']} {row['head_id']} — {reasons}")


@app.command("show")
def show_command(flag_id: Annotated[int, typer.Argument(help="核对结论编号 / flag id")],
                 user: User) -> None:
    """One flag with its reasons and the evidence behind them."""
    with _acting(user) as who:
        flag = flag_actions.get_flag(load_settings(), who, flag_id)
    typer.echo(_line(flag))
    typer.echo(f"处理建议 / action: {codes.flags()[flag['kind']]['action_zh']}；"
               f"家庭状态 / status: {codes.label('household_status', flag['household_status'])}")
    for reason in flag["reasons"]:
        typer.echo(f"  原因 / reason {reason['code']}: {reason['zh']} / {reason['en']}"
                   f"{_figures(reason)}")
        if reason.get("reference"):
            typer.echo(f"      依据 / reference: {reason['reference']}")
    for item in flag["evidence"]:
        period = item["period_start"] if item["period_start"] == item["period_end"] else (
            f"{item['period_start']}~{item['period_end']}")
        typer.echo(f"  证据 / evidence {item['source_zh']}·{item['item_zh']} {item['record_ref']}"
                   f" {period} {item['amount']:.2f} [{item['match_grade']}]")
    if flag["status"] == "resolved":
        typer.echo(f"处理结果 / resolution: {flag['resolution']} by {flag['resolved_by']}："
                   f"{flag['resolution_note']}")


def _figures(reason: dict[str, Any]) -> str:
    value, limit = reason.get("value"), reason.get("limit")
    if value is None or limit is None:
        return ""
    return f"（{value:g} / {limit:g}）"


@app.command("ack")
def acknowledge_command(flag_id: Annotated[int, typer.Argument(help="编号 / flag id")],
                        user: User) -> None:
    """Acknowledge a flag: you have seen it and are working on it."""
    _act(user, lambda who: flag_actions.acknowledge_flag(load_settings(), who, flag_id),
         f"#{flag_id} 已签收 / acknowledged")


@app.command("resolve")
def resolve_command(
    flag_id: Annotated[int, typer.Argument(help="编号 / flag id")],
    user: User,
    resolution: Annotated[str, typer.Option("--as", help="confirmed | overridden | home_visit")],
    note: Annotated[str, typer.Option(help="说明（不予采纳须写明理由）/ note (required to "
                                           "override)")] = "",
) -> None:
    """Resolve a flag: confirmed, overridden (with a written reason) or referred for a home
    visit (入户核查)."""
    if resolution not in flag_actions.RESOLUTIONS:
        raise typer.BadParameter(f"--as must be one of {', '.join(flag_actions.RESOLUTIONS)}")
    _act(user, lambda who: flag_actions.resolve_flag(load_settings(), who, flag_id, resolution,
                                                     note),
         f"#{flag_id} 已办结 / resolved: {flag_actions.RESOLUTIONS[resolution]['zh']}")


def _act(user: str, action: Callable[[Principal], None], done: str) -> None:
    with _acting(user) as who:
        action(who)
    typer.echo(done)
