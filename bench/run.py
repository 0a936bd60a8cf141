"""Benchmark harness (``make bench``): a full review at provincial scale, stage by stage.

    .venv/bin/python bench/run.py [--households 100000] [--databases sqlite,postgres] [--jobs 2]
    .venv/bin/python bench/run.py --households 1000000             # the full size
    .venv/bin/python bench/run.py --series 100000,300000,1000000 --chart docs/img/scaling.png

1. A synthetic caseload and seven partner feeds (bench/synth.py, deterministic by seed), written
   as CSV and packed as each partner would (signed, encrypted, chunked; TEST ONLY keys). Cached
   under ``var/bench/`` per size and seed; not part of the review.
2. Per database: a fresh, migrated database with the caseload written in bulk (ID numbers and
   names field-encrypted as the roster loader stores them; loading is not part of a review).
3. The review, through the same functions the Airflow tasks call, on ``--jobs`` spawned worker
   processes that have imported the stages once (as warm Airflow workers have): intake of every
   packed feed (verify, decrypt, decode, validate, stage); matching (``prepare_evidence``);
   assessment + flags (``review_shard`` per street); the database write (``finish_review``); with
   ``--reports``, the per-street reports. End to end = intake through the database write.
4. In one more task, on the same staged data: evidence, matching, assessment and flags timed one
   by one, and the reference — the same join and per-household sums as one DuckDB SQL query —
   with the ratio of the times and a check that the sums agree.
5. The whole review done set-based (``bench/reference.py``: intake in DuckDB with validation
   generated from the contracts, tokens over distinct IDs, the exact join and sums, the
   category rule, COPY of one flag row per household into PostgreSQL) on the same packed feeds,
   and our CPU ÷ the reference's per stage.

Peak memory is the high-water mark of the resident set of the worker process running a task
(``VmHWM``, reset at the start of each task through ``/proc/self/clear_refs``), interpreter and
libraries included; a stage on several processes reports the largest. CPU seconds are the task
processes' user + system time: on a shared machine they are the steadier figure. Figures go to
``bench/results/<timestamp>-n<households>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import inspect
import json
import os
import platform
import resource
import shutil
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "bench")) if p not in sys.path]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

AS_OF = dt.date(2026, 11, 1)
REGION = "210112"
POSTGRES_URL = os.environ.get("HEDUI_BENCH_POSTGRES_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    records: int
    processes: int = 1
    detail: dict | None = None

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def _begin() -> tuple[float, float]:
    """Start measuring a task in a worker: reset the process's peak-RSS mark (Linux
    ``clear_refs`` 5), return wall and CPU clocks."""
    # not Linux, or not allowed: the peak is then the worker's lifetime peak
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return time.perf_counter(), _cpu()


def _end(clocks: tuple[float, float], **values: object) -> dict:
    """Wall seconds, CPU seconds and peak RSS (MiB, VmHWM) since ``_begin``."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"seconds": time.perf_counter() - clocks[0], "cpu": _cpu() - clocks[1], "peak": peak,
            **values}


def _warm() -> int:
    """Import what the stages use, once per worker process (as a warm Airflow worker has)."""
    import verification.pipeline  # noqa: F401
    from schemas import contract_for, feed_kinds

    for kind in feed_kinds():
        contract_for(kind)
    return os.getpid()


# ---- data ----------------------------------------------------------------------------------------
def prepare_data(households: int, seed: int, workdir: Path) -> dict:
    """Generate, write and pack the feeds once per (households, seed); returns the manifest."""
    folder = workdir / f"n{households}-s{seed}"
    done = folder / "data.json"
    if done.exists():
        return json.loads(done.read_text())
    import pyarrow.csv as pacsv
    import synth

    from connectors import envelope, keys
    from connectors.registry import load_partners
    from verification.config import load_settings
    from verification.intake.tokens import person_tokens

    shutil.rmtree(folder, ignore_errors=True)
    (folder / "plain").mkdir(parents=True)
    started = time.perf_counter()
    data = synth.build(households, seed)
    generated = time.perf_counter() - started
    settings = load_settings()
    members = data.caseload.members
    members["person_token"] = person_tokens(settings.token_key, members["id_number"]).astype(
        "int64")
    data.caseload.households.to_parquet(folder / "households.parquet")
    members.drop(columns=["id_number", "name"]).to_parquet(folder / "members.parquet")
    started = time.perf_counter()
    centre = keys.insecure_test_recipient_key().public()
    sequence = int(synth.PERIOD.replace("-", ""))
    feeds = {}
    for partner, spec in load_partners().items():
        signer = keys.insecure_test_signing_key(partner)
        for kind in spec.feeds:
            plain = folder / "plain" / f"{kind}.csv"
            table = data.feeds[kind]
            pacsv.write_csv(table, plain, pacsv.WriteOptions(quoting_style="needed"))
            packed = folder / "outbox" / partner / f"{kind}-{sequence}.hedui"
            packed.parent.mkdir(parents=True, exist_ok=True)
            manifest = envelope.Manifest(partner=partner, feed_kind=kind, period=synth.PERIOD,
                                         sequence=sequence, row_count=table.num_rows,
                                         schema_version="1.0")
            with plain.open("rb") as src, packed.open("wb") as dest:
                envelope.pack(src, dest, manifest=manifest, sender=signer, recipient=centre)
            plain.unlink()
            feeds[kind] = {"partner": partner, "path": str(packed), "rows": table.num_rows,
                           "bytes": packed.stat().st_size}
    meta = {"households": households, "seed": seed, "persons": len(members),
            "records": data.records, "feeds": feeds, "folder": str(folder),
            "generate_seconds": round(generated, 2),
            "pack_seconds": round(time.perf_counter() - started, 2)}
    done.write_text(json.dumps(meta, indent=2))
    return meta


