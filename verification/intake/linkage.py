"""Vertical linkage (纵向联动, 协查): asking another verification centre about persons registered
with it, and taking its answer in.

A centre at another level or in another region holds data this centre's partners do not (a
member's wages paid in another province, a flat registered in another city). This centre
exports a **request bundle** — the persons (ID numbers), the authorisation each query relies on,
and the items asked (feed kinds) — packed in the envelope format of docs/exchange-format.md,
signed with this centre's signing key and encrypted to the other centre's recipient key
(manifest feed kind ``linkage.request``). The bundle travels by whatever channel the two centres
use (the provincial platform, file drop, a courier with an encrypted disk).

The other centre answers with one ordinary feed envelope per item, signed by it (its code, e.g.
``centre_210102``, is its partner code) and encrypted to this centre. ``import_answer`` takes each
through the same intake as any feed (verify, decrypt, decode, validate, stage) after checking it
answers this request and names only persons who were asked.

Until every item is answered, the request is **pending**: ``apply_pending`` makes each household
it covers ``undetermined`` with a ``SOURCE_UNAVAILABLE`` reason naming the centre, the items and
the request's age in days, so the household goes to REVIEW and nobody reads the silence as
"nothing found". Requests are kept in ``var/linkage/requests`` (tokens and ids, never ID numbers).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectors import envelope, keys
from connectors.decoding import CSV, LINE, PROBLEM, decode_bytes
from connectors.query_list import QueryKeys, answer_envelope
from verification.intake.query_list import canonical_ids, members_to_ask, unasked_persons

log = logging.getLogger(__name__)

REQUEST_KIND = "linkage.request"
REQUEST_COLUMNS = ("row", "id_number", "authorisation_ref", "items")
SCHEMA_VERSION = "1.0"


@dataclass
class LinkageRequest:
    """A request to another centre, as this centre keeps it (no ID numbers)."""

    request_id: str
    centre: str
    sequence: int
    period: str
    items: list[str]
    asked_on: str  # ISO date the request was exported
    household_ids: list[int]
    tokens: list[int]
    bundle: str  # path of the packed request
    answers: dict[str, int] = field(default_factory=dict)  # item → feed id taken in

    @property
    def pending_items(self) -> list[str]:
        return [item for item in self.items if item not in self.answers]

    @property
    def answered(self) -> bool:
        return not self.pending_items

    def age_days(self, as_of: dt.date) -> int:
        return (as_of - dt.date.fromisoformat(self.asked_on)).days


def _requests_dir(settings: Any) -> Path:
    path = settings.home / "linkage" / "requests"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save(settings: Any, request: LinkageRequest) -> None:
    path = _requests_dir(settings) / f"{request.request_id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(request.__dict__, ensure_ascii=False, indent=1), "utf-8")
    tmp.replace(path)


def load_requests(settings: Any) -> list[LinkageRequest]:
    """Every request this centre has sent, oldest first."""
    found = [LinkageRequest(**json.loads(p.read_text("utf-8")))
             for p in _requests_dir(settings).glob("*.json")]
    return sorted(found, key=lambda r: (r.asked_on, r.request_id))


def load_request(settings: Any, request_id: str) -> LinkageRequest:
    path = _requests_dir(settings) / f"{request_id}.json"
    if not path.exists():
        raise KeyError(f"no linkage request {request_id!r}")
    return LinkageRequest(**json.loads(path.read_text("utf-8")))


# ---- export ----------------------------------------------------------------------------------
def request_bytes(persons: Sequence[tuple[str, str]], items: Sequence[str]) -> bytes:
    """The plain request: one row per person (ID number, authorisation reference, items)."""
    frame = pd.DataFrame({"row": range(1, len(persons) + 1),
                          "id_number": [pid for pid, _ in persons],
                          "authorisation_ref": [ref for _, ref in persons],
                          "items": ";".join(items)})
    out = io.StringIO(newline="")
    frame.to_csv(out, index=False, lineterminator="\n")
    return out.getvalue().encode("utf-8")


def export_request(settings: Any, centre: str, household_ids: Iterable[int],
                   items: Sequence[str], *, out_dir: Path, as_of: dt.date | None = None,
                   query_keys: QueryKeys | None = None, purpose: str = "linkage",
                   actor: str = "system") -> LinkageRequest:
    """Export a request bundle for ``centre`` about every member of ``household_ids``.

    Every member must hold an authorisation covering the centre or each item
    (verification.security.authorisation refuses the whole request otherwise, and audits the
    access).
    Writes ``<out_dir>/<request_id>.hedui`` and returns the request, now pending.
    """
    from schemas import feed_kinds
    from verification.security import authorisation

    as_of = as_of or dt.date.today()
    unknown = set(items) - set(feed_kinds())
    if not items or unknown:
        raise ValueError(f"items must be feed kinds with a contract; unknown: {sorted(unknown)}")
    query_keys = query_keys or QueryKeys.load(settings.keys_dir)
    household_ids = sorted({int(h) for h in household_ids})
    persons = members_to_ask(settings, household_ids)
    tokens = [token for token, _ in persons]
    refs: dict[int, str] = {}
    for item in items:
        for token, ref in authorisation.query_references(
                settings, centre, item, tokens, as_of, purpose=purpose, actor=actor).items():
            refs.setdefault(token, ref)
    used = [int(r.sequence) for r in load_requests(settings) if r.centre == centre]
    sequence = max([int(dt.datetime.now(dt.UTC).timestamp()), *(u + 1 for u in used)])
    request_id = f"{centre}-{sequence}"
    manifest = envelope.Manifest(partner=query_keys.signer.partner, feed_kind=REQUEST_KIND,
                                 period=f"{as_of:%Y-%m}", sequence=sequence,
                                 row_count=len(persons), schema_version=SCHEMA_VERSION)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = out_dir / f"{request_id}.hedui"
    tmp = bundle.with_name(bundle.name + ".part")
    with tmp.open("wb") as out:
        envelope.pack(io.BytesIO(request_bytes([(pid, refs[t]) for t, pid in persons], items)),
                      out, manifest=manifest, sender=query_keys.signer,
                      recipient=query_keys.recipient(centre))
    tmp.replace(bundle)
    request = LinkageRequest(request_id, centre, sequence, f"{as_of:%Y-%m}", list(items),
                             as_of.isoformat(), household_ids, tokens, str(bundle))
    _save(settings, request)
    log.info("linkage request %s to %s: %d persons, items %s", request_id, centre,
             len(persons), ",".join(items))
    return request


# ---- the other centre's side -----------------------------------------------------------------
def answer_request(bundle: Path, *, recipient: keys.RecipientKey, trusted: keys.PartnerDirectory,
                   signer: keys.SigningKey, requester: keys.RecipientPublicKey,
                   records: dict[str, Path], out_dir: Path, first_sequence: int = 0) -> list[Path]:
    """What the answering centre does (and the tests and demo): open the request, answer each
    item from its own plain feed in ``records`` for the persons listed, one envelope per item."""
    plain = io.BytesIO()
    with bundle.open("rb") as source:
        manifest = envelope.unpack(source, plain, keyring=keys.CentreKeyring([recipient]),
                                   trusted=trusted)
    if manifest.feed_kind != REQUEST_KIND:
        raise ValueError(f"not a linkage request: {manifest.feed_kind}")
    frame = decode_bytes(plain.getvalue(), CSV)
    if list(frame.columns.drop([LINE, PROBLEM])) != list(REQUEST_COLUMNS):
        raise ValueError(f"request columns must be {', '.join(REQUEST_COLUMNS)}")
    ids = set(canonical_ids(frame["id_number"]).dropna())
    items = sorted({item for cell in frame["items"] for item in cell.split(";") if item})
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for n, item in enumerate(items, start=1):
        if item not in records:
            continue  # this centre holds nothing of that kind: the item stays unanswered
        data = answer_envelope(records[item], item, ids, partner=signer.partner,
                               period=manifest.period, sequence=first_sequence + n,
                               signer=signer, recipient=requester, canonical_ids=canonical_ids)
        path = out_dir / f"{manifest.partner}-{manifest.sequence}-{item}.hedui"
        path.write_bytes(data)
        written.append(path)
    return written


# ---- import ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportedAnswer:
    file: str
    item: str
    status: str  # accepted | rejected
    feed_id: int | None
    reason: str = ""
    accepted: int = 0
    quarantined: int = 0


def import_answer(settings: Any, request_id: str, paths: Iterable[Path], *,
                  keyring: keys.CentreKeyring | None = None,
                  trusted: keys.PartnerDirectory | None = None) -> list[ImportedAnswer]:
    """Take the other centre's answer envelopes in through intake, item by item.

    Each must be signed by the centre asked (its key in the partner directory) and be of an
    item asked; an envelope naming a person not in the request is rejected as a whole. An item
    accepted is no longer pending.
    """
    from verification.intake import feeds as intake

    keyring = keyring or keys.CentreKeyring.load(settings.keys_dir)
    trusted = trusted or keys.PartnerDirectory.load(settings.keys_dir)
    request = load_request(settings, request_id)
    results = []
    for path in paths:
        try:
            with path.open("rb") as handle:
                manifest = envelope.read_manifest(handle, trusted=trusted)
        except (envelope.EnvelopeError, ValueError) as err:
            results.append(ImportedAnswer(path.name, "", "rejected", None,
                                          f"{type(err).__name__}: {err}"))
            continue
        if manifest.partner != request.centre or manifest.feed_kind not in request.items:
            results.append(ImportedAnswer(
                path.name, manifest.feed_kind, "rejected", None,
                f"NotThisRequest: {manifest.partner}/{manifest.feed_kind} does not answer "
                f"request {request_id} ({request.centre}: {', '.join(request.items)})"))
            continue
        _ensure_partner_row(settings, request.centre)
        raw = (settings.feeds_dir / request.centre
               / f"{manifest.feed_kind}-{manifest.sequence}.hedui")
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_bytes(path.read_bytes())
        feed_id = intake.register_feed(settings, request.centre, manifest.feed_kind,
                                       manifest.period, manifest.sequence, raw)
        extra = unasked_persons(settings, raw, manifest.feed_kind, set(request.tokens), keyring,
                                trusted)
        if extra:
            result = intake.reject_feed(settings, feed_id, f"UnaskedPersons: the answer holds "
                                                           f"rows for {extra} person(s) not in "
                                                           f"request {request_id}")
        else:
            result = intake.process_feed(settings, feed_id, keyring, trusted)
        if result.status == "accepted":
            request.answers[manifest.feed_kind] = feed_id
        results.append(ImportedAnswer(path.name, manifest.feed_kind, result.status, feed_id,
                                      result.reason, result.accepted, result.quarantined))
    _save(settings, request)
    return results


def _ensure_partner_row(settings: Any, code: str) -> None:
    """Another centre is a partner in the feeds table (its feeds are kept apart by its code)."""
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Partner

    with session_scope(settings.database_url) as session:
        if session.scalar(select(Partner.id).where(Partner.code == code)) is None:
            session.add(Partner(code=code, name_zh=f"协查核对机构 {code}",
                                name_en=f"Verification centre {code} (linkage)"))


# ---- unanswered requests in an assessment ------------------------------------------------------
def pending_for(settings: Any, household_ids: Iterable[int], as_of: dt.date) -> pd.DataFrame:
    """One row per (household, pending request): household_id, request_id, centre, items,
    asked_on, age_days."""
    wanted = {int(h) for h in household_ids}
    rows = [{"household_id": h, "request_id": r.request_id, "centre": r.centre,
             "items": ",".join(r.pending_items), "asked_on": r.asked_on,
             "age_days": r.age_days(as_of)}
            for r in load_requests(settings) if not r.answered
            and dt.date.fromisoformat(r.asked_on) <= as_of
            for h in r.household_ids if h in wanted]
    return pd.DataFrame(rows, columns=["household_id", "request_id", "centre", "items",
                                       "asked_on", "age_days"])


def apply_pending(settings: Any, results: pd.DataFrame, reasons: pd.DataFrame,
                  as_of: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Households with an unanswered linkage request become ``undetermined`` (so REVIEW), with a
    ``SOURCE_UNAVAILABLE`` reason whose value is the request's age in days and whose evidence
    reference names the centre, the items still pending and the date asked.

    ``results`` is indexed by household_id (verification.assessment.assess); returns new frames."""
    pending = pending_for(settings, results.index, as_of)
    if pending.empty:
        return results, reasons
    results = results.copy()
    hit = results.index.isin(pending["household_id"])
    results.loc[hit, "decision"] = "undetermined"
    results.loc[hit, "eligible"] = False
    results.loc[hit, "category"] = "none"
    results.loc[hit, "benefit"] = np.nan
    labels = pending.groupby("household_id")["centre"].agg(
        lambda c: ",".join(f"linkage:{x}" for x in sorted(set(c))))
    current = results.loc[hit, "missing_sources"].fillna("").astype(str)
    results.loc[hit, "missing_sources"] = [
        ",".join(x for x in (now, labels[h]) if x) for h, now in zip(current.index, current,
                                                                       strict=True)]
    extra = pd.DataFrame({
        "household_id": pending["household_id"], "code": "SOURCE_UNAVAILABLE", "passed": False,
        "value": pending["age_days"].astype(float), "limit": 0.0,
        "parameter": "linkage." + pending["centre"],
        "reference": "纵向联动协查未答复 / linkage request unanswered: " + pending["request_id"]
        + " (" + pending["asked_on"] + ")",
        "evidence_refs": "linkage:" + pending["centre"] + ":" + pending["items"]
        + "::pending " + pending["age_days"].astype(str) + " days since " + pending["asked_on"],
        "cites": np.int64(-1),  # a request, not an evidence row
    })
    reasons = pd.concat([reasons, extra[reasons.columns]], ignore_index=True) if len(
        reasons.columns) else extra
    return results, reasons


def with_pending(settings: Any, result: Any, as_of: dt.date) -> Any:
    """``apply_pending`` on a verification.assessment.assess ``Assessment``; returns a new one."""
    import dataclasses

    results, reasons = apply_pending(settings, result.results, result.reasons, as_of)
    return dataclasses.replace(result, results=results, reasons=reasons)
