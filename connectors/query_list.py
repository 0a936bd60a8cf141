"""Query-list mode: the centre asks a partner about named persons only (the privacy-minimal way).

Many departments will not hand over a whole register; they answer for the persons a centre names,
each backed by the person's signed authorisation (授权书). The exchange, both ways in the
envelope format of docs/exchange-format.md:

1. The centre builds the query list — one row per person: ``row``, ``id_number``,
   ``authorisation_ref`` — and packs it, signed with the centre's signing key (partner code
   ``centre``) and encrypted to the *partner's* recipient key. The manifest names feed kind
   ``query.<kind>`` (the item asked), the period and the centre's query sequence. The ID numbers
   exist only inside that envelope: never in a URL, a log line or a file in the clear.
2. ``POST /{partner}/v1/queries`` with the envelope → ``202 {"query_id": ...}``. Posting the same
   envelope again returns the same id (safe to retry).
3. ``GET /{partner}/v1/queries/{id}`` → ``202`` with ``Retry-After`` while the partner works on it,
   then ``200`` with the answer: an ordinary feed envelope of ``<kind>`` signed by the partner and
   encrypted to the centre, holding rows for the asked persons only.
4. The answer goes through the same intake as any feed (verify, decrypt, decode, validate,
   stage); an answer naming a person who was not asked is rejected as a whole. The centre posts
   its receipt to ``/queries/{id}/receipt``.

A query still pending when ``query_partner`` stops waiting is remembered (``var/queries``, tokens
and ids only) and polled, not posted again, by the next call for the same persons.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.hazmat.primitives.asymmetric import x25519

from connectors import envelope, keys
from connectors.decoding import CSV, LINE, PROBLEM, decode_bytes, decode_file
from connectors.http_pull import PartnerClient, TransportError

log = logging.getLogger(__name__)

CENTRE = "centre"
QUERY_PREFIX = "query."
QUERY_COLUMNS = ("row", "id_number", "authorisation_ref")
QUERY_SCHEMA_VERSION = "1.0"


def query_kind(kind: str) -> str:
    """The manifest feed kind of a query list asking for ``kind``."""
    return f"{QUERY_PREFIX}{kind}"


# ---- keys ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueryKeys:
    """The centre's side: its signing key and each query-list partner's recipient public key."""

    signer: keys.SigningKey
    partners: dict[str, keys.RecipientPublicKey]

    def recipient(self, partner: str) -> keys.RecipientPublicKey:
        if partner not in self.partners:
            raise KeyError(f"no recipient key for partner {partner!r}: put its public key in "
                           f"keys/partner-recipients/{partner}.pub.pem")
        return self.partners[partner]

    def save(self, keys_dir: Path) -> None:
        keys.save_signing_key(self.signer, keys_dir / "centre-signing")
        folder = keys_dir / "partner-recipients"
        folder.mkdir(parents=True, exist_ok=True)
        for code, public in self.partners.items():
            (folder / f"{code}.pub.pem").write_bytes(keys.recipient_public_key_pem(public))

    @classmethod
    def load(cls, keys_dir: Path) -> QueryKeys:
        signers = sorted((keys_dir / "centre-signing").glob("*.key.pem"))
        if not signers:
            raise FileNotFoundError(f"no centre signing key under {keys_dir / 'centre-signing'}; "
                                    "create one with `hedui partner keygen --partner centre`")
        partners = {p.name.removesuffix(".pub.pem"): keys.load_recipient_public_key(p)
                    for p in sorted((keys_dir / "partner-recipients").glob("*.pub.pem"))}
        return cls(keys.load_signing_key(signers[-1]), partners)


def insecure_test_partner_recipient_key(partner: str, generation: int = 1) -> keys.RecipientKey:
    """TEST ONLY: a partner's deterministic recipient key (query lists are encrypted to it)."""
    seed = hashlib.shake_256(f"hedui TEST ONLY key seed: partner-recipient/{partner}/"
                             f"{generation}".encode()).digest(32)
    return keys.RecipientKey(f"{keys.TEST_KEY_PREFIX}{partner}-recipient-{generation}",
                             keys.KEM_X25519, x25519.X25519PrivateKey.from_private_bytes(seed),
                             None, "2026-01-01T00:00:00+00:00")


