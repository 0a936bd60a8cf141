"""The exchange envelope: a partner feed, encrypted to the centre and signed by the partner.

A recipe module in the spirit of ``cryptography``'s Fernet: four calls, no algorithm choices beyond
a suite *name* taken from configuration, and one error class per way a feed can fail::

    manifest = pack(src, dst, manifest=draft, sender=signing_key, recipient=centre_public_key)
    manifest = unpack(src, dst, keyring=centre_keyring, trusted=partner_directory, freshness=seen)
    manifest = verify(src, keyring=..., trusted=..., freshness=...)     # unpack without output
    manifest = read_manifest(src)                                        # header only, for routing

The byte layout, the threat model and key rotation are specified in docs/exchange-format.md.
In short: a header (magic, version, suite, key ids, the manifest as JSON, the content key wrapped
with HPKE to the centre's key, a nonce prefix and the chunk size) signed with the partner's Ed25519
key, then the plaintext in fixed-size chunks, each sealed with AES-256-GCM (or SM4-GCM) under the
STREAM construction: nonce = prefix || chunk counter || last-chunk flag, additional data = header
digest || chunk index. The signed manifest carries the plaintext size and digest, so truncation,
reordering and any altered byte fail, and memory stays O(chunk) for multi-GB feeds.

``unpack`` writes plaintext to ``dest`` chunk by chunk, each only after it authenticated; when it
raises, whatever reached ``dest`` must be discarded (``unpack_to_path`` does that for you).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import struct
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connectors.keys import (
    KEM_HYBRID,
    KEM_X25519,
    CentreKeyring,
    PartnerDirectory,
    RecipientPublicKey,
    SigningKey,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SUITE",
    "SUITES",
    "BadSignature",
    "EnvelopeError",
    "FreshnessCheck",
    "MalformedEnvelope",
    "Manifest",
    "MemoryFreshness",
    "Replayed",
    "RevokedKey",
    "Tampered",
    "Truncated",
    "UnknownKey",
    "UnsupportedSuite",
    "WrongRecipient",
    "check_framing",
    "pack",
    "read_manifest",
    "unpack",
    "unpack_to_path",
    "verify",
]

MAGIC = b"HEDUIENV"
VERSION = 1
SIGNATURE_CONTEXT = b"hedui-envelope-v1 header signature\x00"
WRAP_INFO_CONTEXT = b"hedui-envelope-v1 content key\x00"
PAYLOAD_KEY_CONTEXT = b"hedui-envelope-v1 payload key\x00"
CONTENT_KEY_LEN = 32
NONCE_PREFIX_LEN = 7
TAG_LEN = 16
SIGNATURE_LEN = 64
MAX_MANIFEST_LEN = 64 * 1024
MAX_WRAPPED_LEN = 4096
MAX_CHUNK_SIZE = 64 * 1024 * 1024
MAX_CHUNKS = 2**32
DEFAULT_SUITE = "aes256gcm-x25519"
DEFAULT_CHUNK_SIZE = 1 << 20

CONTENT_TYPES = (
    "text/csv",
    "application/jsonl",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
)

# ------------------------------------------------------------------------------------ errors


class EnvelopeError(Exception):
    """A feed envelope failed a check; ``reason`` is a stable code for receipts and alerts."""

    reason = "envelope_error"


class MalformedEnvelope(EnvelopeError):
    reason = "malformed"


class UnsupportedSuite(EnvelopeError):
    reason = "unsupported_suite"


class UnknownKey(EnvelopeError):
    reason = "unknown_key"


class RevokedKey(EnvelopeError):
    reason = "revoked_key"


class BadSignature(EnvelopeError):
    reason = "bad_signature"


class WrongRecipient(EnvelopeError):
    reason = "wrong_recipient"


class Replayed(EnvelopeError):
    reason = "replayed"


class TooOld(Replayed):
    """``created_at`` is further back than the receiver's maximum age (a stale or replayed
    feed)."""

    reason = "too_old"


class CreatedInFuture(EnvelopeError):
    """``created_at`` is later than the receiver's clock allows, even with the clock skew
    tolerated (a wrong clock at the partner, or a forged date)."""

    reason = "created_in_future"


class Truncated(EnvelopeError):
    reason = "truncated"


class Tampered(EnvelopeError):
    reason = "tampered"


# ------------------------------------------------------------------------------------ suites


class _AesGcm:
    key_len = 32

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, data: bytes | memoryview, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, data, aad)

    def open(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(nonce, data, aad)


class _Sm4Gcm:
    key_len = 16

    def __init__(self, key: bytes) -> None:
        self._key = key

    def seal(self, nonce: bytes, data: bytes | memoryview, aad: bytes) -> bytes:
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        body = enc.update(data) + enc.finalize()
        return body + enc.tag

    def open(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        if len(data) < TAG_LEN:
            raise InvalidTag
        body, tag = data[:-TAG_LEN], data[-TAG_LEN:]
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(aad)
        return dec.update(body) + dec.finalize()


class _Sm3:
    """hashlib-shaped SM3 (OpenSSL builds differ in whether hashlib offers it)."""

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes | memoryview) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.finalize().hex()


@dataclass(frozen=True)
class _Suite:
    name: str
    kem: str  # which recipient key kind (connectors.keys.KEM_*) the suite needs
    hpke_kem: Any
    cipher: Callable[[bytes], _AesGcm | _Sm4Gcm]
    digest_name: str
    new_digest: Callable[[], Any]
    kdf_hash: Callable[[], hashes.HashAlgorithm]

    def hpke(self) -> hpke.Suite:
        # The content key is wrapped with AES-256-GCM inside HPKE for every suite: HPKE defines
        # no SM4 AEAD, and the wrap protects 32 random bytes, never feed data.
        return hpke.Suite(self.hpke_kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def _suite_table() -> dict[str, _Suite]:
    kems = {KEM_X25519: hpke.KEM.X25519, KEM_HYBRID: hpke.KEM.MLKEM768_X25519}
    payloads = {
        "aes256gcm": (_AesGcm, "sha256", hashlib.sha256, hashes.SHA256),
        "sm4gcm": (_Sm4Gcm, "sm3", _Sm3, hashes.SM3),
    }
    table = {}
    for pname, (cipher, dname, new_digest, kdf_hash) in payloads.items():
        for kname, hpke_kem in kems.items():
            name = f"{pname}-{kname}"
            table[name] = _Suite(name, kname, hpke_kem, cipher, dname, new_digest, kdf_hash)
    return table


SUITES: dict[str, _Suite] = _suite_table()


def _suite(name: str) -> _Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise UnsupportedSuite(
            f"cipher suite {name!r} is not supported; supported suites: {', '.join(SUITES)}"
        ) from None


# ---------------------------------------------------------------------------------- manifest

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_STRING_FIELDS = ("partner", "feed_kind", "period", "schema_version", "content_type",
                  "plaintext_digest", "sender_key_id", "recipient_key_id", "suite")
_PERIOD_RE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")


@dataclass(frozen=True)
class Manifest:
    """What a feed is, signed by the partner. ``pack`` fills the fields after ``schema_version``.

    ``plaintext_digest`` is hex SHA-256 for ``aes256gcm-*`` suites and hex SM3 for ``sm4gcm-*``
    (see ``digest_algorithm``); ``plaintext_size`` is in bytes; ``row_count`` is the partner's own
    count of data rows, which intake reconciles against what it decodes.
    """

    partner: str
    feed_kind: str
    period: str
    sequence: int
    row_count: int
    schema_version: str
    content_type: str = "text/csv"
    plaintext_digest: str = ""
    plaintext_size: int = 0
    sender_key_id: str = ""
    recipient_key_id: str = ""
    suite: str = ""
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in _STRING_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"manifest {name} must be a string, got {getattr(self, name)!r}")
        for name in ("partner", "feed_kind"):
            if not _NAME_RE.match(getattr(self, name)):
                raise ValueError(f"manifest {name} {getattr(self, name)!r} must be a lowercase "
                                 "identifier (a-z, 0-9, '_', '.', '-')")
        if not _PERIOD_RE.match(self.period):
            raise ValueError(f"manifest period {self.period!r} must be YYYY, YYYY-MM or YYYY-MM-DD")
        for name in ("sequence", "row_count", "plaintext_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"manifest {name} must be a non-negative integer, got {value!r}")
        if self.content_type not in CONTENT_TYPES:
            raise ValueError(f"manifest content_type {self.content_type!r} must be one of "
                             f"{', '.join(CONTENT_TYPES)}")
        if self.created_at is not None and self.created_at.tzinfo is None:
            raise ValueError("manifest created_at must carry a time zone")

    @property
    def digest_algorithm(self) -> str:
        return _suite(self.suite).digest_name if self.suite else ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        names = {f.name for f in fields(cls)}
        if unknown := set(data) - names:
            raise ValueError(f"unknown manifest fields: {', '.join(sorted(unknown))}")
        if missing := {"partner", "feed_kind", "period", "sequence", "row_count",
                       "schema_version"} - set(data):
            raise ValueError(f"missing manifest fields: {', '.join(sorted(missing))}")
        values = dict(data)
        if values.get("created_at") is not None:
            values["created_at"] = datetime.fromisoformat(values["created_at"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("manifest JSON must be an object")
        return cls.from_dict(data)


# --------------------------------------------------------------------------------- freshness


class FreshnessCheck(Protocol):
    """Remembers the last accepted sequence per (partner, feed kind).

    ``unpack`` calls ``check`` before decrypting; the caller calls ``record`` once the feed is
    durably stored, so a feed that failed half-way can be sent again.
    """

    def check(self, partner: str, feed_kind: str, sequence: int) -> None:
        """Raise ``Replayed`` if ``sequence`` is not newer than the last recorded one."""

    def record(self, partner: str, feed_kind: str, sequence: int) -> None:
        """Note ``sequence`` as accepted."""


class MemoryFreshness:
    """In-memory ``FreshnessCheck`` (tests, the partner kit); production backs it with the DB."""

    def __init__(self, last: dict[tuple[str, str], int] | None = None) -> None:
        self._last: dict[tuple[str, str], int] = dict(last or {})
        self._lock = threading.Lock()

    def last(self, partner: str, feed_kind: str) -> int | None:
        return self._last.get((partner, feed_kind))

    def check(self, partner: str, feed_kind: str, sequence: int) -> None:
        with self._lock:
            last = self._last.get((partner, feed_kind))
        if last is None or sequence > last:
            return
        what = "a replay of" if sequence == last else "older than"
        raise Replayed(
            f"{partner}/{feed_kind} feed sequence {sequence} is {what} the last accepted "
            f"sequence {last}; ask the partner for a new feed with a higher sequence number"
        )

    def record(self, partner: str, feed_kind: str, sequence: int) -> None:
        with self._lock:
            key = (partner, feed_kind)
            self._last[key] = max(sequence, self._last.get(key, sequence))


# ------------------------------------------------------------------------------ header codec


@dataclass(frozen=True)
class _Header:
    suite: str
    sender_key_id: str
    recipient_key_id: str
    manifest_bytes: bytes
    wrapped_key: bytes
    nonce_prefix: bytes
    chunk_size: int
    signature: bytes

    def signed_bytes(self) -> bytes:
        def short(text: str) -> bytes:
            raw = text.encode("ascii")
            return struct.pack(">B", len(raw)) + raw

        return b"".join([
            MAGIC, struct.pack(">B", VERSION), short(self.suite), short(self.sender_key_id),
            short(self.recipient_key_id),
            struct.pack(">I", len(self.manifest_bytes)), self.manifest_bytes,
            struct.pack(">H", len(self.wrapped_key)), self.wrapped_key,
            self.nonce_prefix, struct.pack(">I", self.chunk_size),
        ])

    def to_bytes(self) -> bytes:
        return self.signed_bytes() + self.signature


def _read_exact(source: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at end of file (raw streams may return short reads)."""
    data = source.read(size)
    if data is None:
        data = b""
    if len(data) == size or not data:
        return data
    parts = [data]
    remaining = size - len(data)
    while remaining:
        more = source.read(remaining)
        if not more:
            break
        parts.append(more)
        remaining -= len(more)
    return b"".join(parts)


