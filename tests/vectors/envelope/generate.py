"""Write the envelope test vectors in this folder. TEST ONLY keys; synthetic data.

Run only when the format version changes (then bump VERSION in connectors/envelope.py and keep
the old vectors in a subfolder): the committed files are the proof that envelopes packed by an
earlier build still open. tests/connectors/test_vectors.py checks them.

    .venv/bin/python tests/vectors/envelope/generate.py
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from connectors import envelope as env  # noqa: E402
from connectors import keys  # noqa: E402

PLAINTEXT = HERE / "plaintext.csv"
CHUNK_SIZE = 64
CREATED = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)


def plaintext() -> bytes:
    rows = ["record_id,id_number,name,period,employer_name,employer_credit_code,wage_amount,"
            "si_contribution"]
    rows += [f"TV{i:03d},11010519491231002X,测试{i},2026-10,测试单位,91350100M000100Y43,"
             f"{3000 + i}.50,300.00" for i in range(5)]
    return ("\n".join(rows) + "\n").encode("utf-8")


def write_keys() -> dict[str, keys.RecipientKey]:
    signer = keys.insecure_test_signing_key("sihr")
    keys.save_signing_key(signer, HERE / "keys")
    centres = {kem: keys.insecure_test_recipient_key(kem) for kem in keys.KEMS}
    for centre in centres.values():
        keys.save_recipient_key(centre, HERE / "keys")
    return centres


def envelope_vector(suite: str, centre: keys.RecipientKey, data: bytes) -> dict:
    draft = env.Manifest(partner="sihr", feed_kind="wages", period="2026-10", sequence=1,
                         row_count=5, schema_version="1.0")
    out = io.BytesIO()
    manifest = env.pack(io.BytesIO(data), out, manifest=draft,
                        sender=keys.insecure_test_signing_key("sihr"), recipient=centre.public(),
                        suite=suite, chunk_size=CHUNK_SIZE, now=CREATED)
    blob = out.getvalue()
    (HERE / f"{suite}.hedui").write_bytes(blob)
    source = io.BytesIO(blob)
    header = env._read_header(source)
    spec = env.SUITES[suite]
    header_bytes = header.to_bytes()
    content_key = env._unwrap(header, spec, keys.CentreKeyring([centre]))
    header_digest = env._header_digest(spec, header_bytes)
    return {
        "file": f"{suite}.hedui",
        "envelope_sha256": hashlib.sha256(blob).hexdigest(),
        "manifest": manifest.to_dict(),
        "header_length": len(header_bytes),
        "header_digest": header_digest.hex(),
        "content_key": content_key.hex(),
        "payload_key": env._payload_key(spec, content_key, header_digest).hex(),
        "nonce_prefix": header.nonce_prefix.hex(),
        "chunk_size": header.chunk_size,
    }


def stream_vector(suite: str) -> dict:
    """The chunk layer alone, from fixed inputs: fully deterministic."""
    spec = env.SUITES[suite]
    content_key = bytes(range(32))
    header_digest = hashlib.sha256(b"TEST ONLY header").digest()
    prefix = bytes.fromhex("a0a1a2a3a4a5a6")
    data = b"0123456789" * 13  # 130 bytes: two full 64-byte chunks and a 2-byte final one
    cipher = env._payload_cipher(spec, content_key, header_digest)
    count = env._chunk_count(len(data), CHUNK_SIZE)
    chunks = []
    for index in range(count):
        piece = data[index * CHUNK_SIZE:(index + 1) * CHUNK_SIZE]
        nonce = env._nonce(prefix, index, index == count - 1)
        chunks.append({"nonce": nonce.hex(), "aad": env._aad(header_digest, index).hex(),
                       "sealed": cipher.seal(nonce, piece, env._aad(header_digest, index)).hex()})
    return {"suite": suite, "content_key": content_key.hex(), "header_digest": header_digest.hex(),
            "payload_key": env._payload_key(spec, content_key, header_digest).hex(),
            "nonce_prefix": prefix.hex(), "chunk_size": CHUNK_SIZE, "plaintext": data.hex(),
            "chunks": chunks}


def main() -> None:
    data = plaintext()
    PLAINTEXT.write_bytes(data)
    centres = write_keys()
    vectors = {
        "note": "TEST ONLY: keys derived from public seeds (connectors.keys.insecure_test_*)",
        "format_version": env.VERSION,
        "plaintext": PLAINTEXT.name,
        "plaintext_sha256": hashlib.sha256(data).hexdigest(),
        "envelopes": {suite: envelope_vector(suite, centres[env.SUITES[suite].kem], data)
                      for suite in env.SUITES},
        "stream": [stream_vector(suite) for suite in ("aes256gcm-x25519", "sm4gcm-x25519")],
    }
    (HERE / "vectors.json").write_text(json.dumps(vectors, ensure_ascii=False, indent=2) + "\n",
                                       encoding="utf-8")
    print(f"wrote {len(vectors['envelopes'])} envelopes, {len(vectors['stream'])} stream vectors")


if __name__ == "__main__":
    main()
