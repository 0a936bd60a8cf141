"""Reference partner server: a real HTTP server on loopback that serves packed feeds.

It stands in for the partner departments in the demo and the tests. Each partner has its own
path prefix and bearer token and serves the feeds it packed (signed with its key, encrypted to the
centre's key). It can be told to misbehave — slow answers, 5xx, 429 with Retry-After, truncated
bodies — so the transports can be tested against a real socket.

API (per partner ``/{partner}/v1``):
  GET  /feeds?kind=K&after=N             feeds of kind K with sequence > N (JSON)
  GET  /feeds/{kind}/{sequence}          the packed feed (supports ``Range: bytes=S-``)
  POST /feeds/{kind}/{sequence}/receipt  the centre's receipt (accepted/rejected, counts)
  GET  /receipts                         receipts received so far (JSON)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

_FEED = r"^/(?P<partner>[a-z0-9_]+)/v1/feeds/(?P<kind>[a-z_]+)/(?P<seq>\d+)"
_FEED_PATH = re.compile(_FEED + "$")
_RECEIPT_PATH = re.compile(_FEED + "/receipt$")
_LIST_PATH = re.compile(r"^/(?P<partner>[a-z0-9_]+)/v1/feeds$")
_RECEIPTS_PATH = re.compile(r"^/(?P<partner>[a-z0-9_]+)/v1/receipts$")


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
    truncate: int = 0  # the next N downloads send half the body, then close
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
        if faults.take("rate_limit"):
            self._json(429, {"error": "rate limited"}, {"Retry-After": str(faults.retry_after)})
            return False
        if faults.take("fail_5xx"):
            self._json(503, {"error": "partner system unavailable"})
            return False
        expected = self.server.tokens.get(partner)
        if partner not in self.server.catalogue.partners() and expected is None:
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
            feeds = self.server.catalogue.after(m["partner"], kind, after)
            self._json(200, {"feeds": [f.listing() for f in feeds]})
        elif m := _FEED_PATH.match(url.path):
            if self._preflight(m["partner"]):
                self._send_feed(m["partner"], m["kind"], int(m["seq"]))
        elif m := _RECEIPTS_PATH.match(url.path):
            if self._preflight(m["partner"]):
                self._json(200, {"receipts": self.server.catalogue.receipts.get(m["partner"], [])})
        else:
            self._json(404, {"error": "no such endpoint"})

    def do_POST(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        m = _RECEIPT_PATH.match(url.path)
        if not m:
            self._json(404, {"error": "no such endpoint"})
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self._preflight(m["partner"]):
            return
        receipt = {"kind": m["kind"], "sequence": int(m["seq"]), **body}
        self.server.catalogue.receipts.setdefault(m["partner"], []).append(receipt)
        self._json(200, {"ok": True})

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
        self.wfile.write(body)


class PartnerHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], catalogue: FeedCatalogue,
                 tokens: dict[str, str], faults: Faults) -> None:
        super().__init__(address, _Handler)
        self.catalogue = catalogue
        self.tokens = tokens
        self.faults = faults


class PartnerServer:
    """Start and stop the reference server in a background thread::

        with PartnerServer(catalogue, tokens={"hrss": "secret"}) as server:
            client = PartnerClient(server.url_for("hrss"), token="secret")
    """

    def __init__(self, catalogue: FeedCatalogue, host: str = "127.0.0.1", port: int = 0,
                 tokens: dict[str, str] | None = None, faults: Faults | None = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the reference partner server only listens on loopback")
        self.faults = faults or Faults()
        self._httpd = PartnerHTTPServer((host, port), catalogue, tokens or {}, self.faults)
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
