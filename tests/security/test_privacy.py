"""Masking in logs and output; exports masked by default, unmasked only with the permission and
audited; roles enforced across the jurisdiction boundary."""

from __future__ import annotations

import datetime as dt
import logging

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import pulled_district, review_in_process
from verification.cli.security import app
from verification.flags.actions import get_flag, list_flags
from verification.reports.flag_reports import safe_cell
from verification.security.access import AccessDenied, principal
from verification.security.privacy import (
    export_flags,
    install_log_masking,
    mask_text,
    uninstall_log_masking,
    write_export,
)
from verification.storage import session_scope
from verification.storage.models import AuditEvent, AuditSubject, Member

RAW = "11010519491231002X"


@pytest.mark.parametrize("text, masked", [
    (RAW, "110105********002X"),
    ("id=440524188001010014,", "id=440524********0014,"),
    ("lower 11010519491231002x end", "lower 110105********002x end"),
    ("全角２１０１１２１９５６１１１４６３０１号", "全角２１０１１２********６３０１号"),
    ("legacy 350303900203307", "legacy 350303*****3307"),
    ("two 11010519491231002X/440524188001010014", "two 110105********002X/440524********0014"),
    ("token 1234567890123456789 stays", "token 1234567890123456789 stays"),
    ("sixteen 1234567890123456 stays", "sixteen 1234567890123456 stays"),
    ("no digits here", "no digits here"),
    # a SHA-256 whose hex holds fifteen digits in a row (one in twenty-five does) is a digest
    ("head 9ecf5771d3e71efa801223456782982f1c198e01a88034c84df53a17e15cf9d1",
     "head 9ecf5771d3e71efa801223456782982f1c198e01a88034c84df53a17e15cf9d1"),
    # not a digest alone (65 characters): its run is masked
    ("x9ecf5771d3e71efa801223456782982f1c198e01a88034c84df53a17e15cf9d10",
     "x9ecf5771d3e71efa801223*****2982f1c198e01a88034c84df53a17e15cf9d10"),
])
def test_mask_text(text, masked):
    assert mask_text(text) == masked


@pytest.fixture
def masked_logs():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            self.format(record)

    logger = logging.getLogger("hedui.test.privacy")  # made before the masking is installed
    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    install_log_masking()
    install_log_masking()  # idempotent
    yield logger, records, handler
    uninstall_log_masking()
    logger.removeHandler(handler)


def test_log_records_are_masked_before_any_handler_sees_them(masked_logs):
    logger, records, handler = masked_logs
    logger.info("checked %s for %s", RAW, "hrss")
    logger.warning(f"f-string {RAW}")
    try:
        raise ValueError(f"bad row with {RAW}")
    except ValueError:
        logger.exception("failed")
    texts = [handler.format(r) for r in records]
    assert texts[0] == "checked 110105********002X for hrss"
    assert texts[1] == "f-string 110105********002X"
    assert "110105********002X" in texts[2] and RAW not in texts[2]
    assert all(RAW not in t for t in texts)


def test_after_uninstall_records_are_left_alone(masked_logs):
    logger, records, handler = masked_logs
    uninstall_log_masking()
    logger.info("%s", RAW)
    assert handler.format(records[-1]) == RAW


@pytest.mark.parametrize("value, safe", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"), ("-1+2", "'-1+2"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("张*明", "张*明"), (12, 12),
])
def test_formula_cells_are_neutralised(value, safe):
    assert safe_cell(value) == safe


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, district_dir):
    settings = pulled_district(tmp_path_factory.mktemp("privacy"), district_dir)
    run_id = review_in_process(settings, dt.date(2026, 11, 1))
    return settings, run_id


def test_an_officer_reads_only_their_street_and_is_refused_elsewhere(reviewed):
    settings, run_id = reviewed
    officer = principal("officer_wusan")
    mine = export_flags(settings, officer, run_id)
    everything = export_flags(settings, principal("hedui_staff"), run_id)
    assert len(mine) and set(mine["street_code"]) == {"210112001"}
    assert len(everything) > len(mine) and len(set(everything["street_code"])) > 1
    listed = list_flags(settings, principal("officer_zhanxi"))
    assert {f["street_code"] for f in listed} == {"210112002"}
    other = next(f for f in list_flags(settings, principal("admin"))
                 if f["street_code"] == "210112001")
    with pytest.raises(AccessDenied, match="outside that jurisdiction"):
        get_flag(settings, principal("officer_zhanxi"), other["id"])
    community = principal("officer_taoxian1")
    assert set(export_flags(settings, community, run_id)["community_code"]) <= {"210112003001"}


