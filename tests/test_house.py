"""The house keeps its shape: imports flow one way between folders, no library module lives for
the tests alone, and `hedui --help` loads none of the heavy libraries a command group needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "sqlalchemy", "matplotlib", "pyarrow", "airflow", "pandera", "rapidfuzz")


def test_import_rules_hold() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts/check_imports.py")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def _imported_by(args: list[str]) -> set[str]:
    """Top-level modules a `hedui` invocation imports (from ``-X importtime``)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "verification.cli.main",
                           *args], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_help_loads_no_heavy_library() -> None:
    loaded = _imported_by(["--help"])
    assert "typer" in loaded  # the measurement sees imports at all
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_group_loads_only_what_it_needs() -> None:
    # the partner kit's help must not pull in the matcher or the database layer
    loaded = _imported_by(["partner", "--help"])
    assert not loaded & {"sqlalchemy", "rapidfuzz", "matplotlib", "airflow"}, loaded


def test_checking_a_small_file_loads_no_database_layer(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "household_code,area_code,street_code,community_code,status,category,urban_rural,"
        "current_benefit,id_number,name,relation,exclusion,disability_grade,disability_type,"
        "authorisation_ref,authorisation_signed_on,authorisation_scope,authorisation_expires_on\n"
        "HN2026000001,210112,210112001,210112001001,applicant,none,urban,0,11010519491231002X,"
        "张伟,户主,,0,,SQ-1,2026-04-15,,\n", "utf-8")
    loaded = _imported_by(["roster", "check", str(roster)])
    assert "pandas" in loaded  # validation itself ran
    assert not loaded & {"sqlalchemy", "alembic", "matplotlib", "airflow", "rapidfuzz"}, loaded
