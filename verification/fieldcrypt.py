"""Encryption of personal fields at rest (ID numbers, names) in the application database.

Format: b"F1" | key-id length (1 byte) | key id | 12-byte nonce | AES-256-GCM ciphertext+tag. The
column name is bound as associated data, so a value copied into another column fails to decrypt.
The key id travels with every value so keys rotate without downtime: old values keep decrypting
with their key while new values use the current one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_MAGIC = b"F1"
# TEST ONLY key for the embedded default; deployments set HEDUI_FIELD_KEYS.
TEST_FIELD_KEY_HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"


class FieldDecryptError(ValueError):
    pass


@dataclass
class FieldCipher:
    """Holds every known key by id; encrypts with ``current``."""

    keys: dict[str, bytes]
    current: str
    _aeads: dict[str, AESGCM] = field(default_factory=dict, repr=False)

    def _aead(self, key_id: str) -> AESGCM:
        if key_id not in self._aeads:
            try:
                self._aeads[key_id] = AESGCM(self.keys[key_id])
            except KeyError:
                raise FieldDecryptError(f"field key {key_id!r} is not configured") from None
        return self._aeads[key_id]

    def encrypt(self, plaintext: str, column: str) -> bytes:
        kid = self.current.encode()
        nonce = os.urandom(12)
        body = self._aead(self.current).encrypt(nonce, plaintext.encode(), column.encode())
        return _MAGIC + bytes([len(kid)]) + kid + nonce + body

    def decrypt(self, blob: bytes, column: str) -> str:
        if not blob.startswith(_MAGIC):
            raise FieldDecryptError("not an encrypted field value")
        n = blob[2]
        key_id = blob[3 : 3 + n].decode()
        nonce, body = blob[3 + n : 15 + n], blob[15 + n :]
        try:
            return self._aead(key_id).decrypt(nonce, body, column.encode()).decode()
        except Exception as err:  # InvalidTag: wrong key or altered value
            raise FieldDecryptError(f"field value under key {key_id!r} failed to decrypt") from err

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        return blob[3 : 3 + blob[2]].decode()


def load_field_cipher() -> FieldCipher:
    """HEDUI_FIELD_KEYS="id1:hex,id2:hex" (last is current); default: the marked test key."""
    spec = os.environ.get("HEDUI_FIELD_KEYS", f"test-1:{TEST_FIELD_KEY_HEX}")
    keys: dict[str, bytes] = {}
    for part in spec.split(","):
        kid, _, hexkey = part.strip().partition(":")
        keys[kid] = bytes.fromhex(hexkey)
    return FieldCipher(keys=keys, current=kid)
