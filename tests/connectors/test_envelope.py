"""The exchange envelope: round trips per suite and every tampering class, each with its error."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import envelope as env
from connectors import keys

PLAIN = "证件号码,姓名,月工资\n".encode() + b"".join(
    f"21011219800101{i:04d},name{i},{1000 + i}.50\n".encode() for i in range(40)
)
CHUNK = 64
NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
SIGNER = keys.insecure_test_signing_key("sihr")
CENTRE = keys.insecure_test_recipient_key(keys.KEM_X25519)
CENTRE_HYBRID = keys.insecure_test_recipient_key(keys.KEM_HYBRID)


def draft(sequence: int = 7) -> env.Manifest:
    return env.Manifest(partner="sihr", feed_kind="wages", period="2026-10", sequence=sequence,
                        row_count=40, schema_version="1.0")


def keyring() -> keys.CentreKeyring:
    return keys.CentreKeyring([CENTRE, CENTRE_HYBRID], current=CENTRE.key_id)


def directory() -> keys.PartnerDirectory:
    return keys.PartnerDirectory([SIGNER.public()])


def packed(plain: bytes = PLAIN, suite: str = env.DEFAULT_SUITE, chunk_size: int = CHUNK,
           sequence: int = 7, signer: keys.SigningKey = SIGNER) -> bytes:
    recipient = CENTRE_HYBRID if suite.endswith(keys.KEM_HYBRID) else CENTRE
    out = io.BytesIO()
    env.pack(io.BytesIO(plain), out, manifest=draft(sequence), sender=signer,
             recipient=recipient.public(), suite=suite, chunk_size=chunk_size, now=NOW)
    return out.getvalue()


def open_blob(blob: bytes, **overrides) -> bytes:
    checks = {"keyring": keyring(), "trusted": directory()} | overrides
    out = io.BytesIO()
    env.unpack(io.BytesIO(blob), out, **checks)
    return out.getvalue()


def regions(blob: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges of each header field and of each chunk, from the documented layout."""
    spans, pos = {}, 0

    def take(name: str, size: int) -> None:
        nonlocal pos
        spans[name] = (pos, pos + size)
        pos += size

    take("magic", 8)
    take("version", 1)
    for name in ("suite", "sender_key_id", "recipient_key_id"):
        take(f"{name}_len", 1)
        take(name, blob[pos - 1])
    take("manifest_len", 4)
    take("manifest", struct.unpack(">I", blob[spans["manifest_len"][0]:pos])[0])
    take("wrapped_len", 2)
    take("wrapped_key", struct.unpack(">H", blob[spans["wrapped_len"][0]:pos])[0])
    take("nonce_prefix", 7)
    take("chunk_size", 4)
    take("signature", 64)
    chunk_size = struct.unpack(">I", blob[spans["chunk_size"][0]:spans["chunk_size"][1]])[0]
    index = 0
    while pos < len(blob):
        take(f"chunk#{index}", min(chunk_size + 16, len(blob) - pos))
        index += 1
    return spans


def flip(blob: bytes, offset: int) -> bytes:
    return blob[:offset] + bytes([blob[offset] ^ 0x01]) + blob[offset + 1:]


# ------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suite", sorted(env.SUITES))
def test_round_trip_every_suite(suite: str) -> None:
    blob = packed(suite=suite)
    assert open_blob(blob) == PLAIN
    manifest = env.read_manifest(io.BytesIO(blob), trusted=directory())
    assert manifest.suite == suite
    assert manifest.plaintext_size == len(PLAIN)
    assert manifest.created_at == NOW
    assert manifest.digest_algorithm == ("sm3" if suite.startswith("sm4") else "sha256")


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_round_trip_at_chunk_edges(size: int) -> None:
    plain = bytes(range(256)) * 2
    assert open_blob(packed(plain[:size])) == plain[:size]


