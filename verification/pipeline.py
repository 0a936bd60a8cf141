"""The service layer: the functions the CLI and the Airflow tasks both call.

Between steps only ids and paths travel (Airflow XCom stays small); frames go through Parquet
files under ``var/runs/<run_id>/``. Every step is idempotent: a review is keyed by ``run_key``,
rerunning any step replaces its own output, and finishing a run replaces the run's rows in one
transaction, so a rerun never duplicates anything.

    pull_partner      partner → feeds accepted or rejected (connectors + intake)
    start_review      pick the latest accepted feed per kind and the policy version
    prepare_evidence  staged rows → evidence matched to households (once per run)
    review_shard      one street, or a part of a large one: assess + flags → Parquet
    finish_review     shards → database, in one transaction
    write_reports     database → per-street/community reports
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import delete, select

from connectors.digests import sha256_file
from connectors.http_pull import FeedListing, PartnerClient
from connectors.keys import CentreKeyring, PartnerDirectory
from connectors.registry import delivered_kinds, load_partners
from schemas import Contract, contract_for
from verification import tasklog
from verification.assessment.assess import assess
from verification.assessment.evidence import (
    empty_evidence,
    evidence_from_staged,
    evidence_table,
    staged_columns,
)
from verification.assessment.policy import load_parameters
from verification.config import Settings
from verification.flags import actions as flag_actions
from verification.flags.decide import decide_flags
from verification.flags.signals import lodgers_of
from verification.intake import feeds as intake
from verification.intake.digests import digest_columns
from verification.intake.tokens import TokenKey
from verification.localtime import local_today
from verification.matching import GRADE_DTYPE
from verification.matching.run import (
    RunMatch,
    match_staged,
    people_for_matching,
    rows_of_tokens,
)
from verification.memory import release_freed_memory
from verification.security import audit
from verification.shards import Shard, plan_shards, shard_names, street_of
from verification.storage import bulk, evidence_files, session_scope
from verification.storage.models import (
    Assessment,
    Feed,
    Flag,
    FlagReason,
    Household,
    Member,
    Partner,
    Run,
    utcnow,
)

if TYPE_CHECKING:  # the hook module imports Airflow's SDK; only the partner DAG's task needs it
    from connectors.hooks import DropFolder

log = logging.getLogger(__name__)
DEFAULT_REGION = "210112"


# ---- partner feeds -----------------------------------------------------------------------------
def pull_partner(settings: Settings, partner: str, client: PartnerClient,
                 keyring: CentreKeyring | None = None,
                 trusted: PartnerDirectory | None = None,
                 now: dt.datetime | None = None) -> list[intake.IntakeResult]:
    """Pull every new feed of ``partner``, take it in, and send the partner its receipt.

    Resumable (verification/intake/feeds.py, "the state machine"): feeds an interrupted pull left
    ``received`` are taken in first, receipts still owed are sent, then the listing is read
    from the last *accepted* sequence — so a feed not yet taken in, or rejected and sent again,
    is offered again. An accepted sequence is never replaced; a listing far past the expected
    sequence or period is refused with an alert and downloaded never (it blocks nothing)."""
    keyring = keyring or CentreKeyring.load(settings.keys_dir)
    trusted = trusted or PartnerDirectory.load(settings.keys_dir)
    results = intake.resume_pending(settings, keyring, trusted, partner, now)
    for kind in load_partners()[partner].feeds:
        for owed in intake.unsent_receipts(settings, partner, kind):
            _send_receipt(settings, client, owed)
            results.append(owed)
        after = intake.last_accepted_sequence(settings, partner, kind)
        for listing in client.list_feeds(kind, after=after):
            result = _take_listing(settings, partner, client, listing, after, keyring, trusted,
                                   now)
            if result is not None:
                results.append(result)
    outcomes = _last_outcome_per_feed(results)
    tasklog.feeds_taken_in(partner, outcomes)
    return outcomes


def _take_listing(settings: Settings, partner: str, client: PartnerClient, listing: FeedListing,
                  after: int, keyring: CentreKeyring, trusted: PartnerDirectory,
                  now: dt.datetime | None) -> intake.IntakeResult | None:
    """One listed feed: refused, already taken in (its receipt sent again), or downloaded,
    registered, taken in and acknowledged."""
    known = intake.known_feed(settings, partner, listing.kind, listing.sequence)
    today = (now or dt.datetime.now(dt.UTC)).date()
    if known is None and (problem := intake.listing_problem(
            settings.intake, listing.sequence, listing.period, after, today)):
        _alert_listing(settings, partner, listing, problem)
        return None
    if known is not None and known.status != "received" and (
            known.envelope_sha256 == listing.sha256):
        # the same bytes again: the same answer, not taken in twice; a rejection already told
        # is no news (the partner corrects it by sending other bytes, or a later sequence)
        if known.receipt_sent:
            return intake.feed_result(settings, known.feed_id) if (
                known.status == "accepted") else None
        result = intake.feed_result(settings, known.feed_id)
        _send_receipt(settings, client, result)
        return result
    if known is not None and known.status == "accepted":
        _alert_listing(settings, partner, listing,
                       f"AcceptedSequence: {listing.kind} sequence {listing.sequence} was "
                       "already accepted with other content and is never replaced; send new "
                       "data under a higher sequence number")
        return None
    # named by content too: a rejected file stays as it was when the partner sends it again
    raw = settings.feeds_dir / partner / (
        f"{listing.kind}-{listing.sequence}-{listing.sha256[:16]}.hedui")
    if not (raw.exists() and sha256_file(raw) == listing.sha256):
        client.download(listing, raw)
    feed_id = intake.register_feed(settings, partner, listing.kind, listing.period,
                                   listing.sequence, raw, now)
    result = intake.process_feed(settings, feed_id, keyring, trusted)
    _send_receipt(settings, client, result)
    return result


def _send_receipt(settings: Settings, client: PartnerClient, result: intake.IntakeResult) -> None:
    """Tell the partner; recorded as sent only once the partner took it (else the next pull
    sends it again)."""
    client.send_receipt(result.kind, result.sequence, result.receipt())
    intake.mark_receipt_sent(settings, result.feed_id)


def _alert_listing(settings: Settings, partner: str, listing: FeedListing, problem: str) -> None:
    from verification.alerts import raise_alert

    raise_alert(settings, "feed.listing_refused", f"partner:{partner}",
                {"partner": partner, "kind": listing.kind, "sequence": listing.sequence,
                 "period": listing.period, "reason": problem})


def _last_outcome_per_feed(results: list[intake.IntakeResult]) -> list[intake.IntakeResult]:
    """One result per feed (a feed resumed and then listed again is one feed), in order."""
    latest = {r.feed_id: r for r in results}
    return [latest[feed_id] for feed_id in dict.fromkeys(r.feed_id for r in results)]


class FeedRejected(RuntimeError):
    """At least one feed was rejected as a whole; it is recorded, and this alerts operators."""


def pull_and_report(settings: Settings, partner: str, client: PartnerClient) -> list[dict]:
    """``pull_partner`` for a scheduled task: small summaries back, an error if any feed was
    rejected (so the task fails and alerts, and no Asset update claims new data)."""
    results = pull_partner(settings, partner, client)
    summaries = [r.__dict__ for r in results]
    rejected = [r for r in results if r.status == "rejected"]
    if rejected:
        raise FeedRejected("; ".join(f"{r.kind} #{r.sequence}: {r.reason}" for r in rejected))
    return summaries


def scan_drop_and_report(settings: Settings, partner: str, drop: DropFolder) -> list[dict]:
    """For a partner DAG with ``transport: file_drop``: take in what is in the partner's drop
    folder (from its Airflow Connection, read by ``PartnerHook.drop_folder``). Returns small
    summaries; raises ``FeedRejected`` if any file was rejected (the task fails and alerts, as
    for HTTP pull)."""
    from verification.intake.file_drop import scan_drop_folder

    results = scan_drop_folder(settings, drop.root, partner, require_marker=drop.require_marker)
    tasklog.feeds_taken_in(partner, results)
    rejected = [r for r in results if r.status != "accepted"]
    if rejected:
        raise FeedRejected("; ".join(f"{r.file}: {r.reason}" for r in rejected))
    return [asdict(r) for r in results]


def take_in_new_feeds(settings: Settings, partner: str) -> list[dict]:
    """What a partner's scheduled DAG does, by the transport in connectors/partners.yaml:
    ``http_pull`` pulls over the Connection's endpoint, ``file_drop`` takes in the files dropped
    in the Connection's folder; a ``query_list`` partner is asked by batch checks, so there is
    nothing to fetch on a schedule."""
    spec = load_partners()[partner]
    if spec.transport == "query_list":
        log.info("partner %s answers query lists only; nothing to fetch", partner)
        return []
    from connectors.hooks import PartnerHook

    hook = PartnerHook(spec.conn_id)
    if spec.transport == "file_drop":
        return scan_drop_and_report(settings, partner, hook.drop_folder())
    return pull_and_report(settings, partner, hook.get_conn())


# ---- review ------------------------------------------------------------------------------------
def start_review_from_request(settings: Settings, params: dict, dag_run_id: str,
                              logical_date: dt.datetime | None) -> int:
    """Start a review from a DAG run's params: optional caseload file, as-of date, run key.

    Without a run key a scheduled run is keyed by its month (rerunning it replaces its results)
    and a manual run by its Airflow run id."""
    from verification.intake.roster import load_roster

    if params.get("roster_file"):
        load_roster(settings, Path(params["roster_file"]), actor="dynamic_review")
    if params.get("as_of"):
        as_of = dt.date.fromisoformat(params["as_of"])
    elif logical_date is not None:
        as_of = logical_date.date()
    else:
        as_of = dt.date.today()
    run_key = params.get("run_key") or (f"review-{as_of:%Y-%m}" if logical_date else dag_run_id)
    return start_review(settings, run_key, as_of)



@dataclass(frozen=True)
class RunPlan:
    run_id: int
    shards: list[str]


def start_review(settings: Settings, run_key: str, as_of: dt.date,
                 region: str = DEFAULT_REGION, kind: str = "review") -> int:
    """Create (or reset) the run ``run_key``: fixes the feed versions and the policy version."""
    policy = load_parameters().at(region, as_of)
    with session_scope(settings.database_url) as session:
        feeds = latest_feeds(session)
        run = session.scalar(select(Run).where(Run.run_key == run_key))
        if run is None:
            run = Run(run_key=run_key, as_of=as_of, region=region, kind=kind)
            session.add(run)
        run.as_of, run.status, run.stage, run.finished_at = as_of, "running", "started", None
        run.policy_version, run.feed_versions = policy.version, feeds
        session.flush()
        audit.record(session, "pipeline", "run.started", f"run:{run.id}",
                     {"run_key": run_key, "policy_version": policy.version,
                      "feeds": {k: v.get("feed_id") for k, v in feeds.items()}})
        run_id = run.id
    shutil.rmtree(run_dir(settings, run_id), ignore_errors=True)
    return run_id


def latest_feeds(session) -> dict[str, dict]:  # noqa: ANN001
    """Per feed kind: the newest accepted feed, or a note that none is available."""
    found: dict[str, dict] = {}
    # Registered partners only: an answer from another verification centre
    # (verification/intake/linkage.py)
    # covers a few persons and must never stand in for a partner's whole feed.
    rows = session.execute(select(Feed, Partner.code).join(Partner)
                           .where(Feed.status == "accepted",
                                  Partner.code.in_(sorted(load_partners())))
                           .order_by(Feed.kind, Feed.sequence.desc())).all()
    for feed, partner in rows:
        found.setdefault(feed.kind, {
            "feed_id": feed.id, "partner": partner, "sequence": feed.sequence,
            "period": feed.period, "digest": feed.plaintext_digest,
            "staged_path": feed.staged_path, "received_at": feed.received_at.isoformat(),
        })
    for kind in delivered_kinds():
        found.setdefault(kind, {"feed_id": None, "status": "missing"})
    return found


def mark_run_failed(settings: Settings, run_id: int, error: BaseException) -> None:
    """A run that stopped on an error is ``failed`` at the stage it reached (it stayed
    "running" for ever: a disk full, a killed process), audited with the error's kind; running
    the same run key again redoes it. Never raises: the original error is the one to show."""
    try:
        with session_scope(settings.database_url) as session:
            run = session.get(Run, run_id)
            if run is None or run.status == "done":
                return
            run.status, run.finished_at = "failed", utcnow()
            audit.record(session, "pipeline", "run.failed", f"run:{run_id}",
                         {"stage": run.stage, "error": type(error).__name__})
    except Exception:  # noqa: BLE001 (the database may be what failed)
        log.exception("could not mark run %s failed", run_id)


def run_dir(settings: Settings, run_id: int) -> Path:
    return settings.runs_dir / f"run-{run_id}"


def prepare_evidence(settings: Settings, run_id: int) -> RunPlan:
    """Staged rows of the run's feeds → evidence matched to members; returns the shards."""
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        versions = run.feed_versions
        run.stage = "matching"
    # Every staged row of the run's feeds matched to members in one pass (exact on the token,
    # the fallback on keyed name forms and birth date for rows whose ID is unusable or not on
    # the roster); only the narrow identity columns are read for it.
    key = TokenKey.from_settings(settings)
    feeds = [(kind, v["feed_id"], Path(v["staged_path"])) for kind, v in versions.items()
             if v.get("feed_id")]
    release_freed_memory()  # what the process freed before (a warm worker's earlier tasks)
    people = people_for_matching(settings, key)
    release_freed_memory()  # the roster's fetched rows and decrypted text, before the feeds'
    linked = match_staged([path for _, _, path in feeds], people, key)
    del people
    folder = run_dir(settings, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    _log_matching(run_id, linked, folder)
    linked.candidates([path for _, _, path in feeds], [feed_id for _, feed_id, _ in feeds]) \
        .to_parquet(folder / "candidates.parquet", index=False)
    linked.result = None  # the matcher's frames (the run's identities): the evidence needs none
    release_freed_memory()
    # Then one feed at a time, in blocks of staged rows, each block's evidence written out as
    # soon as it is built: a province's evidence is tens of millions of rows, and holding all of
    # it (or one whole wages feed as pandas frames) would need several times the memory.
    # each household's shard (new arrays: nothing of the households frame is kept)
    shard_of = plan_shards(load_households(settings)["street_code"], settings.shard_households)
    accessed, linked_rows = [], 0
    with _EvidenceWriter(folder / "evidence.parquet", shard_of) as writer:
        for i, (kind, feed_id, path) in enumerate(feeds):
            contract = contract_for(kind)
            links = linked.file_links(i)  # one feed's links at a time
            linked_rows += len(links)
            for staged in _linked_blocks(path, contract, links, writer.codes):
                matched = evidence_table(staged, contract, feed_id)
                del staged
                accessed.append(pd.DataFrame({"source_kind": kind, "person_token": pc.unique(
                    matched.column("person_token")).to_numpy()}))
                writer.write(matched)
            del links
            release_freed_memory()  # a feed's links and blocks, before the next feed's
        evidence_rows = writer.rows
    with session_scope(settings.database_url) as session:  # whose data was used, by token
        audit.record_evidence_access(
            session, "pipeline", f"run:{run_id}",
            pd.concat(accessed, ignore_index=True) if accessed else empty_evidence(),
            {k: v.get("partner", "") for k, v in versions.items()})
    shards = shard_names(shard_of)
    tasklog.evidence_matched(run_id, evidence_rows, linked_rows, linked.rows, len(shards))
    return RunPlan(run_id, shards)


def matched_evidence(settings: Settings, versions: dict[str, dict],
                     household_ids: list[int]) -> pd.DataFrame:
    """The evidence of a few households (a batch, a re-check), matched as a review matches it
    (verification/matching/run.py): the token where the record's own fields agree (certain),
    the fallback for rows whose ID is unusable — against these households' members only. Each
    feed is scanned once: its token column whole, the identity and evidence columns only of
    the rows of these members' tokens or with no token (``rows_of_tokens``)."""
    key = TokenKey.from_settings(settings)
    feeds = [(contract_for(kind), v["feed_id"], Path(v["staged_path"]))
             for kind, v in versions.items() if v.get("feed_id")]
    people = people_for_matching(settings, key, household_ids)
    parts = [_no_evidence()]
    if feeds and len(people):
        tokens = people["person_token"].to_numpy(dtype=np.int64)
        read = [rows_of_tokens(path, ["person_token", *digest_columns(contract)], tokens)
                for contract, _, path in feeds]
        linked = match_staged([path for _, _, path in feeds], people, key, prefilter=True,
                              prefiltered=read)
        for (contract, feed_id, _), (table, positions), links in zip(feeds, read, linked.links,
                                                                     strict=True):
            parts.append(evidence_from_staged(_rows_linked(table, positions, contract, links),
                                              contract, feed_id))
    return pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)


