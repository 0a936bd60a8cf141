"""Benchmark: the narrow re-check after a wages feed in which 1 % of the people changed.

    .venv/bin/python bench/bench_recheck.py [--households 100000] [--share 0.01]
                                            [--database postgres] [--jobs 2]
    .venv/bin/python bench/bench_recheck.py --households 1000000     # the full size (10.1 M rows)
    .venv/bin/python bench/bench_recheck.py --diff-rows 10000000     # the feed diff alone

Not timed, as bench/run.py does it (cached data, the same harness): the synthetic caseload and
feeds (bench/synth.py), a fresh database with the caseload, and the intake of every feed and a
full review — the state the re-check starts from. Then the next wages feed: a copy of the staged
wages feed in which ``--share`` of its persons changed (of each three, two earn half as much
again and one loses its latest month), registered as the partner's next accepted feed (its intake
is what bench/run.py times). Timed: ``verification.recheck.recheck`` — the feed diff, the
households of the changed persons, their evidence from every current feed, assessment and flags
(``assess_and_flag``) and the write of the changed outcomes — with each step's wall and CPU
seconds (CPU: this process, Arrow's threads included).

``--diff-rows N``: only the diff, on two staged-like wages files of N rows (numpy-generated, a
dozen months per person, 1 % of persons changed), no database.

Figures go to bench/results/<time>-recheck-n<N>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import run as harness  # noqa: E402

STEPS = (("verification.recheck.service", "diff_feeds"),
         ("verification.recheck.service", "households_of"),
         ("verification.pipeline", "load_households"),
         ("verification.pipeline", "load_members"),
         ("verification.pipeline", "matched_evidence"),
         ("verification.pipeline", "assess_and_flag"),
         ("verification.recheck.service", "current_flags"),
         ("verification.pipeline", "finish_review"))


class _Clock:
    """Wall and CPU seconds of named calls (summed over repeated calls)."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    def wrap(self, name: str, function):  # noqa: ANN001, ANN204
        def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                step = self.steps.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "calls": 0})
                step["wall_s"] = round(step["wall_s"] + time.perf_counter() - wall, 2)
                step["cpu_s"] = round(step["cpu_s"] + time.process_time() - cpu, 2)
                step["calls"] += 1
        return timed


def changed_copy(source: Path, target: Path, share: float, seed: int) -> dict[str, int]:
    """The staged wages feed with ``share`` of its persons changed: two in three earn half as
    much again, one in three loses its latest month."""
    table = pq.read_table(source)
    frame = table.to_pandas()
    tokens = frame["person_token"].dropna().unique()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(tokens, max(1, round(share * len(tokens))), replace=False)
    raised, dropped = chosen[len(chosen) // 3:], chosen[:len(chosen) // 3]
    up = frame["person_token"].isin(raised).to_numpy()
    frame.loc[up, "wage_amount"] = (frame.loc[up, "wage_amount"] * 1.5).round(2)
    latest = frame["period"].max()
    gone = frame["person_token"].isin(dropped).to_numpy() & frame["period"].eq(latest).to_numpy()
    frame = frame[~gone]
    pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False),
                   target)
    return {"persons": len(tokens), "persons_changed": len(chosen), "rows": len(frame),
            "rows_raised": int(up.sum()), "rows_dropped": int(gone.sum())}


def deliver(settings, staged: Path) -> int:  # noqa: ANN001
    """Register ``staged`` as the wages partner's next accepted feed (as intake leaves it)."""
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Feed

    with session_scope(settings.database_url) as session:
        last = session.scalar(select(Feed).where(Feed.kind == "wages", Feed.status == "accepted")
                              .order_by(Feed.sequence.desc()).limit(1))
        feed = Feed(partner_id=last.partner_id, kind="wages", period=last.period,
                    sequence=last.sequence + 1, schema_version=last.schema_version,
                    envelope_sha256="bench-" + last.envelope_sha256[:58],
                    plaintext_digest="bench", sender_key_id=last.sender_key_id,
                    rows_received=pq.ParquetFile(staged).metadata.num_rows,
                    rows_accepted=pq.ParquetFile(staged).metadata.num_rows,
                    status="accepted", staged_path=str(staged),
                    processed_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                    receipt_sent_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
        session.add(feed)
        session.flush()
        return feed.id


def _wait_for_quiet(seconds: float, below: float = 1.0) -> float:
    """Wait (up to ``seconds``) for the machine's one-minute load to fall below ``below``: the
    base review takes half an hour at 1 M households, the timed re-check half a minute — worth
    timing when nothing else runs."""
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(10)
    load = os.getloadavg()[0]
    print(f"timed re-check starts at load average {load:.2f}")
    return load


def bench_recheck(args: argparse.Namespace) -> dict:
    import importlib

    from schemas import contract_for
    from verification.config import load_settings
    from verification.intake.digests import write_person_digests
    from verification.recheck import recheck
    from verification.storage import upgrade
    from verification.storage.db import dispose
    from verification.synthetic.exchange import ensure_test_keys

    meta = harness.prepare_data(args.households, args.seed, args.workdir)
    folder = Path(meta["folder"])
    print(f"== {args.households:,} households, {meta['persons']:,} persons, wages "
          f"{meta['feeds']['wages']['rows']:,} rows; load average {os.getloadavg()[0]:.1f}")
    home = folder / f"home-recheck-{args.database}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    url, schema = harness.fresh_database(args.database, home)
    try:
        settings = replace(load_settings(home), database_url=url)
        ensure_test_keys(settings)
        upgrade(url)
        started = time.perf_counter()
        harness.load_caseload(settings, folder)
        dispose(url)
        pool = harness.warm_pool(args.jobs)
        try:
            base = harness.run_review(settings, meta, pool, args.jobs, reports=False)
        finally:
            pool.shutdown()
        setup = round(time.perf_counter() - started, 1)
        print(f"base review ready in {setup} s (caseload, intake, full review; not timed)")
        staged = sorted((home / "staging").glob("feed-*.parquet"))
        wages = _staged_of(settings, "wages")
        changed = changed_copy(wages, home / "staging" / "feed-wages-next.parquet", args.share,
                               args.seed)
        feed_id = deliver(settings, home / "staging" / "feed-wages-next.parquet")
        # as intake leaves an accepted feed: its per-person digests beside it (not timed)
        write_person_digests(home / "staging" / "feed-wages-next.parquet", contract_for("wages"))
        load_at_start = _wait_for_quiet(args.wait_quiet)
        clock = _Clock()
        originals = []
        for module_name, attribute in STEPS:
            module = importlib.import_module(module_name)
            originals.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, clock.wrap(attribute, getattr(module, attribute)))
        try:
            profile = None
            if args.profile:  # where the time goes, for the next step (the figures include it)
                import cProfile

                profile = cProfile.Profile()
                profile.enable()
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = recheck(settings, "wages", harness.AS_OF)
            total = {"wall_s": round(time.perf_counter() - wall, 2),
                     "cpu_s": round(time.process_time() - cpu, 2)}
            if profile is not None:
                import pstats

                profile.disable()
                pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        finally:
            for module, attribute, function in originals:
                setattr(module, attribute, function)
    finally:
        harness.drop_database(schema)
    figures = {"households": args.households, "database": args.database,
               "wages_rows": changed["rows"], "feeds_staged": len(staged), "feed_id": feed_id,
               "changed": changed, "recheck": outcome.summary(), "total": total,
               "steps": clock.steps, "load_average_at_start": load_at_start,
               "base_review_end_to_end_s": round(
                   base["end_to_end"].seconds, 1), "machine": harness.machine()}
    print(json.dumps({k: figures[k] for k in ("changed", "recheck", "total", "steps")},
                     indent=1, default=str))
    return figures


