"""Query-list mode, the centre's side: ask a query-list partner about a batch's members, wait for
the answer and take it in through the ordinary intake.

The exchange itself (the query list's format, the partner's desk, the HTTP client) is transport
and lives in connectors/query_list.py; this module adds what needs the centre's state: the members
and their authorisations, the pending-query memory under ``var/queries`` (tokens and ids only),
and intake of the answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from connectors import envelope, keys
from connectors.decoding import decode_file
from connectors.query_list import QueryClient, QueryKeys, pack_query
from connectors.registry import load_partners

log = logging.getLogger(__name__)


def canonical_ids(raw: pd.Series) -> pd.Series:
    """Canonical ID numbers (None where invalid)."""
    from verification.intake.identifiers import canonicalise_ids

    return canonicalise_ids(raw.astype(str)).values


# ---- the centre: ask, wait, take in ------------------------------------------------------------
@dataclass(frozen=True)
class QueryOutcome:
    """One query to one partner for one feed kind."""

    partner: str
    kind: str
    query_id: str
    status: str  # answered | pending | rejected
    asked: int
    feed_id: int | None = None
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    reason: str = ""


def _state_dir(settings: Any, partner: str) -> Path:
    path = settings.home / "queries" / partner
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tokens_digest(tokens: Iterable[int]) -> str:
    return hashlib.sha256(",".join(str(t) for t in sorted(tokens)).encode()).hexdigest()


def _pending_for(folder: Path, kind: str, digest: str) -> dict[str, Any] | None:
    for path in sorted(folder.glob(f"{kind}-*.json")):
        state = json.loads(path.read_text("utf-8"))
        if state["status"] == "pending" and state["tokens_digest"] == digest:
            return state
    return None


def _next_sequence(folder: Path, kind: str) -> int:
    used = [json.loads(p.read_text("utf-8"))["sequence"] for p in folder.glob(f"{kind}-*.json")]
    return max([int(time.time()), *(u + 1 for u in used)])


def _save_state(folder: Path, state: dict[str, Any]) -> None:
    path = folder / f"{state['kind']}-{state['sequence']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), "utf-8")
    tmp.replace(path)


def members_to_ask(settings: Any, household_ids: Iterable[int]) -> list[tuple[int, str]]:
    """(person token, ID number) of every member of the households; IDs decrypted in memory."""
    from sqlalchemy import select

    from verification.security.fieldcrypt import load_field_cipher
    from verification.storage import session_scope
    from verification.storage.models import Member

    ids = sorted({int(h) for h in household_ids})
    cipher = load_field_cipher()
    out: dict[int, str] = {}
    with session_scope(settings.database_url) as session:
        for start in range(0, len(ids), 500):
            for token, blob in session.execute(
                    select(Member.person_token, Member.id_number_enc)
                    .where(Member.household_id.in_(ids[start:start + 500]))):
                out.setdefault(int(token), cipher.decrypt(blob, "members.id_number"))
    return sorted(out.items())


def query_partner(settings: Any, client: QueryClient, partner: str, kind: str,
                  household_ids: Iterable[int], *, as_of: dt.date | None = None,
                  purpose: str = "query", actor: str = "system",
                  query_keys: QueryKeys | None = None, keyring: keys.CentreKeyring | None = None,
                  trusted: keys.PartnerDirectory | None = None,
                  wait_seconds: float = 60.0) -> QueryOutcome:
    """Ask ``partner`` for ``kind`` about every member of ``household_ids`` and take the answer in.

    Each person's authorisation reference comes from verification.security.authorisation (which
    refuses
    the whole query, ``NotAuthorised``, if anyone lacks one, and audits the access). A query
    already pending for the same persons is polled instead of posted again. Returns
    ``status="pending"`` if no answer came within ``wait_seconds`` (call again later).
    """
    from verification.intake import feeds as intake
    from verification.security import authorisation

    as_of = as_of or dt.date.today()
    query_keys = query_keys or QueryKeys.load(settings.keys_dir)
    keyring = keyring or keys.CentreKeyring.load(settings.keys_dir)
    trusted = trusted or keys.PartnerDirectory.load(settings.keys_dir)
    persons = members_to_ask(settings, household_ids)
    tokens = [token for token, _ in persons]
    folder = _state_dir(settings, partner)
    digest = _tokens_digest(tokens)
    state = _pending_for(folder, kind, digest)
    if state is None:
        refs = authorisation.query_references(settings, partner, kind, tokens, as_of,
                                              purpose=purpose, actor=actor)
        sequence = _next_sequence(folder, kind)
        packed = pack_query([(pid, refs[token]) for token, pid in persons], partner=partner,
                            kind=kind, period=f"{as_of:%Y-%m}", sequence=sequence,
                            query_keys=query_keys)
        query_id = client.post_query(packed)
        state = {"query_id": query_id, "kind": kind, "sequence": sequence,
                 "period": f"{as_of:%Y-%m}", "asked": len(persons), "tokens_digest": digest,
                 "tokens": tokens, "purpose": purpose,
                 "posted_at": dt.datetime.now(dt.UTC).isoformat(), "status": "pending"}
        _save_state(folder, state)
        log.info("query %s to %s for %s: %d persons", query_id, partner, kind, len(persons))
    answer = client.wait_for_answer(state["query_id"], wait_seconds)
    if answer is None:
        return QueryOutcome(partner, kind, state["query_id"], "pending", state["asked"],
                            reason=f"no answer yet (asked {state['posted_at']})")
    raw = settings.feeds_dir / partner / intake.query_answer_name(kind, state["query_id"])
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_bytes(answer.data)
    manifest = envelope.read_manifest(io.BytesIO(answer.data), trusted=trusted)
    feed_id = intake.register_feed(settings, partner, kind, manifest.period, manifest.sequence,
                                   raw)
    unasked = unasked_persons(settings, raw, kind, set(state["tokens"]), keyring, trusted)
    if unasked:
        result = intake.reject_feed(settings, feed_id, f"UnaskedPersons: the answer holds rows "
                                                       f"for {unasked} person(s) not in the query")
    else:
        result = intake.process_feed(settings, feed_id, keyring, trusted)
    client.send_query_receipt(state["query_id"], result.receipt())
    state.update(status="answered" if result.status == "accepted" else "rejected",
                 feed_id=feed_id)
    _save_state(folder, state)
    return QueryOutcome(partner, kind, state["query_id"],
                        "answered" if result.status == "accepted" else "rejected", state["asked"],
                        feed_id, result.received, result.accepted, result.quarantined,
                        result.reason)


def unasked_persons(settings: Any, raw: Path, kind: str, asked: set[int],
                     keyring: keys.CentreKeyring, trusted: keys.PartnerDirectory) -> int:
    """How many distinct persons the answer names who were not asked (0 if it cannot be read:
    intake then rejects it with the precise reason)."""
    from schemas import contract_for
    from verification.intake.tokens import person_tokens

    with tempfile.TemporaryDirectory(dir=settings.private_tmp_dir()) as tmp:
        plain = Path(tmp) / "plain"
        try:
            manifest = envelope.unpack_to_path(raw, plain, keyring=keyring, trusted=trusted)
            frame = decode_file(plain, manifest.content_type)
        except (envelope.EnvelopeError, ValueError):
            return 0
    id_field = contract_for(kind).person_id_field
    if id_field not in frame:
        return 0
    ids = canonical_ids(frame[id_field]).dropna()
    found = set(person_tokens(settings.token_key, ids.drop_duplicates()).dropna().astype(int))
    return len(found - asked)


def query_partners(settings: Any, household_ids: Iterable[int], *, as_of: dt.date | None = None,
                   purpose: str = "batch", actor: str = "batch",
                   partners: Iterable[str] | None = None,
                   clients: dict[str, QueryClient] | None = None,
                   wait_seconds: float = 60.0) -> list[QueryOutcome]:
    """Query every query-list partner (``transport: query_list`` in partners.yaml, or
    ``partners``) for each of its feed kinds about the households' members.

    ``clients`` maps partner code → ``QueryClient``; a partner without one gets a client from its
    Airflow Connection (connectors/hooks.py). Raises ``NotAuthorised`` before anything is sent if
    a member lacks a valid authorisation.
    """
    registry = load_partners()
    codes = list(partners) if partners is not None else [
        code for code, spec in registry.items() if spec.transport == "query_list"]
    household_ids = sorted({int(h) for h in household_ids})
    outcomes = []
    for code in codes:
        client = (clients or {}).get(code) or _client_from_connection(registry[code].conn_id)
        for kind in registry[code].feeds:
            outcomes.append(query_partner(settings, client, code, kind, household_ids,
                                          as_of=as_of, purpose=purpose, actor=actor,
                                          wait_seconds=wait_seconds))
    return outcomes


def _client_from_connection(conn_id: str) -> QueryClient:
    from connectors.hooks import PartnerHook

    base = PartnerHook(conn_id).get_conn()  # endpoint, token, TLS options from the Connection
    return QueryClient(base.base_url, timeout=base.timeout, retries=base.retries,
                       backoff=base.backoff, verify=base.session.verify, session=base.session)


