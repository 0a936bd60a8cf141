"""Query-list mode through the reference server: an encrypted, signed list of persons goes out,
the partner answers for those persons only, and the answer is taken in like any feed."""

import datetime as dt
import io
import json

import pandas as pd
import pytest
from sqlalchemy import select

from connectors import envelope, keys
from connectors.partner_server import FeedCatalogue, PartnerServer
from connectors.query_list import (
    CENTRE,
    QueryClient,
    QueryDesk,
    insecure_test_partner_recipient_key,
    insecure_test_query_keys,
    pack_query,
)
from verification.intake.query_list import canonical_ids, query_partner, query_partners
from verification.intake.roster import load_roster
from verification.security.authorisation import NotAuthorised
from verification.storage import session_scope
from verification.storage.models import Authorisation, Feed, Household, Member
from verification.synthetic.exchange import DEMO_TOKEN, ensure_test_keys

AS_OF = dt.date(2026, 10, 31)


def _desk(settings, district_dir, partner="hrss", ready_after=0.0, records=None):
    query_keys = insecure_test_query_keys([partner])
    centre = ensure_test_keys(settings)
    return QueryDesk(
        partner=partner, recipient=insecure_test_partner_recipient_key(partner),
        trusted=keys.PartnerDirectory([query_keys.signer.public()]),
        signer=keys.insecure_test_signing_key(partner), centre=centre.keyring.current.public(),
        records=records or {"wages": district_dir / "feeds" / "wages.csv",
                            "pensions": district_dir / "feeds" / "pensions.csv"},
        canonical_ids=canonical_ids, ready_after=ready_after)


@pytest.fixture
def loaded(settings, district_dir):
    load_roster(settings, district_dir / "roster.csv")
    ensure_test_keys(settings)
    insecure_test_query_keys(["hrss"]).save(settings.keys_dir)
    with session_scope(settings.database_url) as session:
        households = session.scalars(select(Household.id).order_by(Household.id)).all()
    return households


def _client(server, partner="hrss"):
    return QueryClient(server.url_for(partner), token=DEMO_TOKEN, retries=1,
                       sleep=lambda _s: None)


def test_query_is_answered_for_the_asked_persons_and_taken_in(settings, district_dir, loaded):
    desk = _desk(settings, district_dir, ready_after=0.3)
    asked_households = loaded[:10]
    with PartnerServer(FeedCatalogue(), tokens={"hrss": DEMO_TOKEN}, desks={"hrss": desk}) as srv:
        outcome = query_partner(settings, _client(srv), "hrss", "wages", asked_households,
                                as_of=AS_OF, purpose="batch:T1", actor="tester",
                                wait_seconds=10)
    assert outcome.status == "answered", outcome
    assert outcome.received == outcome.accepted + outcome.quarantined
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, outcome.feed_id)
        asked_tokens = set(session.scalars(select(Member.person_token).where(
            Member.household_id.in_(asked_households))))
        all_tokens = set(session.scalars(select(Member.person_token)))
        staged_path, status = feed.staged_path, feed.status
    assert status == "accepted"
    staged = pd.read_parquet(staged_path)
    assert len(staged) == outcome.accepted
    assert set(staged["person_token"].dropna().astype(int)) <= asked_tokens
    assert len(all_tokens - asked_tokens) > 0  # others exist and were not answered for
    receipt = desk.receipts[outcome.query_id]
    assert receipt["status"] == "accepted" and receipt["accepted"] == outcome.accepted
    # The state kept by the centre holds tokens, never an ID number.
    state_files = list((settings.home / "queries" / "hrss").glob("wages-*.json"))
    assert len(state_files) == 1
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str)
    text = state_files[0].read_text("utf-8")
    assert not any(pid in text for pid in roster["id_number"])
    assert json.loads(text)["status"] == "answered"


def test_the_query_list_is_encrypted_and_carries_the_authorisation_refs(settings, district_dir,
                                                                         loaded):
    query_keys = insecure_test_query_keys(["hrss"])
    pid = "210112197211287120"
    packed = pack_query([(pid, "SQ-1")], partner="hrss", kind="wages", period="2026-10",
                        sequence=5, query_keys=query_keys)
    assert pid.encode() not in packed and b"SQ-1" not in packed
    plain = io.BytesIO()
    manifest = envelope.unpack(
        io.BytesIO(packed), plain,
        keyring=keys.CentreKeyring([insecure_test_partner_recipient_key("hrss")]),
        trusted=keys.PartnerDirectory([query_keys.signer.public()]))
    assert (manifest.partner, manifest.feed_kind) == (CENTRE, "query.wages")
    assert plain.getvalue().decode() == f"row,id_number,authorisation_ref\n1,{pid},SQ-1\n"
    with pytest.raises(ValueError, match="authorisation"):
        pack_query([(pid, "")], partner="hrss", kind="wages", period="2026-10", sequence=6,
                   query_keys=query_keys)


