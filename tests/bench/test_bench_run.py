"""The benchmark harness runs end to end on a tiny caseload: it writes figures for every stage,
the synthetic data are deterministic, and the DuckDB reference agrees with the assessment.
(Timings are printed by the harness, never asserted.)"""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import synth  # noqa: E402


def test_synthetic_data_are_deterministic_and_shaped_like_the_contracts():
    from schemas import field_names

    first, second = synth.build(300, seed=5), synth.build(300, seed=5)
    assert first.records == second.records > 300 * 15
    for kind, table in first.feeds.items():
        assert table.column_names == field_names(kind)
        assert table.equals(second.feeds[kind])
        assert all(t == pa.string() for t in table.schema.types)
    members = first.caseload.members
    assert members["id_number"].is_unique and len(first.caseload.households) == 300


def test_harness_writes_figures_and_the_duckdb_reference_agrees(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--households", "2000",
         "--databases", "sqlite", "--jobs", "1",
         "--workdir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(next(out.glob("*-n2000.json")).read_text())
    stages = figures["databases"]["sqlite"]["stages"]
    for name in ("intake", "matching", "assessment_flags", "database_write", "end_to_end"):
        assert stages[name]["seconds"] > 0 and stages[name]["peak_rss_mb"] > 0
    intake = stages["intake"]["detail"]
    assert sum(f["received"] for f in intake.values()) == figures["data"]["records"]
    assert all(f["received"] == f["accepted"] + f["quarantined"] for f in intake.values())
    writes = stages["database_write"]["detail"]["writes"]
    assert writes["flags"]["rows"] == 2000 and writes["flag_evidence_file"]["rows"] > 0
    check = figures["components"]["check"]
    assert check["agree"], check
    assert "DuckDB" in done.stdout and "end_to_end" in done.stdout
    # the whole-review reference read, validated and counted the same rows as intake
    reference = figures["databases"]["sqlite"]["reference"]
    assert {kind: (c["received"], c["accepted"]) for kind, c in reference["counts"].items()} == {
        kind: (f["received"], f["accepted"]) for kind, f in intake.items()}
    assert reference["households"] == 2000 and sum(reference["flags"].values()) == 2000
    assert all(reference["stages"][s]["cpu"] > 0 for s in ("intake", "matching_sums"))
    assert "the whole review against the direct DuckDB reference" in done.stdout


def test_batch_bench_times_every_stage_of_a_batch_check(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_batch.py"), "--households", "40",
         "--query-wait", "0", "--workdir", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(next(out.glob("*-batch-h40.json")).read_text())
    assert figures["status"] == "done" and figures["members"] > 40
    assert set(figures["steps"]) == {"validate_batch", "load_batch", "collect_evidence",
                                     "assess_batch", "write_batch_reports"}
    assert figures["total"]["cpu_s"] >= max(s["cpu_s"] for s in figures["steps"].values())
