"""Reference partner server: a real HTTP server on loopback that serves packed feeds.

It stands in for the partner departments in the demo and the tests. Each partner has its own
path prefix and bearer token and serves the feeds it packed (signed with its key, encrypted to the
centre's key). It can be told to misbehave — slow answers, 5xx, 429 with Retry-After, truncated
bodies, connections reset mid-download, a broken signature, replayed feeds — so the transports and
intake can be tested against a real socket.

API (per partner ``/{partner}/v1``):
  GET  /feeds?kind=K&after=N             feeds of kind K with sequence > N (JSON)
  GET  /feeds/{kind}/{sequence}          the packed feed (supports ``Range: bytes=S-``)
  POST /feeds/{kind}/{sequence}/receipt  the centre's receipt (accepted/rejected, counts)
  GET  /receipts                         receipts received so far (JSON)
  POST /queries                          an encrypted, signed query list → 202 {"query_id"}
  GET  /queries/{id}                     202 + Retry-After while pending, then 200 the answer
  POST /queries/{id}/receipt             the centre's receipt for the answer
(query-list mode: connectors/query_list.py; a partner answers queries when given a QueryDesk)
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from connectors import envelope
from connectors.query_list import QueryDesk, retry_after_header

_FEED = r"^/(?P<partner>[a-z0-9_]+)/v1/feeds/(?P<kind>[a-z_]+)/(?P<seq>\d+)"
_FEED_PATH = re.compile(_FEED + "$")
_RECEIPT_PATH = re.compile(_FEED + "/receipt$")
_LIST_PATH = re.compile(r"^/(?P<partner>[a-z0-9_]+)/v1/feeds$")
_RECEIPTS_PATH = re.compile(r"^/(?P<partner>[a-z0-9_]+)/v1/receipts$")
_QUERIES_PATH = re.compile(r"^/(?P<partner>[a-z0-9_]+)/v1/queries$")
_QUERY_PATH = re.compile(r"^/(?P<partner>[a-z0-9_]+)/v1/queries/(?P<qid>[0-9a-f]{32})$")
_QUERY_RECEIPT_PATH = re.compile(
    r"^/(?P<partner>[a-z0-9_]+)/v1/queries/(?P<qid>[0-9a-f]{32})/receipt$")


@dataclass(frozen=True)
class PublishedFeed:
    partner: str
    kind: str
    period: str
    sequence: int
    path: Path
    size: int
    sha256: str

    def listing(self) -> dict[str, Any]:
        return {"kind": self.kind, "period": self.period, "sequence": self.sequence,
                "size": self.size, "sha256": self.sha256}


@dataclass
class Faults:
    """Misbehaviour for tests and demos; counters are consumed one request at a time."""

    fail_5xx: int = 0  # answer the next N requests with 503
    rate_limit: int = 0  # answer the next N requests with 429 and Retry-After
    retry_after: int = 1
    delay_seconds: float = 0.0  # sleep before answering every request
    stall: int = 0  # the next N requests wait ``stall_seconds`` first (a client's read timeout)
    stall_seconds: float = 2.0
    duplicate_listing: int = 0  # the next N listings name every feed twice
    truncate: int = 0  # the next N downloads send half the body, then close
    reset: int = 0  # the next N downloads send half the body, then reset the connection (RST)
    # the next N listings publish the newest feed of the kind with a byte of its header signature
    # flipped (listed with the size and SHA-256 of what is sent, as a partner's broken signer would)
    wrong_signature: int = 0
    # Replays: the next N listings also offer the newest feed again under the next sequence
    # number (its signed manifest still names the old one) ...
    replay_as_new: int = 0
    # ... and while set, listings ignore ``after`` and offer every feed again, however old
    # (with an older, re-signed copy added to the catalogue this is the "older sequence" replay).
    replay_old: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, name: str) -> bool:
        with self._lock:
            left = getattr(self, name)
            if left > 0:
                setattr(self, name, left - 1)
                return True
            return False


class FeedCatalogue:
    """The feeds each partner publishes, and the receipts they got back."""

    def __init__(self) -> None:
        self._feeds: dict[tuple[str, str, int], PublishedFeed] = {}
        self.receipts: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def add(self, feed: PublishedFeed) -> None:
        with self._lock:
            self._feeds[(feed.partner, feed.kind, feed.sequence)] = feed

    def add_file(self, partner: str, kind: str, period: str, sequence: int, path: Path) -> None:
        data = path.read_bytes()
        self.add(PublishedFeed(partner, kind, period, sequence, path, len(data),
                               hashlib.sha256(data).hexdigest()))

    def after(self, partner: str, kind: str, sequence: int) -> list[PublishedFeed]:
        return sorted((f for (p, k, s), f in self._feeds.items()
                       if p == partner and k == kind and s > sequence), key=lambda f: f.sequence)

    def break_signature(self, partner: str, kind: str) -> PublishedFeed | None:
        """Misbehaviour: the newest feed of ``kind`` is replaced by a copy whose header signature
        has one byte flipped (written beside the original as ``*.badsig``)."""
        with self._lock:
            mine = [f for (p, k, _), f in self._feeds.items() if p == partner and k == kind]
            if not mine:
                return None
            newest = max(mine, key=lambda f: f.sequence)
            data = _flip_signature_byte(newest.path.read_bytes())
            path = newest.path.with_name(newest.path.name + ".badsig")
            path.write_bytes(data)
            broken = PublishedFeed(partner, kind, newest.period, newest.sequence, path,
                                   len(data), hashlib.sha256(data).hexdigest())
            self._feeds[(partner, kind, newest.sequence)] = broken
            return broken

    def replay_newest(self, partner: str, kind: str) -> PublishedFeed | None:
        """Misbehaviour: publish the newest feed of ``kind`` again under the next sequence."""
        with self._lock:
            mine = [f for (p, k, _), f in self._feeds.items() if p == partner and k == kind]
            if not mine:
                return None
            newest = max(mine, key=lambda f: f.sequence)
            copy = PublishedFeed(partner, kind, newest.period, newest.sequence + 1, newest.path,
                                 newest.size, newest.sha256)
            self._feeds[(partner, kind, copy.sequence)] = copy
            return copy

    def get(self, partner: str, kind: str, sequence: int) -> PublishedFeed | None:
        return self._feeds.get((partner, kind, sequence))

    def partners(self) -> set[str]:
        return {p for p, _, _ in self._feeds}


class _Handler(BaseHTTPRequestHandler):
    server: PartnerHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        pass  # request lines carry no personal data, but tests want quiet output

    # -- helpers ---------------------------------------------------------------------------------
    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _preflight(self, partner: str) -> bool:
        faults = self.server.faults
        if faults.delay_seconds:
            time.sleep(faults.delay_seconds)
        if faults.take("stall"):
            time.sleep(faults.stall_seconds)
        if faults.take("rate_limit"):
            self._json(429, {"error": "rate limited"}, {"Retry-After": str(faults.retry_after)})
            return False
        if faults.take("fail_5xx"):
            self._json(503, {"error": "partner system unavailable"})
            return False
        expected = self.server.tokens.get(partner)
        known = partner in self.server.catalogue.partners() or partner in self.server.desks
        if not known and expected is None:
            self._json(404, {"error": f"unknown partner {partner}"})
            return False
        if expected is not None and self.headers.get("Authorization") != f"Bearer {expected}":
            self._json(401, {"error": "missing or wrong bearer token"})
            return False
        return True

    # -- verbs -----------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        url = urlparse(self.path)
        if m := _LIST_PATH.match(url.path):
            if not self._preflight(m["partner"]):
                return
            query = parse_qs(url.query)
            kind = query.get("kind", [""])[0]
            after = int(query.get("after", ["0"])[0])
            faults = self.server.faults
            if faults.take("wrong_signature"):
                self.server.catalogue.break_signature(m["partner"], kind)
            if faults.take("replay_as_new"):
                self.server.catalogue.replay_newest(m["partner"], kind)
            if faults.replay_old:
                after = -1
            feeds = self.server.catalogue.after(m["partner"], kind, after)
            if faults.take("duplicate_listing"):
                feeds = [f for feed in feeds for f in (feed, feed)]
            self._json(200, {"feeds": [f.listing() for f in feeds]})
        elif m := _FEED_PATH.match(url.path):
            if self._preflight(m["partner"]):
                self._send_feed(m["partner"], m["kind"], int(m["seq"]))
        elif m := _RECEIPTS_PATH.match(url.path):
            if self._preflight(m["partner"]):
                self._json(200, {"receipts": self.server.catalogue.receipts.get(m["partner"], [])})
        elif m := _QUERY_PATH.match(url.path):
            if self._preflight(m["partner"]):
                self._send_answer(m["partner"], m["qid"])
        else:
            self._json(404, {"error": "no such endpoint"})

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if m := _RECEIPT_PATH.match(url.path):
            if not self._preflight(m["partner"]):
                return
            receipt = {"kind": m["kind"], "sequence": int(m["seq"]), **json.loads(raw or b"{}")}
            self.server.catalogue.receipts.setdefault(m["partner"], []).append(receipt)
            self._json(200, {"ok": True})
        elif m := _QUERIES_PATH.match(url.path):
            if self._preflight(m["partner"]):
                self._take_query(m["partner"], raw)
        elif m := _QUERY_RECEIPT_PATH.match(url.path):
            if not self._preflight(m["partner"]):
                return
            desk = self.server.desks.get(m["partner"])
            if desk is None or desk.poll(m["qid"])[0] == "unknown":
                self._json(404, {"error": f"no query {m['qid']}"})
                return
            desk.receipts[m["qid"]] = json.loads(raw or b"{}")
            self._json(200, {"ok": True})
        else:
            self._json(404, {"error": "no such endpoint"})

    def _take_query(self, partner: str, data: bytes) -> None:
        desk = self.server.desks.get(partner)
        if desk is None:
            self._json(404, {"error": f"partner {partner} does not answer query lists"})
            return
        try:
            query_id = desk.receive(data)
        except (envelope.EnvelopeError, ValueError) as err:
            self._json(400, {"error": f"{type(err).__name__}: {err}"})
            return
        self._json(202, {"query_id": query_id, "status": "pending"},
                   {"Location": f"/{partner}/v1/queries/{query_id}", "Retry-After": "1"})

    def _send_answer(self, partner: str, query_id: str) -> None:
        desk = self.server.desks.get(partner)
        state, left, query = desk.poll(query_id) if desk else ("unknown", 0.0, None)
        if state == "unknown" or query is None:
            self._json(404, {"error": f"no query {query_id}"})
        elif state == "pending":
            self._json(202, {"status": "pending"}, {"Retry-After": retry_after_header(left)})
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.hedui.envelope")
            self.send_header("Content-Length", str(len(query.answer)))
            self.send_header("X-Content-SHA256", query.sha256)
            self.end_headers()
            self.wfile.write(query.answer)

    def _send_feed(self, partner: str, kind: str, sequence: int) -> None:
        feed = self.server.catalogue.get(partner, kind, sequence)
        if feed is None:
            self._json(404, {"error": f"no feed {kind} #{sequence}"})
            return
        data = feed.path.read_bytes()
        start = 0
        if rng := re.match(r"bytes=(\d+)-$", self.headers.get("Range", "")):
            start = min(int(rng[1]), len(data))
        body = data[start:]
        self.send_response(HTTPStatus.PARTIAL_CONTENT if start else HTTPStatus.OK)
        self.send_header("Content-Type", "application/vnd.hedui.envelope")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Content-SHA256", feed.sha256)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.server.faults.take("truncate"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.server.faults.take("reset"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            # SO_LINGER 0: close sends RST, as a dropped line or a middlebox reset would.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.wfile.write(body)


def _flip_signature_byte(data: bytes) -> bytes:
    """The envelope with one byte of its header signature flipped (the body stays intact)."""
    source = io.BytesIO(data)
    envelope._read_header(source)  # noqa: SLF001 (the reference server knows the layout)
    at = source.tell() - envelope.SIGNATURE_LEN
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


class PartnerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], catalogue: FeedCatalogue,
                 tokens: dict[str, str], faults: Faults,
                 desks: dict[str, QueryDesk] | None = None) -> None:
        super().__init__(address, _Handler)
        self.catalogue = catalogue
        self.tokens = tokens
        self.faults = faults
        self.desks = desks or {}


class PartnerServer:
    """Start and stop the reference server in a background thread::

        with PartnerServer(catalogue, tokens={"hrss": "secret"}) as server:
            client = PartnerClient(server.url_for("hrss"), token="secret")
    """

    def __init__(self, catalogue: FeedCatalogue, host: str = "127.0.0.1", port: int = 0,
                 tokens: dict[str, str] | None = None, faults: Faults | None = None,
                 desks: dict[str, QueryDesk] | None = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the reference partner server only listens on loopback")
        self.faults = faults or Faults()
        self._httpd = PartnerHTTPServer((host, port), catalogue, tokens or {}, self.faults,
                                        desks)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="hedui-partner-server")

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url_for(self, partner: str) -> str:
        return f"http://127.0.0.1:{self.port}/{partner}/v1"

    def start(self) -> PartnerServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> PartnerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