def insecure_test_query_keys(partners: Iterable[str]) -> QueryKeys:
    """TEST ONLY: the centre's test signing key and the partners' test recipient keys."""
    return QueryKeys(keys.insecure_test_signing_key(CENTRE),
                     {p: insecure_test_partner_recipient_key(p).public() for p in partners})


# ---- the query list --------------------------------------------------------------------------
def query_list_bytes(persons: Sequence[tuple[str, str]]) -> bytes:
    """CSV (UTF-8) of ``(id_number, authorisation_ref)`` pairs, numbered from 1."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(QUERY_COLUMNS)
    for number, (id_number, reference) in enumerate(persons, start=1):
        writer.writerow([number, id_number, reference])
    return out.getvalue().encode("utf-8")


def pack_query(persons: Sequence[tuple[str, str]], *, partner: str, kind: str, period: str,
               sequence: int, query_keys: QueryKeys) -> bytes:
    """The query list packed for ``partner``: signed by the centre, encrypted to the partner."""
    if not persons:
        raise ValueError("a query list names at least one person")
    if any(not ref for _, ref in persons):
        raise ValueError("every person in a query list needs the authorisation it relies on")
    manifest = envelope.Manifest(partner=CENTRE, feed_kind=query_kind(kind), period=period,
                                 sequence=sequence, row_count=len(persons),
                                 schema_version=QUERY_SCHEMA_VERSION)
    out = io.BytesIO()
    envelope.pack(io.BytesIO(query_list_bytes(persons)), out, manifest=manifest,
                  sender=query_keys.signer, recipient=query_keys.recipient(partner))
    return out.getvalue()


# ---- the partner's side (reference server) ------------------------------------------------------
@dataclass
class _Query:
    query_id: str
    kind: str
    ready_at: float
    answer: bytes
    sha256: str
    sequence: int


@dataclass
class QueryDesk:
    """A partner answering query lists, as the reference server runs it.

    ``records`` maps each feed kind to the partner's full plain feed (CSV); the answer holds the
    rows whose ID is in the list. ``ready_after`` seconds pass before an answer is ready (202
    until then). Query lists must be signed by a key in ``trusted`` (the centre's) and fresh.
    """

    partner: str
    recipient: keys.RecipientKey
    trusted: keys.PartnerDirectory
    signer: keys.SigningKey
    centre: keys.RecipientPublicKey
    records: dict[str, Path]
    # The partner's own reading of an ID number as written in its register (the reference
    # server is given the centre's GB 11643 canonicaliser; a connector imports no domain code).
    canonical_ids: Callable[[pd.Series], pd.Series]
    ready_after: float = 0.0
    first_sequence: int = 0
    clock: Callable[[], float] = time.monotonic
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _queries: dict[str, _Query] = field(default_factory=dict)
    _by_digest: dict[str, str] = field(default_factory=dict)
    _freshness: envelope.MemoryFreshness = field(default_factory=envelope.MemoryFreshness)
    _sequences: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, data: bytes) -> str:
        """Check and take a query list; returns its id. Raises ``EnvelopeError``/``ValueError``."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if digest in self._by_digest:  # the same post again (a retry): same query
                return self._by_digest[digest]
            plain = io.BytesIO()
            manifest = envelope.unpack(io.BytesIO(data), plain,
                                       keyring=keys.CentreKeyring([self.recipient]),
                                       trusted=self.trusted, freshness=self._freshness)
            if manifest.partner != CENTRE or not manifest.feed_kind.startswith(QUERY_PREFIX):
                raise ValueError(f"not a query list: {manifest.partner}/{manifest.feed_kind}")
            kind = manifest.feed_kind.removeprefix(QUERY_PREFIX)
            if kind not in self.records:
                raise ValueError(f"partner {self.partner} does not answer for {kind!r}")
            asked = decode_bytes(plain.getvalue(), CSV)
            if list(asked.columns.drop([LINE, PROBLEM])) != list(QUERY_COLUMNS):
                raise ValueError(f"query list columns must be {', '.join(QUERY_COLUMNS)}")
            if (asked["authorisation_ref"].str.strip() == "").any():
                raise ValueError("a person in the query list has no authorisation reference")
            self._freshness.record(manifest.partner, manifest.feed_kind, manifest.sequence)
            sequence = max(self._sequences.get(kind, self.first_sequence), 0) + 1
            self._sequences[kind] = sequence
            answer = self._answer(kind, set(self.canonical_ids(asked["id_number"])),
                                  manifest.period,
                                  sequence)
            query = _Query(uuid.uuid4().hex, kind, self.clock() + self.ready_after, answer,
                           hashlib.sha256(answer).hexdigest(), sequence)
            self._queries[query.query_id] = query
            self._by_digest[digest] = query.query_id
            return query.query_id

    def poll(self, query_id: str) -> tuple[str, float, _Query | None]:
        """("unknown"|"pending"|"ready", seconds still to wait, the query)."""
        query = self._queries.get(query_id)
        if query is None:
            return "unknown", 0.0, None
        left = query.ready_at - self.clock()
        return ("pending", left, query) if left > 0 else ("ready", 0.0, query)

    def _answer(self, kind: str, ids: set[str], period: str, sequence: int) -> bytes:
        return answer_envelope(self.records[kind], kind, ids, partner=self.partner,
                               period=period, sequence=sequence, signer=self.signer,
                               recipient=self.centre, canonical_ids=self.canonical_ids)


def answer_envelope(records: Path, kind: str, ids: set[str], *, partner: str, period: str,
                    sequence: int, signer: keys.SigningKey, recipient: keys.RecipientPublicKey,
                    canonical_ids: Callable[[pd.Series], pd.Series]) -> bytes:
    """What an answering department does: the rows of its plain feed ``records`` whose canonical
    ID is in ``ids``, as a feed of ``kind`` signed by ``signer`` and encrypted to ``recipient``."""
    from schemas import contract_for

    frame = decode_file(records)
    id_field = contract_for(kind).person_id_field
    rows = frame[canonical_ids(frame[id_field]).isin(ids)].drop(columns=[LINE, PROBLEM])
    out = io.StringIO(newline="")
    rows.to_csv(out, index=False, lineterminator="\n")
    manifest = envelope.Manifest(partner=partner, feed_kind=kind, period=period,
                                 sequence=sequence, row_count=len(rows), schema_version="1.0")
    packed = io.BytesIO()
    envelope.pack(io.BytesIO(out.getvalue().encode()), packed, manifest=manifest, sender=signer,
                  recipient=recipient)
    return packed.getvalue()


# ---- the centre's client ---------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    data: bytes
    sha256: str


class QueryClient(PartnerClient):
    """``PartnerClient`` with the query-list endpoints (same retries, timeouts, TLS options)."""

    def post_query(self, packed: bytes) -> str:
        response = self._request("POST", "/queries", data=packed,
                                 headers={"Content-Type": "application/vnd.hedui.envelope"})
        return str(response.json()["query_id"])

    def poll_answer(self, query_id: str) -> tuple[Answer | None, float]:
        """(the answer, 0) once ready, else (None, seconds the partner asks us to wait)."""
        response = self._request("GET", f"/queries/{query_id}")
        if response.status_code == 202:
            return None, float(response.headers.get("Retry-After", "1"))
        data = response.content
        digest = hashlib.sha256(data).hexdigest()
        if (said := response.headers.get("X-Content-SHA256")) and said != digest:
            raise TransportError(f"query {query_id}: the answer does not match its SHA-256")
        return Answer(data, digest), 0.0

    def wait_for_answer(self, query_id: str, wait_seconds: float) -> Answer | None:
        """Poll until the answer is ready or ``wait_seconds`` have passed (then None)."""
        deadline = time.monotonic() + wait_seconds
        while True:
            answer, wait = self.poll_answer(query_id)
            if answer is not None:
                return answer
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sleep(max(0.05, min(wait, left, self.max_wait)))

    def send_query_receipt(self, query_id: str, receipt: dict[str, Any]) -> None:
        self._request("POST", f"/queries/{query_id}/receipt", json=receipt)


def retry_after_header(seconds: float) -> str:
    """Whole seconds for a ``Retry-After`` header (at least 1)."""
    return str(max(1, math.ceil(seconds)))
