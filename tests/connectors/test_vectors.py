"""Committed envelope vectors (tests/vectors/envelope) still open and still derive the same keys.

If one of these fails, the format changed: envelopes already in partners' outboxes would stop
opening. Bump the format version instead and keep the old vectors.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from connectors import envelope as env
from connectors import keys

HERE = Path(__file__).resolve().parents[1] / "vectors" / "envelope"
VECTORS = json.loads((HERE / "vectors.json").read_text(encoding="utf-8"))
PLAIN = (HERE / VECTORS["plaintext"]).read_bytes()


def _keyring() -> keys.CentreKeyring:
    files = sorted(HERE.glob("keys/*centre*.key.pem"))
    return keys.CentreKeyring(keys.load_recipient_key(p) for p in files)


def _trusted() -> keys.PartnerDirectory:
    return keys.PartnerDirectory([keys.load_partner_public_key(HERE / "keys" /
                                                               "TEST-ONLY-sihr-sign-1.pub.pem")])


def test_committed_keys_are_the_marked_test_keys() -> None:
    signer = keys.load_signing_key(HERE / "keys" / "TEST-ONLY-sihr-sign-1.key.pem")
    assert signer.is_test_key
    assert signer.public().public_key == keys.insecure_test_signing_key("sihr").public().public_key
    for centre in _keyring():
        derived = keys.insecure_test_recipient_key(centre.kem)
        assert centre.public().x25519_key == derived.public().x25519_key
        assert "Test-Only: yes" in (HERE / "keys" / f"{centre.key_id}.key.pem").read_text()


@pytest.mark.parametrize("suite", sorted(VECTORS["envelopes"]))
def test_committed_envelope_unpacks(suite: str) -> None:
    vector = VECTORS["envelopes"][suite]
    blob = (HERE / vector["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == vector["envelope_sha256"]
    out = io.BytesIO()
    manifest = env.unpack(io.BytesIO(blob), out, keyring=_keyring(), trusted=_trusted())
    assert out.getvalue() == PLAIN
    assert manifest == env.Manifest.from_dict(vector["manifest"])


@pytest.mark.parametrize("suite", sorted(VECTORS["envelopes"]))
def test_committed_envelope_intermediate_values(suite: str) -> None:
    vector = VECTORS["envelopes"][suite]
    spec = env.SUITES[suite]
    source = io.BytesIO((HERE / vector["file"]).read_bytes())
    header = env._read_header(source)
    assert len(header.to_bytes()) == vector["header_length"] == source.tell()
    digest = env._header_digest(spec, header.to_bytes())
    assert digest.hex() == vector["header_digest"]
    content_key = env._unwrap(header, spec, _keyring())
    assert content_key.hex() == vector["content_key"]
    assert env._payload_key(spec, content_key, digest).hex() == vector["payload_key"]


@pytest.mark.parametrize("vector", VECTORS["stream"], ids=lambda v: v["suite"])
def test_stream_layer_is_deterministic(vector: dict) -> None:
    spec = env.SUITES[vector["suite"]]
    content_key = bytes.fromhex(vector["content_key"])
    digest = bytes.fromhex(vector["header_digest"])
    assert env._payload_key(spec, content_key, digest).hex() == vector["payload_key"]
    cipher = env._payload_cipher(spec, content_key, digest)
    plain, size = bytes.fromhex(vector["plaintext"]), vector["chunk_size"]
    prefix = bytes.fromhex(vector["nonce_prefix"])
    count = len(vector["chunks"])
    assert count == env._chunk_count(len(plain), size)
    for index, chunk in enumerate(vector["chunks"]):
        nonce = env._nonce(prefix, index, index == count - 1)
        assert nonce.hex() == chunk["nonce"]
        assert env._aad(digest, index).hex() == chunk["aad"]
        piece = plain[index * size:(index + 1) * size]
        aad, sealed = bytes.fromhex(chunk["aad"]), bytes.fromhex(chunk["sealed"])
        assert cipher.seal(nonce, piece, aad) == sealed
        assert cipher.open(nonce, sealed, aad) == piece