# ---- database ------------------------------------------------------------------------------------
def fresh_database(kind: str, home: Path) -> tuple[str, str | None]:
    """A new empty database; returns its URL and (PostgreSQL) the schema to drop afterwards."""
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{home / 'hedui.db'}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{home / 'hedui.db'}", None
    import sqlalchemy as sa

    schema = f"hedui_bench_{uuid.uuid4().hex[:8]}"
    with sa.create_engine(POSTGRES_URL).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", schema


def drop_database(schema: str | None) -> None:
    if schema:
        import sqlalchemy as sa

        with sa.create_engine(POSTGRES_URL).begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def load_caseload(settings, folder: Path) -> float:  # noqa: ANN001
    """Households and members (ID numbers and names encrypted as the roster loader stores them)
    written with verification.storage.bulk; returns seconds. Not part of a review."""
    import synth

    from verification.intake.feeds import ensure_partners
    from verification.intake.identifiers import mask_id, mask_name
    from verification.security.fieldcrypt import load_field_cipher
    from verification.storage import bulk, session_scope
    from verification.storage.models import Household, Member

    started = time.perf_counter()
    households = pd.read_parquet(folder / "households.parquet").reset_index(names="id")
    members = pd.read_parquet(folder / "members.parquet")
    private = synth.caseload(len(households), json.loads((folder / "data.json").read_text())[
        "seed"]).members  # the same members in the same order, with ID numbers and names
    cipher = load_field_cipher()
    members = members.assign(
        token_key_id=settings.token_key_id,
        id_number_enc=[cipher.encrypt(v, "members.id_number") for v in private["id_number"]],
        name_enc=[cipher.encrypt(v, "members.name") for v in private["name"]],
        id_masked=[mask_id(v) for v in private["id_number"]],
        name_masked=[mask_name(v) for v in private["name"]],
        exclusion="", disability_grade=0, disability_type="", labour_capacity=True)
    with session_scope(settings.database_url) as session:
        ensure_partners(session)  # once, before feeds are taken in on parallel processes
        connection = session.connection()
        bulk.insert_frame(connection, Household.__table__, households)
        bulk.insert_frame(connection, Member.__table__, members)
        bulk.refresh_statistics(connection, (Household.__table__, Member.__table__))
    return time.perf_counter() - started


# ---- stage tasks (run in the worker processes) ---------------------------------------------
def _intake_task(settings, partner: str, kind: str, path: str, sequence: int) -> dict:  # noqa: ANN001
    from verification.intake import feeds as intake
    from verification.synthetic.exchange import ensure_test_keys

    clocks = _begin()
    centre = ensure_test_keys(settings)
    feed_id = intake.register_feed(settings, partner, kind, _period(), sequence, Path(path))
    result = intake.process_feed(settings, feed_id, centre.keyring, centre.trusted)
    if result.status != "accepted":
        raise RuntimeError(f"{kind}: rejected: {result.reason}")
    return _end(clocks, kind=kind, received=result.received, accepted=result.accepted,
                quarantined=result.quarantined)


def _period() -> str:
    import synth

    return synth.PERIOD


def _prepare_task(settings, run_key: str) -> dict:  # noqa: ANN001
    import pyarrow.parquet as pq

    from verification import pipeline

    clocks = _begin()
    run_id = pipeline.start_review(settings, run_key, AS_OF)
    plan = pipeline.prepare_evidence(settings, run_id)
    out = _end(clocks, run_id=run_id, shards=plan.shards)
    out["evidence_rows"] = sum(pq.ParquetFile(p).metadata.num_rows for p in
                               pipeline.run_dir(settings, run_id).glob("evidence*.parquet"))
    return out


def _shard_task(settings, run_id: int, shard: str) -> dict:  # noqa: ANN001
    from verification import pipeline

    clocks = _begin()
    folder = pipeline.review_shard(settings, run_id, shard)
    return _end(clocks, dir=folder)