def _rows_linked(table: pa.Table, positions: np.ndarray, contract: Contract,
                 links: pd.DataFrame) -> pd.DataFrame:
    """Of the rows ``rows_of_tokens`` read (``positions``: their places in the file), those
    matching linked, with their evidence columns and the household, member token and grade it
    gave them — ``_linked_blocks`` for a few households, without reading the feed whole."""
    links = links.sort_values("row", kind="stable")
    at = np.searchsorted(positions, links["row"].to_numpy())
    wanted = [c for c in staged_columns(contract) if c in table.column_names]
    staged = table.select(wanted).take(pa.array(at, pa.int64())).to_pandas(
        types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return staged.assign(person_token=links["person_token"].to_numpy(),
                         household_id=links["household_id"].to_numpy(),
                         match_grade=pd.Categorical(links["match_grade"], dtype=GRADE_DTYPE))


def _no_evidence() -> pd.DataFrame:
    return empty_evidence().assign(household_id=pd.Series(dtype="int64"),
                                   match_grade=pd.Categorical([], dtype=GRADE_DTYPE))


def _log_matching(run_id: int, linked: RunMatch, folder: Path) -> None:
    """The matcher's run log (settings, fitted weights, counts by grade; no personal data),
    written beside the run's evidence and summarised in the log. candidates.parquet beside it
    holds, for every row sent to REVIEW, its candidates and why (``RunMatch.candidates``)."""
    record = {"rows": linked.rows, "identities": linked.identities,
              "id_owner_links": linked.id_owner_links,
              **(linked.result.run_log() if linked.result is not None else {})}
    (folder / "matching.json").write_text(json.dumps(record, indent=1, default=_plain), "utf-8")
    model = record.get("model") or {}
    log.info("run %s matching: %d staged rows, %d distinct identities, method %s, counts %s, "
             "%d linked to their ID's owner only (another name)", run_id, linked.rows,
             linked.identities, model.get("method", "-"), record.get("counts", {}),
             linked.id_owner_links)


def _plain(value: object) -> object:
    """JSON for the numpy values in a run log."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def review_shard(settings: Settings, run_id: int, shard: str) -> str:
    """Assess and flag the households of one shard (a street, or a part of a large street:
    verification/shards.py); writes Parquet, returns its folder."""
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        as_of, region, versions = run.as_of, run.region, run.feed_versions
    part = Shard.parse(shard)
    households = load_households(settings, street=part.street, id_span=part.span)
    # by join: no list of ids in the query
    members = load_members(settings, street=part.street, id_span=part.span)
    evidence = _shard_evidence(run_dir(settings, run_id) / "evidence.parquet", shard,
                               households.index)
    out = run_dir(settings, run_id) / f"shard-{shard}"
    assess_and_flag(settings, households, members, evidence, versions, as_of, region, out)
    kinds = pd.read_parquet(out / "flags.parquet", columns=["kind"])["kind"].value_counts()
    tasklog.households_checked(run_id, len(households), {str(k): int(n) for k, n in
                                                         kinds.items()}, street=shard)
    return str(out)


def assess_and_flag(settings: Settings, households: pd.DataFrame, members: pd.DataFrame,
                    evidence: pd.DataFrame, versions: dict[str, dict], as_of: dt.date,
                    region: str, out: Path) -> Path:
    """Assess households, turn unanswered 协查 requests into REVIEW, decide the flags, and write
    the four Parquet files ``finish_review`` reads into ``out`` (a shard of a review, or a
    batch)."""
    from verification.intake import linkage

    parameters = load_parameters()
    result = assess(households, members, evidence, sources_frame(versions), parameters, as_of)
    result = linkage.with_pending(settings, result, as_of)
    frames = decide_flags(households, result.results, result.reasons, evidence, as_of,
                          parameters.at(region, as_of), raised_on=max(as_of, local_today()),
                          citations=result.citations, lodgers=lodgers_of(members))
    out.mkdir(parents=True, exist_ok=True)
    # The frames assessed, kept beside the results: a policy simulation re-assesses exactly
    # these (docs/simulation.md) and the fairness audit groups flags by their members' traits
    # (docs/fairness.md). Tokens and codes only, as in staging.
    households.reset_index(names="household_id").to_parquet(out / "households.parquet")
    members.to_parquet(out / "members.parquet", index=False)
    result.results.reset_index(names="household_id").to_parquet(out / "assessments.parquet")
    frames.flags.to_parquet(out / "flags.parquet", index=False)
    frames.reasons.astype({"code": str, "parameter": str, "reference": str}).to_parquet(
        out / "flag_reasons.parquet", index=False)
    frames.evidence.to_parquet(out / "flag_evidence.parquet", index=False,
                               use_dictionary=evidence_files.dictionary_columns(
                                   frames.evidence.columns))
    unresolved_records(result.reasons).to_parquet(out / "unresolved.parquet", index=False)
    return out


UNRESOLVED_COLUMNS = ["household_id", "source_kind", "feed_id", "record_ref"]


def unresolved_records(reasons: pd.DataFrame) -> pd.DataFrame:
    """Records not certainly matched that would change nothing for the household they may
    belong to (MATCH_UNCERTAIN, passed false): listed for the run, raising no flag."""
    # the code compared as it is (assess gives a categorical: one comparison per category)
    uncertain = (reasons["code"] == "MATCH_UNCERTAIN").to_numpy()
    rows = reasons[uncertain & ~reasons["passed"].astype(bool).to_numpy()]
    listed = [(household, *ref.split(":", 2)) for household, refs in
              zip(rows["household_id"], rows["evidence_refs"].astype(str), strict=True)
              for ref in refs.split(";") if ref.count(":") >= 2]
    frame = pd.DataFrame(listed, columns=UNRESOLVED_COLUMNS)
    return frame.astype({"household_id": "int64", "source_kind": str, "record_ref": str})


def _write_unresolved(settings: Settings, run_id: int, shard_dirs: list[str],
                      versions: dict[str, dict]) -> dict[str, int]:
    """The run's unresolved-records file (no names, no ID numbers) and the count per feed kind,
    which goes on the run's feed versions (its summary)."""
    parts = [pd.read_parquet(Path(folder) / "unresolved.parquet") for folder in shard_dirs
             if (Path(folder) / "unresolved.parquet").exists()]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=UNRESOLVED_COLUMNS)
    folder = run_dir(settings, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "unresolved-records.csv", index=False, encoding="utf-8-sig")
    counts = {str(k): int(n) for k, n in frame["source_kind"].value_counts().items()}
    for kind, version in versions.items():
        version["unresolved"] = counts.get(kind, 0)
    return counts