def test_exports_are_masked_and_unmasked_needs_the_permission(reviewed):
    settings, run_id = reviewed
    masked = export_flags(settings, principal("hedui_staff"), run_id)
    assert masked["head_id"].str.fullmatch(r"\d{6}\*{8}[\dX]{4}").all()
    assert masked["head_name"].str.contains(r"\*").all()
    for user in ("hedui_staff", "officer_wusan"):
        with pytest.raises(AccessDenied, match="may not export.unmasked"):
            export_flags(settings, principal(user), run_id, unmasked=True)
    with pytest.raises(AccessDenied, match="may not reports.read"):
        export_flags(settings, principal("partner_hrss"), run_id)


def test_an_unmasked_export_is_complete_and_audited_by_token(reviewed, district_dir):
    settings, run_id = reviewed
    full = export_flags(settings, principal("admin"), run_id, unmasked=True)
    roster = pd.read_csv(district_dir / "roster.csv", dtype=str)
    heads = roster[roster["relation"] == "户主"].set_index("household_code")
    expected = full["household_code"].map(heads["id_number"])
    assert (full["head_id"] == expected).all()
    assert (full["head_name"] == full["household_code"].map(heads["name"])).all()
    with session_scope(settings.database_url) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "data.access")
                                .order_by(AuditEvent.id.desc())).first()
        subjects = set(session.scalars(select(AuditSubject.person_token)
                                       .where(AuditSubject.event_id == event.id)))
        head_tokens = set(session.scalars(select(Member.person_token)
                                          .where(Member.relation == "户主")))
    assert event.actor == "admin" and event.subject == f"export:run-{run_id}"
    assert event.detail["unmasked"] is True and event.detail["rows"] == len(full)
    assert subjects and subjects <= head_tokens and len(subjects) == len(full)
    assert not any(i in str(event.detail) for i in roster["id_number"])


def test_write_export_neutralises_formulas(tmp_path, reviewed):
    settings, run_id = reviewed
    table = export_flags(settings, principal("admin"), run_id).head(2).copy()
    table.loc[0, "head_name"] = "=cmd|'/C calc'!A0"
    path = write_export(table, tmp_path / "x.csv")
    back = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    assert back.loc[0, "户主姓名"] == "'=cmd|'/C calc'!A0"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")


def _cli(settings, monkeypatch, *args: str):  # noqa: ANN202
    monkeypatch.setenv("HEDUI_HOME", str(settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", settings.database_url)
    return CliRunner().invoke(app, list(args))


def test_cli_export_respects_roles_and_masks(reviewed, monkeypatch, tmp_path, district_dir):
    settings, run_id = reviewed
    out = tmp_path / "officer.csv"
    ok = _cli(settings, monkeypatch, "export", "flags", str(run_id), "--out", str(out),
              "--user", "officer_wusan")
    assert ok.exit_code == 0 and "(masked)" in ok.output
    rows = pd.read_csv(out, dtype=str, encoding="utf-8-sig")
    assert set(rows["街道"]) == {"五三街道"}
    refused = _cli(settings, monkeypatch, "export", "flags", str(run_id), "--out",
                   str(tmp_path / "no.csv"), "--unmasked", "--user", "officer_wusan")
    assert refused.exit_code == 1 and "may not export.unmasked" in refused.output
    assert not (tmp_path / "no.csv").exists()
    full = tmp_path / "full.csv"
    admin = _cli(settings, monkeypatch, "export", "flags", str(run_id), "--out", str(full),
                 "--unmasked", "--user", "admin")
    assert admin.exit_code == 0 and "UNMASKED" in admin.output
    ids = set(pd.read_csv(district_dir / "roster.csv", dtype=str)["id_number"])
    assert set(pd.read_csv(full, dtype=str, encoding="utf-8-sig")["户主身份证号"]) <= ids


def test_flags_cli_keeps_officers_to_their_jurisdiction(reviewed, monkeypatch):
    from verification.cli.flags import app as flags_app

    settings, _ = reviewed
    monkeypatch.setenv("HEDUI_HOME", str(settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", settings.database_url)
    theirs = next(f for f in list_flags(settings, principal("admin"))
                  if f["street_code"] == "210112001")
    listed = CliRunner().invoke(flags_app, ["list", "--user", "officer_zhanxi", "--status",
                                            "all"])
    assert listed.exit_code == 0 and f"#{theirs['id']} " not in listed.output
    for command in (["show", str(theirs["id"])], ["ack", str(theirs["id"])]):
        refused = CliRunner().invoke(flags_app, [*command, "--user", "officer_zhanxi"])
        assert refused.exit_code == 1 and "outside that jurisdiction" in refused.output
    shown = CliRunner().invoke(flags_app, ["show", str(theirs["id"]), "--user",
                                           "officer_wusan"])
    assert shown.exit_code == 0 and theirs["head_id"] in shown.output
