"""HTTP pull transport against `responses` and against the real reference server."""

import hashlib

import pytest
import requests
import responses

from connectors.http_pull import FeedListing, PartnerClient, TransportError
from connectors.partner_server import Faults, FeedCatalogue, PartnerServer

BASE = "http://partner.test/hrss/v1"


def _client(sleeps=None, **kw):
    return PartnerClient(BASE, token="t", sleep=(sleeps.append if sleeps is not None
                                                 else lambda _s: None), **kw)


@responses.activate
def test_429_retry_after_is_honoured_then_success():
    responses.get(f"{BASE}/feeds", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/feeds", json={"feeds": []})
    sleeps = []
    assert _client(sleeps).list_feeds("wages") == []
    assert sleeps == [7.0]


@responses.activate
def test_5xx_backs_off_exponentially_and_gives_up_with_a_clear_error():
    for _ in range(4):
        responses.get(f"{BASE}/feeds", status=503)
    sleeps = []
    with pytest.raises(TransportError, match="gave up after 4 attempts .*HTTP 503"):
        _client(sleeps, retries=3, backoff=0.5).list_feeds("wages")
    assert sleeps == [0.5, 1.0, 2.0]


@responses.activate
def test_timeouts_are_retried():
    responses.get(f"{BASE}/feeds", body=requests.Timeout("slow"))
    responses.get(f"{BASE}/feeds", json={"feeds": [{"kind": "wages", "period": "2026-10",
                                                     "sequence": 3, "size": 1, "sha256": "x"}]})
    assert _client().list_feeds("wages")[0].sequence == 3


@responses.activate
def test_client_errors_are_not_retried():
    responses.get(f"{BASE}/feeds", status=401, json={"error": "wrong token"})
    with pytest.raises(TransportError, match="HTTP 401"):
        _client().list_feeds("wages")
    assert len(responses.calls) == 1


@pytest.fixture
def served(tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "feed.hedui"
    path.write_bytes(payload)
    catalogue = FeedCatalogue()
    catalogue.add_file("hrss", "wages", "2026-10", 202610, path)
    faults = Faults()
    with PartnerServer(catalogue, tokens={"hrss": "secret"}, faults=faults) as server:
        yield server, faults, payload


def test_truncated_download_resumes_and_completes(served, tmp_path):
    server, faults, payload = served
    faults.truncate = 1
    client = PartnerClient(server.url_for("hrss"), token="secret", sleep=lambda _s: None)
    listing = client.list_feeds("wages")[0]
    dest = client.download(listing, tmp_path / "in" / "wages.hedui")
    assert dest.read_bytes() == payload
    assert not (tmp_path / "in" / "wages.hedui.part").exists()


def test_real_server_faults_are_recovered(served, tmp_path):
    server, faults, payload = served
    faults.fail_5xx, faults.rate_limit, faults.retry_after = 2, 1, 0
    client = PartnerClient(server.url_for("hrss"), token="secret", sleep=lambda _s: None)
    assert [f.sequence for f in client.list_feeds("wages")] == [202610]
    client.send_receipt("wages", 202610, {"status": "accepted", "received": 1})
    receipts = requests.get(f"{server.url_for('hrss')}/receipts",
                            headers={"Authorization": "Bearer secret"}, timeout=5).json()
    assert receipts["receipts"][0]["status"] == "accepted"


def test_bytes_that_do_not_match_the_listing_are_never_kept(served, tmp_path):
    server, _, payload = served
    client = PartnerClient(server.url_for("hrss"), token="secret", sleep=lambda _s: None)
    wrong = FeedListing("wages", "2026-10", 202610, len(payload), hashlib.sha256(b"x").hexdigest())
    with pytest.raises(TransportError, match="SHA-256"):
        client.download(wrong, tmp_path / "bad.hedui")
    assert not list(tmp_path.glob("bad.hedui*"))


def test_wrong_token_is_refused(served):
    server, _, _ = served
    client = PartnerClient(server.url_for("hrss"), token="nope", sleep=lambda _s: None)
    with pytest.raises(TransportError, match="401"):
        client.list_feeds("wages")


def test_server_only_listens_on_loopback():
    with pytest.raises(ValueError, match="loopback"):
        PartnerServer(FeedCatalogue(), host="0.0.0.0")
