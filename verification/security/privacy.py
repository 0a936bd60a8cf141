"""Masking of personal data in logs and output, and the one audited way to export it unmasked.

* ``install_log_masking()`` — every log record made in this process (any logger, any handler;
  inside an Airflow task they reach Airflow's structlog output masked) has each 18- or 15-digit
  run that could be a resident ID number masked as ``210112********123X`` before any handler
  sees it; exception texts too. The CLI and the DAG tasks call it once at start; calling it
  again changes nothing.
* ``mask_text`` — the same masking for any text (CLI output, messages).
* ``export_flags`` — a run's flag table for the caller's jurisdiction, masked by default; the
  unmasked form needs the ``export.unmasked`` permission and is recorded in the audit trail with
  the persons concerned (by token).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import select

from verification.config import Settings
from verification.security import audit
from verification.security.access import Principal
from verification.security.fieldcrypt import load_field_cipher
from verification.security.logmask import (  # noqa: F401 (re-exported)
    PiiMaskingFilter,
    install_log_masking,
    mask_record,
    mask_text,
    uninstall_log_masking,
)
from verification.storage import session_scope
from verification.storage.models import Household, Member


# ---- exports -----------------------------------------------------------------------------------
def export_flags(settings: Settings, who: Principal, run_id: int, *,
                 unmasked: bool = False) -> pd.DataFrame:
    """The run's flag table restricted to ``who``'s jurisdiction; heads' names and ID numbers
    masked unless ``unmasked`` (needs ``export.unmasked``; audited with the persons by token)."""
    from verification.reports.flag_reports import flag_table

    who.require("reports.read")
    if unmasked:
        who.require("export.unmasked")
    table = flag_table(settings, run_id)
    if not who.district_wide:
        mine = [who.covers(s, c) for s, c in zip(table["street_code"], table["community_code"],
                                                  strict=True)]
        table = table[mine].reset_index(drop=True)
    with session_scope(settings.database_url) as session:
        if unmasked:
            table, tokens = _unmask_heads(session, table)
            audit.record_access(session, who.username, "hedui", f"export:run-{run_id}", tokens,
                                {"unmasked": True, "rows": len(table)})
        else:
            audit.record(session, who.username, "report.exported", f"run:{run_id}",
                         {"unmasked": False, "rows": len(table)})
    return table


def _unmask_heads(session, table: pd.DataFrame) -> tuple[pd.DataFrame, list[int]]:  # noqa: ANN001
    cipher = load_field_cipher()
    heads = session.execute(
        select(Household.household_code, Member.person_token, Member.id_number_enc,
               Member.name_enc).join(Member, Member.household_id == Household.id)
        .where(Member.relation == "户主",
               Household.household_code.in_(table["household_code"].tolist()))).all()
    names = {code: cipher.decrypt(name, "members.name") for code, _, _, name in heads}
    ids = {code: cipher.decrypt(idn, "members.id_number") for code, _, idn, _ in heads}
    table = table.assign(head_name=table["household_code"].map(names).fillna(""),
                         head_id=table["household_code"].map(ids).fillna(""))
    return table, [int(tok) for _, tok, _, _ in heads]


def write_export(table: pd.DataFrame, path: Path) -> Path:
    """CSV for Excel (UTF-8 with BOM), Chinese headers, formula-like cells neutralised."""
    from verification.reports.flag_reports import HEADERS, safe_cell

    out = table[list(HEADERS)].rename(columns=HEADERS).map(safe_cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, encoding="utf-8-sig")
    return path
