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
    # the line, the household code and the field, in Chinese with English beside (probe 2)
    assert "roster.csv:3: 第 3 行 家庭 HN" in out.stdout and "「区县代码」" in out.stdout
    assert "line 3: area_code:" in out.stdout
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


def test_disk_full_a_refused_database_and_a_missing_folder_are_named(tmp_path):
    """Outside probe: each of these read as a bare "database error (OperationalError)" or
    pointed at `db upgrade`."""
    import errno
    import os

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from verification.cli.main import user_message

    full = OSError(errno.ENOSPC, "No space left on device", "/srv/hedui/reports/run-2")
    said = user_message(full)
    assert said.startswith("磁盘空间不足（/srv/hedui/reports/run-2）") and "disk full" in said
    sqlite_full = OperationalError("INSERT …", {}, Exception("database or disk is full"))
    assert user_message(sqlite_full).startswith("磁盘空间不足")
    refused = OperationalError("connect", {}, Exception(
        'connection to server at "127.0.0.1", port 1 failed: Connection refused'))
    assert user_message(refused).startswith("数据库拒绝连接")
    missing = tmp_path / "no" / "such" / "folder" / "h.db"
    try:
        with create_engine(f"sqlite:///{missing}").connect() as connection:
            connection.execute(text("select 1"))
    except OperationalError as err:
        assert "folder must exist" in user_message(err), user_message(err)
    out = subprocess.run([*HEDUI, "audit", "verify", "--help"], capture_output=True, text=True,
                         env={**os.environ, "HEDUI_HOME": str(tmp_path)}, cwd=PROJECT_ROOT,
                         timeout=300, check=False)
    assert out.returncode == 0 and "hedui audit verify" in out.stdout  # as the documents say


def test_a_review_that_stops_on_an_error_is_failed_not_running_for_ever(tmp_path,
                                                                          monkeypatch):
    """Outside probe: after a disk full the run stayed "running/matching" until its key was run
    again (and a running run holds its feeds from the purge)."""
    import errno

    from typer.testing import CliRunner

    from verification import pipeline
    from verification.cli.review import app
    from verification.config import load_settings
    from verification.storage import session_scope
    from verification.storage.db import upgrade as upgrade_database
    from verification.storage.models import AuditEvent, Run

    monkeypatch.setenv("HEDUI_HOME", str(tmp_path))
    settings = load_settings()
    upgrade_database(settings.database_url)

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "prepare_evidence", full)
    result = CliRunner().invoke(app, ["run", "--as-of", "2026-11-01", "--run-key", "full"])
    assert result.exit_code != 0 and isinstance(result.exception, OSError)
    with session_scope(settings.database_url) as session:
        run = session.query(Run).one()
        assert run.status == "failed" and run.finished_at is not None
        assert session.query(AuditEvent).filter(AuditEvent.action == "run.failed").count() == 1


def test_the_same_scan_or_review_twice_at_once_is_refused_in_one_line(tmp_path):
    """Outside probe: two drop scans at once ended in a raw IntegrityError, two runs of one key
    in a Parquet error; the second now says another one is in progress."""
    import os

    from verification.locks import Busy, exclusive

    with exclusive(tmp_path, "drop-scan", "文件交换扫描 drop scan"):
        try:
            with exclusive(tmp_path, "drop-scan", "文件交换扫描 drop scan"):
                raise AssertionError("taken twice")
        except Busy as busy:
            assert str(busy).startswith("另一个文件交换扫描 drop scan正在进行")
        (tmp_path / "drop" / "hrss" / "inbox").mkdir(parents=True)
        assert _run("db", "upgrade", env_home=tmp_path).returncode == 0
        out = _run("drop", "scan", str(tmp_path / "drop"), env_home=tmp_path)
        assert out.returncode == 1 and "another 文件交换扫描 drop scan is in progress" in out.stderr
        assert "Traceback" not in out.stderr
    with exclusive(tmp_path, "drop-scan", "drop scan"):  # released when its holder is done
        pass
    assert os.path.exists(tmp_path / "locks" / "drop-scan.lock")