def test_pending_query_is_polled_not_posted_again(settings, district_dir, loaded):
    desk = _desk(settings, district_dir, ready_after=3600)
    with PartnerServer(FeedCatalogue(), tokens={"hrss": DEMO_TOKEN}, desks={"hrss": desk}) as srv:
        first = query_partner(settings, _client(srv), "hrss", "wages", loaded[:3], as_of=AS_OF,
                              wait_seconds=0.2)
        assert first.status == "pending" and "no answer yet" in first.reason
        desk.ready_after = 0
        desk._queries[first.query_id].ready_at = 0  # the partner finished
        second = query_partner(settings, _client(srv), "hrss", "wages", loaded[:3],
                               as_of=AS_OF, wait_seconds=5)
    assert second.query_id == first.query_id and second.status == "answered"
    assert len(desk._queries) == 1


def test_no_authorisation_no_query(settings, district_dir, loaded):
    desk = _desk(settings, district_dir)
    with session_scope(settings.database_url) as session:
        member = session.scalars(select(Member.id).where(Member.household_id == loaded[0])).first()
        session.query(Authorisation).filter(Authorisation.member_id == member).delete()
    with (PartnerServer(FeedCatalogue(), tokens={"hrss": DEMO_TOKEN},
                        desks={"hrss": desk}) as srv, pytest.raises(NotAuthorised)):
        query_partners(settings, loaded[:2], as_of=AS_OF, partners=["hrss"],
                       clients={"hrss": _client(srv)}, wait_seconds=1)
    assert desk._queries == {}


def test_an_answer_naming_unasked_persons_is_rejected_whole(settings, district_dir, loaded,
                                                            tmp_path):
    desk = _desk(settings, district_dir)
    # A careless partner: it answers with its whole register.
    original = desk._answer

    def everything(kind, ids, period, sequence):
        frame = pd.read_csv(district_dir / "feeds" / "wages.csv", dtype=str)
        return original(kind, set(frame["id_number"].str.strip()), period, sequence)

    desk._answer = everything
    with PartnerServer(FeedCatalogue(), tokens={"hrss": DEMO_TOKEN}, desks={"hrss": desk}) as srv:
        outcome = query_partner(settings, _client(srv), "hrss", "wages", loaded[:2], as_of=AS_OF,
                                wait_seconds=5)
    assert outcome.status == "rejected"
    assert outcome.reason.startswith("UnaskedPersons:")
    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, outcome.feed_id)
        assert feed.status == "rejected" and feed.staged_path == ""
    assert desk.receipts[outcome.query_id]["status"] == "rejected"


def test_partner_refuses_a_query_list_not_signed_by_the_centre(settings, district_dir, loaded):
    desk = _desk(settings, district_dir)
    forger = keys.insecure_test_signing_key(CENTRE, generation=9)
    bad_keys = insecure_test_query_keys(["hrss"])
    bad_keys = type(bad_keys)(forger, bad_keys.partners)
    packed = pack_query([("210112197211287120", "SQ-1")], partner="hrss", kind="wages",
                        period="2026-10", sequence=7, query_keys=bad_keys)
    with PartnerServer(FeedCatalogue(), tokens={"hrss": DEMO_TOKEN}, desks={"hrss": desk}) as srv:
        client = _client(srv)
        with pytest.raises(Exception, match="HTTP 400.*UnknownKey"):
            client.post_query(packed)
        good = pack_query([("210112197211287120", "SQ-1")], partner="hrss", kind="wages",
                          period="2026-10", sequence=7, query_keys=insecure_test_query_keys(
                              ["hrss"]))
        first = client.post_query(good)
        assert client.post_query(good) == first  # a retried post is the same query
        older = pack_query([("210112197211287120", "SQ-1")], partner="hrss", kind="wages",
                           period="2026-10", sequence=6, query_keys=insecure_test_query_keys(
                               ["hrss"]))
        with pytest.raises(Exception, match="HTTP 400.*Replayed"):
            client.post_query(older)


def test_query_partners_reads_the_airflow_connection(settings, district_dir, loaded, monkeypatch):
    desk = _desk(settings, district_dir)
    with PartnerServer(FeedCatalogue(), tokens={"hrss": DEMO_TOKEN}, desks={"hrss": desk}) as srv:
        monkeypatch.setenv("AIRFLOW_CONN_HEDUI_PARTNER_HRSS", json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": srv.port, "schema": "http",
            "password": DEMO_TOKEN, "extra": {"path": "/hrss/v1"}}))
        outcomes = query_partners(settings, loaded[:5], as_of=AS_OF, partners=["hrss"],
                                  wait_seconds=10)
    assert [(o.partner, o.kind, o.status) for o in outcomes] == [
        ("hrss", "wages", "answered"), ("hrss", "pensions", "answered")]
    assert set(desk.receipts) == {o.query_id for o in outcomes}