def _finish_task(settings, run_id: int, dirs: list[str]) -> dict:  # noqa: ANN001
    from verification import pipeline
    from verification.storage import evidence_files

    timings: dict[str, dict] = {}
    owners = {name: (pipeline if table != "flag_evidence_file"
                     else evidence_files.RunEvidenceWriter)
              for name, table in TIMED_WRITES.items()}
    originals = {name: getattr(owner, name) for name, owner in owners.items()}
    for name, owner in owners.items():
        setattr(owner, name, _timed(originals[name], TIMED_WRITES[name], timings))
    try:
        clocks = _begin()
        counts = pipeline.finish_review(settings, run_id, dirs)
        return _end(clocks, counts=counts, writes=timings)
    finally:
        for name, owner in owners.items():
            setattr(owner, name, originals[name])


# the writes of finish_review timed one by one: the function (or method) → what it writes
TIMED_WRITES = {"_insert_assessments": "assessments", "_insert_flags": "flags",
                "_insert_reasons": "flag_reasons", "write": "flag_evidence_file"}


def _timed(function, table: str, timings: dict):  # noqa: ANN001, ANN202
    """Wrap a write of finish_review: seconds and rows per table (or file) written."""
    def wrapper(first, *args):  # noqa: ANN001, ANN202 (the session, or the evidence writer)
        frame = next(a for a in args if isinstance(a, pd.DataFrame | pa.Table))
        started = time.perf_counter()
        out = function(first, *args)
        done = timings.setdefault(table, {"rows": 0, "seconds": 0.0})  # once per shard
        done["rows"] += len(frame)
        done["seconds"] += time.perf_counter() - started
        return out
    return wrapper


def _reports_task(settings, run_id: int) -> dict:  # noqa: ANN001
    clocks = _begin()
    try:
        from verification.reports import write_run_reports
    except ImportError as err:  # the reports module is being reworked: say so, go on
        return _end(clocks, error=f"{type(err).__name__}: {err}")
    out = write_run_reports(settings, run_id)
    return _end(clocks, dir=str(out))


