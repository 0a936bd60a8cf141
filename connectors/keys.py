"""Keys for the encrypted exchange: partner signing keys, centre recipient keys, where they live.

Every key has a *key id* that travels in each envelope, so keys rotate without downtime: the centre
keeps old recipient keys in its ``CentreKeyring`` (they still open feeds packed to them) while new
feeds are packed to the current key, and the ``PartnerDirectory`` holds every partner signing key
the centre trusts, with revocation.

Files are PEM (PKCS#8 private keys, SubjectPublicKeyInfo public keys). Metadata sits above the first
PEM block as ``Name: value`` lines (RFC 7468 explanatory text), so a key file says what it is.
A hybrid ML-KEM-768+X25519 key is two PEM blocks in one file, ML-KEM first.

Layout under a keys directory (default ``settings.keys_dir``)::

    centre/<key_id>.key.pem     centre recipient private keys (mode 0600)
    centre/<key_id>.pub.pem     the matching public keys, handed to partners
    centre/CURRENT              the key id new feeds are packed to
    partners/<key_id>.pub.pem   partner signing keys the centre trusts
    partners/revoked.json       {key_id: {"at": iso time, "reason": text}}
    own/<key_id>.key.pem        a partner's own signing key (partner kit side)

Test keys (``insecure_test_signing_key``, ``insecure_test_recipient_key``) are derived from
fixed, public seeds. Their ids start with ``TEST-ONLY-`` and their files say
``Test-Only: yes``: never deploy them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

KEM_X25519 = "x25519"
KEM_HYBRID = "mlkem768x25519"
KEMS = (KEM_X25519, KEM_HYBRID)
TEST_KEY_PREFIX = "TEST-ONLY-"

_KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)
_META_RE = re.compile(r"^([A-Za-z-]+):\s*(.*)$")


class KeyFileError(ValueError):
    """A key file is missing, unreadable, or not the kind of key expected."""


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def check_key_id(key_id: str) -> str:
    """Key ids travel in envelope headers and name files: ASCII letters, digits, ``._-``."""
    if not _KEY_ID_RE.match(key_id):
        raise ValueError(
            f"key id {key_id!r} is not allowed: use 1-128 ASCII letters, digits, '.', '_' or '-'"
        )
    return key_id


def _fingerprint(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()[:12]


# ---------------------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class PartnerPublicKey:
    """A partner's Ed25519 verification key, as the centre trusts it."""

    key_id: str
    partner: str
    public_key: ed25519.Ed25519PublicKey
    created_at: str = ""

    @property
    def is_test_key(self) -> bool:
        return self.key_id.startswith(TEST_KEY_PREFIX)


@dataclass(frozen=True)
class SigningKey:
    """A partner's Ed25519 signing key: the partner signs each envelope header with it."""

    key_id: str
    partner: str
    private_key: ed25519.Ed25519PrivateKey
    created_at: str = ""

    def public(self) -> PartnerPublicKey:
        return PartnerPublicKey(
            self.key_id, self.partner, self.private_key.public_key(), self.created_at
        )

    @property
    def is_test_key(self) -> bool:
        return self.key_id.startswith(TEST_KEY_PREFIX)


@dataclass(frozen=True)
class RecipientPublicKey:
    """The centre's public key a partner packs feeds to (X25519, or ML-KEM-768+X25519 hybrid)."""

    key_id: str
    kem: str
    x25519_key: x25519.X25519PublicKey
    mlkem_key: mlkem.MLKEM768PublicKey | None = None
    created_at: str = ""

    def hpke_public_key(self) -> x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey:
        if self.kem == KEM_HYBRID:
            assert self.mlkem_key is not None
            return hpke.MLKEM768X25519PublicKey(self.mlkem_key, self.x25519_key)
        return self.x25519_key

    @property
    def is_test_key(self) -> bool:
        return self.key_id.startswith(TEST_KEY_PREFIX)


@dataclass(frozen=True)
class RecipientKey:
    """A centre recipient private key (decrypts feeds packed to ``key_id``)."""

    key_id: str
    kem: str
    x25519_key: x25519.X25519PrivateKey
    mlkem_key: mlkem.MLKEM768PrivateKey | None = None
    created_at: str = ""

    def public(self) -> RecipientPublicKey:
        ml_pub = self.mlkem_key.public_key() if self.mlkem_key is not None else None
        return RecipientPublicKey(
            self.key_id, self.kem, self.x25519_key.public_key(), ml_pub, self.created_at
        )

    def hpke_private_key(self) -> x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey:
        if self.kem == KEM_HYBRID:
            assert self.mlkem_key is not None
            return hpke.MLKEM768X25519PrivateKey(self.mlkem_key, self.x25519_key)
        return self.x25519_key

    @property
    def is_test_key(self) -> bool:
        return self.key_id.startswith(TEST_KEY_PREFIX)


