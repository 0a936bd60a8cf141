"""Benchmark: one batch check of a street's size, from submission to reports, stage by stage.

    .venv/bin/python bench/bench_batch.py [--households 8000] [--query-wait 60]

Not timed: a generated district (`hedui generate`, ≈ 2.7 members per household: 8,000
households ≈ 21,800 members), its partners' feeds published on a loopback partner server and
pulled, and the roster loaded (as `hedui pull` and `hedui roster load` do). Timed: the batch
check of the whole roster file through ``run_batch_locally`` — the functions the batch_check
DAG's tasks call — with each stage's wall and CPU seconds (this process, DuckDB's and Arrow's
threads included). ``--query-wait``: how long evidence collection waits for the query-list
partners' answers (none answers here: the district's query-list partner is not running, so
every run waits it out and marks the source unanswered — set 0 to leave that wait out).

Figures go to bench/results/<time>-batch-h<N>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT),) if p not in sys.path]

STAGES = ("validate_batch", "load_batch", "collect_evidence", "assess_batch",
          "write_batch_reports")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def prepare(home: Path, households: int):  # noqa: ANN201 (Settings)
    """A generated district pulled from a loopback partner server, its roster loaded."""
    from verification.config import Settings, load_settings
    from verification.intake.roster import load_roster
    from verification.storage import upgrade
    from verification.synthetic.exchange import pull_district

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    district = home / "district"
    subprocess.run([str(Path(sys.executable).with_name("hedui")), "generate", "--households",
                    str(households), "--out", str(district)], check=True, capture_output=True)
    base = load_settings(home / "home")
    settings = Settings(home=base.home, database_url=f"sqlite:///{home / 'home' / 'hedui.db'}",
                        token_key=base.token_key, token_key_id=base.token_key_id)
    upgrade(settings.database_url)
    pull_district(settings, district)
    load_roster(settings, district / "roster.csv")
    return settings, district / "roster.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=8000)
    parser.add_argument("--query-wait", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench" / "batch")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    from verification.batches import check

    started = time.perf_counter()
    settings, roster = prepare(args.workdir, args.households)
    members = sum(1 for _ in roster.open(encoding="utf-8")) - 1
    print(f"== {args.households:,} households, {members:,} members; set up in "
          f"{time.perf_counter() - started:.0f} s (not timed); load {os.getloadavg()[0]:.1f}")
    steps: dict[str, dict[str, float]] = {}
    originals = {name: getattr(check, name) for name in STAGES}

    def timed(name: str):  # noqa: ANN202
        def run(*a, **k):  # noqa: ANN002, ANN003, ANN202
            wall, cpu = time.perf_counter(), _cpu()
            try:
                return originals[name](*a, **k)
            finally:
                steps[name] = {"wall_s": round(time.perf_counter() - wall, 2),
                               "cpu_s": round(_cpu() - cpu, 2)}
        return run

    for name in STAGES:
        setattr(check, name, timed(name))
    collect = check.collect_evidence
    check.collect_evidence = lambda *a, **k: collect(*a, **k, query_wait_seconds=args.query_wait)
    try:
        wall, cpu = time.perf_counter(), _cpu()
        status = check.run_batch_locally(settings, roster, as_of=dt.date(2026, 11, 1))
        total = {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(_cpu() - cpu, 2)}
    finally:
        for name, function in originals.items():
            setattr(check, name, function)
    figures = {"households": args.households, "members": members, "status": status.get("status"),
               "query_wait_s": args.query_wait, "total": total, "steps": steps,
               "load_average_after": os.getloadavg()[0]}
    print(json.dumps(figures, indent=1, ensure_ascii=False, default=str))
    from run import write_figures  # bench/run.py: the one way results are filed

    print(f"figures written to {write_figures(args.out, f'batch-h{args.households}', figures)}")
    return 0 if figures["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