def warm_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` spawned worker processes with the stages' modules imported (not timed)."""
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"))
    pids = set()
    while len(pids) < jobs:  # each worker imports once; keep asking until all have
        pids |= {f.result() for f in [pool.submit(_warm) for _ in range(jobs * 2)]}
    return pool


def run_review(settings, meta: dict, pool: ProcessPoolExecutor, jobs: int,  # noqa: ANN001
               reports: bool = True, until: str = "") -> dict[str, Stage]:
    """Intake → matching → assessment + flags → database write → reports; one Stage each."""
    stages: dict[str, Stage] = {}
    sequence = int(_period().replace("-", ""))
    started = time.perf_counter()
    feeds = sorted(meta["feeds"].items(), key=lambda kv: -kv[1]["rows"])  # largest first
    futures = [pool.submit(_intake_task, settings, f["partner"], kind, f["path"], sequence)
               for kind, f in feeds]
    results = [f.result() for f in futures]
    stages["intake"] = Stage(
        "intake", time.perf_counter() - started, sum(r["cpu"] for r in results),
        max(r["peak"] for r in results), sum(r["received"] for r in results), jobs,
        {r["kind"]: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}
         for r in results})

    if until == "intake":
        return stages
    started = time.perf_counter()
    prepared = pool.submit(_prepare_task, settings, f"bench-{uuid.uuid4().hex[:6]}").result()
    stages["matching"] = Stage("matching", time.perf_counter() - started, prepared["cpu"],
                               prepared["peak"], stages["intake"].records,
                               detail={"evidence_rows": prepared["evidence_rows"]})
    run_id, shards = prepared["run_id"], prepared["shards"]
    if until == "matching":
        return stages

    started = time.perf_counter()
    done = [f.result() for f in [pool.submit(_shard_task, settings, run_id, shard)
                                 for shard in shards]]
    stages["assessment_flags"] = Stage(
        "assessment_flags", time.perf_counter() - started, sum(s["cpu"] for s in done),
        max(s["peak"] for s in done), meta["households"], jobs, {"shards": len(done)})

    started = time.perf_counter()
    finished = pool.submit(_finish_task, settings, run_id, [s["dir"] for s in done]).result()
    rows = sum(w["rows"] for w in finished["writes"].values())
    stages["database_write"] = Stage("database_write", time.perf_counter() - started,
                                     finished["cpu"], finished["peak"], rows,
                                     detail={"counts": finished["counts"],
                                             "writes": finished["writes"]})

    started = time.perf_counter()
    reported = pool.submit(_reports_task, settings, run_id).result() if reports else {
        "cpu": 0.0, "peak": 0.0, "error": "not timed (run with --reports)"}
    stages["reports"] = Stage("reports", time.perf_counter() - started, reported["cpu"],
                              reported["peak"], 0 if "error" in reported else
                              sum(finished["counts"].values()),
                              detail={"error": reported["error"]} if "error" in reported
                              else None)
    e2e = [stages[k] for k in ("intake", "matching", "assessment_flags", "database_write")]
    stages["end_to_end"] = Stage("end_to_end", sum(s.seconds for s in e2e),
                                 sum(s.cpu_seconds for s in e2e),
                                 max(s.peak_rss_mb for s in e2e), stages["intake"].records,
                                 jobs, {"households": meta["households"]})
    return stages


# ---- components and the DuckDB reference ---------------------------------------------------------
def _components_task(settings, folder: str, feeds: dict | None = None) -> dict:  # noqa: ANN001
    """Matching, assessment and flags on the whole caseload in memory, and the DuckDB query;
    wall and CPU seconds of each (CPU: this process, DuckDB's threads included)."""
    import pyarrow.parquet as pq
    from sqlalchemy import select

    from schemas import contract_for
    from verification import pipeline
    from verification.assessment.assess import assess
    from verification.assessment.evidence import evidence_from_staged
    from verification.assessment.policy import load_parameters
    from verification.flags.decide import decide_flags
    from verification.matching import RosterIndex, match_exact
    from verification.storage import session_scope
    from verification.storage.models import Feed

    clocks = _begin()
    if feeds is None:
        with session_scope(settings.database_url) as session:
            feeds = {f.kind: (f.id, f.staged_path) for f in session.scalars(
                select(Feed).where(Feed.status == "accepted"))}
    households = pd.read_parquet(Path(folder) / "households.parquet")
    members = pd.read_parquet(Path(folder) / "members.parquet").assign(
        counted=True, exclusion="", disability_grade=0, disability_type="", labour_capacity=True)
    staged = {kind: pd.read_parquet(path) for kind, (_, path) in feeds.items()}
    arrow = {kind: pq.read_table(path) for kind, (_, path) in feeds.items()}
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name: str, function, *args, **kwargs):  # noqa: ANN001, ANN202
        wall, used = time.perf_counter(), _cpu()
        out = function(*args, **kwargs)
        times[name], cpu[name] = time.perf_counter() - wall, _cpu() - used
        return out

    evidence = timed("evidence", lambda: pd.concat(
        [evidence_from_staged(frame, contract_for(kind), feeds[kind][0])
         for kind, frame in staged.items()],
        ignore_index=True))
    matched = timed("matching", match_exact, evidence,
                    RosterIndex(members[["person_token", "household_id"]]))
    versions = {k: {"feed_id": i, "period": _period(), "received_at": "2026-11-01T00:00:00"}
                for k, (i, _) in feeds.items()}
    sources = pipeline.sources_frame(versions)
    parameters = load_parameters()
    result = timed("assessment", assess, households, members, matched, sources, parameters,
                   AS_OF)
    extra = {"policy": parameters.at(REGION, AS_OF)} if "policy" in inspect.signature(
        decide_flags).parameters else {}
    if "citations" in inspect.signature(decide_flags).parameters:
        extra["citations"] = result.citations
    frames = timed("flags", decide_flags, households, result.results, result.reasons, matched,
                   AS_OF, **extra)
    reference = timed("duckdb", duckdb_reference, arrow, members,
                      parameters.at(REGION, AS_OF))[0]
    check = compare(result.results, reference)
    ours = times["evidence"] + times["matching"] + times["assessment"]
    ours_cpu = cpu["evidence"] + cpu["matching"] + cpu["assessment"]
    return _end(clocks, times=times, cpu_times=cpu, ours_seconds=ours, ratio=ours / times[
        "duckdb"], ours_cpu=ours_cpu, cpu_ratio=ours_cpu / max(cpu["duckdb"], 1e-9), check=check,
                evidence_rows=len(evidence), matched_rows=len(matched),
                flag_rows=len(frames.flags), reason_rows=len(frames.reasons))


def staged_feeds(folder: Path) -> dict:
    """kind → (feed id, staged path) of an earlier run's staging folder (kinds by contract)."""
    import pyarrow.parquet as pq

    from schemas import feed_kinds, field_names

    found = {}
    for path in sorted(folder.glob("home-*/staging/feed-*.parquet")):
        if not path.stem.split("-")[1].isdigit():  # a digest file, the re-check bench's copy
            continue
        columns = set(pq.read_schema(path).names)
        for kind in feed_kinds():
            # intake stages neither the ID number nor the name, address or phone as text
            wanted = set(field_names(kind)) - {"id_number", "name", "address", "phone"}
            if wanted <= columns and kind not in found:
                found[kind] = (int(path.stem.split("-")[1]), str(path))
                break
    return found


def duckdb_reference(staged: dict, members: pd.DataFrame, policy) -> tuple[pd.DataFrame, float]:  # noqa: ANN001
    """The same join and per-household sums as one DuckDB query over the staged feeds."""
    import duckdb

    window = int(policy.value("income.look_back_months"))
    last = (AS_OF.year - 1970) * 12 + AS_OF.month - 2
    first = last - window + 1
    counted = _sql_list(policy.value("income.counted_items"))
    # a 特困 household's own test leaves tekun.extra_excluded_items out: both sums are kept,
    # compare() takes the one of the category the assessment decided
    tekun_counted = _sql_list(sorted(set(policy.value("income.counted_items"))
                                     - set(policy.value("tekun.extra_excluded_items") or [])))
    transfer = _sql_list(policy.value("income.transfer_spending_items") or ["-"])
    financial = _sql_list(policy.value("assets.financial_items"))
    exempt = _sql_list(policy.value("vehicles.exempt_items"))
    # a registration held by a member with a valid 残联 certificate of grade 1..N is not counted
    grade_max = int(policy.value("business.exempt_disability_grade_max") or 0)
    month = "((year({0}) - 1970) * 12 + month({0}) - 1)"
    connection = duckdb.connect()
    connection.execute("SET threads TO 2")
    for kind, table in staged.items():
        connection.register(kind, table)
    connection.register("members", members[["household_id", "person_token", "counted"]])
    sql = f"""
        with ev as (
            select person_token, 'wage' as item, wage_amount as amount,
                   period as s, period as e from wages where wage_amount is not null
            union all select person_token, 'si_contribution', si_contribution, period, period
                   from wages where si_contribution is not null
            union all select person_token, benefit_type, amount, period, period from pensions
            union all select person_token, account_type, balance, as_of, as_of from deposits
            union all select person_token, property_use, 0, registered_on, registered_on
                   from real_estate
            union all select person_token, vehicle_type, 0, registered_on, registered_on
                   from vehicles where status = 'active'
            union all select person_token, 'business', 0, registered_on, registered_on
                   from business where status = 'active' and person_token not in (
                       select person_token from disability where status = 'valid'
                       and person_token is not null and disability_grade between 1 and {grade_max})
            union all select person_token, 'death', 0, date_of_death, date_of_death from deaths
            union all select person_token, income_category, taxable_income, period, period
                   from tax
            union all select person_token, 'income_tax', tax_paid, period, period
                   from tax where tax_paid is not null
            union all select person_token, payment_type, amount, period, period from subsidies
            union all select person_token, 'special_care', amount, period, period
                   from special_care
        )
        select m.household_id,
          coalesce(sum(ev.amount * greatest(0, least({month.format('ev.e')}, {last})
                   - greatest({month.format('ev.s')}, {first}) + 1))
                   filter (where ev.item in ({counted})), 0) / {window} as income_monthly,
          coalesce(sum(ev.amount * greatest(0, least({month.format('ev.e')}, {last})
                   - greatest({month.format('ev.s')}, {first}) + 1))
                   filter (where ev.item in ({tekun_counted})), 0) / {window}
                   as tekun_income_monthly,
          coalesce(sum(ev.amount * greatest(0, least({month.format('ev.e')}, {last})
                   - greatest({month.format('ev.s')}, {first}) + 1))
                   filter (where ev.item in ({transfer})), 0) / {window} as transfer_monthly,
          coalesce(sum(ev.amount) filter (where ev.item in ({financial})
                   and ev.s <= DATE '{AS_OF}'), 0) as financial_assets,
          count(*) filter (where ev.item = 'home' and ev.s <= DATE '{AS_OF}') as homes,
          count(*) filter (where ev.item in ('car', 'truck', 'motorcycle', 'e_bike',
                   'disability_vehicle') and ev.item not in ({exempt})
                   and ev.s <= DATE '{AS_OF}') as vehicles,
          count(*) filter (where ev.item = 'business' and ev.s <= DATE '{AS_OF}') as businesses
        from ev join members m on m.person_token = ev.person_token and m.counted
        -- a member with a death dated on or before the as-of date has left the household
        -- (a funeral record, or the 户籍 deregistration: both are death records)
        where m.person_token not in (select person_token from deaths
                                     where person_token is not null
                                     and cast(date_of_death as date) <= DATE '{AS_OF}'
                                     union all
                                     select person_token from population
                                     where person_token is not null and event = 'death'
                                     and cast(event_date as date) <= DATE '{AS_OF}')
        group by m.household_id
    """
    started = time.perf_counter()
    frame = connection.execute(sql).df()
    seconds = time.perf_counter() - started
    return frame.set_index("household_id"), seconds


def _sql_list(values) -> str:  # noqa: ANN001
    return ", ".join(f"'{v}'" for v in values)


def compare(results: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """Largest difference per measure between the assessment and the DuckDB reference."""
    out = {}
    reference = reference.assign(income_monthly=reference["income_monthly"].where(
        results["category"].reindex(reference.index) != "tekun",
        reference["tekun_income_monthly"]))
    for column in ("income_monthly", "financial_assets", "homes", "vehicles", "businesses"):
        ours = results[column].astype(float)
        theirs = reference[column].reindex(ours.index).fillna(0).astype(float)
        out[column] = float((ours - theirs).abs().max())
    out["agree"] = bool(max(out.values()) < 0.01)
    out["households_with_evidence"] = int(len(reference))
    return out


# ---- reporting -----------------------------------------------------------------------------------
def print_stages(title: str, stages: dict[str, Stage]) -> None:
    print(f"\n{title}")
    print(f"{'stage':<18}{'records':>13}{'records/s':>13}{'seconds':>10}{'CPU s':>9}"
          f"{'peak RSS MiB':>14}{'procs':>7}")
    for stage in stages.values():
        print(f"{stage.name:<18}{stage.records:>13,}{stage.per_second:>13,.0f}"
              f"{stage.seconds:>10.1f}{stage.cpu_seconds:>9.1f}{stage.peak_rss_mb:>14,.0f}"
              f"{stage.processes:>7}")


def write_figures(out: Path, name: str, figures: dict) -> Path:
    """Write a benchmark's figures to ``out``/<UTC time>-<name>.json (the files the docs cite)."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = out / f"{stamp}-{name}.json"
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False, default=str))
    return path


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load_average": [round(x, 2) for x in
                                                              os.getloadavg()],
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1),
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def bench_one(households: int, args: argparse.Namespace) -> dict:
    meta = prepare_data(households, args.seed, args.workdir)
    print(f"\n== {households:,} households, {meta['persons']:,} persons, {meta['records']:,} "
          f"feed records (generated in {meta['generate_seconds']} s, packed in "
          f"{meta['pack_seconds']} s; load average {os.getloadavg()[0]:.1f})")
    figures: dict = {"data": meta, "machine": machine(), "databases": {}}
    folder = Path(meta["folder"])
    components_done = False
    pool = warm_pool(args.jobs)
    try:
        for database in args.databases:
            components_done = _bench_database(database, folder, meta, args, pool, figures,
                                              components_done)
    finally:
        pool.shutdown()
    return figures


def _bench_database(database: str, folder: Path, meta: dict, args: argparse.Namespace,  # noqa: PLR0913
                    pool: ProcessPoolExecutor, figures: dict, components_done: bool) -> bool:
    from verification.config import load_settings
    from verification.storage import upgrade
    from verification.storage.db import dispose
    from verification.synthetic.exchange import ensure_test_keys

    home = folder / f"home-{database}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    url, schema = fresh_database(database, home)
    try:
        settings = replace(load_settings(home), database_url=url)
        ensure_test_keys(settings)  # once, before the parallel intake workers read them
        upgrade(url)
        loaded = load_caseload(settings, folder)
        dispose(url)
        stages = run_review(settings, meta, pool, args.jobs,
                            args.reports and not args.skip_reports, args.until)
        print_stages(f"{database} (caseload written in {loaded:.1f} s)", stages)
        figures["databases"][database] = {
            "caseload_load_seconds": loaded,
            "stages": {k: {**v.__dict__, "per_second": v.per_second}
                       for k, v in stages.items()}}
        if not components_done and not args.skip_reference and not args.until:
            comp = pool.submit(_components_task, settings, str(folder)).result()
            figures["components"] = comp
            components_done = True
            _print_components(comp, meta["households"])
        if not args.skip_reference and not args.until and (
                database == "postgres" or args.databases == [database]):
            whole = pool.submit(_reference_task, settings, meta,
                                url if database == "postgres" else None).result()
            figures["databases"][database]["reference"] = whole
            _print_reference(whole, stages, database)
        if getattr(args, "keep", False) and not args.until:
            _keep_review(home, url, schema, meta, stages)
            schema = None  # kept: not dropped
    finally:
        drop_database(schema)
    return components_done


def _keep_review(home: Path, url: str, schema: str | None, meta: dict,
                 stages: dict[str, Stage]) -> None:
    """``--keep``: the reviewed home and database, recorded for bench/bench_reports.py
    ``--review`` (the reports, or single 核对报告, of this very review)."""
    import sqlalchemy as sa

    from verification.storage import session_scope
    from verification.storage.models import Run

    with session_scope(url) as session:
        run_id = int(session.execute(sa.select(sa.func.max(Run.id))).scalar_one())
    record = home / "review.json"
    record.write_text(json.dumps({
        "home": str(home), "database_url": url, "schema": schema, "run_id": run_id,
        "households": meta["households"], "seed": meta["seed"],
        "flags": stages["database_write"].detail["counts"]}, indent=1))
    print(f"review kept: {record} (drop it with DROP SCHEMA {schema} CASCADE)")


def _reference_task(settings, meta: dict, postgres_url: str | None) -> dict:  # noqa: ANN001
    import reference

    clocks = _begin()
    return _end(clocks, **reference.reference_review(settings, meta, AS_OF, REGION, postgres_url))


# our stage → the reference's (bench/reference.py)
REFERENCE_STAGES = {"intake": "intake", "matching": "matching_sums",
                    "assessment_flags": "category_flags", "database_write": "database_write"}


def _print_reference(whole: dict, stages: dict[str, Stage], database: str) -> None:
    ref = whole["stages"]
    print(f"\nthe whole review against the direct DuckDB reference (bench/reference.py), "
          f"{database}: CPU s, ours ÷ reference")
    ours_total = theirs_total = 0.0
    for ours, theirs in REFERENCE_STAGES.items():
        mine, other = stages[ours].cpu_seconds, ref[theirs]["cpu"]
        ours_total, theirs_total = ours_total + mine, theirs_total + other
        extra = (f"  (+ PostgreSQL {ref[theirs]['server_cpu']:.2f})"
                 if "server_cpu" in ref[theirs] else "")
        print(f"  {ours:<18}{mine:>9.2f}{other:>9.2f}{mine / max(other, 1e-9):>8.1f}×{extra}")
    print(f"  {'end_to_end':<18}{ours_total:>9.2f}{theirs_total:>9.2f}"
          f"{ours_total / max(theirs_total, 1e-9):>8.1f}×")
    intake = stages["intake"].detail or {}
    quarantined = sum(f.get("quarantined", 0) for f in intake.values())
    print(f"  quarantined rows: ours {quarantined:,}, reference "
          f"{sum(c['quarantined'] for c in whole['counts'].values()):,}; reference flags "
          f"{whole['flags']}")


def _print_components(comp: dict, households: int) -> None:
    t, c = comp["times"], comp.get("cpu_times", {})
    print(f"\nin one process, {households:,} households, {comp['evidence_rows']:,} evidence rows "
          f"({comp['matched_rows']:,} matched): wall s (CPU s)")
    for name in ("evidence", "matching", "assessment", "flags", "duckdb"):
        print(f"  {name:<12}{t[name]:>8.2f}  ({c.get(name, float('nan')):.2f})")
    check = comp["check"]
    print(f"  evidence + matching + assessment ÷ DuckDB: wall {comp['ratio']:.2f}×, CPU "
          f"{comp.get('cpu_ratio', float('nan')):.2f}×; sums agree: {check['agree']} "
          f"(largest differences: income {check['income_monthly']:.4f}, financial assets "
          f"{check['financial_assets']:.4f}, counts "
          f"{max(check['homes'], check['vehicles'], check['businesses']):.0f})")


# ---- database writes alone -----------------------------------------------------------------------
def _writes_task(database: str, home: str, rows: int, orm_rows: int) -> dict:
    """Flags, flag reasons and assessments for ``rows`` households written with
    verification.storage.bulk
    into a fresh database, and ``orm_rows`` of them the ORM way for comparison."""
    from sqlalchemy import insert

    from verification.storage import bulk, session_scope, upgrade
    from verification.storage.models import Flag, FlagReason, Household, Run

    url, schema = fresh_database(database, Path(home))
    try:
        upgrade(url)
        rng = np.random.default_rng(1)
        households = pd.DataFrame({
            "id": np.arange(1, rows + 1), "household_code": [f"H{i}" for i in range(rows)],
            "area_code": "210112", "street_code": "210112001", "community_code": "210112001001",
            "status": "recipient"})
        with session_scope(url) as session:
            bulk.insert_frame(session.connection(), Household.__table__, households)
            runs = [Run(run_key=k, as_of=AS_OF, region=REGION) for k in ("bulk", "orm")]
            session.add_all(runs)
            session.flush()
            run_ids = [r.id for r in runs]
        flags = pd.DataFrame({
            "run_id": run_ids[0], "household_id": households["id"],
            "kind": rng.choice(np.array(["KEEP", "REMOVE", "REVIEW", "ADD"]), rows),
            "street_code": "210112001", "community_code": "210112001001",
            "due_date": [AS_OF] * rows, "evidence_digest": [f"{i:064x}" for i in range(rows)],
            "policy_version": "policy-bench"})
        out = {}
        clocks = _begin()
        with session_scope(url) as session:
            server = _server_cpu(session)
            bulk.insert_frame(session.connection(), Flag.__table__, flags)
            server = _server_cpu(session) - server
        out["flags_bulk"] = _end(clocks, rows=rows, server_cpu=server)
        with session_scope(url) as session:
            _, ids = bulk.fetch_pairs(session.connection(), select_flags(run_ids[0]))
        reasons = pd.DataFrame({"flag_id": np.repeat(ids, 2), "code": "INCOME_OVER_STANDARD",
                                "detail": bulk.json_objects(pd.DataFrame({
                                    "value": rng.gamma(2, 500, 2 * rows).round(2),
                                    "limit": 800.0, "parameter": "dibao.standard",
                                    "reference": "沈阳市民政局〔2025〕",
                                    "evidence_refs": "wages:1:WA0000000001"}))})
        clocks = _begin()
        with session_scope(url) as session:
            bulk.insert_frame(session.connection(), FlagReason.__table__, reasons)
        out["flag_reasons_bulk"] = _end(clocks, rows=len(reasons))
        orm = flags.iloc[:orm_rows].assign(run_id=run_ids[1]).to_dict("records")
        clocks = _begin()
        with session_scope(url) as session:
            session.execute(insert(Flag), orm)
        out["flags_orm"] = _end(clocks, rows=len(orm))
        return out
    finally:
        drop_database(schema)


def _server_cpu(session) -> float:  # noqa: ANN001
    """CPU seconds used so far by this session's PostgreSQL backend (same host: /proc), or 0."""
    if session.connection().dialect.name != "postgresql":
        return 0.0
    from sqlalchemy import text

    return backend_cpu(session.execute(text("select pg_backend_pid()")).scalar())


def backend_cpu(pid: int) -> float:
    """CPU seconds used so far by the PostgreSQL backend ``pid`` (same host: /proc), or 0."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def select_flags(run_id: int):  # noqa: ANN201
    from sqlalchemy import select

    from verification.storage.models import Flag

    return select(Flag.household_id, Flag.id).where(Flag.run_id == run_id)


def bench_writes(rows: int, args: argparse.Namespace) -> dict:
    home = args.workdir / f"writes-{rows}"
    home.mkdir(parents=True, exist_ok=True)
    figures: dict = {"machine": machine(), "rows": rows, "databases": {}}
    print(f"\n== database writes: {rows:,} flags, {2 * rows:,} flag reasons "
          f"(wall rows/s, and rows per second of this process's CPU)")
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        for database in args.databases:
            result = pool.submit(_writes_task, database, str(home), rows,
                                 min(rows, 100_000)).result()
            figures["databases"][database] = result
            for name, r in result.items():
                cpu = r["cpu"] + r.get("server_cpu", 0.0)
                print(f"  {database:<9}{name:<19}{r['rows']:>11,} rows {r['seconds']:>7.1f} s "
                      f"{r['rows'] / r['seconds']:>11,.0f} rows/s  "
                      f"{r['rows'] / max(r['cpu'], 1e-9):>11,.0f} rows/client-CPU-s"
                      + (f"  {r['rows'] / max(cpu, 1e-9):>9,.0f} rows/CPU-s with the server"
                         if r.get("server_cpu") else ""))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--series", default="",
                        help="comma-separated household counts, e.g. 100000,300000,1000000")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--jobs", type=int, default=2, help="processes for intake and shards")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--chart", type=Path, default=None, help="PNG of the scaling series")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--reference-only", action="store_true",
                        help="only the in-process components and the DuckDB reference, on the "
                             "staged feeds of an earlier run of this size")
    parser.add_argument("--writes", type=int, default=0,
                        help="only the database writes: this many flags (and twice as many "
                             "reasons) in bulk, 100,000 through the ORM for comparison")
    parser.add_argument("--reports", action="store_true",
                        help="also time the per-street reports (CSV, XLSX, charts; slow: "
                             "about 12 ms of CPU per household on this machine)")
    parser.add_argument("--skip-reports", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true",
                        help="keep the reviewed database and write <home>/review.json "
                             "(bench/bench_reports.py --review reuses it)")
    parser.add_argument("--until", choices=["intake", "matching"], default="",
                        help="stop after this stage (a partial run: no end-to-end figure)")
    args = parser.parse_args(argv)
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if args.reference_only:
        folder = args.workdir / f"n{args.households}-s{args.seed}"
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            comp = pool.submit(_components_task, None, str(folder),
                               staged_feeds(folder)).result()
        _print_components(comp, args.households)
        write_figures(args.out, f"reference-n{args.households}",
                      {"machine": machine(), "components": comp})
        return 0
    if args.writes:
        write_figures(args.out, f"writes{args.writes}", bench_writes(args.writes, args))
        return 0
    sizes = [int(s) for s in args.series.split(",") if s] or [args.households]
    runs = {}
    for households in sizes:
        figures = bench_one(households, args)
        runs[households] = figures
        print(f"figures written to {write_figures(args.out, f'n{households}', figures)}")
    if len(sizes) > 1:
        import scaling

        scaling.report(runs, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