def _raw_public(key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)


def generate_signing_key(
    partner: str, *, key_id: str | None = None, now: datetime | None = None
) -> SigningKey:
    """A fresh Ed25519 signing key for ``partner``; default id ``<partner>-<fingerprint>``."""
    private = ed25519.Ed25519PrivateKey.generate()
    kid = key_id or f"{partner}-{_fingerprint(_raw_public(private.public_key()))}"
    return SigningKey(check_key_id(kid), partner, private, _now(now).isoformat())


def generate_recipient_key(
    kem: str = KEM_X25519, *, key_id: str | None = None, now: datetime | None = None
) -> RecipientKey:
    """A fresh centre recipient key; ``kem`` is ``x25519`` or ``mlkem768x25519`` (hybrid)."""
    if kem not in KEMS:
        raise ValueError(f"unknown KEM {kem!r}; choose one of {', '.join(KEMS)}")
    xk = x25519.X25519PrivateKey.generate()
    mk = mlkem.MLKEM768PrivateKey.generate() if kem == KEM_HYBRID else None
    kid = key_id or f"centre-{kem}-{_fingerprint(_raw_public(xk.public_key()))}"
    return RecipientKey(check_key_id(kid), kem, xk, mk, _now(now).isoformat())


# ------------------------------------------------------------------------------------ test keys


def _test_seed(label: str, size: int) -> bytes:
    # Public, fixed derivation: anyone can recompute these keys, which is the point of test keys.
    return hashlib.shake_256(f"hedui TEST ONLY key seed: {label}".encode()).digest(size)


def insecure_test_signing_key(partner: str = "test-partner", generation: int = 1) -> SigningKey:
    """Deterministic TEST ONLY signing key for ``partner`` (tests, demo, committed vectors)."""
    private = ed25519.Ed25519PrivateKey.from_private_bytes(
        _test_seed(f"signing/{partner}/{generation}", 32)
    )
    kid = f"{TEST_KEY_PREFIX}{partner}-sign-{generation}"
    return SigningKey(check_key_id(kid), partner, private, "2026-01-01T00:00:00+00:00")


def insecure_test_recipient_key(kem: str = KEM_X25519, generation: int = 1) -> RecipientKey:
    """Deterministic TEST ONLY centre recipient key."""
    if kem not in KEMS:
        raise ValueError(f"unknown KEM {kem!r}; choose one of {', '.join(KEMS)}")
    xk = x25519.X25519PrivateKey.from_private_bytes(_test_seed(f"x25519/{kem}/{generation}", 32))
    mk = None
    if kem == KEM_HYBRID:
        mk = mlkem.MLKEM768PrivateKey.from_seed_bytes(_test_seed(f"mlkem/{generation}", 64))
    kid = f"{TEST_KEY_PREFIX}centre-{kem}-{generation}"
    return RecipientKey(check_key_id(kid), kem, xk, mk, "2026-01-01T00:00:00+00:00")


# ----------------------------------------------------------------------------------- PEM files


def _meta_lines(meta: dict[str, str], test: bool) -> bytes:
    lines = [f"{name}: {value}" for name, value in meta.items() if value]
    if test:
        lines.append("Test-Only: yes - this key is derived from a public seed; NEVER deploy it")
    return ("\n".join(lines) + "\n").encode()


def _split_pem(data: bytes, path: Path) -> tuple[dict[str, str], list[bytes]]:
    blocks = [m.group(0) for m in _PEM_BLOCK_RE.finditer(data)]
    if not blocks:
        raise KeyFileError(f"{path}: no PEM block found; is this a hedui key file?")
    head = data[: data.index(b"-----BEGIN")].decode("utf-8", "replace")
    meta = {}
    for line in head.splitlines():
        if m := _META_RE.match(line.strip()):
            meta[m.group(1)] = m.group(2)
    return meta, blocks


def _private_pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()
    )


def _public_pem(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
    )


