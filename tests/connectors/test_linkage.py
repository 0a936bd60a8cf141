"""Vertical linkage (纵向联动): a request bundle to another centre, its answer through intake,
and an unanswered request as a missing source (REVIEW) showing its age."""

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from connectors import envelope, keys
from connectors.query_list import insecure_test_partner_recipient_key, insecure_test_query_keys
from tests.conftest import pull_everything, review_in_process
from verification.cli import linkage as linkage_cli
from verification.intake import linkage
from verification.intake.query_list import canonical_ids
from verification.intake.roster import load_roster
from verification.security.authorisation import NotAuthorised
from verification.storage import session_scope
from verification.storage.models import Authorisation, Feed, Flag, FlagReason, Household, Member
from verification.synthetic.exchange import ensure_test_keys

REMOTE = "centre_210102"
AS_OF = dt.date(2026, 10, 31)


@pytest.fixture
def centre(settings, district_dir):
    """This centre with the roster loaded, its keys, and the other centre's keys trusted."""
    load_roster(settings, district_dir / "roster.csv")
    mine = ensure_test_keys(settings)
    query_keys = insecure_test_query_keys([REMOTE])
    query_keys.save(settings.keys_dir)
    remote_signer = keys.insecure_test_signing_key(REMOTE)
    mine.trusted.add(remote_signer.public())
    mine.trusted.save(settings.keys_dir)
    with session_scope(settings.database_url) as session:
        households = session.scalars(select(Household.id).order_by(Household.id)).all()
    return {"keyring": mine.keyring, "trusted": mine.trusted, "query_keys": query_keys,
            "remote_signer": remote_signer, "households": households}


def _answer(centre, request, district_dir, tmp_path, records=None):
    """The other centre opens the request and answers from its own registers."""
    return linkage.answer_request(
        Path(request.bundle),
        recipient=insecure_test_partner_recipient_key(REMOTE),
        trusted=keys.PartnerDirectory([centre["query_keys"].signer.public()]),
        signer=centre["remote_signer"], requester=centre["keyring"].current.public(),
        records=records or {"wages": district_dir / "feeds" / "wages.csv",
                            "real_estate": district_dir / "feeds" / "real_estate.csv"},
        out_dir=tmp_path / "answers")


def test_request_bundle_answer_and_import(settings, district_dir, centre, tmp_path):
    asked = centre["households"][:8]
    request = linkage.export_request(settings, REMOTE, asked, ["wages", "real_estate"],
                                     out_dir=tmp_path / "outbox", as_of=AS_OF,
                                     actor="tester", purpose="linkage:test")
    bundle = Path(request.bundle).read_bytes()
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str)
    assert not any(pid.encode() in bundle for pid in roster["id_number"])  # encrypted
    with Path(request.bundle).open("rb") as handle:
        manifest = envelope.read_manifest(handle)
    assert (manifest.feed_kind, manifest.row_count) == ("linkage.request", len(request.tokens))
    assert linkage.pending_for(settings, asked, AS_OF)["items"].tolist()[0] == "wages,real_estate"
    state = (settings.home / "linkage" / "requests" / f"{request.request_id}.json").read_text()
    assert not any(pid in state for pid in roster["id_number"])

    answers = _answer(centre, request, district_dir, tmp_path)
    assert len(answers) == 2
    imported = linkage.import_answer(settings, request.request_id, answers,
                                     keyring=centre["keyring"], trusted=centre["trusted"])
    assert {a.item: a.status for a in imported} == {"wages": "accepted",
                                                    "real_estate": "accepted"}, imported
    assert linkage.load_request(settings, request.request_id).answered
    assert linkage.pending_for(settings, asked, AS_OF).empty
    with session_scope(settings.database_url) as session:
        asked_tokens = set(session.scalars(select(Member.person_token)
                                           .where(Member.household_id.in_(asked))))
        feed = session.get(Feed, imported[0].feed_id)
        assert feed.partner.code == REMOTE and feed.status == "accepted"
        staged = feed.staged_path
    assert set(pd.read_parquet(staged)["person_token"].dropna().astype(int)) <= asked_tokens


