"""The narrow re-check (动态、实时核查): when a partner delivers, re-assess only the households
whose evidence changed, and write a flag only where the outcome changed.

    current state   the latest finished full review, and every re-check finished after it: per
                    household the latest flag, and the feed of each kind the state rests on
    diff            each kind whose newest accepted feed is not the state's, against the state's
                    feed of that kind (verification/recheck/diff.py) → persons whose rows changed
    households      those containing a changed person
    evidence        ALL their current evidence: the state's feed of every kind, with the new ones
                    (``pipeline.matched_evidence``, matched as a review matches)
    decide          ``pipeline.assess_and_flag`` — the one path a review's decisions take
    write           of those households, only the ones whose flag (kind and evidence digest)
                    differs from their current flag: ``pipeline.finish_review`` writes them as
                    run kind ``recheck``

The monthly full review is untouched: it assesses every household again and becomes the next
state's base.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select, update

from schemas import contract_for
from verification import pipeline
from verification.config import Settings
from verification.localtime import local_today
from verification.recheck.diff import FeedDiff, diff_feeds
from verification.security import audit
from verification.storage import bulk, session_scope
from verification.storage.models import Flag, Member, Run

log = logging.getLogger(__name__)
RECHECK = "recheck"
# The frames of a shard, filtered to the households whose outcome changed before they are written
_SHARD_FRAMES = ("households", "members", "assessments", "flags", "flag_reasons",
                 "flag_evidence", "unresolved")


class NoBaseReview(RuntimeError):
    """A re-check changes a full review's outcome; without one there is nothing to change."""

    def __init__(self) -> None:
        super().__init__("尚无已完成的定期核对，请先运行一次完整核对（hedui run）/ no finished "
                         "full review yet: run one first (hedui run)")


@dataclass(frozen=True)
class State:
    """What the current outcome rests on: the base review, the re-checks since, the feed of each
    kind the latest of them used."""

    base_run_id: int
    run_ids: list[int]
    versions: dict[str, dict]
    region: str


@dataclass
class RecheckOutcome:
    run_id: int | None
    kinds: list[str]
    diffs: dict[str, dict[str, int]] = field(default_factory=dict)
    households_rechecked: int = 0
    flags_written: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"run_id": self.run_id, "kinds": self.kinds, "diffs": self.diffs,
                "households_rechecked": self.households_rechecked,
                "flags_written": self.flags_written}


def current_state(session) -> State:  # noqa: ANN001
    base = session.scalar(select(Run).where(Run.kind == "review", Run.status == "done")
                          .order_by(Run.id.desc()).limit(1))
    if base is None:
        raise NoBaseReview()
    later = session.scalars(select(Run).where(Run.kind == RECHECK, Run.status == "done",
                                              Run.id > base.id).order_by(Run.id)).all()
    latest = later[-1] if later else base
    versions = {kind: {k: v for k, v in version.items() if k not in ("diff", "previous")}
                for kind, version in latest.feed_versions.items()}
    return State(base.id, [base.id, *(r.id for r in later)], versions, base.region)


def current_flags(session, state: State, household_ids: np.ndarray) -> pd.DataFrame:  # noqa: ANN001
    """household_id → the kind and evidence digest of its latest flag in the state's runs."""
    parts = []
    for chunk in bulk.in_chunks(household_ids):
        rows = session.execute(select(Flag.household_id, Flag.run_id, Flag.kind,
                                      Flag.evidence_digest)
                               .where(Flag.run_id.in_(state.run_ids),
                                      Flag.household_id.in_(chunk))).all()
        parts.append(pd.DataFrame(rows, columns=["household_id", "run_id", "kind",
                                                 "evidence_digest"]))
    frame = pd.concat(parts, ignore_index=True)
    return (frame.sort_values("run_id").drop_duplicates("household_id", keep="last")
            .set_index("household_id")[["kind", "evidence_digest"]])


def supersede_replaced_flags(session, state: State, run_id: int) -> int:  # noqa: ANN001
    """Mark ``superseded`` the still-open flags of the state's runs that the re-check ``run_id``
    replaced with a new outcome (one flag per household stays current: the inbox shows the
    new one); an officer's resolved flag stays as it was. Returns how many were marked."""
    written = select(Flag.household_id).where(Flag.run_id == run_id)
    return session.execute(
        update(Flag).where(Flag.run_id.in_(state.run_ids), Flag.household_id.in_(written),
                           Flag.status.in_(["open", "acknowledged"]))
        .values(status="superseded").execution_options(synchronize_session=False)).rowcount


def households_of(settings: Settings, tokens: np.ndarray) -> np.ndarray:
    """The households (sorted ids) with a member holding one of ``tokens``."""
    found = [np.zeros(0, dtype=np.int64)]
    with session_scope(settings.database_url) as session:
        for chunk in bulk.in_chunks(tokens):
            ids, _ = bulk.fetch_pairs(session.connection(), select(
                Member.household_id, Member.person_token).where(Member.person_token.in_(chunk)))
            found.append(np.asarray(ids, dtype=np.int64))
    return np.unique(np.concatenate(found))


