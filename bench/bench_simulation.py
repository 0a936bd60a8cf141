"""Benchmark: a policy simulation on N synthetic households (default 1,000,000).

    .venv/bin/python bench/bench_simulation.py [--households 1000000] [--raise 5,7,10] [--seed 7]

The households, members and evidence are numpy-generated (bench/bench_assessment.py's district,
spread over the district's streets and communities); the scenarios are the shipped parameters
with the 低保 standard raised by each percent (``write_raised_standard``). Timed: the baseline
and each scenario assessed (``assess(..., with_reasons=False)``, as ``hedui simulate`` does),
each compared with the baseline, and the street, community and category summaries. Not timed:
generating the data, writing the workbook and page. Prints wall and CPU seconds per step and
writes them to bench/results/<time>-simulation-n<N>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import numpy as np  # noqa: E402
from bench_assessment import AS_OF, synthetic_district  # noqa: E402

from verification import jurisdictions  # noqa: E402
from verification.simulation import (  # noqa: E402
    load_scenario,
    scenario_name,
    write_raised_standard,
)
from verification.simulation.scenarios import DEFAULT_DIRECTORY  # noqa: E402
from verification.simulation.simulate import (  # noqa: E402
    RunInputs,
    assess_under,
    by_area,
    by_category,
    compare,
    indicators,
)


class _Clock:
    """Wall and CPU seconds of each named step."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    def __call__(self, name: str, work):  # noqa: ANN001, ANN204
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        self.steps[name] = {"wall_s": round(time.perf_counter() - wall, 2),
                            "cpu_s": round(time.process_time() - cpu, 2)}
        print(f"{name:<28} {self.steps[name]['wall_s']:7.2f} s wall  "
              f"{self.steps[name]['cpu_s']:7.2f} s CPU", flush=True)
        return result


def _spread(households, seed: int):  # noqa: ANN001, ANN202
    """Give the generated households the district's streets and communities."""
    rng = np.random.default_rng(seed)
    places = [(street, community) for street in jurisdictions.streets()
              for community in jurisdictions.communities(street)]
    chosen = rng.integers(0, len(places), size=len(households))
    households["street_code"] = np.array([p[0] for p in places], dtype=object)[chosen]
    households["community_code"] = np.array([p[1] for p in places], dtype=object)[chosen]
    return households


def _summaries(table):  # noqa: ANN001, ANN202
    """The street, community and category tables, as the output has them; returns the total."""
    shared = indicators(table)
    by_area(shared, ["street_code"])
    by_area(shared, ["street_code", "community_code"])
    by_category(table)
    return by_area(shared, []).iloc[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=1_000_000)
    parser.add_argument("--raise", dest="percents", default="5,7,10")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    households, members, evidence, sources = synthetic_district(args.households, args.seed)
    inputs = RunInputs(0, "bench", AS_OF, "210112", "", _spread(households, args.seed), members,
                       evidence, sources)
    with tempfile.TemporaryDirectory() as folder:
        scenarios = [load_scenario(write_raised_standard(
            Path(folder) / scenario_name(float(p)), float(p), "210112", AS_OF))
            for p in args.percents.split(",")]
        clock = _Clock()
        total_wall, total_cpu = time.perf_counter(), time.process_time()
        base, _ = clock("assess baseline", lambda: assess_under(inputs, load_scenario(
            DEFAULT_DIRECTORY)))
        if (base["decision"] == "undetermined").all():  # a data set that measures nothing
            raise SystemExit("every household undetermined: the synthetic sources are short")
        summary = []
        for scenario in scenarios:
            new, _ = clock(f"assess {scenario.name}", lambda s=scenario: assess_under(inputs, s))
            table = clock(f"compare {scenario.name}",
                          lambda n=new: compare(inputs.households, base, n))
            totals = clock(f"summaries {scenario.name}", lambda t=table: _summaries(t))
            summary.append({"scenario": scenario.name,
                            **{k: float(totals[k]) for k in ("gain_households", "gain_persons",
                                                             "change_households",
                                                             "monthly_change", "yearly_change")}})
        total = {"wall_s": round(time.perf_counter() - total_wall, 2),
                 "cpu_s": round(time.process_time() - total_cpu, 2)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'whole simulation':<28} {total['wall_s']:7.2f} s wall  {total['cpu_s']:7.2f} s CPU"
          f"  (peak RSS {peak:,.0f} MiB)")
    for row in summary:
        print(row)
    record = {"households": len(inputs.households), "members": len(members),
              "evidence_rows": len(evidence), "steps": clock.steps, "total": total,
              "peak_rss_mib": round(peak), "scenarios": summary,
              "python": platform.python_version(),
              "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip(),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    out = ROOT / "bench" / "results" / (
        f"{time.strftime('%Y%m%dT%H%M%S')}-simulation-n{len(inputs.households)}.json")
    out.write_text(json.dumps(record, indent=1), "utf-8")
    print(f"→ {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
