"""Key generation, PEM files, the centre keyring and the partner directory."""

from __future__ import annotations

import stat
from datetime import UTC, datetime

import pytest

from connectors import keys

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def test_signing_key_file_round_trip(tmp_path) -> None:
    key = keys.generate_signing_key("sihr", now=NOW)
    assert key.key_id.startswith("sihr-")
    priv, pub = keys.save_signing_key(key, tmp_path)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    loaded = keys.load_signing_key(priv)
    assert (loaded.key_id, loaded.partner) == (key.key_id, "sihr")
    assert loaded.created_at == NOW.isoformat()
    public = keys.load_partner_public_key(pub)
    public.public_key.verify(loaded.private_key.sign(b"m"), b"m")


@pytest.mark.parametrize("kem", keys.KEMS)
def test_recipient_key_file_round_trip(tmp_path, kem: str) -> None:
    key = keys.generate_recipient_key(kem, key_id=f"centre-{kem}-2026")
    priv, pub = keys.save_recipient_key(key, tmp_path)
    loaded = keys.load_recipient_key(priv)
    public = keys.load_recipient_public_key(pub)
    assert loaded.kem == public.kem == kem
    assert public.x25519_key == key.x25519_key.public_key()
    if kem == keys.KEM_HYBRID:
        assert priv.read_text().count("BEGIN PRIVATE KEY") == 2
        assert public.mlkem_key == key.mlkem_key.public_key()


def test_test_keys_are_deterministic_and_marked(tmp_path) -> None:
    a, b = keys.insecure_test_signing_key("sihr"), keys.insecure_test_signing_key("sihr")
    assert a.public().public_key == b.public().public_key
    assert a.is_test_key and a.key_id.startswith(keys.TEST_KEY_PREFIX)
    hybrid = keys.insecure_test_recipient_key(keys.KEM_HYBRID)
    again = keys.insecure_test_recipient_key(keys.KEM_HYBRID)
    assert hybrid.public().mlkem_key == again.public().mlkem_key
    priv, _ = keys.save_recipient_key(hybrid, tmp_path)
    assert "Test-Only: yes" in priv.read_text()
    priv, _ = keys.save_signing_key(keys.generate_signing_key("sihr"), tmp_path)
    assert "Test-Only" not in priv.read_text()


def test_loading_the_wrong_kind_of_file_says_so(tmp_path) -> None:
    _, pub = keys.save_signing_key(keys.generate_signing_key("sihr"), tmp_path)
    with pytest.raises(keys.KeyFileError, match="expected a recipient-private key file"):
        keys.load_recipient_key(pub)
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(keys.KeyFileError, match="no PEM block"):
        keys.load_signing_key(tmp_path / "junk.pem")
    with pytest.raises(keys.KeyFileError, match="cannot read"):
        keys.load_signing_key(tmp_path / "missing.pem")


@pytest.mark.parametrize("bad", ["", "has space", "../escape", "x" * 200, "ключ"])
def test_key_ids_are_restricted(bad: str) -> None:
    with pytest.raises(ValueError, match="key id"):
        keys.check_key_id(bad)


def test_keyring_rotation_save_and_load(tmp_path) -> None:
    old = keys.generate_recipient_key(key_id="centre-2025")
    new = keys.generate_recipient_key(keys.KEM_HYBRID, key_id="centre-2026")
    ring = keys.CentreKeyring([old])
    ring.add(new, make_current=True)
    ring.save(tmp_path)
    loaded = keys.CentreKeyring.load(tmp_path)
    assert loaded.key_ids == ["centre-2025", "centre-2026"]
    assert loaded.current.key_id == "centre-2026"
    with pytest.raises(ValueError, match="current key"):
        loaded.retire("centre-2026")
    loaded.retire("centre-2025")
    loaded.save(tmp_path)
    assert keys.CentreKeyring.load(tmp_path).key_ids == ["centre-2026"]
    assert "centre-2025" not in keys.CentreKeyring.load(tmp_path)


def test_empty_keyring_says_what_to_do(tmp_path) -> None:
    ring = keys.CentreKeyring.load(tmp_path)
    assert len(ring) == 0
    with pytest.raises(KeyError, match="generate a recipient key"):
        _ = ring.current


def test_partner_directory_revocation_persists(tmp_path) -> None:
    a = keys.generate_signing_key("sihr", key_id="sihr-1").public()
    b = keys.generate_signing_key("tax", key_id="tax-1").public()
    directory = keys.PartnerDirectory([a, b])
    directory.revoke("sihr-1", "key leaked", now=NOW)
    directory.save(tmp_path)
    loaded = keys.PartnerDirectory.load(tmp_path)
    assert {k.key_id for k in loaded} == {"sihr-1", "tax-1"}
    assert loaded.revocation("sihr-1") == keys.Revocation(NOW.isoformat(), "key leaked")
    assert loaded.revocation("tax-1") is None
    assert [k.key_id for k in loaded.keys_of("tax")] == ["tax-1"]
    loaded.add(a)  # re-adding a key does not lift its revocation
    assert loaded.revocation("sihr-1") is not None
    with pytest.raises(KeyError):
        loaded.revoke("nobody", "x")


def test_keyring_lives_in_the_settings_keys_dir(tmp_path, monkeypatch) -> None:
    from verification.config import load_settings

    monkeypatch.setenv("HEDUI_HOME", str(tmp_path))
    keys_dir = load_settings().keys_dir
    keys.CentreKeyring([keys.generate_recipient_key(key_id="c1")]).save(keys_dir)
    assert (tmp_path / "keys" / "centre" / "c1.key.pem").exists()
    assert keys.CentreKeyring.load(keys_dir).key_ids == ["c1"]