def test_pack_returns_the_signed_manifest() -> None:
    out = io.BytesIO()
    signed = env.pack(io.BytesIO(PLAIN), out, manifest=draft(), sender=SIGNER,
                      recipient=CENTRE.public(), now=NOW)
    assert signed.sender_key_id == SIGNER.key_id
    assert signed.recipient_key_id == CENTRE.key_id
    assert signed.suite == env.DEFAULT_SUITE
    assert len(signed.plaintext_digest) == 64
    assert env.verify(io.BytesIO(out.getvalue()), keyring=keyring(), trusted=directory()) == signed


def test_non_seekable_source_is_spooled() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # short reads, like a pipe
            chunk = self._data.read(min(len(buffer), 10))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    out = io.BytesIO()
    env.pack(Pipe(PLAIN), out, manifest=draft(), sender=SIGNER, recipient=CENTRE.public())
    assert open_blob(out.getvalue()) == PLAIN


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain=st.binary(max_size=700), chunk_size=st.integers(1, 200),
       suite=st.sampled_from(["aes256gcm-x25519", "sm4gcm-x25519"]))
def test_property_round_trip(plain: bytes, chunk_size: int, suite: str) -> None:
    assert open_blob(packed(plain, suite=suite, chunk_size=chunk_size)) == plain


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_property_any_flipped_bit_fails(data: st.DataObject) -> None:
    blob = packed(PLAIN[:300], chunk_size=50)
    offset = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = blob[:offset] + bytes([blob[offset] ^ (1 << bit)]) + blob[offset + 1:]
    with pytest.raises(env.EnvelopeError):
        open_blob(bad)


# ------------------------------------------------------------------------------- tampering

HEADER_FLIPS = {
    "magic": env.MalformedEnvelope,
    "version": env.MalformedEnvelope,
    "suite": env.UnsupportedSuite,
    "sender_key_id": env.UnknownKey,
    "recipient_key_id": env.BadSignature,
    "manifest": env.BadSignature,
    "wrapped_key": env.BadSignature,
    "nonce_prefix": env.BadSignature,
    "chunk_size": env.BadSignature,
    "signature": env.BadSignature,
}


