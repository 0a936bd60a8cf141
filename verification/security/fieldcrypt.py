"""Encryption of personal fields at rest (ID numbers, names) in the application database.

Format: b"F1" | key-id length (1 byte) | key id | 12-byte nonce | ciphertext | 16-byte GCM tag.
The column name is bound as associated data, so a value copied into another column fails to
decrypt. The key id travels with every value so keys rotate without downtime: old values keep
decrypting with their key while new values use the current one (``hedui keys rotate`` then moves
the old values; verification/security/keyrotation.py).

Each key has an algorithm, chosen in configuration, never in code: AES-256-GCM (32-byte keys, the
default) or SM4-GCM (16-byte keys, GB/T 32907 — for deployments that must use the national
algorithms, GB/T 39786 level 3). Switching a deployment to SM4 is: add an ``sm4-gcm`` key as the
current one, run ``hedui keys rotate``, retire the AES key once ``hedui keys status`` shows no value
under it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_MAGIC = b"F1"
_NONCE = 12
_TAG = 16
# TEST ONLY key for the embedded default; deployments set HEDUI_FIELD_KEYS.
TEST_FIELD_KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
AES_256_GCM = "aes-256-gcm"
SM4_GCM = "sm4-gcm"
ALGORITHMS = {AES_256_GCM: 32, SM4_GCM: 16}  # algorithm → key length in bytes
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class FieldDecryptError(ValueError):
    pass


class FieldKeyConfigError(ValueError):
    """HEDUI_FIELD_KEYS cannot be used; the message says which entry and why."""


class _Aead(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes: ...


class Sm4Gcm:
    """SM4 in GCM mode with the same call shape as ``AESGCM`` (ciphertext || 16-byte tag)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("SM4 keys are 16 bytes")
        self._key = key

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        enc = Cipher(algorithms.SM4(self._key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(associated_data)
        body = enc.update(data) + enc.finalize()
        return body + enc.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        if len(data) < _TAG:
            raise InvalidTag()
        dec = Cipher(algorithms.SM4(self._key), modes.GCM(nonce, data[-_TAG:])).decryptor()
        dec.authenticate_additional_data(associated_data)
        return dec.update(data[:-_TAG]) + dec.finalize()


@dataclass(frozen=True)
class FieldKey:
    key_id: str
    algorithm: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise FieldKeyConfigError(f"field key id {self.key_id!r}: use 1-64 letters, digits, "
                                      "'.', '_' or '-'")
        if self.algorithm not in ALGORITHMS:
            raise FieldKeyConfigError(f"field key {self.key_id}: algorithm {self.algorithm!r} is "
                                      f"not one of {', '.join(ALGORITHMS)}")
        if len(self.secret) != ALGORITHMS[self.algorithm]:
            raise FieldKeyConfigError(
                f"field key {self.key_id}: {self.algorithm} needs a "
                f"{ALGORITHMS[self.algorithm]}-byte key, got {len(self.secret)} bytes")


@dataclass
class FieldCipher:
    """Holds every known key by id; encrypts with ``current``.

    ``keys`` maps key id → raw key (AES-256-GCM, the historical form) or → ``FieldKey``.
    """

    keys: dict[str, bytes | FieldKey]
    current: str
    _aeads: dict[str, _Aead] = field(default_factory=dict, repr=False)

    def key(self, key_id: str) -> FieldKey:
        try:
            value = self.keys[key_id]
        except KeyError:
            raise FieldDecryptError(f"field key {key_id!r} is not configured") from None
        return value if isinstance(value, FieldKey) else FieldKey(key_id, AES_256_GCM, value)

    def algorithm(self, key_id: str) -> str:
        return self.key(key_id).algorithm

    def _aead(self, key_id: str) -> _Aead:
        if key_id not in self._aeads:
            spec = self.key(key_id)
            self._aeads[key_id] = (Sm4Gcm(spec.secret) if spec.algorithm == SM4_GCM
                                   else AESGCM(spec.secret))
        return self._aeads[key_id]

    def encrypt(self, plaintext: str, column: str) -> bytes:
        return self.seal(plaintext.encode(), column)

    def seal(self, data: bytes, purpose: str) -> bytes:
        """``data`` under the current key in the format above, bound to ``purpose`` as the
        associated data: a column's name (``encrypt``), or what a stored file is (a batch as
        staff handed it in)."""
        kid = self.current.encode()
        nonce = os.urandom(_NONCE)
        body = self._aead(self.current).encrypt(nonce, data, purpose.encode())
        return _MAGIC + bytes([len(kid)]) + kid + nonce + body

    def unseal(self, blob: bytes, purpose: str) -> bytes:
        """The bytes ``seal`` sealed; FieldDecryptError if altered or under an unknown key."""
        key_id = self.key_id_of(blob)
        size = 3 + len(key_id.encode())
        try:
            return self._aead(key_id).decrypt(blob[size:size + _NONCE], blob[size + _NONCE:],
                                              purpose.encode())
        except (InvalidTag, ValueError) as err:
            raise FieldDecryptError(f"sealed file under key {key_id!r} failed to decrypt "
                                    f"(altered, or not a {purpose})") from err

    def decrypt(self, blob: bytes, column: str) -> str:
        return self.decrypt_many([blob], column)[0]

    def decrypt_many(self, blobs: Iterable[bytes], column: str) -> list[str]:
        """``decrypt`` of each blob, for a roster's millions of values: each key id's header is
        checked and its cipher found once, not once per value. Errors as ``decrypt``'s."""
        aad = column.encode()
        ciphers: dict[bytes, tuple[str, _Aead, int]] = {}  # header → key id, cipher, its size
        out = []
        for value in blobs:
            if not isinstance(value, bytes | bytearray | memoryview):
                self.key_id_of(value)  # raises: not an encrypted field value
            blob = bytes(value)
            known = ciphers.get(blob[:3 + blob[2]] if len(blob) > 2 else b"")
            if known is None or len(blob) < known[2] + _NONCE + _TAG:
                key_id = self.key_id_of(blob)  # raises for what is no encrypted value
                size = 3 + len(key_id.encode())
                known = ciphers.setdefault(blob[:size], (key_id, self._aead(key_id), size))
            key_id, aead, size = known
            try:
                out.append(aead.decrypt(blob[size:size + _NONCE], blob[size + _NONCE:],
                                        aad).decode())
            except (InvalidTag, ValueError) as err:
                raise FieldDecryptError(f"field value under key {key_id!r} failed to decrypt "
                                        f"(altered, or not a {column} value)") from err
        return out

    def reencrypt(self, blob: bytes, column: str) -> bytes | None:
        """The value under the current key, or None when it already is."""
        if self.key_id_of(blob) == self.current:
            return None
        return self.encrypt(self.decrypt(blob, column), column)

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise FieldDecryptError("not an encrypted field value")
        blob = bytes(blob)
        if not blob.startswith(_MAGIC) or len(blob) < 3 or len(blob) < 3 + blob[2] + _NONCE + _TAG:
            raise FieldDecryptError("not an encrypted field value")
        try:
            return blob[3 : 3 + blob[2]].decode("ascii")
        except UnicodeDecodeError:
            raise FieldDecryptError("not an encrypted field value") from None


def parse_field_keys(spec: str) -> FieldCipher:
    """``id:hex`` (AES-256-GCM) or ``id:algorithm:hex`` entries, comma-separated; last is current.

    Example: ``2025-01:<64 hex>,2026-11:sm4-gcm:<32 hex>`` — the SM4 key encrypts new values, the
    AES key still decrypts the values written before the rotation.
    """
    keys: dict[str, bytes | FieldKey] = {}
    current = ""
    for number, part in enumerate(p.strip() for p in spec.split(",")):
        fields = part.split(":")
        if len(fields) == 2:
            kid, algorithm, hexkey = fields[0], AES_256_GCM, fields[1]
        elif len(fields) == 3:
            kid, algorithm, hexkey = fields[0], fields[1].lower(), fields[2]
        else:
            raise FieldKeyConfigError(f"HEDUI_FIELD_KEYS entry {number + 1} is not "
                                      "'id:hex' or 'id:algorithm:hex'")
        try:
            secret = bytes.fromhex(hexkey)
        except ValueError:
            raise FieldKeyConfigError(f"field key {kid}: the key is not hexadecimal") from None
        if kid in keys:
            raise FieldKeyConfigError(f"field key id {kid} appears twice in HEDUI_FIELD_KEYS")
        keys[kid] = FieldKey(kid, algorithm, secret)
        current = kid
    return FieldCipher(keys=keys, current=current)


def load_field_cipher() -> FieldCipher:
    """HEDUI_FIELD_KEYS (see ``parse_field_keys``); default: the marked test key."""
    return parse_field_keys(os.environ.get("HEDUI_FIELD_KEYS", f"test-1:{TEST_FIELD_KEY_HEX}"))


def using_test_field_key(cipher: FieldCipher) -> bool:
    """True while any configured key is the public TEST key (``hedui keys status`` warns)."""
    test = bytes.fromhex(TEST_FIELD_KEY_HEX)
    return any(cipher.key(k).secret == test for k in cipher.keys)
