"""The partner kit end to end: keygen, contract, template, validate, pack, verify."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors import envelope, keys
from verification.cli.partner import app

HEADER = ("record_id,id_number,name,period,employer_name,employer_credit_code,wage_amount,"
          "si_contribution\n")
GOOD = (HEADER + 'W1,11010519491231002X,张三,2026-10,某公司,91350100M000100Y43,"3,200.00",320\n'
        "W2,440524188001010014,李四,2026-10,,,2800元,\n")
BAD_ROW = "W3,11010519491231002Y,王五,2026-13,,,abc,\n"

runner = CliRunner()


@pytest.fixture
def kit(tmp_path: Path) -> dict[str, Path]:
    result = runner.invoke(app, ["keygen", "--partner", "sihr", "--dir", str(tmp_path / "keys"),
                                 "--key-id", "sihr-2026"])
    assert result.exit_code == 0, result.output
    centre = keys.insecure_test_recipient_key()
    centre_priv, centre_pub = keys.save_recipient_key(centre, tmp_path / "centre")
    feed = tmp_path / "wages.csv"
    feed.write_text(GOOD, encoding="gbk")  # partners' Excel often saves GBK
    return {"key": tmp_path / "keys" / "sihr-2026.key.pem",
            "pub": tmp_path / "keys" / "sihr-2026.pub.pem",
            "centre_pub": centre_pub, "centre_priv": centre_priv, "feed": feed, "dir": tmp_path}


def _pack(kit: dict[str, Path], feed: Path, *extra: str) -> object:
    return runner.invoke(app, ["pack", str(feed), "--kind", "wages", "--period", "2026-10",
                               "--sequence", "3", "--key", str(kit["key"]),
                               "--centre", str(kit["centre_pub"]), *extra])


def test_keygen_writes_a_private_and_a_public_key(kit) -> None:
    assert keys.load_signing_key(kit["key"]).partner == "sihr"
    assert keys.load_partner_public_key(kit["pub"]).key_id == "sihr-2026"


def test_contract_lists_kinds_and_prints_fields() -> None:
    listing = runner.invoke(app, ["contract"])
    assert listing.exit_code == 0 and "wages" in listing.output
    wages = runner.invoke(app, ["contract", "wages"])
    assert "id_number" in wages.output and "公民身份号码" in wages.output
    assert runner.invoke(app, ["contract", "wages", "--json"]).output.lstrip().startswith("{")
    assert runner.invoke(app, ["contract", "nonsense"]).exit_code == 2


def test_template_is_the_contract_header() -> None:
    from schemas import field_names

    header = runner.invoke(app, ["template", "wages"]).output
    assert header == ",".join(field_names("wages")) + "\n"
    # the optional identity fields sit among them; the feed written without them still fits
    written = HEADER.rstrip("\n").split(",")
    assert [f for f in header.rstrip("\n").split(",") if f in written] == written


def test_validate_reports_lines_and_fields(kit) -> None:
    assert runner.invoke(app, ["validate", str(kit["feed"]), "--kind", "wages"]).exit_code == 0
    bad = kit["dir"] / "bad.csv"
    bad.write_text(GOOD + BAD_ROW, encoding="utf-8-sig")
    result = runner.invoke(app, ["validate", str(bad), "--kind", "wages"])
    assert result.exit_code == 1
    # Chinese first, the field by its title, English beside (second outside probe: English
    # sentences only)
    assert ("第 4 行 / line 4 · 「所属期」(period) · 「所属期」不是有效日期，请写成 2026-10 的形式"
            " / Month is not a valid date; write it as 2026-10 [BAD_DATE]") in result.output
    assert "共 3 行，合格 2 行，有问题 1 行 / 3 rows, 2 valid, 1 with problems" in result.output


def test_missing_column_is_named(kit) -> None:
    bad = kit["dir"] / "short.csv"
    bad.write_text("record_id,name\nW1,张三\n")
    result = runner.invoke(app, ["validate", str(bad), "--kind", "wages"])
    assert result.exit_code == 1
    assert "lacks id_number" in result.output


def test_pack_then_verify_as_the_centre(kit) -> None:
    result = _pack(kit, kit["feed"])
    assert result.exit_code == 0, result.output
    packed = kit["feed"].with_name("wages.csv.hedui")
    ring = keys.CentreKeyring([keys.load_recipient_key(kit["centre_priv"])])
    trusted = keys.PartnerDirectory([keys.load_partner_public_key(kit["pub"])])
    with open(packed, "rb") as src:
        manifest = envelope.verify(src, keyring=ring, trusted=trusted)
    assert (manifest.partner, manifest.feed_kind, manifest.sequence, manifest.row_count) == (
        "sihr", "wages", 3, 2)
    from schemas import contract_for

    assert manifest.schema_version == contract_for("wages").version
    full = runner.invoke(app, ["verify", str(packed), "--trusted", str(kit["pub"]),
                               "--centre-key", str(kit["centre_priv"])])
    assert full.exit_code == 0 and "every chunk authentic" in full.output
    light = runner.invoke(app, ["verify", str(packed), "--trusted", str(kit["pub"])])
    assert light.exit_code == 0 and "signature  verified" in light.output


def test_pack_refuses_invalid_rows_unless_allowed(kit) -> None:
    bad = kit["dir"] / "bad.csv"
    bad.write_text(GOOD + BAD_ROW)
    refused = _pack(kit, bad)
    assert refused.exit_code == 1
    assert not (kit["dir"] / "bad.csv.hedui").exists()
    allowed = _pack(kit, bad, "--allow-row-errors")
    assert allowed.exit_code == 0
    assert '"row_count":3' in allowed.output


def test_pack_with_national_suite_from_configuration(kit, monkeypatch) -> None:
    monkeypatch.setenv("HEDUI_ENVELOPE_SUITE", "sm4gcm-x25519")
    result = _pack(kit, kit["feed"])
    assert result.exit_code == 0, result.output
    assert '"suite":"sm4gcm-x25519"' in result.output


def test_verify_rejects_a_truncated_file_naming_the_reason(kit) -> None:
    assert _pack(kit, kit["feed"]).exit_code == 0
    packed = kit["feed"].with_name("wages.csv.hedui")
    cut = kit["dir"] / "cut.hedui"
    cut.write_bytes(packed.read_bytes()[:-20])
    result = runner.invoke(app, ["verify", str(cut), "--trusted", str(kit["pub"])])
    assert result.exit_code == 1
    assert "REJECTED (truncated)" in result.output
    assert "文件不完整" in result.output  # the partner reads what to do in Chinese first
    other = keys.save_signing_key(keys.generate_signing_key("tax"), kit["dir"] / "other")[1]
    result = runner.invoke(app, ["verify", str(packed), "--trusted", str(other)])
    assert "REJECTED (unknown_key)" in result.output