# evidence.parquet holds the run's matched evidence in row groups that never cross shards; the
# shard → row ranges map in the file's metadata lets a shard read its own row groups instead of
# the whole province's evidence (a shard is a street or a part of one: verification/shards.py;
# the map's keys are shard names). Files written before evidence was streamed map a street to
# one [start, end] range; now each block written adds a range per shard.
_SHARD_RANGES = b"hedui.street_ranges"  # named when every shard was a street
# Staged rows turned into evidence at a time: bounds prepare_evidence's memory whatever the size
# of a feed (ten million wage rows at provincial scale).
EVIDENCE_BLOCK_ROWS = 2_000_000
# Rows per row group of evidence.parquet. A shard's rows of a block come sorted by household, so
# a group covers a narrow span of household ids: one household's 核对报告 on demand decodes the
# few groups whose statistics hold its id (a block's slice of a province's street part was one
# group of tens of thousands of rows, all decoded for one household), while a shard's own read
# still takes whole spans of groups.
HOUSEHOLD_GROUP_ROWS = 8_192


def _linked_blocks(path: Path, contract: Contract, links: pd.DataFrame,
                   group_of: Callable[[np.ndarray], np.ndarray]) -> Iterator[pa.Table]:
    """The staged rows of ``path`` that matching linked, with the household, member token and
    grade it gave them, in blocks of at most EVIDENCE_BLOCK_ROWS staged rows (Arrow: the
    staged text never becomes Python strings). Within a block the rows come grouped by
    ``group_of`` their household (the shard), in file order within a group: the evidence
    writer then needs no second gather — and by household within a group, in file order within
    a household (a stable sort): one household's rows then sit in one or two of the writer's
    small row groups per block, which a 核对报告 finds by their household-id statistics."""
    if not links["row"].is_monotonic_increasing:  # a review's links come in file order
        links = links.sort_values("row", kind="stable")
    rows = links["row"].to_numpy()
    source = pq.ParquetFile(path)
    wanted = [c for c in staged_columns(contract) if c in source.schema_arrow.names]
    first = 0
    for batch in source.iter_batches(batch_size=EVIDENCE_BLOCK_ROWS, columns=wanted):
        lo, hi = np.searchsorted(rows, [first, first + batch.num_rows])
        first += batch.num_rows
        if lo == hi:
            continue
        block = links.iloc[lo:hi]
        household = block["household_id"].to_numpy()
        block = block.iloc[np.lexsort((household, group_of(household)))]
        staged = pa.Table.from_batches([batch]).take(
            pa.array(block["row"].to_numpy() - (first - batch.num_rows)))
        staged = staged.set_column(staged.column_names.index("person_token"), "person_token",
                                   pa.array(block["person_token"].to_numpy(np.int64)))
        yield staged.append_column("household_id", pa.array(
            block["household_id"].to_numpy(np.int64))).append_column(
            "match_grade", pa.array(pd.Categorical(block["match_grade"], dtype=GRADE_DTYPE)))


class _EvidenceWriter:
    """Evidence frames appended to one Parquet file, each sorted by shard and written as row
    groups of at most HOUSEHOLD_GROUP_ROWS per shard (never across two); the shard → row ranges
    map goes in the file's metadata on close (``shard_of``: household id → shard name)."""

    def __init__(self, path: Path, shard_of: pd.Series) -> None:
        self.path, self.shard_of = path, shard_of
        self.names = np.array(sorted(shard_of.unique()), dtype=object)
        self.shard_code = np.searchsorted(self.names, shard_of.to_numpy())
        self.ranges: dict[str, list[list[int]]] = {}
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _EvidenceWriter:
        return self

    def write(self, table: pa.Table) -> None:
        """Append evidence items (``evidence_table``'s columns and the match's)."""
        if self._writer is None:  # the schema (pandas types included) of the usual columns
            self._writer = self._open()
        table = table.select(self._writer.schema.names).cast(self._writer.schema)
        code = self.codes(table.column("household_id").to_numpy())
        order = np.argsort(code, kind="stable")
        table = _reordered(table, order)
        codes, starts, sizes = np.unique(code[order], return_index=True, return_counts=True)
        for c, a, n in zip(codes, starts, sizes, strict=True):  # row groups never cross shards
            self._writer.write_table(table.slice(a, n), row_group_size=HOUSEHOLD_GROUP_ROWS)
            shard = str(self.names[c]) if c >= 0 else ""
            self.ranges.setdefault(shard, []).append([self.rows + int(a), self.rows + int(a + n)])
        self.rows += table.num_rows

    def _open(self) -> pq.ParquetWriter:
        schema = pa.Table.from_pandas(_no_evidence(), preserve_index=False).schema
        return pq.ParquetWriter(self.path, schema, use_dictionary=evidence_files.
                                dictionary_columns(schema.names))

    def codes(self, household_ids: np.ndarray) -> np.ndarray:
        """Each household's shard as a number in name order; -1: no household row."""
        position = self.shard_of.index.get_indexer(household_ids)
        return np.where(position >= 0, self.shard_code[position], -1)

    def __exit__(self, *exc: object) -> None:
        if self._writer is None:  # no evidence at all: an empty file with the usual columns
            self._writer = self._open()
        self._writer.add_key_value_metadata({_SHARD_RANGES: json.dumps(self.ranges).encode()})
        self._writer.close()


# beyond this many runs a gather is cheaper than concatenating slices
_MAX_SLICES = 1_000


def _reordered(table: pa.Table, order: np.ndarray) -> pa.Table:
    """``table.take(order)``, as slices where ``order`` is a few ascending runs (rows that came
    grouped already, as ``_linked_blocks`` gives them): gathering the text columns row by row
    was most of writing the evidence."""
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    if len(breaks) > _MAX_SLICES:
        return table.take(pa.array(order))
    starts = np.concatenate([[0], breaks]).astype(np.int64)
    ends = np.concatenate([breaks, [len(order)]]).astype(np.int64)
    if len(starts) == 1 and (not len(order) or order[0] == 0):
        return table
    return pa.concat_tables([table.slice(int(order[a]), int(b - a))
                             for a, b in zip(starts, ends, strict=True)])


def _shard_evidence(path: Path, shard: str, household_ids: pd.Index) -> pd.DataFrame:
    """The evidence of one shard's households from evidence.parquet: its own row groups when
    the file carries the shard map, else (a file written otherwise) a filtered read."""
    # the feed kind and the item: a few distinct values in millions of rows, read as codes
    source = pq.ParquetFile(path, read_dictionary=_CODED_EVIDENCE)
    groups = evidence_row_groups(source, shard)
    if groups is None:
        frame = pd.read_parquet(path, filters=[("household_id", "in", household_ids.tolist())])
    else:
        frame = (source.read_row_groups(groups) if groups else
                 source.schema_arrow.empty_table()).to_pandas(types_mapper=_ARROW_TEXT.get)
    keep = frame["household_id"].isin(household_ids).to_numpy()
    return frame if keep.all() else frame[keep]  # the shard's own groups: most often all rows


