"""`hedui keys partner add|list|revoke`: the centre registers a partner's public signing key,
lists fingerprints, revokes; every change is audited and a revoked key is never trusted again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from connectors import keys
from verification.cli.security import app
from verification.storage import session_scope
from verification.storage.models import AuditEvent


def _env(settings) -> dict[str, str]:  # noqa: ANN001
    return {"HEDUI_HOME": str(settings.home), "HEDUI_DATABASE_URL": settings.database_url,
            "HEDUI_USER": "admin"}


def test_add_list_revoke_a_partner_key(sqlite_settings, tmp_path: Path) -> None:
    signer = keys.generate_signing_key("hrss", key_id="hrss-2026")
    _, public = keys.save_signing_key(signer, tmp_path / "partner")
    runner, env = CliRunner(), _env(sqlite_settings)

    added = runner.invoke(app, ["keys", "partner", "add", str(public), "--partner", "hrss"],
                          env=env)
    assert added.exit_code == 0, added.output
    assert "hrss-2026" in keys.PartnerDirectory.load(sqlite_settings.keys_dir)
    listed = runner.invoke(app, ["keys", "partner", "list"], env=env)
    assert "hrss-2026" in listed.output and "trusted" in listed.output
    assert listed.output.count(":") >= 3  # the fingerprint in groups

    revoked = runner.invoke(app, ["keys", "partner", "revoke", "hrss-2026", "--reason",
                                  "leaked"], env=env)
    assert revoked.exit_code == 0, revoked.output
    directory = keys.PartnerDirectory.load(sqlite_settings.keys_dir)
    assert directory.revocation("hrss-2026").reason == "leaked"
    again = runner.invoke(app, ["keys", "partner", "add", str(public), "--partner", "hrss"],
                          env=env)
    assert again.exit_code == 1 and "revoked" in again.output
    with session_scope(sqlite_settings.database_url) as session:
        actions = session.scalars(select(AuditEvent.action)).all()
    assert {"keys.partner.added", "keys.partner.revoked"} <= set(actions)


def test_a_key_for_another_partner_or_an_unknown_partner_is_refused(sqlite_settings,
                                                                     tmp_path: Path) -> None:
    _, public = keys.save_signing_key(keys.generate_signing_key("police"), tmp_path / "p")
    runner, env = CliRunner(), _env(sqlite_settings)
    other = runner.invoke(app, ["keys", "partner", "add", str(public), "--partner", "hrss"],
                          env=env)
    assert other.exit_code == 1 and "police" in other.output
    unknown = runner.invoke(app, ["keys", "partner", "add", str(public), "--partner", "nobody"],
                            env=env)
    assert unknown.exit_code == 1 and "unknown partner" in unknown.output
    not_a_key = tmp_path / "x.pub.pem"
    not_a_key.write_text("hello", "utf-8")
    bad = runner.invoke(app, ["keys", "partner", "add", str(not_a_key), "--partner", "hrss"],
                        env=env)
    assert bad.exit_code == 1 and "not a partner signing public key" in bad.output


def test_only_key_managers_may_change_partner_keys(sqlite_settings, tmp_path: Path) -> None:
    _, public = keys.save_signing_key(keys.generate_signing_key("hrss"), tmp_path / "p")
    env = {**_env(sqlite_settings), "HEDUI_USER": "partner_hrss"}
    refused = CliRunner().invoke(app, ["keys", "partner", "add", str(public), "--partner",
                                       "hrss"], env=env)
    assert refused.exit_code == 1 and "refused" in refused.output