def recheck(settings: Settings, kind: str | None = None, as_of: dt.date | None = None,
            run_key: str | None = None) -> RecheckOutcome:
    """Re-check the households whose evidence changed in ``kind`` (default: in every kind whose
    newest accepted feed the current state does not rest on yet)."""
    as_of = as_of or local_today()
    with session_scope(settings.database_url) as session:
        state = current_state(session)
        latest = pipeline.latest_feeds(session)
    kinds = [kind] if kind else sorted(latest)
    if kind is not None and kind not in latest:
        raise ValueError(f"未知数据类别 {kind!r} / unknown feed kind {kind!r}")
    kinds = [k for k in kinds if latest[k].get("feed_id")
             and latest[k]["feed_id"] != state.versions.get(k, {}).get("feed_id")]
    if not kinds:
        log.info("recheck: the current outcome already rests on the newest feeds")
        return RecheckOutcome(None, [])
    versions = {**state.versions}
    diffs: dict[str, FeedDiff] = {}
    for k in kinds:
        previous = state.versions.get(k, {})
        diffs[k] = diff_feeds(Path(previous["staged_path"]) if previous.get("feed_id") else None,
                              Path(latest[k]["staged_path"]), contract_for(k))
        versions[k] = {**latest[k], "previous": previous.get("feed_id"),
                       "diff": diffs[k].summary()}
    tokens = np.unique(np.concatenate([d.changed_tokens for d in diffs.values()]))
    households = households_of(settings, tokens)
    run_key = run_key or "recheck-" + "-".join(f"{k}{latest[k]['feed_id']}" for k in kinds)
    run_id = pipeline.start_review(settings, run_key, as_of, state.region, kind=RECHECK)
    with session_scope(settings.database_url) as session:
        session.execute(update(Run).where(Run.id == run_id).values(feed_versions=versions))
        audit.record(session, "pipeline", "recheck.started", f"run:{run_id}",
                     {"base_run": state.base_run_id, "kinds": kinds,
                      "persons_changed": len(tokens), "households": len(households)})
    folder = pipeline.run_dir(settings, run_id)
    changed = _reassess(settings, state, run_id, households, versions, as_of, folder)
    counts = pipeline.finish_review(settings, run_id, [str(changed)])
    with session_scope(settings.database_url) as session:  # re-assessed, not only written
        session.execute(update(Run).where(Run.id == run_id).values(households=len(households)))
        superseded = supersede_replaced_flags(session, state, run_id)
        audit.record(session, "pipeline", "recheck.superseded", f"run:{run_id}",
                     {"flags": superseded})
    outcome = RecheckOutcome(run_id, kinds, {k: d.summary() for k, d in diffs.items()},
                             len(households), counts)
    log.info("recheck run %s: %s", run_id, outcome.summary())
    return outcome


def _reassess(settings: Settings, state: State, run_id: int, households: np.ndarray,
              versions: dict[str, dict], as_of: dt.date, folder: Path) -> Path:
    """Assess and flag ``households`` with all their current evidence; returns the folder of
    the frames of those whose flag differs from their current one."""
    frame = pipeline.load_households(settings, household_ids=households)
    members = pipeline.load_members(settings, frame.index)
    evidence = pipeline.matched_evidence(settings, versions, frame.index.tolist())
    with session_scope(settings.database_url) as session:  # whose data was used, by token
        audit.record_evidence_access(session, "pipeline", f"run:{run_id}",
                                     evidence[["source_kind", "person_token"]].drop_duplicates(),
                                     {k: v.get("partner", "") for k, v in versions.items()})
    assessed = pipeline.assess_and_flag(settings, frame, members, evidence, versions, as_of,
                                        state.region, folder / "shard-recheck")
    flags = pd.read_parquet(assessed / "flags.parquet")
    with session_scope(settings.database_url) as session:
        before = current_flags(session, state, flags["household_id"].to_numpy(dtype=np.int64))
    was = before.reindex(flags["household_id"].to_numpy())
    differ = (was["kind"].to_numpy() != flags["kind"].to_numpy()) | (
        was["evidence_digest"].to_numpy() != flags["evidence_digest"].to_numpy())
    keep = set(flags["household_id"][differ].tolist())
    out = folder / "shard-changed"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in _SHARD_FRAMES:
        source = assessed / f"{name}.parquet"
        if source.exists():
            part = pd.read_parquet(source)
            part[part["household_id"].isin(keep)].to_parquet(out / f"{name}.parquet",
                                                             index=False)
    log.info("recheck run %s: %d households re-assessed, %d outcomes changed", run_id,
             len(flags), len(keep))
    return out