_ARROW_TEXT = {pa.string(): pd.StringDtype("pyarrow")}
_CODED_EVIDENCE = ["source_kind", "item"]


def evidence_row_groups(source: pq.ParquetFile, shard: str,
                        household_id: int | None = None) -> list[int] | None:
    """The row groups of evidence.parquet that hold the evidence of ``shard`` — a shard's name,
    or a street's code for every part of that street (with ``household_id``: only the part
    whose ids hold it, so one household's report reads a part of a large street, not all of
    it) — from the shard map in its metadata; None when the file has no map (then every row
    group may)."""
    metadata = {**(source.schema_arrow.metadata or {}), **(source.metadata.metadata or {})}
    ranges = json.loads(metadata.get(_SHARD_RANGES, b"null"))
    if ranges is None:
        return None
    wanted = []
    for key, spans in ranges.items():
        if key == shard or (street_of(key) == shard and _holds(key, household_id)):
            wanted += [spans] if spans and isinstance(spans[0], int) else spans  # older files
    if not wanted:
        return []
    # each span's groups by binary search on the groups' row offsets: a province's file has
    # thousands of groups and spans, and a 核对报告 on demand asks for one household's
    sizes = np.fromiter((source.metadata.row_group(i).num_rows
                         for i in range(source.num_row_groups)), np.int64, source.num_row_groups)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    spans = np.asarray(wanted, dtype=np.int64).reshape(-1, 2)
    spans = spans[spans[:, 1] > spans[:, 0]]
    low = np.searchsorted(ends, spans[:, 0], side="right")  # first group ending after the start
    high = np.searchsorted(starts, spans[:, 1], side="left")  # groups starting before the end
    groups = [np.arange(a, b) for a, b in zip(low, high, strict=True) if b > a]
    return np.unique(np.concatenate(groups)).tolist() if groups else []


