"""The hedui command: helpful --help, errors as messages (exit 1), never a traceback."""

import subprocess
import sys
from pathlib import Path

from verification.config import PROJECT_ROOT

HEDUI = [str(Path(sys.executable).with_name("hedui"))]


def _run(*args, env_home):
    import os

    env = {**os.environ, "HEDUI_HOME": str(env_home)}
    return subprocess.run([*HEDUI, *args], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=300, check=False)


def test_help_lists_the_commands(tmp_path):
    out = _run("--help", env_home=tmp_path)
    assert out.returncode == 0
    for command in ("demo", "generate", "run", "recheck", "report", "status", "db", "roster"):
        assert command in out.stdout


def test_bad_batch_file_gives_line_level_errors_without_traceback(tmp_path):
    _run("generate", "--households", "5", "--out", str(tmp_path / "d"), env_home=tmp_path)
    roster = tmp_path / "d" / "roster.csv"
    lines = roster.read_text("utf-8").splitlines()
    lines[2] = lines[2].replace(",210112,", ",2101,", 1)
    roster.write_text("\n".join(lines) + "\n", "utf-8")
    out = _run("roster", "check", str(roster), env_home=tmp_path)
    assert out.returncode == 1
    assert "roster.csv:3: area_code" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_unknown_run_is_a_message(tmp_path):
    assert _run("db", "upgrade", env_home=tmp_path).returncode == 0
    out = _run("status", "42", env_home=tmp_path)
    assert out.returncode == 1 and "no run 42" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_runs_and_batches_and_bad_settings_are_one_line(tmp_path):
    import os

    assert _run("db", "upgrade", env_home=tmp_path).returncode == 0
    out = _run("report", "99", "--user", "admin", env_home=tmp_path)
    assert out.returncode == 1 and "没有运行 99 / no run 99" in out.stderr
    out = _run("batch", "status", "NOPE", env_home=tmp_path)
    assert out.returncode == 1 and "no batch 'NOPE'" in out.stderr  # the closing quote kept
    bad = {**os.environ, "HEDUI_HOME": str(tmp_path), "HEDUI_TOKEN_KEY": "zz"}
    out = subprocess.run([*HEDUI, "--help"], capture_output=True, text=True, env=bad,
                         cwd=PROJECT_ROOT, timeout=300, check=False)
    assert out.returncode == 2 and "HEDUI_TOKEN_KEY" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_header_only_caseload_is_refused_in_one_line(tmp_path):
    import json

    fields = json.loads((PROJECT_ROOT / "schemas" / "batch.json").read_text("utf-8"))["fields"]
    header = tmp_path / "header.csv"
    header.write_text(",".join(f["name"] for f in fields) + "\n", "utf-8")
    assert _run("db", "upgrade", env_home=tmp_path).returncode == 0
    out = _run("roster", "load", str(header), env_home=tmp_path)
    assert out.returncode == 1 and "没有数据行" in out.stderr and "no rows" in out.stderr
    assert "SQL" not in out.stderr and "Traceback" not in out.stderr


def test_a_fresh_home_says_in_one_line_which_command_to_run(tmp_path):
    out = _run("batch", "status", "B0123", env_home=tmp_path / "fresh")
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr and "SELECT" not in out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "hedui db upgrade" in lines[0] and "数据库尚未初始化" in lines[0]


def test_recheck_without_a_review_or_with_an_unknown_kind_is_a_message(tmp_path):
    assert _run("db", "upgrade", env_home=tmp_path).returncode == 0
    out = _run("recheck", env_home=tmp_path)
    assert out.returncode == 1 and "尚无已完成的定期核对" in out.stderr
    assert "hedui run" in out.stderr
    out = _run("recheck", "--kind", "horoscopes", env_home=tmp_path)
    assert out.returncode == 2 and "unknown feed kind" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr
