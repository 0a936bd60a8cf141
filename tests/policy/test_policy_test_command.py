"""`hedui policy test`: a bureau checks its parameters against readable cases; a case that does
not hold is named with what differs, and the command exits 1."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from verification.cli.policy import app

CASES = Path(__file__).with_name("cases")


def test_the_shipped_cases_hold_through_the_command() -> None:
    done = CliRunner().invoke(app, ["test", str(CASES / "benefit.yaml")])
    assert done.exit_code == 0, done.output
    assert "个案例通过 / cases hold" in done.output


def test_a_wrong_expectation_is_named_and_fails(tmp_path: Path) -> None:
    case = yaml.safe_load((CASES / "benefit.yaml").read_text("utf-8"))[0]
    case["name"] = "deliberately wrong benefit"
    case["expected"] = {**case["expected"], "benefit": 123456.0}
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump([case], allow_unicode=True), "utf-8")
    done = CliRunner().invoke(app, ["test", str(wrong)])
    assert done.exit_code == 1
    assert "deliberately wrong benefit" in done.output and "benefit:" in done.output
    assert "0/1" in done.output
