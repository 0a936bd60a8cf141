"""Every feed kind through the exchange: plain file → pack → unpack → decode → validate.

Synthetic district from verification/synthetic/generator.py, including its deliberately broken
rows. A kind
the generator does not write yet goes through as the contract's header with no rows. Each kind
uses another encoding and suite. What the centre decodes must be exactly what the partner wrote,
and the counts must reconcile (received = accepted + quarantined).
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

import schemas
from connectors import envelope, keys
from connectors.decoding import PROBLEM, decode_bytes
from schemas import contract_for
from verification.intake.validate import validate_frame
from verification.synthetic.generator import generate, write_district

ENCODINGS = ["utf-8", "utf-8-sig", "gb18030"]
SUITES = sorted(envelope.SUITES)


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("district")
    write_district(generate(households=30, seed=7), out)
    return out


def _feed_text(district, kind: str) -> str:
    """The generated feed, or, for a kind the generator does not write yet, the contract's header
    with no rows (the envelope and the decoder must still carry it)."""
    path = district / "feeds" / f"{kind}.csv"
    if path.exists():
        return path.read_text(encoding="utf-8")
    return ",".join(schemas.field_names(kind)) + "\n"


@pytest.mark.parametrize("kind", schemas.feed_kinds())
def test_every_feed_kind_round_trips(district, kind: str) -> None:
    index = schemas.feed_kinds().index(kind)
    text = _feed_text(district, kind)
    plain = text.encode(ENCODINGS[index % len(ENCODINGS)])
    suite = SUITES[index % len(SUITES)]
    centre = keys.insecure_test_recipient_key(envelope.SUITES[suite].kem)
    signer = keys.insecure_test_signing_key("partner-" + kind.replace("_", "-"))
    sent = decode_bytes(plain)
    draft = envelope.Manifest(partner=signer.partner, feed_kind=kind, period="2026-10",
                              sequence=index + 1, row_count=len(sent),
                              schema_version=str(schemas.load_contract(kind)["version"]))

    packed = io.BytesIO()
    envelope.pack(io.BytesIO(plain), packed, manifest=draft, sender=signer,
                  recipient=centre.public(), suite=suite, chunk_size=4096)
    received = io.BytesIO()
    manifest = envelope.unpack(io.BytesIO(packed.getvalue()), received,
                               keyring=keys.CentreKeyring([centre]),
                               trusted=keys.PartnerDirectory([signer.public()]),
                               freshness=envelope.MemoryFreshness())
    assert received.getvalue() == plain

    frame = decode_bytes(received.getvalue(), manifest.content_type)
    pd.testing.assert_frame_equal(frame, sent)
    assert len(frame) == manifest.row_count
    assert (frame[PROBLEM] == "").all()
    validated = validate_frame(frame.drop(columns=[PROBLEM]), contract_for(kind))
    counts = validated.counts
    assert counts["received"] == counts["accepted"] + counts["quarantined"] == len(frame)
