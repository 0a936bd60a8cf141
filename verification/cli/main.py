"""`hedui`: one command for staff and operators. Thin over the pipeline, like the DAGs.

Each command group lives in its own module of this package and is imported only when it runs:
`hedui --help` and a quick check of a small file must not pay for pandas, SQLAlchemy, matplotlib
or the matcher. The root group lists every command from the table below without importing it.

Errors are printed as messages a person can act on, with exit code 1 — never a traceback
(set HEDUI_DEBUG=1 to see one).
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import Any, NamedTuple

import typer
import typer.core
import typer.main


class _Entry(NamedTuple):
    module: str  # verification.cli.<module>
    attribute: str  # a Typer app, or a function registered as one command
    help: str  # shown by `hedui --help` without importing the module
    command: str | None = None  # the command of that Typer app, when it is a single command


_COMMANDS: dict[str, _Entry] = {
    "demo": _Entry("demo", "app", "合成辖区全流程演示 / the whole flow on a synthetic district.",
                   "demo"),
    "generate": _Entry("demo", "app", "生成合成辖区 / generate a synthetic district.", "generate"),
    "partner-server": _Entry("demo", "app", "本机协查服务 / the district's feeds on loopback.",
                             "partner-server"),
    "db": _Entry("db", "app", "应用数据库 / the application database."),
    "roster": _Entry("roster", "app", "在册名单 / the caseload (households and members)."),
    "pull": _Entry("review", "app", "拉取协查数据 / pull new feeds from partners now.", "pull"),
    "run": _Entry("review", "app", "运行核对 / run a review in-process.", "run"),
    "recheck": _Entry("recheck", "app",
                      "动态复核 / re-check only the households whose evidence changed.",
                      "recheck"),
    "report": _Entry("review", "app", "重写报告 / (re)write the reports of a run.", "report"),
    "status": _Entry("review", "app", "状态 / feeds received and runs.", "status"),
    "partner": _Entry("partner", "app", "协查部门工具包 / the partner's kit."),
    "policy": _Entry("policy", "app", "救助政策参数 / the assistance policy parameters."),
    "simulate": _Entry("simulate", "app",
                       "政策测算 / what a policy change costs and whom it reaches.", "simulate"),
    "flags": _Entry("flags", "app", "核对结论 / flags: list, show, acknowledge and resolve."),
    "reports": _Entry("reports", "app", "核对报告 / reports: folders, PDF, e-mail."),
    "batch": _Entry("batch", "app", "批量核对 / batch checks: submit a file, follow it."),
    "submit": _Entry("batch", "app",
                     "提交核对批次 / submit a batch file (same as `hedui batch submit`).",
                     "submit"),
    "keys": _Entry("security", "keys_app", "字段加密密钥 / field-encryption keys."),
    "audit": _Entry("security", "audit_app", "审计日志 / the audit trail."),
    "export": _Entry("security", "export_app", "导出 / exports (masked unless permitted)."),
    "purge": _Entry("security", "app", "清理过期数据 / delete data past retention.", "purge"),
    "drop": _Entry("drop", "app", "文件交换 / file-drop transport: take in dropped feeds."),
    "linkage": _Entry("linkage", "app", "纵向联动协查 / requests to other verification centres."),
}


def _load(entry: _Entry) -> Any:
    """The click command of an entry (a group, or one command of a module's app)."""
    module = importlib.import_module(f"verification.cli.{entry.module}")
    built = typer.main.get_command(getattr(module, entry.attribute))
    if entry.command is None:
        return built
    commands = getattr(built, "commands", None)
    return commands[entry.command] if commands is not None else built


class _LazyGroup(typer.core.TyperGroup):
    """The root group: commands imported on first use, listed from ``_COMMANDS``.

    The help page is written from the table, so `hedui --help` imports no command module."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = _COMMANDS.get(cmd_name)
        return None if entry is None else _load(entry)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text(self.help or "")
        with formatter.section("命令 / Commands"):
            formatter.write_dl([(name, entry.help) for name, entry in _COMMANDS.items()])
        formatter.write_paragraph()
        formatter.write_text("hedui COMMAND --help: 命令说明 / a command's options.")


app = _LazyGroup(name="hedui", no_args_is_help=True,
                 help="hedui — 居民家庭经济状况核对 / household economic-status verification.")


def main() -> None:
    from verification.airflow_env import configure
    from verification.config import load_settings
    from verification.security.logmask import install_log_masking

    try:  # a bad HEDUI_* setting is the user's to fix: say which, never a traceback
        configure(load_settings())
    except Exception as err:  # noqa: BLE001
        if os.environ.get("HEDUI_DEBUG"):
            raise
        typer.echo(f"配置错误，请检查 HEDUI_* 环境变量 / configuration error, check the HEDUI_* "
                   f"settings: {user_message(err)}", err=True)
        sys.exit(2)
    install_log_masking()
    if os.environ.get("HEDUI_DEBUG"):
        app()
        return
    try:
        code: Any = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        typer.echo("已中止 / aborted", err=True)
        sys.exit(1)
    except Exception as err:  # every failure becomes a message, not a traceback
        if callable(getattr(err, "show", None)) and hasattr(err, "exit_code"):
            err.show()  # a usage error of the command line (typer's own click exceptions)
            sys.exit(err.exit_code)
        typer.echo(user_message(err), err=True)
        sys.exit(1)


def user_message(err: Exception) -> str:
    """One line a user can act on, in Chinese with English beside; never SQL or a traceback
    (HEDUI_DEBUG=1 shows those)."""
    from sqlalchemy.exc import SQLAlchemyError

    text = str(err)
    if getattr(err, "errno", None) == errno.ENOSPC or any(
            s in text for s in ("database or disk is full", "No space left on device",
                                "could not extend file")):
        where = getattr(err, "filename", None)
        return (f"磁盘空间不足{f'（{where}）' if where else ''}，请清理 HEDUI_HOME 所在磁盘后重试；"
                f"已写入的部分会在重试时重做 / disk full{f' at {where}' if where else ''}: free "
                "space where HEDUI_HOME lives and run the command again (it redoes what was cut "
                "short)")
    if isinstance(err, SQLAlchemyError):
        if "Connection refused" in text:
            return ("数据库拒绝连接，请检查 PostgreSQL 是否在运行及 HEDUI_DATABASE_URL 的主机和"
                    "端口 / the database refused the connection: check that PostgreSQL is "
                    "running and the host and port in HEDUI_DATABASE_URL")
        if any(s in text for s in ("unable to open database", "could not connect",
                                   "connection to server")):
            return ("无法打开数据库，请检查 HEDUI_HOME 或 HEDUI_DATABASE_URL（文件夹须已存在） / "
                    "cannot open the database: check HEDUI_HOME or HEDUI_DATABASE_URL (its folder "
                    "must exist)")
        if any(s in text for s in ("no such table", "UndefinedTable", "does not exist")):
            return ("数据库尚未初始化或版本过旧，请先运行 `hedui db upgrade` / the database is not "
                    "set up (or is behind): run `hedui db upgrade` first")
        return (f"数据库错误（{type(err).__name__}），设置 HEDUI_DEBUG=1 可查看详情 / database "
                f"error ({type(err).__name__}); HEDUI_DEBUG=1 shows the details")
    if isinstance(err, LookupError):
        if isinstance(err, KeyError) and err.args:  # str() of a KeyError quotes its message
            text = str(err.args[0])
        return f"未找到 / not found: {text}"
    return f"出错 / error: {text.splitlines()[0][:300] if text else type(err).__name__}"


if __name__ == "__main__":
    main()