def test_answer_from_another_centre_or_for_unasked_persons_is_rejected(settings, district_dir,
                                                                       centre, tmp_path):
    request = linkage.export_request(settings, REMOTE, centre["households"][:3], ["wages"],
                                     out_dir=tmp_path / "outbox", as_of=AS_OF)
    # An answer for everybody in the other centre's register, not just the persons asked.
    frame = pd.read_csv(district_dir / "feeds" / "wages.csv", dtype=str)
    from connectors.query_list import answer_envelope

    data = answer_envelope(district_dir / "feeds" / "wages.csv", "wages",
                           set(frame["id_number"].str.strip()), partner=REMOTE,
                           period="2026-10", sequence=1, signer=centre["remote_signer"],
                           recipient=centre["keyring"].current.public(),
                           canonical_ids=canonical_ids)
    everyone = tmp_path / "everyone.hedui"
    everyone.write_bytes(data)
    [result] = linkage.import_answer(settings, request.request_id, [everyone],
                                     keyring=centre["keyring"], trusted=centre["trusted"])
    assert result.status == "rejected" and result.reason.startswith("UnaskedPersons:")
    # Signed by a partner, not by the centre asked.
    other = answer_envelope(district_dir / "feeds" / "wages.csv", "wages", set(), partner="hrss",
                            period="2026-10", sequence=5,
                            signer=keys.insecure_test_signing_key("hrss"),
                            recipient=centre["keyring"].current.public(),
                            canonical_ids=canonical_ids)
    wrong = tmp_path / "wrong.hedui"
    wrong.write_bytes(other)
    [result] = linkage.import_answer(settings, request.request_id, [wrong],
                                     keyring=centre["keyring"], trusted=centre["trusted"])
    assert result.status == "rejected" and result.reason.startswith("NotThisRequest:")
    assert not linkage.load_request(settings, request.request_id).answered


def test_no_authorisation_no_request(settings, district_dir, centre, tmp_path):
    with session_scope(settings.database_url) as session:
        member = session.scalars(select(Member.id).where(
            Member.household_id == centre["households"][0])).first()
        session.query(Authorisation).filter(Authorisation.member_id == member).delete()
    with pytest.raises(NotAuthorised):
        linkage.export_request(settings, REMOTE, centre["households"][:2], ["wages"],
                               out_dir=tmp_path / "outbox", as_of=AS_OF)
    assert not list(tmp_path.rglob("*.hedui"))
    assert linkage.load_requests(settings) == []


def test_unanswered_request_is_a_missing_source_with_its_age(settings, district_dir, centre,
                                                             tmp_path):
    pull_everything(settings, district_dir)
    asked = centre["households"][:2]
    request = linkage.export_request(settings, REMOTE, asked, ["wages"],
                                     out_dir=tmp_path / "outbox",
                                     as_of=AS_OF - dt.timedelta(days=12))
    run_id = review_in_process(settings, AS_OF, run_key="with-linkage-pending")
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Flag.household_id, Flag.kind, FlagReason.code, FlagReason.detail)
            .join(FlagReason, FlagReason.flag_id == Flag.id)
            .where(Flag.run_id == run_id)).all()
    kinds = {h: k for h, k, _, _ in rows}
    assert all(kinds[h] == "REVIEW" for h in asked)
    details = [json.dumps(d, ensure_ascii=False) for h, _, code, d in rows
               if h in asked and code == "SOURCE_UNAVAILABLE"]
    assert len(details) == len(asked)
    assert all("pending 12 days" in d and REMOTE in d and request.request_id in d
               for d in details), details
    # Households not covered by the request are not held back by it.
    others = {h for h, _, code, d in rows if h not in asked and code == "SOURCE_UNAVAILABLE"}
    assert not others


def test_cli_export_pending_import(settings, district_dir, centre, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.setenv("HEDUI_HOME", str(settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    hh = centre["households"][:2]
    done = runner.invoke(linkage_cli.app, ["export", "--centre", REMOTE, "--items", "wages",
                                       "--out", str(tmp_path / "outbox"),
                                       "--household", str(hh[0]), "--household", str(hh[1])])
    assert done.exit_code == 0, done.output
    [request] = linkage.load_requests(settings)
    assert request.request_id in done.output and request.household_ids == sorted(hh)
    pending = runner.invoke(linkage_cli.app, ["pending"])
    assert f"{request.request_id} {REMOTE}" in pending.output and "wages pending" in pending.output
    answers = _answer(centre, request, district_dir, tmp_path)
    imported = runner.invoke(linkage_cli.app, ["import", request.request_id,
                                           *(str(p) for p in answers)])
    assert imported.exit_code == 0, imported.output
    assert "wages: accepted" in imported.output
    assert runner.invoke(linkage_cli.app, ["pending"]).output.strip() == ""
