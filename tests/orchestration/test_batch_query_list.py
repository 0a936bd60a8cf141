"""batch_check asks query-list partners about the batch's members only, uses their answers, and
treats a query still unanswered as a missing source (REVIEW), never an older feed."""

import datetime as dt

import pandas as pd
from sqlalchemy import select

from connectors import keys
from connectors.http_pull import PartnerClient
from connectors.partner_server import FeedCatalogue, PartnerServer
from connectors.query_list import (
    QueryClient,
    QueryDesk,
    insecure_test_partner_recipient_key,
    insecure_test_query_keys,
)
from connectors.registry import load_partners
from verification import pipeline
from verification.batches import check as batches
from verification.intake.query_list import canonical_ids
from verification.storage import session_scope
from verification.storage.models import Feed, Flag, Run
from verification.synthetic.exchange import DEMO_TOKEN, ensure_test_keys, publish_district

AS_OF = dt.date(2026, 11, 1)


def _registered_batch(settings, district_dir, tmp_path):  # noqa: ANN001, ANN202
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
    path = tmp_path / "batch.csv"
    roster[roster["status"] == "applicant"].to_csv(path, index=False, encoding="utf-8-sig")
    ref = batches.register_batch(settings, path, requester="核对中心")
    batches.load_batch(settings, ref.id)
    return ref


def _desk(settings, district_dir, ready_after: float) -> QueryDesk:  # noqa: ANN001
    insecure_test_query_keys(["hrss"]).save(settings.keys_dir)
    return QueryDesk(
        partner="hrss", recipient=insecure_test_partner_recipient_key("hrss"),
        trusted=keys.PartnerDirectory([insecure_test_query_keys(["hrss"]).signer.public()]),
        signer=keys.insecure_test_signing_key("hrss"),
        centre=ensure_test_keys(settings).keyring.current.public(),
        records={"wages": district_dir / "feeds" / "wages.csv",
                 "pensions": district_dir / "feeds" / "pensions.csv"},
        canonical_ids=canonical_ids, ready_after=ready_after)


def _pull_bulk_partners_but_hrss(settings, district_dir) -> None:  # noqa: ANN001
    """hrss answers query lists here, so it delivers no whole feeds (one sequence space per
    partner and kind: a whole feed would make its answers look like replays)."""
    others = [code for code in load_partners() if code != "hrss"]
    with PartnerServer(publish_district(settings, district_dir),
                       tokens=dict.fromkeys(others, DEMO_TOKEN)) as server:
        for code in others:
            client = PartnerClient(server.url_for(code), token=DEMO_TOKEN, retries=1,
                                   sleep=lambda _s: None)
            pipeline.pull_partner(settings, code, client)


def _check(settings, district_dir, tmp_path, ready_after: float):  # noqa: ANN001, ANN202
    _pull_bulk_partners_but_hrss(settings, district_dir)
    ref = _registered_batch(settings, district_dir, tmp_path)
    desk = _desk(settings, district_dir, ready_after)
    with PartnerServer(FeedCatalogue(), tokens={"hrss": DEMO_TOKEN},
                       desks={"hrss": desk}) as server:
        client = QueryClient(server.url_for("hrss"), token=DEMO_TOKEN, retries=1,
                             sleep=lambda _s: None)
        run_id = batches.collect_evidence(settings, ref.id, AS_OF, query_clients={"hrss": client},
                                          query_wait_seconds=2)
    return ref, run_id


def test_answers_to_the_query_list_are_the_feeds_the_batch_uses(sqlite_settings, district_dir,
                                                                tmp_path):
    ref, run_id = _check(sqlite_settings, district_dir, tmp_path, ready_after=0.0)
    with session_scope(sqlite_settings.database_url) as session:
        versions = session.get(Run, run_id).feed_versions
        answer = session.get(Feed, versions["wages"]["feed_id"])
        assert answer.status == "accepted" and answer.partner.code == "hrss"
        assert session.scalar(select(Feed.id).where(Feed.kind == "deposits")) is not None
    status = batches.batch_status(sqlite_settings, ref.code)
    evidence_step = next(p for p in status["progress"] if p["stage"] == "evidence")
    assert evidence_step["mode"] == "query_list+latest_accepted_feeds"
    assert {(q["kind"], q["status"]) for q in evidence_step["queries"]} == {
        ("wages", "answered"), ("pensions", "answered")}


def test_an_unanswered_query_is_a_missing_source_and_leads_to_review(sqlite_settings,
                                                                      district_dir, tmp_path):
    ref, run_id = _check(sqlite_settings, district_dir, tmp_path, ready_after=3600.0)
    with session_scope(sqlite_settings.database_url) as session:
        versions = session.get(Run, run_id).feed_versions
    assert versions["wages"]["feed_id"] is None and versions["wages"]["status"] == "pending"
    batches.assess_batch(sqlite_settings, ref.id, run_id)
    with session_scope(sqlite_settings.database_url) as session:
        kinds = set(session.scalars(select(Flag.kind).where(Flag.run_id == run_id)))
    assert kinds == {"REVIEW"}