def _holds(shard: str, household_id: int | None) -> bool:
    """Whether a shard (a street, or a part of one) may hold ``household_id`` (None: any)."""
    span = Shard.parse(shard).span
    return household_id is None or span is None or span[0] <= household_id <= span[1]


def sources_frame(versions: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for kind, v in versions.items():
        period_end = (pd.Period(v["period"], freq="M").end_time.normalize()
                      if v.get("period") else pd.NaT)
        rows.append({"source_kind": kind, "feed_id": v.get("feed_id"), "period_end": period_end,
                     "received_at": pd.Timestamp(v["received_at"]) if v.get("received_at")
                     else pd.NaT, "status": "accepted" if v.get("feed_id") else "missing"})
    return pd.DataFrame(rows).astype({"period_end": "datetime64[ns]",
                                      "received_at": "datetime64[ns]"})


def finish_review(settings: Settings, run_id: int, shard_dirs: list[str]) -> dict[str, int]:
    """Write every shard's results in one transaction, replacing the run's earlier rows."""
    counts: dict[str, int] = {}
    households = 0
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        # Officers' work on earlier flags (and on this run's, if it is a rerun) survives: a
        # flag on the same evidence comes back with its resolution, new evidence opens it.
        earlier = flag_actions.earlier_outcomes(session, run_id)
        session.execute(delete(Flag).where(Flag.run_id == run_id))
        session.execute(delete(Assessment).where(Assessment.run_id == run_id))
        # One shard's frames at a time (a province's flag evidence is tens of millions of rows),
        # all in this one transaction: a failed write still leaves nothing behind. The evidence
        # goes to the run's Parquet file (storage/evidence_files.py), moved into place and
        # recorded with its digest in this transaction.
        writer = evidence_files.RunEvidenceWriter(settings.home, run_id)
        try:
            for folder in shard_dirs:
                frames = {name: pq.read_table(Path(folder) / f"{name}.parquet").to_pandas(
                    types_mapper=_ARROW_TEXT.get)  # text stays Arrow up to COPY's CSV
                          for name in ("assessments", "flags", "flag_reasons")}
                _insert_assessments(session, run_id, frames["assessments"])
                coded = pd.read_parquet(Path(folder) / "households.parquet",
                                        columns=["household_id", "household_code"])
                flag_ids = _insert_flags(session, run, frames["flags"], coded)
                _insert_reasons(session, frames["flag_reasons"], flag_ids)
                writer.write(_evidence_rows(Path(folder) / "flag_evidence.parquet", flag_ids))
                for kind, n in frames["flags"]["kind"].value_counts().items():
                    counts[str(kind)] = counts.get(str(kind), 0) + int(n)
                households += len(frames["assessments"])
                del frames, flag_ids
        except BaseException:
            writer.abort()
            raise
        written = writer.finish()
        run.evidence_file = str(written.path.relative_to(settings.home))
        run.evidence_digest, run.evidence_rows = written.digest, written.rows
        counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
        kept_due = flag_actions.keep_first_due_dates(session, run)
        carried = flag_actions.carry_forward(session, run_id, earlier)
        versions = {kind: dict(version) for kind, version in run.feed_versions.items()}
        unresolved = _write_unresolved(settings, run_id, shard_dirs, versions)
        run.status, run.stage, run.finished_at = "done", "flagged", utcnow()
        run.households, run.counts, run.feed_versions = households, counts, versions
        tasklog.households_checked(run_id, households, counts)
        audit.record(session, "pipeline", "run.flagged", f"run:{run_id}",
                     {**counts, "carried_forward": carried, "kept_first_due_date": kept_due,
                      "unresolved_records": unresolved})
        run.audit_head = audit.chain_head(session)  # the anchor a cut-off tail cannot hold
        head = run.audit_head
    audit.append_anchor(settings.audit_anchor_file, audit.Anchor(head, f"run {run_id}"), run_id)
    from verification.fairness import write_fairness

    write_fairness(settings, run_id, shard_dirs)  # flag rates by group, beside the run's frames
    return counts


def _insert_assessments(session, run_id: int, frame: pd.DataFrame) -> None:  # noqa: ANN001
    """One row per household; the measures not in their own column go to ``details`` (JSON).
    Written in bulk (verification/storage/bulk.py): COPY on PostgreSQL, one executemany on
    SQLite."""
    if frame.empty:
        return
    frame = frame.reset_index(drop=True)
    detail_cols = [c for c in frame.columns if c not in (
        "household_id", "decision", "category", "benefit", "household_size", "per_capita_income",
        "financial_assets_per_capita")]
    rows = pd.DataFrame({
        "run_id": run_id, "household_id": frame["household_id"].astype("int64"),
        "decision": frame["decision"], "category": frame["category"],
        "benefit": _nums(frame["benefit"]),
        "household_size": frame["household_size"].astype("int64"),
        "per_capita_income": _nums(frame["per_capita_income"]),
        "financial_assets_per_capita": _nums(frame["financial_assets_per_capita"]),
        "details": bulk.json_objects(frame[detail_cols]),
    })
    bulk.insert_frame(session.connection(), Assessment.__table__, rows)


def _insert_flags(session, run: Run, flags: pd.DataFrame,  # noqa: ANN001
                  households: pd.DataFrame) -> dict[int, int]:
    """Flags in bulk, each with its household's code (``households``: id and code; the inbox
    sorts by it off an index); returns household_id → flag id for the flags written."""
    if len(flags):
        code = households.set_index("household_id")["household_code"]
        rows = pd.DataFrame({
            "household_code": code.reindex(flags["household_id"].astype("int64")).to_numpy(),
            "run_id": run.id, "household_id": flags["household_id"].astype("int64").to_numpy(),
            "kind": flags["kind"].to_numpy(), "street_code": flags["street_code"].to_numpy(),
            "community_code": flags["community_code"].to_numpy(),
            "due_date": flags["due_date"].to_numpy(),
            "evidence_digest": flags["evidence_digest"].to_numpy(),
            "policy_version": run.policy_version,
        })
        bulk.insert_frame(session.connection(), Flag.__table__, rows)
    # only this frame's streets and household ids: a review writes a shard (a street or a part
    # of one) at a time, and reading back every earlier shard's flags each time would grow with
    # the square of the shards written
    streets = sorted(flags["street_code"].astype(str).unique()) if len(flags) else []
    household_id = flags["household_id"].astype("int64")
    span = (int(household_id.min()), int(household_id.max())) if len(flags) else (0, -1)
    households, ids = bulk.fetch_pairs(session.connection(), select(Flag.household_id, Flag.id)
                                       .where(Flag.run_id == run.id,
                                              Flag.street_code.in_(streets),
                                              Flag.household_id.between(*span)))
    return dict(zip(households.tolist(), ids.tolist(), strict=True))


def _insert_reasons(session, frame: pd.DataFrame,  # noqa: ANN001
                     flag_ids: dict[int, int]) -> None:
    """Reasons of the run's flags, in bulk, keyed to their flag by household."""
    if frame.empty:
        return
    frame = frame.reset_index(drop=True)
    rows = pd.DataFrame({
        "flag_id": frame["household_id"].map(flag_ids).astype("int64"),
        "code": frame["code"].astype(object),
        "detail": bulk.json_objects(frame[["value", "limit", "parameter", "reference",
                                           "evidence_refs"]]),
    })
    bulk.insert_frame(session.connection(), FlagReason.__table__, rows)


def _evidence_rows(path: Path, flag_ids: dict[int, int]) -> pa.Table:
    """A shard's flag evidence (its ``flag_evidence.parquet``) keyed to its flags by household,
    as the run's file holds it; in Arrow from file to file (millions of record references)."""
    table = pq.read_table(path, columns=["household_id", *(
        c for c in evidence_files.COLUMNS if c != "flag_id")])
    households = pd.Index(np.fromiter(flag_ids.keys(), "int64", len(flag_ids)))
    at = households.get_indexer(table["household_id"].to_numpy())
    if (at < 0).any():
        raise ValueError("flag evidence for a household without a flag in this shard")
    ids = np.fromiter(flag_ids.values(), "int64", len(flag_ids))
    return table.append_column("flag_id", pa.array(ids[at], pa.int64()))


def _nums(values: pd.Series) -> pd.Series:
    """``_num`` over a column: missing → 0.0."""
    return pd.to_numeric(values, errors="coerce").astype("float64").fillna(0.0)


# ---- frames from the database ----------------------------------------------------------------
def load_households(settings: Settings, street: str | None = None,
                    household_ids: np.ndarray | None = None,
                    id_span: tuple[int, int] | None = None) -> pd.DataFrame:
    """Households, of one street (``id_span``: only those with ids in it, inclusive — a part of
    a large street) or of the given ids (a re-check's few), or all."""
    query = select(Household.id.label("household_id"), Household.household_code,
                   Household.area_code, Household.street_code, Household.community_code,
                   Household.status, Household.category, Household.urban_rural,
                   Household.current_benefit)
    if street:
        query = query.where(Household.street_code == street)
    if id_span is not None:
        query = query.where(Household.id.between(*id_span))
    with session_scope(settings.database_url) as session:
        connection = session.connection()
        if household_ids is None:
            frame = bulk.read_frame(connection, query)
        else:  # in chunks (bulk.in_chunks: SQLite's parameter limit)
            frame = pd.concat([bulk.read_frame(connection, query.where(Household.id.in_(chunk)))
                               for chunk in bulk.in_chunks(household_ids)], ignore_index=True)
    return frame.set_index("household_id")


def load_members(settings: Settings, household_ids: pd.Index | None = None,
                 street: str | None = None,
                 id_span: tuple[int, int] | None = None) -> pd.DataFrame:
    """Members of the given households, or of one street's households (``id_span``: those with
    household ids in it, inclusive), or all members."""
    query = select(Member.household_id, Member.person_token, Member.birth_date, Member.gender,
                   Member.relation, Member.exclusion, Member.disability_grade,
                   Member.disability_type, Member.labour_capacity)
    if street is not None:
        query = query.join(Household, Household.id == Member.household_id).where(
            Household.street_code == street)
    if id_span is not None:
        query = query.where(Member.household_id.between(*id_span))
    queries = [query] if household_ids is None else [
        query.where(Member.household_id.in_(chunk)) for chunk in bulk.in_chunks(household_ids)]
    with session_scope(settings.database_url) as session:
        # column by column (bulk.read_frame): a province's caseload is millions of members
        connection = session.connection()
        frame = pd.concat([bulk.read_frame(connection, q) for q in queries], ignore_index=True)
    frame["birth_date"] = pd.to_datetime(frame["birth_date"])
    frame["person_token"] = frame["person_token"].astype("int64")
    frame["counted"] = frame["exclusion"].fillna("").eq("")
    return frame
