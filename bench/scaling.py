"""The scaling series: a table of seconds and CPU seconds per stage by households, and a chart.

Used by ``bench/run.py --series 100000,300000,1000000 --chart docs/img/scaling.png``, or on saved
figures: ``python bench/scaling.py bench/results/*-n100000.json ... --chart docs/img/scaling.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STAGES = ("intake", "matching", "assessment_flags", "database_write", "end_to_end")


def rows(runs: dict[int, dict], database: str) -> list[dict]:
    """One row per run size: households, records, and per stage seconds, CPU seconds, peak."""
    out = []
    for households in sorted(runs):
        figures = runs[households]["databases"].get(database)
        if not figures:
            continue
        stages = figures["stages"]
        row = {"households": households, "records": runs[households]["data"]["records"]}
        for stage in STAGES:
            if stage in stages:
                row[stage] = (stages[stage]["seconds"], stages[stage]["cpu_seconds"],
                              stages[stage]["peak_rss_mb"])
        out.append(row)
    return out


def table(series: list[dict]) -> str:
    """Markdown: wall seconds / CPU seconds per stage, peak RSS, CPU µs per household."""
    head = ["households", "records"] + [f"{s} s (CPU s)" for s in STAGES] + [
        "peak RSS MiB", "end-to-end CPU µs / household"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for row in series:
        cells = [f"{row['households']:,}", f"{row['records']:,}"]
        cells += [f"{row[s][0]:.1f} ({row[s][1]:.1f})" if s in row else "–" for s in STAGES]
        cells.append(f"{row['end_to_end'][2]:,.0f}")
        cells.append(f"{row['end_to_end'][1] / row['households'] * 1e6:,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(series: list[dict], path: Path, title: str) -> None:
    """CPU seconds per stage against households (log-log, with a line of slope 1 for linear)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = [r["households"] for r in series]
    for stage in STAGES:
        ys = [r[stage][1] for r in series if stage in r]
        if len(ys) == len(x):
            ax.plot(x, ys, marker="o", label=stage.replace("_", " "))
            bx.plot(x, [r[stage][0] for r in series], marker="o", label=stage.replace("_", " "))
    if series:
        base = series[0]["end_to_end"][1]
        ax.plot(x, [base * h / x[0] for h in x], color="grey", linestyle=":",
                label="linear from the first point")
    for axis, label in ((ax, "CPU seconds"), (bx, "wall seconds")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("households")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(runs: dict[int, dict], chart_path: Path | None) -> None:
    for database in ("postgres", "sqlite"):
        series = rows(runs, database)
        if not series:
            continue
        print(f"\nscaling ({database}): wall seconds (CPU seconds) per stage")
        print(table(series))
        if chart_path is not None:
            chart(series, chart_path.with_name(f"{chart_path.stem}-{database}{chart_path.suffix}")
                  if database != "postgres" else chart_path,
                  f"hedui review, stage cost by households ({database})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="+", type=Path)
    parser.add_argument("--chart", type=Path, default=None)
    args = parser.parse_args()
    runs = {}
    for path in args.figures:
        figures = json.loads(path.read_text())
        runs[figures["data"]["households"]] = figures
    report(runs, args.chart)


if __name__ == "__main__":
    main()