def _need(source: BinaryIO, size: int, what: str) -> bytes:
    data = _read_exact(source, size)
    if len(data) < size:
        raise Truncated(f"the file ends inside the envelope header ({what}); "
                        "the transfer was cut short: fetch the feed again")
    return data


def _ascii_field(source: BinaryIO, what: str) -> str:
    (length,) = struct.unpack(">B", _need(source, 1, f"{what} length"))
    raw = _need(source, length, what)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedEnvelope(f"the envelope header's {what} is not ASCII") from None


def _read_header(source: BinaryIO) -> _Header:
    magic = _read_exact(source, len(MAGIC))
    if magic != MAGIC:
        raise MalformedEnvelope(f"not a hedui envelope: it starts with {magic[:8]!r}, "
                                f"expected {MAGIC!r}; was the right file sent?")
    (version,) = struct.unpack(">B", _need(source, 1, "version"))
    if version != VERSION:
        raise MalformedEnvelope(f"envelope format version {version} is not supported "
                                f"(this hedui reads version {VERSION})")
    suite = _ascii_field(source, "suite")
    sender = _ascii_field(source, "sender key id")
    recipient = _ascii_field(source, "recipient key id")
    (manifest_len,) = struct.unpack(">I", _need(source, 4, "manifest length"))
    if manifest_len > MAX_MANIFEST_LEN:
        raise MalformedEnvelope(f"manifest length {manifest_len} exceeds {MAX_MANIFEST_LEN}")
    manifest = _need(source, manifest_len, "manifest")
    (wrapped_len,) = struct.unpack(">H", _need(source, 2, "wrapped key length"))
    if wrapped_len > MAX_WRAPPED_LEN:
        raise MalformedEnvelope(f"wrapped key length {wrapped_len} exceeds {MAX_WRAPPED_LEN}")
    wrapped = _need(source, wrapped_len, "wrapped key")
    prefix = _need(source, NONCE_PREFIX_LEN, "nonce prefix")
    (chunk_size,) = struct.unpack(">I", _need(source, 4, "chunk size"))
    signature = _need(source, SIGNATURE_LEN, "signature")
    return _Header(suite, sender, recipient, manifest, wrapped, prefix, chunk_size, signature)


