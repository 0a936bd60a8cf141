"""Reports for officers, per run and per jurisdiction (street, community): flag lists as XLSX and
CSV, HTML summaries with charts, and a 核对报告 per applicant household. See run_reports.py for the
folder layout and docs/flags-and-reports.md for what each file holds."""

from verification.reports.flag_reports import evidence_table, flag_table, safe_cell
from verification.reports.run_reports import folders_for, write_run_reports

__all__ = ["evidence_table", "flag_table", "folders_for", "safe_cell", "write_run_reports"]