def _staged_of(settings, kind: str) -> Path:  # noqa: ANN001
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Feed

    with session_scope(settings.database_url) as session:
        return Path(session.scalar(select(Feed.staged_path).where(
            Feed.kind == kind, Feed.status == "accepted").order_by(Feed.sequence.desc())
            .limit(1)))


def synthetic_wages(rows: int, seed: int) -> pd.DataFrame:
    """A staged-like wages feed: a dozen months per person, the columns the diff reads."""
    rng = np.random.default_rng(seed)
    persons = -(-rows // 12)
    token = rng.integers(-(2**63), 2**63 - 1, persons, dtype=np.int64)
    person = np.repeat(np.arange(persons), 12)[:rows]
    month = np.tile(np.arange(12), persons)[:rows]
    names = pa.array(np.char.mod("%016x", token.view(np.uint64)[person].astype(np.uint64)
                                 % np.uint64(2**52)))
    return pd.DataFrame({
        "person_token": pd.array(token[person], dtype="Int64"),
        "record_id": pa.array(np.char.mod("WA%010d", np.arange(rows))),
        "gender": np.where(person % 2 == 0, "F", "M"),
        "birth_date": pd.Timestamp("1970-01-01") + pd.to_timedelta(person % 20000, "D"),
        "period": pd.Timestamp("2025-11-01") + pd.to_timedelta(month * 31, "D"),
        "employer_name": "某公司",
        "wage_amount": rng.integers(100_00, 900_00, rows) / 100,
        "si_contribution": rng.integers(10_00, 90_00, rows) / 100,
        "_line": np.arange(rows), "birth_date_from_id": True, "gender_from_id": True,
        "name_chars": pd.array(names, dtype="string[pyarrow]"),
        "name_sounds": pd.array(names, dtype="string[pyarrow]"),
        "name_fuzzy": pd.array(names, dtype="string[pyarrow]"),
        "surname_sound": pd.array(names, dtype="string[pyarrow]")})


def bench_diff(args: argparse.Namespace) -> dict:
    from schemas import contract_for
    from verification.recheck import diff_feeds

    folder = args.workdir / f"diff-{args.diff_rows}"
    folder.mkdir(parents=True, exist_ok=True)
    old_path, new_path = folder / "old.parquet", folder / "new.parquet"
    if not new_path.exists():
        old = synthetic_wages(args.diff_rows, args.seed)
        old.to_parquet(old_path, index=False)
        changed_copy(old_path, new_path, args.share, args.seed)
        del old
    wall, cpu = time.perf_counter(), time.process_time()
    diff = diff_feeds(old_path, new_path, contract_for("wages"))
    total = {"wall_s": round(time.perf_counter() - wall, 2),
             "cpu_s": round(time.process_time() - cpu, 2)}
    figures = {"rows": args.diff_rows, "diff": diff.summary(), "total": total,
               "machine": harness.machine()}
    print(json.dumps(figures, indent=1, default=str))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.01, help="share of persons changed")
    parser.add_argument("--database", default="postgres", choices=["sqlite", "postgres"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--diff-rows", type=int, default=0,
                        help="only the feed diff, on two synthetic wages files of this many rows")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before the timed re-check, wait up to this long for load < 1")
    parser.add_argument("--profile", action="store_true",
                        help="print the re-check's profile (cumulative time)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    figures = bench_diff(args) if args.diff_rows else bench_recheck(args)
    name = f"diff{args.diff_rows}" if args.diff_rows else f"n{args.households}"
    print(f"figures written to {harness.write_figures(args.out, f'recheck-{name}', figures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
