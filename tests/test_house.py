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
