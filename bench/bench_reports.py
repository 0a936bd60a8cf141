"""Benchmark: the reports of one large review (``write_run_reports``), alone.

    .venv/bin/python bench/bench_reports.py [--households 100000] [--database sqlite|postgres]
    .venv/bin/python bench/bench_reports.py --households 1000000 --database postgres
    .venv/bin/python bench/bench_reports.py --profile var/bench/reports.prof   # cProfile too
    .venv/bin/python bench/bench_reports.py --xlsx-rows 1000000   # xlsxwriter's cost per cell
    .venv/bin/python bench/bench_reports.py --on-demand 40        # one 核对报告 at a time
    .venv/bin/python bench/bench_reports.py --on-demand 40 \
        --review var/bench/n1000000-s2026/home-postgres/review.json  # kept by run.py --keep

Not timed: bench/run.py's synthetic caseload and packed feeds (cached under ``var/bench/``), a
fresh database with the caseload, and the review through the worker tasks bench/run.py times
(intake, matching, assessment + flags, database write). The reviewed home is kept
(``var/bench/n<N>-s<seed>/home-reports-<database>/``, with ``review.json`` naming the run and
the database) so a later call times the reports again on the same review; ``--fresh`` redoes
it. Timed: ``write_run_reports`` in a freshly spawned process with the report modules imported
(as a warm Airflow worker has them): wall and CPU seconds (that process, DuckDB's and Arrow's
threads included) and its peak resident set, and within it the 核对报告 step
(``write_household_reports``: CPU, wall, reports written, CPU per report). Then the output is
counted: workbooks and the rows of their sheets, CSV files and the communities' evidence.csv
rows, charts, 核对报告 files and the households they hold.

``--xlsx-rows R`` times instead one evidence sheet of the review's first R cited records, as
``write_tables`` writes it (xlsxwriter, constant memory), in this process: CPU seconds of the
columns' conversion to Python values, of the ``write_row`` calls, and of closing the workbook
(the rows' XML is written as they go; closing zips it), and per cell.

``--on-demand K`` times instead K single 核对报告 as the portal's ``/flags/{id}/report`` and
``hedui reports household`` render them (``household_report``: one flag's table, its street's
row groups of the matched evidence, the page), in a freshly spawned process with the report
modules imported, for K flags spread evenly over the run's flags in id order (every street and
kind): CPU and wall milliseconds per report (median, 90th percentile, worst; the first call
separately: it reads the run's policy into the process).

Figures go to bench/results/<time>-reports-n<N>.json (``-xlsx-r<R>.json`` for ``--xlsx-rows``,
``-ondemand-k<K>.json`` for ``--on-demand``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import run as harness  # noqa: E402  (bench/run.py: data, database, review tasks, clocks)


def reviewed_home(households: int, args: argparse.Namespace) -> dict:
    """A home whose database holds a finished review of ``households``; reused when there."""
    meta = harness.prepare_data(households, args.seed, args.workdir)
    # under --workdir, not data.json's folder: a copied workdir times its own review's reports
    home = args.workdir / f"n{households}-s{args.seed}" / f"home-reports-{args.database}"
    record = home / "review.json"
    if record.exists() and not args.fresh:
        return json.loads(record.read_text())
    if record.exists():
        harness.drop_database(json.loads(record.read_text()).get("schema"))
    from verification.config import load_settings
    from verification.storage import upgrade
    from verification.storage.db import dispose
    from verification.synthetic.exchange import ensure_test_keys

    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    url, schema = harness.fresh_database(args.database, home)
    settings = replace(load_settings(home), database_url=url)
    ensure_test_keys(settings)
    upgrade(url)
    harness.load_caseload(settings, Path(meta["folder"]))
    dispose(url)
    pool = harness.warm_pool(args.jobs)
    try:
        stages = harness.run_review(settings, meta, pool, args.jobs, reports=False)
    finally:
        pool.shutdown()
    harness.print_stages(f"review (not timed), {args.database}", stages)
    review = {"home": str(home), "database_url": url, "schema": schema,
              "run_id": _last_run(url), "households": households, "seed": args.seed,
              "flags": stages["database_write"].detail["counts"]}
    record.write_text(json.dumps(review, indent=1))
    return review


def _last_run(url: str) -> int:
    import sqlalchemy as sa

    from verification.storage import session_scope
    from verification.storage.models import Run

    with session_scope(url) as session:
        return int(session.execute(sa.select(sa.func.max(Run.id))).scalar_one())


def _warm_reports() -> int:
    """Import what the reports use (matplotlib and its font, xlsxwriter, Jinja2), once."""
    import verification.reports.run_reports  # noqa: F401
    from verification.reports import charts  # noqa: F401

    return os.getpid()


def _reports_task(home: str, url: str, run_id: int, profile: str | None) -> dict:
    from verification.config import load_settings
    from verification.reports import run_reports, write_run_reports

    settings = replace(load_settings(Path(home)), database_url=url)
    step: dict = {"wall_s": 0.0, "cpu_s": 0.0, "reports": 0}
    bulk = run_reports.write_household_reports

    def timed_household_reports(*args: object) -> list:
        """The 核对报告 step inside the timed call, on the same clocks (its share of the CPU),
        summed over its calls (one per street)."""
        wall, cpu = time.perf_counter(), harness._cpu()  # noqa: SLF001
        written = bulk(*args)
        cpu, wall = harness._cpu() - cpu, time.perf_counter() - wall  # noqa: SLF001
        step.update(wall_s=round(step["wall_s"] + wall, 2), cpu_s=round(step["cpu_s"] + cpu, 2),
                    reports=step["reports"] + len(written))
        step["cpu_ms_per_report"] = round(1e3 * step["cpu_s"] / max(step["reports"], 1), 3)
        return written

    run_reports.write_household_reports = timed_household_reports
    clocks = harness._begin()  # noqa: SLF001 (the harness's own clock)
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        out = profiler.runcall(write_run_reports, settings, run_id)
        profiler.dump_stats(profile)
    else:
        out = write_run_reports(settings, run_id)
    return harness._end(clocks, dir=str(out), household_step=step)  # noqa: SLF001


def _on_demand_task(home: str, url: str, run_id: int, count: int) -> dict:
    """``household_report`` for ``count`` flags spread over the run, one at a time."""
    import numpy as np
    import sqlalchemy as sa

    from verification.config import load_settings
    from verification.reports.household_report import household_report
    from verification.storage import session_scope
    from verification.storage.models import Flag

    settings = replace(load_settings(Path(home)), database_url=url)
    with session_scope(url) as session:
        ids = np.array(session.scalars(sa.select(Flag.id).where(Flag.run_id == run_id)
                                       .order_by(Flag.id)).all())
    chosen = ids[np.linspace(0, len(ids) - 1, count).round().astype(int)]
    calls = []
    for flag_id in chosen.tolist():
        wall, cpu = time.perf_counter(), harness._cpu()  # noqa: SLF001
        page = household_report(settings, run_id, flag_id)
        calls.append({"flag_id": flag_id, "cpu_ms": round(1e3 * (harness._cpu() - cpu), 1),  # noqa: SLF001
                      "wall_ms": round(1e3 * (time.perf_counter() - wall), 1),
                      "page_bytes": len(page.encode())})
    return {"flags_in_run": len(ids), "calls": calls}


def _spread(values: list[float]) -> dict:
    import numpy as np

    return {"median": round(float(np.median(values)), 1),
            "p90": round(float(np.percentile(values, 90)), 1), "max": round(max(values), 1)}


def time_xlsx_cells(review: dict, rows: int, folder: Path) -> dict:
    """xlsxwriter's cost per cell on ``rows`` records of the review's evidence sheet."""
    import time

    import xlsxwriter

    from verification.config import load_settings
    from verification.reports import flag_reports as fr

    settings = replace(load_settings(Path(review["home"])), database_url=review["database_url"])
    evidence = fr.evidence_table(settings, review["run_id"]).head(rows)
    cited = fr.neutralised(evidence[list(fr.EVIDENCE_HEADERS)].rename(
        columns=fr.EVIDENCE_HEADERS)).iloc[:fr.EVIDENCE_ROWS_PER_SHEET]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "xlsx-cells.xlsx"
    started = time.process_time()
    book = xlsxwriter.Workbook(str(path), fr._WORKBOOK_OPTIONS)  # noqa: SLF001 (the same options)
    sheet = book.add_worksheet("证据")
    columns = [fr._cells_of_column(cited.iloc[:, i]) for i in range(cited.shape[1])]  # noqa: SLF001
    converted = time.process_time()
    for line, record in enumerate(zip(*columns, strict=True), start=1):
        sheet.write_row(line, 0, record)
    written = time.process_time()
    book.close()
    closed = time.process_time()
    cells = len(cited) * cited.shape[1]
    filled = int(cited.notna().to_numpy().sum() - (cited == "").to_numpy().sum())
    return {"rows": len(cited), "cells": cells, "non_empty_cells": filled,
            "cpu_s": {"convert": round(converted - started, 2),
                      "write_row": round(written - converted, 2),
                      "close": round(closed - written, 2), "total": round(closed - started, 2)},
            "us_per_cell": round(1e6 * (closed - started) / cells, 2),
            "us_per_non_empty_cell": round(1e6 * (closed - started) / max(filled, 1), 2),
            "bytes": path.stat().st_size}


_DIMENSION = re.compile(rb'<dimension ref="[A-Z]+\d+(?::[A-Z]+(\d+))?"')


def sheet_rows(workbook: Path) -> dict[str, int]:
    """Rows per worksheet (header included) from each sheet's ``<dimension>``, without opening
    the workbook in a spreadsheet library (a district's evidence sheet has millions of cells)."""
    rows = {}
    with zipfile.ZipFile(workbook) as archive:
        names = re.findall(rb'<sheet name="([^"]+)"', archive.read("xl/workbook.xml"))
        for index, name in enumerate(names, start=1):
            with archive.open(f"xl/worksheets/sheet{index}.xml") as part:
                found = _DIMENSION.search(part.read(4096))
            last = found.group(1) if found else None
            rows[name.decode()] = int(last) if last else 1
    return rows


def _records(path: Path) -> int:
    """Records of a CSV below its header, parsed (a quoted field may hold a line break)."""
    import pyarrow.csv as pa_csv

    return pa_csv.read_csv(path).num_rows


def count_output(folder: Path) -> dict:
    """What the reports wrote: files, workbooks and their rows, charts, 核对报告."""
    books = sorted(folder.rglob("*.xlsx"))
    by_sheet: dict[str, int] = {}
    for book in books:
        for sheet, n in sheet_rows(book).items():
            by_sheet[sheet] = by_sheet.get(sheet, 0) + n
    pages = sorted(folder.rglob("*.html"))
    household_pages = [p for p in pages if p.parent.name == "核对报告"]
    charts = sum(p.read_text("utf-8").count("<svg") for p in pages if p.name == "summary.html")
    held = sum(max(p.read_text("utf-8").count('class="household-report"'), 1)
               for p in household_pages)
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files),
            "workbooks": len(books), "workbook_rows": by_sheet,
            "csv_files": sum(1 for p in files if p.suffix == ".csv"),
            "evidence_csv_rows": sum(_records(p) for p in files if p.name == "evidence.csv"),
            "summary_pages": sum(1 for p in pages if p.name == "summary.html"),
            "charts": charts, "household_report_files": len(household_pages),
            "household_reports": held if household_pages else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the (untimed) review")
    parser.add_argument("--fresh", action="store_true", help="redo the review, do not reuse it")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile output file")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--xlsx-rows", type=int, default=None,
                        help="time one evidence sheet of this many rows instead (per cell)")
    parser.add_argument("--on-demand", type=int, default=None, metavar="K",
                        help="time K single 核对报告 (household_report) instead")
    parser.add_argument("--review", type=Path, default=None, metavar="REVIEW_JSON",
                        help="a review kept by bench/run.py --keep, instead of making one")
    args = parser.parse_args(argv)
    review = (json.loads(args.review.read_text()) if args.review
              else reviewed_home(args.households, args))
    args.households = review["households"]
    if args.review:  # the kept review's database, whatever --database says
        args.database = "postgres" if review["database_url"].startswith("postgresql") else "sqlite"
    if args.on_demand:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            pool.submit(_warm_reports).result()
            timed = pool.submit(_on_demand_task, review["home"], review["database_url"],
                                review["run_id"], args.on_demand).result()
        later = timed["calls"][1:] or timed["calls"]
        return _record(args, f"-ondemand-k{args.on_demand}", {
            "households": args.households, "database": args.database,
            "run_id": review["run_id"], "flags_in_run": timed["flags_in_run"],
            "first_call": timed["calls"][0],
            "cpu_ms": _spread([c["cpu_ms"] for c in later]),
            "wall_ms": _spread([c["wall_ms"] for c in later]),
            "calls": timed["calls"], "machine": harness.machine()})
    if args.xlsx_rows:
        cells = time_xlsx_cells(review, args.xlsx_rows, Path(review["home"]) / "xlsx-cells")
        return _record(args, f"-xlsx-r{args.xlsx_rows}", {
            "households": args.households, "database": args.database, "xlsxwriter": cells,
            "machine": harness.machine()})
    print(f"== reports of run {review['run_id']} ({args.households:,} households, "
          f"{args.database}; flags {review['flags']}); load {os.getloadavg()[0]:.1f}")
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        pool.submit(_warm_reports).result()
        timed = pool.submit(_reports_task, review["home"], review["database_url"],
                            review["run_id"], str(args.profile) if args.profile else None
                            ).result()
    counts = count_output(Path(timed["dir"]))
    figures = {"households": args.households, "database": args.database,
               "run_id": review["run_id"], "flags": review["flags"],
               "wall_s": round(timed["seconds"], 2), "cpu_s": round(timed["cpu"], 2),
               "peak_rss_mib": round(timed["peak"]), "household_reports_step":
               timed["household_step"], "output": counts,
               "machine": harness.machine()}
    return _record(args, "", figures)


def _record(args: argparse.Namespace, suffix: str, figures: dict) -> int:
    """Print ``figures`` and write them to bench/results/<time>-reports-n<N><suffix>.json."""
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    path = harness.write_figures(args.out, f"reports-n{args.households}{suffix}", figures)
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
