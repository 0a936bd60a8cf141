"""HTTP pull transport: list a partner's new feeds, download them, acknowledge with a receipt.

Networks between departments are slow and flaky, so every call has a timeout, retries with
exponential backoff on connection errors, timeouts, 5xx and 429 (honouring ``Retry-After``), and
downloads resume with ``Range`` from where they stopped. A download is written to ``*.part`` and
renamed only once its size and SHA-256 match the listing, so a partial feed is never seen as a
feed. TLS verification is on by default; ``verify=False`` exists for loopback tests only.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from connectors.digests import sha256_file

log = logging.getLogger(__name__)
RETRY_STATUSES = {429, 500, 502, 503, 504}


class TransportError(RuntimeError):
    """A partner could not be reached or answered wrongly after all retries."""


@dataclass(frozen=True)
class FeedListing:
    kind: str
    period: str
    sequence: int
    size: int
    sha256: str


class PartnerClient:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: tuple[float, float]
                 = (5.0, 60.0), retries: int = 5, backoff: float = 0.5, max_wait: float = 30.0,
                 verify: bool | str = True, cert: tuple[str, str] | None = None,
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.session = session or requests.Session()
        self.session.verify = verify
        if cert:  # mutual TLS: (client certificate, client key)
            self.session.cert = cert
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    # -- requests with retry ---------------------------------------------------------------------
    def _wait_for(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None and (header := response.headers.get("Retry-After")):
            try:
                return min(float(header), self.max_wait)
            except ValueError:
                when = email.utils.parsedate_to_datetime(header).timestamp()
                return min(max(0.0, when - time.time()), self.max_wait)
        return min(self.backoff * 2**attempt, self.max_wait)

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        last: str = ""
        for attempt in range(self.retries + 1):
            response = None
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code >= 400:
                        raise TransportError(f"{method} {path}: HTTP {response.status_code} "
                                             f"{response.text[:200]}")
                    return response
                last = f"HTTP {response.status_code}"
            except (requests.ConnectionError, requests.Timeout) as err:
                last = type(err).__name__
            if attempt < self.retries:
                wait = self._wait_for(attempt, response)
                log.warning("partner %s: %s, retry %d/%d in %.1fs", self.base_url, last,
                            attempt + 1, self.retries, wait)
                self.sleep(wait)
        raise TransportError(f"{method} {path}: gave up after {self.retries + 1} attempts ({last})")

    # -- API -------------------------------------------------------------------------------------
    def list_feeds(self, kind: str, after: int = 0) -> list[FeedListing]:
        body = self._request("GET", "/feeds", params={"kind": kind, "after": after}).json()
        return [FeedListing(**item) for item in body["feeds"]]

    def download(self, listing: FeedListing, dest: Path) -> Path:
        """Download to ``dest`` (resuming a ``dest.part`` left by an interrupted attempt)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        path = f"/feeds/{listing.kind}/{listing.sequence}"
        for attempt in range(self.retries + 1):
            have = part.stat().st_size if part.exists() else 0
            if have > listing.size:
                part.unlink()
                have = 0
            if have < listing.size:
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    self._stream_into(part, path, headers, append=bool(have))
                except (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError) as err:
                    log.warning("download %s interrupted (%s), resuming", path, type(err).__name__)
                    self.sleep(self._wait_for(attempt, None))
                    continue
            if part.stat().st_size == listing.size:
                if sha256_file(part) != listing.sha256:
                    part.unlink()
                    raise TransportError(f"{path}: downloaded bytes do not match the listed "
                                         "SHA-256")
                part.replace(dest)
                return dest
        raise TransportError(f"{path}: download incomplete after {self.retries + 1} attempts")

    def _stream_into(self, part: Path, path: str, headers: dict[str, str], append: bool) -> None:
        response = self._request("GET", path, headers=headers, stream=True)
        if append and response.status_code != 206:
            append = False  # the server ignored Range: start again
        with response, part.open("ab" if append else "wb") as out:
            for chunk in response.iter_content(chunk_size=1 << 20):
                out.write(chunk)

    def send_receipt(self, kind: str, sequence: int, receipt: dict[str, Any]) -> None:
        self._request("POST", f"/feeds/{kind}/{sequence}/receipt", json=receipt)
