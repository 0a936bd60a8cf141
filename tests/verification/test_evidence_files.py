"""A run's flag evidence lives in one Parquet file per run: written shard by shard in flag id
order, read one flag at a time by row group, recorded on the run with its digest (which
`hedui audit verify` checks), and read from the old table for runs finished before it."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from verification.storage import evidence_files, session_scope
from verification.storage.evidence_files import (
    EvidenceFileError,
    RunEvidenceWriter,
    read_evidence,
    run_evidence,
    verify,
)
from verification.storage.models import Flag, FlagEvidence, Household, Run


def _shard(first_flag: int, flags: int, per_flag: int = 3) -> pd.DataFrame:
    rows = [{"flag_id": first_flag + f, "source_kind": "wages", "feed_id": 7,
             "record_ref": f"wages:{first_flag + f}:{r}", "item": "wage_income",
             "amount": 100.0 * r, "period_start": dt.date(2026, 7, 1),
             "period_end": dt.date(2026, 9, 30), "match_grade": "certain"}
            for f in range(flags) for r in range(per_flag)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3)  # arrival order is not file order


def test_written_in_flag_order_and_read_one_flag_from_its_row_group(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence_files, "ROW_GROUP", 30)
    writer = RunEvidenceWriter(tmp_path, 5)
    writer.write(_shard(1, 40))
    writer.write(_shard(41, 40))
    written = writer.finish()
    assert written.rows == 240 and written.path == tmp_path / "evidence" / "run-00000005.parquet"
    assert not verify(written.path, written.digest)
    file = pq.ParquetFile(written.path)
    assert file.num_row_groups == 8
    ids = file.read(columns=["flag_id"])["flag_id"].to_pylist()
    assert ids == sorted(ids)

    one = read_evidence(written.path, [57])
    assert sorted(one["record_ref"]) == ["wages:57:0", "wages:57:1", "wages:57:2"]
    assert one["period_end"].tolist() == [dt.date(2026, 9, 30)] * 3
    groups = [g for g in range(file.num_row_groups) if evidence_files._may_hold(file, g, [57])]
    assert groups == [5]  # flag 57: rows 48..50 of the second shard, its second group, only
    assert read_evidence(written.path, []).empty
    assert read_evidence(written.path, [999]).empty
    assert len(read_evidence(written.path)) == 240


def test_shards_out_of_flag_order_are_refused_and_abort_keeps_the_earlier_file(tmp_path):
    first = RunEvidenceWriter(tmp_path, 1)
    first.write(_shard(1, 2))
    kept = first.finish()
    again = RunEvidenceWriter(tmp_path, 1)
    again.write(_shard(10, 2))
    with pytest.raises(ValueError, match="ascending flag id"):
        again.write(_shard(5, 2))
    again.abort()
    assert not verify(kept.path, kept.digest)  # the run's recorded file is untouched
    assert not list((tmp_path / "evidence").glob("*.partial"))


def test_a_changed_or_missing_file_is_named(tmp_path):
    writer = RunEvidenceWriter(tmp_path, 2)
    writer.write(_shard(1, 3))
    written = writer.finish()
    written.path.write_bytes(written.path.read_bytes()[:-9] + b"tampered!")
    assert "摘要不符" in verify(written.path, written.digest)
    written.path.unlink()
    assert "缺失" in verify(written.path, written.digest)
    with pytest.raises(EvidenceFileError, match="evidence file is missing"):
        read_evidence(written.path, [1])


def test_a_run_before_the_files_is_read_from_the_table(sqlite_settings):
    with session_scope(sqlite_settings.database_url) as session:
        run = Run(run_key="old", as_of=dt.date(2026, 10, 1), region="210112")
        home = Household(household_code="210112001001-0001", area_code="210112",
                         street_code="210112001", community_code="210112001001",
                         urban_rural="urban", status="在保")
        session.add_all([run, home])
        session.flush()
        flag = Flag(run_id=run.id, household_id=home.id, kind="KEEP", street_code="210112001",
                    community_code="210112001001")
        session.add(flag)
        session.flush()
        session.add(FlagEvidence(flag_id=flag.id, source_kind="wages", feed_id=3,
                                 record_ref="wages:r1", item="wage_income", amount=1200.0,
                                 period_end=dt.date(2026, 9, 30), match_grade="certain"))
        session.flush()
        old = run_evidence(session, sqlite_settings.home, run.id, [flag.id])
        assert old[["record_ref", "amount", "feed_id"]].to_dict("records") == [
            {"record_ref": "wages:r1", "amount": 1200.0, "feed_id": 3}]
        assert run_evidence(session, sqlite_settings.home, run.id, [flag.id + 1]).empty


def test_audit_verify_fails_on_a_changed_evidence_file(sqlite_settings, monkeypatch):
    from verification.cli.security import app

    writer = RunEvidenceWriter(sqlite_settings.home, 1)
    writer.write(_shard(1, 2))
    written = writer.finish()
    with session_scope(sqlite_settings.database_url) as session:
        session.add(Run(run_key="r", as_of=dt.date(2026, 11, 1), region="210112",
                        evidence_file=str(written.path.relative_to(sqlite_settings.home)),
                        evidence_digest=written.digest, evidence_rows=written.rows))
    monkeypatch.setenv("HEDUI_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", sqlite_settings.database_url)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--user", "admin"])
    assert ok.exit_code == 0, ok.output
    written.path.write_bytes(b"PAR1 not the file")
    bad = runner.invoke(app, ["audit", "verify", "--user", "admin"])
    assert bad.exit_code == 1 and "运行 1 / run 1" in bad.output and "摘要不符" in bad.output