def _parse_manifest(header: _Header) -> Manifest:
    try:
        manifest = Manifest.from_json(header.manifest_bytes.decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise MalformedEnvelope(f"the signed manifest is not valid: {exc}") from None
    pairs = {"suite": header.suite, "sender_key_id": header.sender_key_id,
             "recipient_key_id": header.recipient_key_id}
    for name, value in pairs.items():
        if getattr(manifest, name) != value:
            raise MalformedEnvelope(f"manifest {name} {getattr(manifest, name)!r} disagrees with "
                                    f"the header's {value!r}")
    if not 1 <= header.chunk_size <= MAX_CHUNK_SIZE:
        raise MalformedEnvelope(f"chunk size {header.chunk_size} is outside 1..{MAX_CHUNK_SIZE}")
    if manifest.created_at is None or not manifest.plaintext_digest:
        raise MalformedEnvelope("the manifest lacks created_at or plaintext_digest")
    return manifest


# ----------------------------------------------------------------------------- key handling


def _wrap_info(header_suite: str, sender_key_id: str, recipient_key_id: str) -> bytes:
    # Binds the wrapped content key to the suite and both key ids (HPKE "info").
    return WRAP_INFO_CONTEXT + b"\x00".join(
        [header_suite.encode(), sender_key_id.encode(), recipient_key_id.encode()])


def _payload_key(spec: _Suite, content_key: bytes, header_digest: bytes) -> bytes:
    # HKDF with the suite's hash, salted with the header digest: the chunk key is bound to this
    # exact signed header as well as to the content key.
    cipher_len = 16 if spec.cipher is _Sm4Gcm else 32
    kdf = HKDF(algorithm=spec.kdf_hash(), length=cipher_len, salt=header_digest,
               info=PAYLOAD_KEY_CONTEXT + spec.name.encode())
    return kdf.derive(content_key)


def _payload_cipher(spec: _Suite, content_key: bytes, header_digest: bytes) -> _AesGcm | _Sm4Gcm:
    return spec.cipher(_payload_key(spec, content_key, header_digest))


def _header_digest(spec: _Suite, header_bytes: bytes) -> bytes:
    h = spec.new_digest()
    h.update(header_bytes)
    return bytes.fromhex(h.hexdigest())


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _aad(header_digest: bytes, index: int) -> bytes:
    return header_digest + struct.pack(">Q", index)


def _chunk_count(size: int, chunk_size: int) -> int:
    # An empty feed is one empty, final chunk, so even it carries an authentication tag.
    return max(1, -(-size // chunk_size))


def _check_sender(header: _Header, trusted: PartnerDirectory) -> None:
    key = trusted.get(header.sender_key_id)
    if key is None:
        raise UnknownKey(f"the feed is signed with key {header.sender_key_id!r}, which is not in "
                         "the partner directory; register the partner's public key first")
    if (revoked := trusted.revocation(header.sender_key_id)) is not None:
        raise RevokedKey(f"the feed is signed with key {header.sender_key_id!r} of partner "
                         f"{key.partner!r}, revoked at {revoked.at} ({revoked.reason})")
    try:
        key.public_key.verify(header.signature, SIGNATURE_CONTEXT + header.signed_bytes())
    except InvalidSignature:
        raise BadSignature(f"the header signature does not verify with key "
                           f"{header.sender_key_id!r} of partner {key.partner!r}: the header "
                           "or manifest was altered, or another key signed it") from None


def _check_partner(manifest: Manifest, trusted: PartnerDirectory) -> None:
    key = trusted.get(manifest.sender_key_id)
    if key is not None and key.partner != manifest.partner:
        raise BadSignature(f"key {key.key_id!r} belongs to partner {key.partner!r} but the "
                           f"manifest claims partner {manifest.partner!r}")


def _unwrap(header: _Header, spec: _Suite, keyring: CentreKeyring) -> bytes:
    key = keyring.get(header.recipient_key_id)
    if key is None:
        raise WrongRecipient(f"the feed is encrypted to centre key {header.recipient_key_id!r}, "
                             f"which this keyring does not hold (it holds "
                             f"{', '.join(keyring.key_ids) or 'no keys'})")
    if key.kem != spec.kem:
        raise WrongRecipient(f"centre key {key.key_id!r} is a {key.kem} key but suite "
                             f"{spec.name!r} needs a {spec.kem} key")
    info = _wrap_info(header.suite, header.sender_key_id, header.recipient_key_id)
    try:
        content_key = spec.hpke().decrypt(header.wrapped_key, key.hpke_private_key(), info=info)
    except (InvalidTag, ValueError):
        raise WrongRecipient(f"centre key {key.key_id!r} cannot open this feed's content key; "
                             "the feed was packed to a different key with the same id") from None
    if len(content_key) != CONTENT_KEY_LEN:
        raise MalformedEnvelope("the wrapped content key has the wrong length")
    return content_key


# ------------------------------------------------------------------------------------ public


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


class _BackgroundSink:
    """Hashes and writes blocks on a worker thread, in order, at most ``depth`` blocks behind.

    hashlib and file writes release the GIL, so on a machine with two cores the digest and the
    output overlap with reading and the AEAD. Memory stays O(chunk): ``depth`` blocks at most wait.
    """

    def __init__(self, dest: BinaryIO | None, digest: Any = None, depth: int = 3) -> None:
        self._dest = dest
        self._digest = digest
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="envelope-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:
                try:
                    if self._digest is not None:
                        self._digest.update(block)
                    if self._dest is not None:
                        self._dest.write(block)
                except BaseException as exc:  # handed to the producing thread in write/close
                    self._error = exc

    def write(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def close(self) -> None:
        """Wait for every queued block; re-raise a write error in the caller's thread."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _BackgroundSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.close()
        else:  # the caller already failed: stop the worker, keep the caller's exception
            self._queue.put(None)
            self._thread.join()


def _rewindable(source: BinaryIO) -> tuple[BinaryIO, int]:
    """The source and its start offset; a non-seekable stream is spooled to disk first."""
    try:
        if source.seekable():
            return source, source.tell()
    except (AttributeError, OSError):
        pass
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, closed with it
    shutil.copyfileobj(source, spool, DEFAULT_CHUNK_SIZE)
    spool.seek(0)
    return spool, 0  # type: ignore[return-value]


def _measure(source: BinaryIO, spec: _Suite, chunk_size: int) -> tuple[str, int]:
    digest, size = spec.new_digest(), 0
    with _BackgroundSink(None, digest) as sink:  # reading overlaps hashing
        while block := source.read(max(chunk_size, DEFAULT_CHUNK_SIZE)):
            sink.write(block)
            size += len(block)
    return digest.hexdigest(), size


def pack(
    source: BinaryIO,
    dest: BinaryIO,
    *,
    manifest: Manifest,
    sender: SigningKey,
    recipient: RecipientPublicKey,
    suite: str = DEFAULT_SUITE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: datetime | None = None,
) -> Manifest:
    """Encrypt ``source`` to ``recipient``, sign it as ``sender``, write the envelope to ``dest``.

    ``manifest`` supplies partner, feed_kind, period, sequence, row_count, schema_version and
    content_type; pack fills the digest, size, key ids, suite and created_at (from ``now``) and
    returns the manifest as signed. ``source`` is read twice (digest, then encryption); a stream
    that cannot seek is spooled to a temporary file.
    """
    spec = _suite(suite)
    if recipient.kem != spec.kem:
        raise UnsupportedSuite(f"suite {suite!r} needs a {spec.kem} recipient key, but "
                               f"{recipient.key_id!r} is a {recipient.kem} key")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be within 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
    if manifest.partner != sender.partner:
        raise ValueError(f"manifest partner {manifest.partner!r} is not the signing key's "
                         f"partner {sender.partner!r}")
    src, start = _rewindable(source)
    try:
        return _pack_from(src, start, dest, manifest, sender, recipient, spec, chunk_size, now)
    finally:
        if src is not source:
            src.close()  # our spool file


def _pack_from(src: BinaryIO, start: int, dest: BinaryIO, manifest: Manifest, sender: SigningKey,
               recipient: RecipientPublicKey, spec: _Suite, chunk_size: int,
               now: datetime | None) -> Manifest:
    digest, size = _measure(src, spec, chunk_size)
    if _chunk_count(size, chunk_size) > MAX_CHUNKS:
        raise ValueError("feed too large for this chunk size; use a larger chunk_size")
    src.seek(start)
    suite = spec.name
    signed = replace(manifest, plaintext_digest=digest, plaintext_size=size,
                     sender_key_id=sender.key_id, recipient_key_id=recipient.key_id,
                     suite=suite, created_at=_now(now))
    content_key = os.urandom(CONTENT_KEY_LEN)
    info = _wrap_info(suite, sender.key_id, recipient.key_id)
    wrapped = spec.hpke().encrypt(content_key, recipient.hpke_public_key(), info=info)
    unsigned = _Header(suite, sender.key_id, recipient.key_id, signed.to_json().encode("utf-8"),
                       wrapped, os.urandom(NONCE_PREFIX_LEN), chunk_size, b"")
    signature = sender.private_key.sign(SIGNATURE_CONTEXT + unsigned.signed_bytes())
    header = replace(unsigned, signature=signature)
    header_bytes = header.to_bytes()
    dest.write(header_bytes)
    header_digest = _header_digest(spec, header_bytes)
    cipher = _payload_cipher(spec, content_key, header_digest)
    _seal_chunks(src, dest, cipher, header, header_digest, size)
    return signed


def _seal_chunks(src: BinaryIO, dest: BinaryIO, cipher: _AesGcm | _Sm4Gcm, header: _Header,
                 header_digest: bytes, size: int) -> None:
    view = memoryview(bytearray(header.chunk_size))
    with _BackgroundSink(dest) as out:
        _seal_into(src, out, cipher, header, header_digest, size, view)
    if src.read(1):
        raise ValueError("the source grew while it was being packed; pack a finished file")


def _seal_into(src: BinaryIO, out: _BackgroundSink, cipher: _AesGcm | _Sm4Gcm, header: _Header,
               header_digest: bytes, size: int, view: memoryview) -> None:
    chunk_size = header.chunk_size
    count = _chunk_count(size, chunk_size)
    for index in range(count):
        want = min(chunk_size, size - index * chunk_size)
        got = src.readinto(view[:want]) if want else 0
        while got < want:  # short reads from pipes or raw files
            more = src.readinto(view[got:want])
            if not more:
                raise ValueError("the source shrank while it was being packed")
            got += more
        last = index == count - 1
        out.write(cipher.seal(_nonce(header.nonce_prefix, index, last), view[:want],
                              _aad(header_digest, index)))


def _open_header(
    source: BinaryIO, keyring: CentreKeyring, trusted: PartnerDirectory,
    freshness: FreshnessCheck | None, now: datetime | None, max_age: timedelta | None,
    max_skew: timedelta | None = None,
) -> tuple[_Header, Manifest, _Suite, bytes]:
    header = _read_header(source)
    spec = _suite(header.suite)
    _check_sender(header, trusted)
    manifest = _parse_manifest(header)
    _check_partner(manifest, trusted)
    _check_created(manifest.created_at, _now(now), max_age, max_skew)
    if freshness is not None:
        freshness.check(manifest.partner, manifest.feed_kind, manifest.sequence)
    content_key = _unwrap(header, spec, keyring)
    return header, manifest, spec, content_key


def _check_created(created: datetime | None, now: datetime, max_age: timedelta | None,
                   max_skew: timedelta | None) -> None:
    """``created_at`` within [now − max_age, now + max_skew] (each bound only when given)."""
    if created is None:
        return
    if max_age is not None and created < now - max_age:
        raise TooOld(f"the feed was created at {created.isoformat()}, more than {max_age} "
                     f"before {now.isoformat()}; ask the partner for a fresh feed")
    if max_skew is not None and created > now + max_skew:
        raise CreatedInFuture(f"the feed says it was created at {created.isoformat()}, after "
                              f"{now.isoformat()} (clock skew tolerated: {max_skew}); the "
                              "partner's clock or the date is wrong, ask for the feed again")


def _open_chunks(source: BinaryIO, dest: BinaryIO | None, header: _Header, manifest: Manifest,
                 spec: _Suite, content_key: bytes) -> None:
    header_bytes = header.to_bytes()
    header_digest = _header_digest(spec, header_bytes)
    cipher = _payload_cipher(spec, content_key, header_digest)
    digest = spec.new_digest()
    with _BackgroundSink(dest, digest) as out:
        _open_into(source, out, header, manifest, cipher, header_digest)
    if _read_exact(source, 1):
        count = _chunk_count(manifest.plaintext_size, header.chunk_size)
        raise Tampered(f"unexpected data after the final chunk {count}: the file was altered")
    if digest.hexdigest() != manifest.plaintext_digest:
        raise Tampered("the decrypted data does not match the manifest's plaintext digest")


def _open_into(source: BinaryIO, out: _BackgroundSink, header: _Header, manifest: Manifest,
               cipher: _AesGcm | _Sm4Gcm, header_digest: bytes) -> None:
    size, chunk_size = manifest.plaintext_size, header.chunk_size
    count = _chunk_count(size, chunk_size)
    for index in range(count):
        want = min(chunk_size, size - index * chunk_size) + TAG_LEN
        data = _read_exact(source, want)
        if len(data) < want:
            raise Truncated(f"the file ends inside chunk {index + 1} of {count}: the manifest "
                            f"announces {size} bytes of data; the transfer was cut short, "
                            "fetch the feed again")
        try:
            plain = cipher.open(_nonce(header.nonce_prefix, index, index == count - 1), data,
                                _aad(header_digest, index))
        except InvalidTag:
            offset = len(header.to_bytes()) + index * (chunk_size + TAG_LEN)
            raise Tampered(f"chunk {index + 1} of {count} (file offset {offset}) fails "
                           "authentication: the file was altered, reordered or damaged") from None
        out.write(plain)  # hashed, and written to dest if any, on the sink's thread


def unpack(
    source: BinaryIO,
    dest: BinaryIO,
    *,
    keyring: CentreKeyring,
    trusted: PartnerDirectory,
    freshness: FreshnessCheck | None = None,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    max_skew: timedelta | None = None,
) -> Manifest:
    """Check and decrypt an envelope from ``source``, writing the plaintext to ``dest``.

    Checks, in order: format and suite, the sender key (known, not revoked) and signature, the
    manifest, ``created_at`` within [``now`` − ``max_age``, ``now`` + ``max_skew``], the
    freshness of (partner, feed kind, sequence), the recipient key; then each chunk is
    authenticated before it is written. Raises a subclass of ``EnvelopeError``; on failure
    discard what reached ``dest``. Does not ``record`` the sequence: do that once the feed is
    stored.
    """
    header, manifest, spec, content_key = _open_header(
        source, keyring, trusted, freshness, now, max_age, max_skew
    )
    _open_chunks(source, dest, header, manifest, spec, content_key)
    return manifest


def verify(
    source: BinaryIO,
    *,
    keyring: CentreKeyring,
    trusted: PartnerDirectory,
    freshness: FreshnessCheck | None = None,
    now: datetime | None = None,
    max_age: timedelta | None = None,
    max_skew: timedelta | None = None,
) -> Manifest:
    """Every check ``unpack`` makes, decrypting to nowhere."""
    header, manifest, spec, content_key = _open_header(
        source, keyring, trusted, freshness, now, max_age, max_skew
    )
    _open_chunks(source, None, header, manifest, spec, content_key)
    return manifest


def read_manifest(source: BinaryIO, *, trusted: PartnerDirectory | None = None) -> Manifest:
    """The manifest from the header, without decrypting, e.g. to route a feed or pick a key.

    Without ``trusted`` the manifest is NOT authenticated: use it only to decide where to send
    the file, never as data. With ``trusted`` the sender key and signature are checked.
    """
    header = _read_header(source)
    _suite(header.suite)
    if trusted is not None:
        _check_sender(header, trusted)
    manifest = _parse_manifest(header)
    if trusted is not None:
        _check_partner(manifest, trusted)
    return manifest


def check_framing(source: BinaryIO, *, trusted: PartnerDirectory | None = None) -> Manifest:
    """What can be checked without the centre's private key: header, signature (with ``trusted``),
    manifest, and that the file is exactly as long as the manifest announces (so an incomplete
    upload or download is caught before anyone tries to decrypt it). Altered ciphertext is only
    caught by ``verify``/``unpack``, which need the centre's key."""
    header = _read_header(source)
    _suite(header.suite)
    if trusted is not None:
        _check_sender(header, trusted)
    manifest = _parse_manifest(header)
    if trusted is not None:
        _check_partner(manifest, trusted)
    count = _chunk_count(manifest.plaintext_size, header.chunk_size)
    expected = manifest.plaintext_size + count * TAG_LEN
    seen = 0
    while block := source.read(DEFAULT_CHUNK_SIZE):
        seen += len(block)
        if seen > expected:
            raise Tampered(f"unexpected data after the final chunk {count}: the file was altered")
    if seen < expected:
        raise Truncated(f"the file holds {seen} of the {expected} encrypted bytes the manifest "
                        "announces; the transfer was cut short, fetch the feed again")
    return manifest


def unpack_to_path(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    **checks: Any,
) -> Manifest:
    """``unpack`` file to file; ``dest`` appears only when complete (``.partial`` + rename)."""
    final = Path(dest)
    partial = final.with_name(final.name + ".partial")
    try:
        with open(source, "rb") as src, open(partial, "wb") as out:
            manifest = unpack(src, out, **checks)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest
