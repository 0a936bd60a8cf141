"""Benchmark: assess a synthetic district of N households (default 1,000,000) in one call.

    .venv/bin/python bench/bench_assessment.py [--households 1000000] [--seed 7]

Prints the frame sizes, seconds for ``assess()`` and peak memory (RSS high-water mark of the
process, which includes generating the data). Data are numpy-generated; nothing is read from disk.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import date

import numpy as np
import pandas as pd

from verification.assessment.assess import assess
from verification.assessment.policy import load_parameters

AS_OF = date(2025, 7, 1)
# item, source kind, share of persons with one such record, typical amount, months covered
EVIDENCE_MIX = [
    ("wage", "wages", 0.45, 1800.0, 12),
    ("enterprise_pension", "pensions", 0.20, 1400.0, 12),
    ("basic_pension_residents", "pensions", 0.15, 180.0, 12),
    ("unemployment_benefit", "pensions", 0.03, 900.0, 6),
    ("old_age_allowance", "pensions", 0.05, 100.0, 12),
    ("medical_oop", "wages", 0.10, 250.0, 12),
    ("deposit", "deposits", 0.50, 8000.0, 1),
    ("fund", "deposits", 0.05, 5000.0, 1),
    ("home", "real_estate", 0.30, 0.0, 1),
    ("car", "vehicles", 0.06, 0.0, 1),
    ("e_bike", "vehicles", 0.05, 0.0, 1),
    ("business", "business", 0.02, 0.0, 1),
]


def synthetic_district(n: int, seed: int) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    households = pd.DataFrame({
        "household_code": pd.Series(ids).astype(str).to_numpy(),
        "area_code": "210112",
        "street_code": "210112001",
        "community_code": "210112001001",
        "status": "recipient",
        "category": "dibao",
        "urban_rural": np.where(rng.random(n) < 0.7, "urban", "rural"),
        "current_benefit": 0.0,
    }, index=pd.Index(ids, name="household_id"))
    sizes = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.25, 0.25, 0.25, 0.15, 0.10])
    member_household = np.repeat(ids, sizes)
    m = len(member_household)
    birth = np.datetime64("1940-01-01") + rng.integers(0, 365 * 80, size=m).astype("timedelta64[D]")
    members = pd.DataFrame({
        "household_id": member_household,
        "person_token": rng.integers(1, 2**62, size=m, dtype=np.int64),
        "birth_date": birth,
        "gender": np.where(rng.random(m) < 0.5, "M", "F"),
        "relation": "其他",
        "counted": rng.random(m) < 0.98,
        "exclusion": "",
        "disability_grade": np.where(rng.random(m) < 0.05, rng.integers(1, 5, size=m), 0),
        "disability_type": np.where(rng.random(m) < 0.05, "limb", ""),
        "labour_capacity": rng.random(m) < 0.6,
    })
    return households, members, _evidence(rng, members), _sources()


def _evidence(rng: np.random.Generator, members: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for feed_id, (item, kind, share, typical, months) in enumerate(EVIDENCE_MIX, start=1):
        chosen = np.flatnonzero(rng.random(len(members)) < share)
        end = np.datetime64("2025-06-30")
        # a flow over its months; a balance or a registration a record of one day (evidence.py)
        start = (end.astype("datetime64[M]") - (months - 1)).astype("datetime64[D]") if (
            months > 1) else end
        parts.append(pd.DataFrame({
            "household_id": members["household_id"].to_numpy()[chosen],
            "person_token": members["person_token"].to_numpy()[chosen],
            "source_kind": kind,
            "feed_id": feed_id,
            "record_ref": pd.Series(chosen).astype(str).to_numpy(),
            "item": item,
            "amount": rng.gamma(2.0, typical / 2.0, size=len(chosen)).round(2),
            "period_start": start,
            "period_end": end,
            "match_grade": np.where(rng.random(len(chosen)) < 0.01, "probable", "certain"),
        }))
    return pd.concat(parts, ignore_index=True)


def _sources() -> pd.DataFrame:
    """Every kind the evidence comes from and every kind a rule needs, delivered on time (a
    kind missing would leave every household undetermined: nothing to measure)."""
    from verification.assessment.assess import required_sources
    from verification.assessment.policy import load_parameters

    needed = required_sources(load_parameters().at("210112", AS_OF))
    kinds = sorted({kind for _, kind, *_ in EVIDENCE_MIX} | set(needed))
    return pd.DataFrame({
        "source_kind": kinds,
        "feed_id": np.arange(1, len(kinds) + 1),
        "period_end": pd.Timestamp("2025-06-30"),
        "received_at": pd.Timestamp("2025-07-01"),
        "status": "accepted",
    })


def _peak_mb() -> float:
    """High-water mark of this process's resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--check", action="store_true",
                        help="also recompute income in DuckDB and compare")
    args = parser.parse_args()
    started = time.perf_counter()
    households, members, evidence, sources = synthetic_district(args.households, args.seed)
    generated = time.perf_counter() - started
    before_mb = _peak_mb()
    tree = load_parameters()
    started = time.perf_counter()
    result = assess(households, members, evidence, sources, tree, AS_OF)
    seconds = time.perf_counter() - started
    peak_mb = _peak_mb()
    print(f"households {len(households):,}  members {len(members):,}  evidence {len(evidence):,}")
    print(f"generate {generated:.1f} s")
    print(f"assess {seconds:.1f} s  ({len(result.reasons):,} reason rows)")
    print(f"peak memory {peak_mb:,.0f} MB (after generating the data: {before_mb:,.0f} MB)")
    print(result.results["category"].value_counts().to_string())
    if args.check:
        _check_income_with_duckdb(members, evidence, result.results, tree.at("210112", AS_OF))


def _check_income_with_duckdb(members, evidence, results, policy) -> None:  # noqa: ANN001
    """Recompute monthly household income in SQL (an independent path) and compare."""
    import duckdb

    window = policy.value("income.look_back_months")
    last = (AS_OF.year - 1970) * 12 + AS_OF.month - 2
    items = ", ".join(f"'{item}'" for item in policy.value("income.counted_items"))
    month = "((year({0}) - 1970) * 12 + month({0}) - 1)"
    started = time.perf_counter()
    baseline = duckdb.sql(f"""
        select e.household_id, sum(e.amount * greatest(0,
                 least({month.format('e.period_end')}, {last})
                 - greatest({month.format('e.period_start')}, {last - window + 1}) + 1)) / {window}
               as income
        from evidence e
        where e.match_grade = 'certain' and e.item in ({items})
          and e.person_token not in (select person_token from members where not counted)
        group by e.household_id
    """).df().set_index("household_id")["income"]
    seconds = time.perf_counter() - started
    ours = results["income_monthly"]
    difference = (ours - baseline.reindex(ours.index).fillna(0)).abs().max()
    print(f"duckdb baseline income {seconds:.1f} s; max difference {difference:.4f} yuan")
    assert difference < 0.01, "assessment income disagrees with the SQL baseline"


if __name__ == "__main__":
    main()
