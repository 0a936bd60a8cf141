"""Reports for officers: one folder per street (街道), holding only that street's households."""

from verification.reports.flag_reports import flag_table, write_run_reports

__all__ = ["flag_table", "write_run_reports"]