def _write(path: Path, data: bytes, *, private: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Create private files 0600 from the start: a chmod after writing leaves a window.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return path


def signing_key_pem(key: SigningKey) -> bytes:
    meta = {"Key-Id": key.key_id, "Partner": key.partner, "Kind": "ed25519-signing-private",
            "Created": key.created_at}
    return _meta_lines(meta, key.is_test_key) + _private_pem(key.private_key)


def partner_public_key_pem(key: PartnerPublicKey) -> bytes:
    meta = {"Key-Id": key.key_id, "Partner": key.partner, "Kind": "ed25519-signing-public",
            "Created": key.created_at}
    return _meta_lines(meta, key.is_test_key) + _public_pem(key.public_key)


def recipient_key_pem(key: RecipientKey) -> bytes:
    meta = {"Key-Id": key.key_id, "Kem": key.kem, "Kind": "recipient-private",
            "Created": key.created_at}
    blocks = [_private_pem(k) for k in (key.mlkem_key, key.x25519_key) if k is not None]
    return _meta_lines(meta, key.is_test_key) + b"".join(blocks)


def recipient_public_key_pem(key: RecipientPublicKey) -> bytes:
    meta = {"Key-Id": key.key_id, "Kem": key.kem, "Kind": "recipient-public",
            "Created": key.created_at}
    blocks = [_public_pem(k) for k in (key.mlkem_key, key.x25519_key) if k is not None]
    return _meta_lines(meta, key.is_test_key) + b"".join(blocks)


def _read_meta(path: Path, kind: str) -> tuple[dict[str, str], list[bytes]]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    meta, blocks = _split_pem(data, Path(path))
    if meta.get("Kind") != kind:
        raise KeyFileError(f"{path}: expected a {kind} key file, found {meta.get('Kind')!r}")
    if "Key-Id" not in meta:
        raise KeyFileError(f"{path}: the 'Key-Id:' line above the PEM block is missing")
    return meta, blocks


def _typed(loaded: object, cls: type, path: Path) -> object:
    if not isinstance(loaded, cls):
        raise KeyFileError(f"{path}: expected {cls.__name__}, found {type(loaded).__name__}")
    return loaded


def load_signing_key(path: str | os.PathLike[str]) -> SigningKey:
    meta, blocks = _read_meta(Path(path), "ed25519-signing-private")
    key = _typed(ser.load_pem_private_key(blocks[0], None), ed25519.Ed25519PrivateKey, Path(path))
    return SigningKey(meta["Key-Id"], meta.get("Partner", ""), key, meta.get("Created", ""))


def load_partner_public_key(path: str | os.PathLike[str]) -> PartnerPublicKey:
    meta, blocks = _read_meta(Path(path), "ed25519-signing-public")
    key = _typed(ser.load_pem_public_key(blocks[0]), ed25519.Ed25519PublicKey, Path(path))
    return PartnerPublicKey(meta["Key-Id"], meta.get("Partner", ""), key, meta.get("Created", ""))


def _recipient_parts(
    meta: dict[str, str], blocks: list[bytes], path: Path, private: bool
) -> tuple[str, object, object | None]:
    """(kem, X25519 key, ML-KEM key or None), private or public as asked."""
    kem = meta.get("Kem", "")
    if kem not in KEMS or len(blocks) != (2 if kem == KEM_HYBRID else 1):
        raise KeyFileError(f"{path}: Kem {kem!r} with {len(blocks)} PEM block(s) is inconsistent")
    load = (lambda b: ser.load_pem_private_key(b, None)) if private else ser.load_pem_public_key
    xcls = x25519.X25519PrivateKey if private else x25519.X25519PublicKey
    mcls = mlkem.MLKEM768PrivateKey if private else mlkem.MLKEM768PublicKey
    xk = _typed(load(blocks[-1]), xcls, path)
    mk = _typed(load(blocks[0]), mcls, path) if kem == KEM_HYBRID else None
    return kem, xk, mk


def load_recipient_key(path: str | os.PathLike[str]) -> RecipientKey:
    meta, blocks = _read_meta(Path(path), "recipient-private")
    kem, xk, mk = _recipient_parts(meta, blocks, Path(path), private=True)
    return RecipientKey(meta["Key-Id"], kem, xk, mk, meta.get("Created", ""))  # type: ignore[arg-type]


def load_recipient_public_key(path: str | os.PathLike[str]) -> RecipientPublicKey:
    meta, blocks = _read_meta(Path(path), "recipient-public")
    kem, xk, mk = _recipient_parts(meta, blocks, Path(path), private=False)
    return RecipientPublicKey(meta["Key-Id"], kem, xk, mk, meta.get("Created", ""))  # type: ignore[arg-type]


def save_signing_key(key: SigningKey, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``<key_id>.key.pem`` (0600) and ``<key_id>.pub.pem`` into ``directory``."""
    base = Path(directory)
    priv = _write(base / f"{key.key_id}.key.pem", signing_key_pem(key), private=True)
    pub_pem = partner_public_key_pem(key.public())
    return priv, _write(base / f"{key.key_id}.pub.pem", pub_pem, private=False)


def save_recipient_key(key: RecipientKey, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``<key_id>.key.pem`` (0600) and ``<key_id>.pub.pem`` into ``directory``."""
    base = Path(directory)
    priv = _write(base / f"{key.key_id}.key.pem", recipient_key_pem(key), private=True)
    pub_pem = recipient_public_key_pem(key.public())
    return priv, _write(base / f"{key.key_id}.pub.pem", pub_pem, private=False)


# ------------------------------------------------------------------------------------- keyring


class CentreKeyring:
    """The centre's recipient private keys by key id; ``current`` is the key new feeds use.

    Rotation without downtime: add the new key, make it current, publish its public key to the
    partners, and keep the old key here until no feed packed to it can still arrive.
    """

    def __init__(self, keys: Iterable[RecipientKey] = (), current: str | None = None) -> None:
        self._keys: dict[str, RecipientKey] = {}
        self._current: str | None = None
        for key in keys:
            self.add(key)
        if current is not None:
            self._current = current
        if current is not None and current not in self._keys:
            raise KeyError(f"current key id {current!r} is not in the keyring")

    def add(self, key: RecipientKey, *, make_current: bool = False) -> None:
        self._keys[check_key_id(key.key_id)] = key
        if make_current or self._current is None:
            self._current = key.key_id

    def get(self, key_id: str) -> RecipientKey | None:
        return self._keys.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[RecipientKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    @property
    def current(self) -> RecipientKey:
        if self._current is None:
            raise KeyError("the keyring is empty; generate a recipient key first")
        return self._keys[self._current]

    def retire(self, key_id: str) -> RecipientKey:
        """Drop a key (feeds packed to it no longer open); the current key cannot be retired."""
        if key_id == self._current:
            raise ValueError(f"{key_id!r} is the current key; make another key current first")
        return self._keys.pop(key_id)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write every key and ``CURRENT`` under ``<directory>/centre`` (removing retired files)."""
        centre = Path(directory) / "centre"
        for key in self._keys.values():
            save_recipient_key(key, centre)
        for stale in centre.glob("*.key.pem"):
            if stale.name.removesuffix(".key.pem") not in self._keys:
                stale.unlink()
        if self._current is not None:
            _write(centre / "CURRENT", f"{self._current}\n".encode(), private=False)
        return centre

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CentreKeyring:
        centre = Path(directory) / "centre"
        keys = [load_recipient_key(p) for p in sorted(centre.glob("*.key.pem"))]
        current_file = centre / "CURRENT"
        current = current_file.read_text().strip() if current_file.exists() else None
        if current is None and keys:
            current = max(keys, key=lambda k: k.created_at).key_id
        return cls(keys, current)


# ---------------------------------------------------------------------------- partner directory


@dataclass(frozen=True)
class Revocation:
    at: str
    reason: str


class PartnerDirectory:
    """Partner signing keys the centre trusts, by key id, with revocation.

    A revoked key stays listed (so an envelope signed with it is reported as *revoked*, not
    *unknown*), and revocation is never undone by adding the key again.
    """

    def __init__(
        self, keys: Iterable[PartnerPublicKey] = (), revoked: dict[str, Revocation] | None = None
    ) -> None:
        self._keys: dict[str, PartnerPublicKey] = {}
        self._revoked: dict[str, Revocation] = dict(revoked or {})
        for key in keys:
            self.add(key)

    def add(self, key: PartnerPublicKey) -> None:
        if not key.partner:
            raise ValueError(f"key {key.key_id!r} names no partner")
        self._keys[check_key_id(key.key_id)] = key

    def get(self, key_id: str) -> PartnerPublicKey | None:
        return self._keys.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[PartnerPublicKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def revoke(self, key_id: str, reason: str, *, now: datetime | None = None) -> Revocation:
        if key_id not in self._keys:
            raise KeyError(f"no partner key {key_id!r} to revoke")
        self._revoked[key_id] = Revocation(_now(now).isoformat(), reason)
        return self._revoked[key_id]

    def revocation(self, key_id: str) -> Revocation | None:
        return self._revoked.get(key_id)

    def keys_of(self, partner: str) -> list[PartnerPublicKey]:
        return [k for k in self._keys.values() if k.partner == partner]

    def save(self, directory: str | os.PathLike[str]) -> Path:
        folder = Path(directory) / "partners"
        for key in self._keys.values():
            _write(folder / f"{key.key_id}.pub.pem", partner_public_key_pem(key), private=False)
        revoked = {k: {"at": r.at, "reason": r.reason} for k, r in sorted(self._revoked.items())}
        payload = json.dumps(revoked, ensure_ascii=False, indent=2) + "\n"
        _write(folder / "revoked.json", payload.encode(), private=False)
        return folder

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> PartnerDirectory:
        folder = Path(directory) / "partners"
        keys = [load_partner_public_key(p) for p in sorted(folder.glob("*.pub.pem"))]
        revoked_file = folder / "revoked.json"
        raw = json.loads(revoked_file.read_text("utf-8")) if revoked_file.exists() else {}
        revoked = {kid: Revocation(v["at"], v["reason"]) for kid, v in raw.items()}
        return cls(keys, revoked)
