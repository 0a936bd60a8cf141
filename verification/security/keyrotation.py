"""``hedui keys rotate``: re-encrypt every encrypted personal field under the current field key.

Safe while the service reads and writes: values are rewritten in small batches, each its own
transaction, and a value is replaced only if it is still the one that was read (a caseload reload
in between simply wins). Readers decrypt old and new values alike because every value names its
key id and the old keys stay configured until the rotation has finished; ``key_usage`` tells when
no value is left under an old key, and only then may that key be removed from HEDUI_FIELD_KEYS.
Start and end are audited with counts and key ids — never values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Table, select, update

from verification.config import Settings
from verification.security import audit
from verification.security.fieldcrypt import FieldCipher, load_field_cipher
from verification.storage import session_scope
from verification.storage.models import Base


@dataclass(frozen=True)
class EncryptedColumn:
    table: str
    column: str
    aad: str  # the associated data the value is bound to


# Every column that holds an encrypted personal field. A new one is added here, once.
ENCRYPTED_COLUMNS = (
    EncryptedColumn("members", "id_number_enc", "members.id_number"),
    EncryptedColumn("members", "name_enc", "members.name"),
    EncryptedColumn("members", "phone_enc", "members.phone"),
    EncryptedColumn("households", "address_enc", "households.address"),
)


@dataclass
class RotationResult:
    current: str
    rewritten: dict[str, int] = field(default_factory=dict)  # "table.column" → values rewritten
    skipped_changed: int = 0  # values replaced by another writer during the rotation
    remaining: dict[str, dict[str, int]] = field(default_factory=dict)  # after: usage by key

    @property
    def complete(self) -> bool:
        return all(set(usage) <= {self.current} for usage in self.remaining.values())


# the stored batch files (verification/batches/check.py), sealed under the field keys
BATCH_FILES = "inbox/batches (sealed files)"


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def key_usage(settings: Settings) -> dict[str, dict[str, int]]:
    """For each encrypted column: how many values are under each key id."""
    usage: dict[str, dict[str, int]] = {}
    with session_scope(settings.database_url) as session:
        for col in ENCRYPTED_COLUMNS:
            table = _table(col.table)
            counts: Counter[str] = Counter()
            for (blob,) in session.execute(select(table.c[col.column])).yield_per(2000):
                if blob is not None:
                    counts[FieldCipher.key_id_of(bytes(blob))] += 1
            usage[f"{col.table}.{col.column}"] = dict(counts)
    from verification.batches.check import sealed_batch_files

    files: Counter[str] = Counter(FieldCipher.key_id_of(path.read_bytes())
                                  for path in sealed_batch_files(settings))
    usage[BATCH_FILES] = dict(files)
    return usage


def rotate(settings: Settings, actor: str, *, batch_size: int = 500,
           cipher: FieldCipher | None = None,
           progress: Callable[[str, int], None] | None = None) -> RotationResult:
    """Rewrite every value not under the current key; returns counts and the usage after."""
    cipher = cipher or load_field_cipher()
    result = RotationResult(current=cipher.current)
    with session_scope(settings.database_url) as session:
        audit.record(session, actor, "keys.rotation_started", f"field-key:{cipher.current}",
                     {"current": cipher.current, "algorithm": cipher.algorithm(cipher.current),
                      "known": sorted(cipher.keys)})
    for col in ENCRYPTED_COLUMNS:
        done = _rotate_column(settings, cipher, col, batch_size, result, progress)
        result.rewritten[f"{col.table}.{col.column}"] = done
    from verification.batches.check import reseal, sealed_batch_files

    result.rewritten[BATCH_FILES] = sum(reseal(path, cipher)
                                        for path in sealed_batch_files(settings))
    result.remaining = key_usage(settings)
    with session_scope(settings.database_url) as session:
        audit.record(session, actor, "keys.rotation_finished", f"field-key:{cipher.current}",
                     {"rewritten": result.rewritten, "skipped_changed": result.skipped_changed,
                      "remaining": result.remaining, "complete": result.complete})
    return result


def _rotate_column(settings: Settings, cipher: FieldCipher, col: EncryptedColumn,
                   batch_size: int, result: RotationResult,
                   progress: Callable[[str, int], None] | None) -> int:
    table = _table(col.table)
    (pk,) = table.primary_key.columns
    value = table.c[col.column]
    last, done = None, 0
    while True:
        with session_scope(settings.database_url) as session:
            query = select(pk, value).order_by(pk).limit(batch_size)
            if last is not None:
                query = query.where(pk > last)
            rows = session.execute(query).all()
            if not rows:
                return done
            last = rows[-1][0]
            for row_id, blob in rows:
                if blob is None:
                    continue
                new = cipher.reencrypt(bytes(blob), col.aad)
                if new is None:
                    continue
                changed = session.execute(update(table).where(pk == row_id, value == blob)
                                          .values({col.column: new})).rowcount
                done += changed
                result.skipped_changed += 1 - changed
        if progress:
            progress(f"{col.table}.{col.column}", done)
