"""Optional e-mail delivery: each street's report files to the addresses configured for that
street (verification/reports/delivery.yaml, or HEDUI_REPORT_DELIVERY), through Airflow's SMTP
connection. A street's mail carries only that street's files, so routing by jurisdiction holds
for e-mail as it does for folders; the per-household 核对报告 stay in the folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from verification import jurisdictions
from verification.config import Settings
from verification.reports.run_reports import street_folder
from verification.security import audit
from verification.storage import session_scope
from verification.storage.models import Run

DELIVERY_FILE = Path(__file__).with_name("delivery.yaml")
ATTACHED = ("flags.xlsx", "flags.csv", "summary.html")


@dataclass(frozen=True)
class DeliveryConfig:
    smtp_conn_id: str
    sender: str
    streets: dict[str, list[str]] = field(default_factory=dict)


def load_delivery(path: Path | None = None) -> DeliveryConfig:
    """Read and check the delivery file; a street code it does not know is an error."""
    path = path or Path(os.environ.get("HEDUI_REPORT_DELIVERY") or DELIVERY_FILE)
    doc = yaml.safe_load(path.read_text("utf-8")) or {}
    for key in ("smtp_conn_id", "sender"):
        if not doc.get(key):
            raise ValueError(f"{path}: '{key}' is required")
    streets = {str(code): list(addresses) for code, addresses in (doc.get("streets") or {}
                                                                  ).items()}
    unknown = sorted(set(streets) - set(jurisdictions.streets()))
    if unknown:
        raise ValueError(f"{path}: unknown street codes {', '.join(unknown)} "
                         "(see verification/jurisdictions.yaml)")
    bad = [a for addresses in streets.values() for a in addresses if "@" not in str(a)]
    if bad:
        raise ValueError(f"{path}: not e-mail addresses: {', '.join(map(str, bad))}")
    return DeliveryConfig(doc["smtp_conn_id"], doc["sender"], streets)


def _smtp_hook(conn_id: str) -> Any:  # noqa: ANN401 (Airflow's hook, imported late)
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    return SmtpHook(smtp_conn_id=conn_id)


def send_run_reports(settings: Settings, run_id: int, config: DeliveryConfig | None = None,
                     hook: Callable[[str], Any] = _smtp_hook) -> list[dict[str, Any]]:
    """Send each configured street its files of run ``run_id``; returns what was sent."""
    config = config or load_delivery()
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        if run is None or not run.reports_dir:
            raise LookupError(f"run {run_id} has no reports yet; write them first")
        run_dir, as_of = settings.at_home(run.reports_dir), run.as_of.isoformat()
    sent = []
    with hook(config.smtp_conn_id) as smtp:
        for street, recipients in sorted(config.streets.items()):
            folder = run_dir / street_folder(street)
            files = [str(folder / name) for name in ATTACHED if (folder / name).exists()]
            if not files or not recipients:
                continue
            name = jurisdictions.street_name(street)
            smtp.send_email_smtp(
                to=recipients, from_email=config.sender, files=files,
                subject=f"{name} 核对结论（核对基准日 {as_of}，运行 #{run_id}）",
                html_content=_body(name, as_of, run_id))
            sent.append({"street": street, "recipients": len(recipients),
                         "files": [Path(f).name for f in files]})
    with session_scope(settings.database_url) as session:
        audit.record(session, "pipeline", "reports.sent", f"run:{run_id}", {"streets": sent})
    return sent


def _body(street: str, as_of: str, run_id: int) -> str:
    return (f"<p>{street}：附件为核对基准日 {as_of} 的核对结论（运行 #{run_id}），"
            "含核对结论清单（Excel、CSV）和汇总页（HTML，可打印）。身份证号和姓名已脱敏。</p>"
            "<p>核对结论是提示信号，须经工作人员核实后依程序办理。请在 hedui 中签收并办结。</p>"
            f"<p>Attached: the flags of {street} as of {as_of} (run #{run_id}). Flags are "
            "signals for a caseworker, not decisions.</p>")
