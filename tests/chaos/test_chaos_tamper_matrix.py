"""Chaos: a tamper matrix of more than 200 distinct mutations of one signed feed — bit flips and
overwritten bytes everywhere in the file, truncations, appended bytes, chunks swapped, dropped and
repeated, signed manifest fields edited — each sent under the feed's sequence through intake.
Every one is rejected whole with an envelope reason, nothing of it is staged, and afterwards the
genuine file is accepted under the same sequence: no feed lost, none doubled, the books balance."""

from __future__ import annotations

import io
import json

from sqlalchemy import func, select

from connectors import envelope, keys
from tests.chaos.books import assert_books_balance, feeds
from verification.intake import feeds as intake
from verification.storage import session_scope
from verification.storage.models import AuditEvent, QuarantinedRow
from verification.synthetic.exchange import ensure_test_keys

CHUNK = 256
SEQUENCE = 202610


def _genuine(settings, district_dir) -> bytes:
    centre = ensure_test_keys(settings).keyring.current.public()
    plain = (district_dir / "feeds" / "deaths.csv").read_bytes()
    manifest = envelope.Manifest(partner="civil", feed_kind="deaths", period="2026-10",
                                 sequence=SEQUENCE, row_count=plain.count(b"\n") - 1,
                                 schema_version="1.0")
    out = io.BytesIO()
    envelope.pack(io.BytesIO(plain), out, manifest=manifest,
                  sender=keys.insecure_test_signing_key("civil"), recipient=centre,
                  chunk_size=CHUNK)
    return out.getvalue()


def _header_length(data: bytes) -> int:
    source = io.BytesIO(data)
    envelope._read_header(source)  # noqa: SLF001 (the test knows the layout)
    return source.tell()


def _chunks(data: bytes, start: int) -> list[bytes]:
    size = CHUNK + envelope.TAG_LEN
    return [data[i:i + size] for i in range(start, len(data), size)]


def _manifest_edits(data: bytes) -> dict[str, bytes]:
    """Signed manifest fields changed in place (the length field kept right): the signature no
    longer holds."""
    source = io.BytesIO(data)
    header = envelope._read_header(source)  # noqa: SLF001
    text = header.manifest_bytes.decode()
    values = json.loads(text)
    edits = {"sequence": (f'"sequence": {values["sequence"]}', f'"sequence": {SEQUENCE + 1}'),
             "row_count": (f'"row_count": {values["row_count"]}',
                           f'"row_count": {values["row_count"] + 1}'),
             "period": ('"2026-10"', '"2026-11"'),
             "partner": ('"civil"', '"hrss"'),
             "feed_kind": ('"deaths"', '"births"')}
    out = {}
    for name, (old, new) in edits.items():
        compact_old, compact_new = old.replace(": ", ":"), new.replace(": ", ":")
        if compact_old in text:
            old, new = compact_old, compact_new
        if old not in text:
            continue
        edited = text.replace(old, new, 1).encode()
        length_at = data.index(header.manifest_bytes) - 4
        out[f"manifest_{name}"] = (data[:length_at] + len(edited).to_bytes(4, "big") + edited
                                   + data[length_at + 4 + len(header.manifest_bytes):])
    return out


def _mutations(data: bytes) -> dict[str, bytes]:
    header = _header_length(data)
    found: dict[str, bytes] = {}
    for i in range(150):  # bit flips spread over the whole file, header included
        at = (i * (len(data) - 1)) // 149
        flipped = bytearray(data)
        flipped[at] ^= 1 << (i % 8)
        found[f"flip_{at}_{i % 8}"] = bytes(flipped)
    for i in range(20):  # bytes overwritten with 0x00 / 0xFF
        at = (i * 7919) % len(data)
        for value in (0x00, 0xFF):
            changed = bytearray(data)
            changed[at] = value
            found[f"set_{at}_{value:02x}"] = bytes(changed)
    cuts = {0, 1, 4, header - 1, header, header + 1, len(data) - 1, len(data) - envelope.TAG_LEN}
    cuts |= {header + (k * (len(data) - header)) // 20 for k in range(1, 20)}
    for cut in sorted(c for c in cuts if 0 <= c < len(data)):
        found[f"truncate_{cut}"] = data[:cut]
    for extra in (b"\x00", b"\n", b"x" * 16, data[-envelope.TAG_LEN:], data[header:]):
        found[f"append_{len(extra)}_{extra[:1].hex()}"] = data + extra
    chunks = _chunks(data, header)
    for i in range(min(5, len(chunks) - 1)):
        swapped = chunks[:i] + [chunks[i + 1], chunks[i]] + chunks[i + 2:]
        found[f"swap_chunks_{i}"] = data[:header] + b"".join(swapped)
        found[f"drop_chunk_{i}"] = data[:header] + b"".join(chunks[:i] + chunks[i + 1:])
        found[f"repeat_chunk_{i}"] = data[:header] + b"".join(chunks[:i + 1] + chunks[i:])
    found["last_chunk_dropped"] = data[:header] + b"".join(chunks[:-1])
    found.update(_manifest_edits(data))
    distinct: dict[bytes, str] = {}
    for name, blob in found.items():
        if blob != data:
            distinct.setdefault(blob, name)
    return {name: blob for blob, name in distinct.items()}


def test_every_mutation_is_rejected_and_the_genuine_feed_is_then_accepted_once(
        sqlite_settings, district_dir):
    settings = sqlite_settings
    centre = ensure_test_keys(settings)
    genuine = _genuine(settings, district_dir)
    mutations = _mutations(genuine)
    assert len(mutations) >= 200
    folder = settings.feeds_dir / "civil"
    folder.mkdir(parents=True, exist_ok=True)
    accepted_mutations = []
    for n, (name, blob) in enumerate(sorted(mutations.items())):
        raw = folder / f"deaths-{SEQUENCE}-mutation-{n}.hedui"
        raw.write_bytes(blob)
        feed_id = intake.register_feed(settings, "civil", "deaths", "2026-10", SEQUENCE, raw)
        result = intake.process_feed(settings, feed_id, centre.keyring, centre.trusted)
        if result.status != "rejected":
            accepted_mutations.append(name)
            continue
        reason = result.reason.split(":")[0]
        assert reason in {"MalformedEnvelope", "UnsupportedSuite", "UnknownKey", "BadSignature",
                          "WrongRecipient", "Truncated", "Tampered", "IntakeRejected"}, (
            name, result.reason)
    assert accepted_mutations == []
    assert not settings.staging_dir.exists() or not list(settings.staging_dir.glob("*.parquet"))
    raw = folder / f"deaths-{SEQUENCE}.hedui"
    raw.write_bytes(genuine)
    feed_id = intake.register_feed(settings, "civil", "deaths", "2026-10", SEQUENCE, raw)
    result = intake.process_feed(settings, feed_id, centre.keyring, centre.trusted)
    assert result.status == "accepted", result.reason
    assert result.received == result.accepted + result.quarantined
    assert [f.status for f in feeds(settings)] == ["accepted"]  # one feed, not doubled
    with session_scope(settings.database_url) as session:
        rejections = session.scalar(select(func.count(AuditEvent.id)).where(
            AuditEvent.action == "feed.rejected"))
        quarantined = session.scalar(select(func.count(QuarantinedRow.id)))
    assert rejections == len(mutations)  # every rejection recorded, none overwritten
    assert quarantined >= result.quarantined
    assert_books_balance(settings)
