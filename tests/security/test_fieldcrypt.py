"""Field encryption at rest: AES-256-GCM or SM4-GCM by configuration, key ids on every value,
column binding, and rotation without downtime (old values readable until rewritten)."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from sqlalchemy import func, select

from verification.intake.roster import load_roster
from verification.security import audit
from verification.security.fieldcrypt import (
    AES_256_GCM,
    SM4_GCM,
    FieldCipher,
    FieldDecryptError,
    FieldKeyConfigError,
    Sm4Gcm,
    load_field_cipher,
    parse_field_keys,
    using_test_field_key,
)
from verification.security.keyrotation import key_usage, rotate
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Household, Member

AES_HEX = "11" * 32
SM4_HEX = "22" * 16


def test_sm4_gcm_matches_a_direct_sm4_gcm_computation():
    key, nonce, aad, data = bytes(range(16)), bytes(12), b"members.name", "张三丰".encode()
    sealed = Sm4Gcm(key).encrypt(nonce, data, aad)
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    assert sealed == enc.update(data) + enc.finalize() + enc.tag
    assert Sm4Gcm(key).decrypt(nonce, sealed, aad) == data


@pytest.mark.parametrize("spec, algorithm", [(f"a:{AES_HEX}", AES_256_GCM),
                                              (f"s:sm4-gcm:{SM4_HEX}", SM4_GCM),
                                              (f"s:SM4-GCM:{SM4_HEX}", SM4_GCM)])
def test_each_algorithm_round_trips_and_binds_the_column(spec, algorithm):
    cipher = parse_field_keys(spec)
    assert cipher.algorithm(cipher.current) == algorithm
    blob = cipher.encrypt("11010519491231002X", "members.id_number")
    assert b"11010519491231002X" not in blob
    assert cipher.decrypt(blob, "members.id_number") == "11010519491231002X"
    with pytest.raises(FieldDecryptError, match="failed to decrypt"):
        cipher.decrypt(blob, "members.name")  # copied into another column
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(FieldDecryptError):
        cipher.decrypt(tampered, "members.id_number")


def test_a_value_names_its_key_and_old_keys_keep_decrypting():
    old = parse_field_keys(f"k1:{AES_HEX}")
    blob = old.encrypt("王小明", "members.name")
    both = parse_field_keys(f"k1:{AES_HEX},k2:sm4-gcm:{SM4_HEX}")
    assert both.current == "k2"
    assert FieldCipher.key_id_of(blob) == "k1"
    assert both.decrypt(blob, "members.name") == "王小明"
    moved = both.reencrypt(blob, "members.name")
    assert FieldCipher.key_id_of(moved) == "k2" and both.reencrypt(moved, "members.name") is None
    with pytest.raises(FieldDecryptError, match="k2.*not configured"):
        old.decrypt(moved, "members.name")


@pytest.mark.parametrize("spec, message", [
    ("k1:zz", "not hexadecimal"),
    (f"k1:sm4-gcm:{AES_HEX}", "16-byte key"),
    (f"k1:{SM4_HEX}", "32-byte key"),
    (f"k1:rc4:{SM4_HEX}", "not one of"),
    (f"k1:{AES_HEX},k1:{AES_HEX}", "appears twice"),
    (f"bad id!:{AES_HEX}", "letters, digits"),
    ("k1", "is not 'id:hex'"),
])
def test_bad_key_configuration_is_refused_with_the_reason(spec, message):
    with pytest.raises(FieldKeyConfigError, match=message):
        parse_field_keys(spec)


@pytest.mark.parametrize("blob", [b"", b"F1", b"XX\x02k1" + bytes(40), b"F1\x05k1" + bytes(3),
                                  "text"])
def test_garbage_is_not_a_field_value(blob):
    with pytest.raises(FieldDecryptError):
        parse_field_keys(f"k1:{AES_HEX}").decrypt(blob, "members.name")


def test_many_values_decrypt_as_one_by_one_under_every_key():
    old = parse_field_keys(f"k1:{AES_HEX}")
    both = parse_field_keys(f"k1:{AES_HEX},k2:sm4-gcm:{SM4_HEX}")
    names = ["王小明", "李四", "", "欧阳娜娜", "王小明"]
    blobs = [(old if i % 2 else both).encrypt(name, "members.name")
             for i, name in enumerate(names)]
    assert both.decrypt_many(blobs, "members.name") == names
    assert both.decrypt_many([memoryview(b) for b in blobs], "members.name") == names
    with pytest.raises(FieldDecryptError, match="not a members.phone value"):
        both.decrypt_many(blobs, "members.phone")
    tampered = blobs[1][:-1] + bytes([blobs[1][-1] ^ 1])
    with pytest.raises(FieldDecryptError, match="k1.*failed to decrypt"):
        both.decrypt_many([blobs[0], tampered], "members.name")
    with pytest.raises(FieldDecryptError, match="k2.*not configured"):
        old.decrypt_many(blobs, "members.name")
    for garbage in (b"", b"F1", blobs[0][:20], "text"):
        with pytest.raises(FieldDecryptError):
            both.decrypt_many([blobs[0], garbage], "members.name")


def test_the_default_is_the_marked_test_key(monkeypatch):
    monkeypatch.delenv("HEDUI_FIELD_KEYS", raising=False)
    assert using_test_field_key(load_field_cipher())
    monkeypatch.setenv("HEDUI_FIELD_KEYS", f"prod-1:{AES_HEX}")
    assert not using_test_field_key(load_field_cipher())


def _values(settings) -> list[tuple[str, str]]:
    cipher = load_field_cipher()
    with session_scope(settings.database_url) as session:
        rows = session.execute(select(Member.id_number_enc, Member.name_enc)
                               .order_by(Member.id)).all()
    return [(cipher.decrypt(i, "members.id_number"), cipher.decrypt(n, "members.name"))
            for i, n in rows]


def test_rotation_moves_every_value_to_the_new_key_and_is_audited(settings, district_dir,
                                                                   monkeypatch):
    monkeypatch.setenv("HEDUI_FIELD_KEYS", f"old-1:{AES_HEX}")
    load_roster(settings, district_dir / "roster.csv")
    before = _values(settings)
    from verification.batches import check as batches
    from verification.security.keyrotation import BATCH_FILES

    batch = batches.register_batch(settings, district_dir / "roster.csv")  # sealed under old-1
    monkeypatch.setenv("HEDUI_FIELD_KEYS", f"old-1:{AES_HEX},new-1:sm4-gcm:{SM4_HEX}")
    assert set(key_usage(settings)["members.name_enc"]) == {"old-1"}
    result = rotate(settings, "admin", batch_size=37)
    assert result.complete and result.current == "new-1"
    n = len(before)
    with session_scope(settings.database_url) as session:  # the optional fields the file gave
        phones = session.scalar(select(func.count()).where(Member.phone_enc.is_not(None)))
        addresses = session.scalar(select(func.count()).where(
            Household.address_enc.is_not(None)))
    assert 0 < phones < n and addresses > 0
    counts = {"members.id_number_enc": n, "members.name_enc": n, "members.phone_enc": phones,
              "households.address_enc": addresses, BATCH_FILES: 1}
    assert result.rewritten == counts
    assert key_usage(settings) == {column: {"new-1": count} for column, count in counts.items()}
    monkeypatch.setenv("HEDUI_FIELD_KEYS", f"new-1:sm4-gcm:{SM4_HEX}")  # old key retired
    assert _values(settings) == before
    with batches.opened(settings, batch.stored_path) as plain:  # the batch file too
        assert plain.read_bytes() == (district_dir / "roster.csv").read_bytes()
    assert rotate(settings, "admin").rewritten == dict.fromkeys(counts, 0)
    with session_scope(settings.database_url) as session:
        events = session.scalars(select(AuditEvent).where(
            AuditEvent.action.like("keys.rotation%")).order_by(AuditEvent.id)).all()
        assert [e.action for e in events[:2]] == ["keys.rotation_started",
                                                   "keys.rotation_finished"]
        assert events[1].detail["complete"] is True
        assert audit.verify_chain(session).ok


def test_readers_see_every_value_while_a_rotation_runs(sqlite_settings, district_dir,
                                                       monkeypatch):
    settings = sqlite_settings
    monkeypatch.setenv("HEDUI_FIELD_KEYS", f"old-1:{AES_HEX}")
    load_roster(settings, district_dir / "roster.csv")
    before = _values(settings)
    monkeypatch.setenv("HEDUI_FIELD_KEYS", f"old-1:{AES_HEX},new-1:{'33' * 32}")
    failures: list[BaseException] = []
    reads = 0
    done = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            try:
                assert _values(settings) == before
                reads += 1
            except BaseException as err:  # noqa: BLE001 (reported below)
                failures.append(err)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result = rotate(settings, "admin", batch_size=5)
    finally:
        done.set()
        thread.join()
    assert failures == [] and reads >= 1
    assert result.complete and _values(settings) == before


def test_cli_keys_status_and_rotate(sqlite_settings, district_dir, monkeypatch):
    from typer.testing import CliRunner

    from verification.cli.security import app

    settings = sqlite_settings
    monkeypatch.setenv("HEDUI_HOME", str(settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", settings.database_url)
    monkeypatch.delenv("HEDUI_FIELD_KEYS", raising=False)
    load_roster(settings, district_dir / "roster.csv")
    n = len(_values(settings))
    status = CliRunner().invoke(app, ["keys", "status", "--user", "admin"])
    assert status.exit_code == 0 and f"members.name_enc: test-1: {n}" in status.output
    assert "TEST field key" in status.output
    refused = CliRunner().invoke(app, ["keys", "rotate", "--user", "officer_wusan"])
    assert refused.exit_code == 1 and "may not keys.manage" in refused.output
    from verification.security.fieldcrypt import TEST_FIELD_KEY_HEX

    monkeypatch.setenv("HEDUI_FIELD_KEYS", f"test-1:{TEST_FIELD_KEY_HEX},prod-1:sm4-gcm:{SM4_HEX}")
    rotated = CliRunner().invoke(app, ["keys", "rotate", "--user", "admin", "--batch-size", "50"])
    assert rotated.exit_code == 0, rotated.output
    assert f"members.id_number_enc: {n} values re-encrypted under prod-1" in rotated.output
    assert "rotation complete" in rotated.output
    assert key_usage(settings)["members.id_number_enc"] == {"prod-1": n}