@pytest.mark.parametrize(("field", "error"), HEADER_FLIPS.items())
def test_flipped_header_byte_is_rejected(field: str, error: type[env.EnvelopeError]) -> None:
    blob = packed()
    start, end = regions(blob)[field]
    for offset in {start, (start + end) // 2, end - 1}:
        with pytest.raises(error):
            open_blob(flip(blob, offset))


def test_every_manifest_byte_is_covered_by_the_signature() -> None:
    blob = packed()
    start, end = regions(blob)["manifest"]
    for offset in range(start, end):
        with pytest.raises(env.BadSignature, match="signature does not verify"):
            open_blob(flip(blob, offset))


@pytest.mark.parametrize("field", ["suite_len", "sender_key_id_len", "recipient_key_id_len",
                                   "manifest_len", "wrapped_len"])
def test_flipped_length_field_is_rejected(field: str) -> None:
    blob = packed()
    start, end = regions(blob)[field]
    for offset in range(start, end):
        with pytest.raises(env.EnvelopeError):
            open_blob(flip(blob, offset))


def test_flipped_byte_in_any_chunk_is_tampered() -> None:
    blob = packed()
    chunks = [name for name in regions(blob) if name.startswith("chunk#")]
    assert len(chunks) > 5
    for name in chunks:
        start, end = regions(blob)[name]
        for offset in (start, end - 1):  # ciphertext body and tag
            with pytest.raises(env.Tampered, match=f"chunk {int(name[6:]) + 1} of"):
                open_blob(flip(blob, offset))


def test_truncation_at_a_chunk_boundary() -> None:
    blob = packed()
    spans = regions(blob)
    for name in ("signature", "chunk#0", "chunk#2"):
        with pytest.raises(env.Truncated, match="cut short"):
            open_blob(blob[: spans[name][1]])


def test_truncation_mid_chunk_and_mid_header() -> None:
    blob = packed()
    spans = regions(blob)
    start, end = spans["chunk#3"]
    with pytest.raises(env.Truncated):
        open_blob(blob[: (start + end) // 2])
    with pytest.raises(env.Truncated):
        open_blob(blob[: len(blob) - 1])
    with pytest.raises(env.Truncated, match="header"):
        open_blob(blob[: spans["manifest"][0] + 3])


def test_reordered_chunks_are_tampered() -> None:
    blob = packed()
    spans = regions(blob)
    (a0, a1), (b0, b1) = spans["chunk#1"], spans["chunk#2"]
    swapped = blob[:a0] + blob[b0:b1] + blob[a0:a1] + blob[b1:]
    with pytest.raises(env.Tampered, match="chunk 2 of"):
        open_blob(swapped)


def test_dropped_and_duplicated_chunks_fail() -> None:
    blob = packed()
    (a0, a1) = regions(blob)["chunk#1"]
    with pytest.raises(env.EnvelopeError):
        open_blob(blob[:a0] + blob[a1:])
    with pytest.raises(env.Tampered):
        open_blob(blob[:a1] + blob[a0:a1] + blob[a1:])


def test_trailing_data_is_tampered() -> None:
    with pytest.raises(env.Tampered, match="after the final chunk"):
        open_blob(packed() + b"\x00")


@pytest.mark.parametrize("cipher", [env._AesGcm(bytes(32)), env._Sm4Gcm(bytes(16))])
def test_stream_nonce_binds_counter_and_final_flag(cipher) -> None:
    # The signed plaintext size already fixes the chunk count; the STREAM nonce makes the chunk
    # layer safe on its own: a chunk opens only at its own index with its own final flag.
    prefix, aad = bytes(7), env._aad(bytes(32), 0)
    sealed = cipher.seal(env._nonce(prefix, 0, False), b"chunk", aad)
    assert cipher.open(env._nonce(prefix, 0, False), sealed, aad) == b"chunk"
    for nonce, extra in [(env._nonce(prefix, 0, True), aad), (env._nonce(prefix, 1, False), aad),
                         (env._nonce(prefix, 0, False), env._aad(bytes(32), 1))]:
        with pytest.raises(InvalidTag):
            cipher.open(nonce, sealed, extra)


# ------------------------------------------------------------------------------------- keys


def test_wrong_recipient_key() -> None:
    other = keys.insecure_test_recipient_key(keys.KEM_X25519, generation=2)
    with pytest.raises(env.WrongRecipient, match=CENTRE.key_id):
        open_blob(packed(), keyring=keys.CentreKeyring([other]))


def test_recipient_key_with_reused_id_cannot_open() -> None:
    impostor = keys.RecipientKey(CENTRE.key_id, keys.KEM_X25519,
                                 keys.generate_recipient_key().x25519_key)
    with pytest.raises(env.WrongRecipient, match="cannot open"):
        open_blob(packed(), keyring=keys.CentreKeyring([impostor]))


def test_unknown_signing_key() -> None:
    with pytest.raises(env.UnknownKey, match=SIGNER.key_id):
        open_blob(packed(), trusted=keys.PartnerDirectory())


def test_revoked_signing_key() -> None:
    trusted = directory()
    trusted.revoke(SIGNER.key_id, "laptop stolen", now=NOW)
    with pytest.raises(env.RevokedKey, match="laptop stolen"):
        open_blob(packed(), trusted=trusted)


def test_forged_signature_with_a_trusted_key_id() -> None:
    forger = keys.SigningKey(SIGNER.key_id, "sihr", keys.generate_signing_key("sihr").private_key)
    with pytest.raises(env.BadSignature):
        open_blob(packed(signer=forger))


def test_partner_cannot_sign_for_another_partner() -> None:
    tax_key = keys.insecure_test_signing_key("tax")
    out = io.BytesIO()
    with pytest.raises(ValueError, match="partner"):
        env.pack(io.BytesIO(PLAIN), out, manifest=draft(), sender=tax_key,
                 recipient=CENTRE.public())
    # A directory that files SIGNER's key under another partner refuses the feed.
    trusted = keys.PartnerDirectory([keys.PartnerPublicKey(SIGNER.key_id, "tax",
                                                          SIGNER.private_key.public_key())])
    with pytest.raises(env.BadSignature, match="belongs to partner 'tax'"):
        open_blob(packed(), trusted=trusted)


def test_rotation_old_key_still_opens() -> None:
    new = keys.insecure_test_recipient_key(keys.KEM_X25519, generation=2)
    ring = keyring()
    ring.add(new, make_current=True)
    assert ring.current.key_id == new.key_id
    assert open_blob(packed(), keyring=ring) == PLAIN  # packed to the old key


def test_suite_must_match_recipient_key() -> None:
    with pytest.raises(env.UnsupportedSuite, match="mlkem768x25519"):
        env.pack(io.BytesIO(PLAIN), io.BytesIO(), manifest=draft(), sender=SIGNER,
                 recipient=CENTRE.public(), suite="aes256gcm-mlkem768x25519")
    with pytest.raises(env.UnsupportedSuite, match="supported suites"):
        env.pack(io.BytesIO(PLAIN), io.BytesIO(), manifest=draft(), sender=SIGNER,
                 recipient=CENTRE.public(), suite="rot13-x25519")


# -------------------------------------------------------------------------------- freshness


def test_replayed_and_older_sequences() -> None:
    seen = env.MemoryFreshness()
    assert open_blob(packed(sequence=7), freshness=seen) == PLAIN
    seen.record("sihr", "wages", 7)
    with pytest.raises(env.Replayed, match="replay of"):
        open_blob(packed(sequence=7), freshness=seen)
    with pytest.raises(env.Replayed, match="older than"):
        open_blob(packed(sequence=6), freshness=seen)
    assert open_blob(packed(sequence=8), freshness=seen) == PLAIN
    assert seen.last("sihr", "wages") == 7  # unpack does not record; the caller does


def test_freshness_is_per_partner_and_kind() -> None:
    seen = env.MemoryFreshness({("sihr", "pensions"): 99, ("tax", "wages"): 99})
    assert open_blob(packed(sequence=1), freshness=seen) == PLAIN


def test_max_age_uses_the_injected_clock() -> None:
    blob = packed()
    assert open_blob(blob, now=NOW + timedelta(days=1), max_age=timedelta(days=2)) == PLAIN
    with pytest.raises(env.Replayed, match="more than"):
        open_blob(blob, now=NOW + timedelta(days=3), max_age=timedelta(days=2))


# ------------------------------------------------------------------------- manifest & paths


def test_manifest_json_round_trip() -> None:
    manifest = env.read_manifest(io.BytesIO(packed()))
    assert env.Manifest.from_json(manifest.to_json()) == manifest
    assert env.Manifest.from_dict(manifest.to_dict()) == manifest


@pytest.mark.parametrize("change", [
    {"period": "2026-13"}, {"sequence": -1}, {"row_count": True}, {"partner": "SIHR"},
    {"content_type": "text/plain"}, {"created_at": datetime(2026, 1, 1)},
    {"schema_version": 1}, {"partner": 123}, {"suite": None},
])
def test_manifest_rejects_bad_values(change: dict) -> None:
    with pytest.raises(ValueError):
        env.Manifest(**(draft().to_dict() | {"created_at": None} | change))


def test_manifest_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown manifest fields: colour"):
        env.Manifest.from_dict(draft().to_dict() | {"colour": "red"})


def test_read_manifest_without_keys_and_with_untrusted_key() -> None:
    blob = packed()
    assert env.read_manifest(io.BytesIO(blob)).sequence == 7
    with pytest.raises(env.UnknownKey):
        env.read_manifest(io.BytesIO(blob), trusted=keys.PartnerDirectory())


def test_not_an_envelope() -> None:
    with pytest.raises(env.MalformedEnvelope, match="not a hedui envelope"):
        open_blob(b"partner,kind\n")
    with pytest.raises(env.MalformedEnvelope):
        open_blob(b"")


def test_unpack_to_path_leaves_nothing_on_failure(tmp_path) -> None:
    good, bad = tmp_path / "good.env", tmp_path / "bad.env"
    blob = packed()
    good.write_bytes(blob)
    bad.write_bytes(blob[:-5])
    checks = {"keyring": keyring(), "trusted": directory()}
    env.unpack_to_path(good, tmp_path / "good.csv", **checks)
    assert (tmp_path / "good.csv").read_bytes() == PLAIN
    with pytest.raises(env.Truncated):
        env.unpack_to_path(bad, tmp_path / "bad.csv", **checks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.env", "good.csv", "good.env"]


def test_error_classes_have_distinct_reasons() -> None:
    classes = [env.BadSignature, env.UnknownKey, env.RevokedKey, env.WrongRecipient,
               env.Truncated, env.Tampered, env.Replayed, env.UnsupportedSuite,
               env.MalformedEnvelope]
    assert all(issubclass(cls, env.EnvelopeError) for cls in classes)
    assert len({cls.reason for cls in classes}) == len(classes)


def test_check_framing_without_the_centre_key() -> None:
    blob = packed()
    assert env.check_framing(io.BytesIO(blob), trusted=directory()).sequence == 7
    with pytest.raises(env.Truncated, match="cut short"):
        env.check_framing(io.BytesIO(blob[:-1]))
    with pytest.raises(env.Tampered, match="after the final chunk"):
        env.check_framing(io.BytesIO(blob + b"x"))
    with pytest.raises(env.BadSignature):
        env.check_framing(io.BytesIO(flip(blob, regions(blob)["manifest"][0])), trusted=directory())


def test_only_authenticated_chunks_reach_dest() -> None:
    blob = packed()
    start, _ = regions(blob)["chunk#3"]
    out = io.BytesIO()
    with pytest.raises(env.Tampered):
        env.unpack(io.BytesIO(flip(blob, start + 5)), out, keyring=keyring(), trusted=directory())
    assert out.getvalue() == PLAIN[: 3 * CHUNK]  # chunks 0-2, each checked; nothing of chunk 3


def test_write_errors_reach_the_caller() -> None:
    class Full(io.BytesIO):
        def write(self, data) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        env.unpack(io.BytesIO(packed()), Full(), keyring=keyring(), trusted=directory())
    with pytest.raises(OSError, match="No space"):
        env.pack(io.BytesIO(PLAIN), Full(), manifest=draft(), sender=SIGNER,
                 recipient=CENTRE.public())


def test_created_at_is_bounded_on_both_sides_by_the_injected_clock() -> None:
    blob = packed()  # created at NOW
    skew = timedelta(minutes=10)
    assert open_blob(blob, now=NOW - timedelta(minutes=5), max_skew=skew) == PLAIN
    with pytest.raises(env.CreatedInFuture, match="clock skew tolerated: 0:10:00"):
        open_blob(blob, now=NOW - timedelta(minutes=11), max_skew=skew)
    with pytest.raises(env.TooOld, match="more than 2 days, 0:00:00 before"):
        open_blob(blob, now=NOW + timedelta(days=3), max_age=timedelta(days=2))
    dated_2099 = io.BytesIO()  # correctly signed, dated 2099
    env.pack(io.BytesIO(PLAIN), dated_2099, manifest=draft(7), sender=SIGNER,
             recipient=CENTRE.public(), chunk_size=CHUNK, now=NOW.replace(year=2099))
    with pytest.raises(env.CreatedInFuture, match="2099-11-01"):
        open_blob(dated_2099.getvalue(), now=NOW, max_skew=skew)
