"""`hedui flags` as an officer uses it: list, show, acknowledge, resolve — within jurisdiction."""

import datetime as dt
import re

import pytest
from typer.testing import CliRunner

from tests.conftest import pull_everything, review_in_process
from verification.cli.flags import app
from verification.flags.actions import get_flag, list_flags
from verification.intake.roster import load_roster
from verification.security.access import principal

runner = CliRunner()


@pytest.fixture
def reviewed(sqlite_settings, district_dir, monkeypatch):
    pull_everything(sqlite_settings, district_dir)
    load_roster(sqlite_settings, district_dir / "roster.csv")
    review_in_process(sqlite_settings, dt.date(2026, 11, 1))
    monkeypatch.setenv("HEDUI_HOME", str(sqlite_settings.home))
    monkeypatch.setenv("HEDUI_DATABASE_URL", sqlite_settings.database_url)
    monkeypatch.delenv("HEDUI_USER", raising=False)
    return sqlite_settings


def _ids(output: str) -> list[int]:
    return [int(i) for i in re.findall(r"^#(\d+)", output, flags=re.M)]


def test_officer_lists_and_resolves_only_in_their_street(reviewed):
    listed = runner.invoke(app, ["list", "--user", "officer_wusan"])
    assert listed.exit_code == 0, listed.output
    mine = _ids(listed.output)
    unresolved = list_flags(reviewed, principal("officer_wusan"), status="unresolved")
    expected = [f for f in unresolved if f["kind"] != "KEEP"]
    assert mine == [f["id"] for f in expected] and mine
    assert len(expected) < len(unresolved)  # KEEP needs no action: listed only when asked
    with_keep = runner.invoke(app, ["list", "--user", "officer_wusan", "--with-keep"])
    assert _ids(with_keep.output) == [f["id"] for f in unresolved]
    assert "五三街道" in listed.output and "浑河站西街道" not in listed.output
    assert f"共 {len(mine)} 条" in listed.output

    removal = next(f for f in expected if f["kind"] == "REMOVE")
    shown = runner.invoke(app, ["show", str(removal["id"]), "--user", "officer_wusan"])
    assert shown.exit_code == 0, shown.output
    assert "原因 / reason" in shown.output and "证据 / evidence" in shown.output
    assert "入户复核后停发" in shown.output and removal["head_id"] in shown.output
    assert not re.search(r"\d{17}[\dX]", shown.output)  # no full ID number anywhere

    refused = runner.invoke(app, ["resolve", str(removal["id"]), "--user", "officer_wusan",
                                  "--as", "overridden"])
    assert refused.exit_code == 1 and "written reason" in refused.output
    assert runner.invoke(app, ["ack", str(removal["id"]), "--user", "officer_wusan"]
                         ).exit_code == 0
    done = runner.invoke(app, ["resolve", str(removal["id"]), "--as", "home_visit",
                               "--note", "入户核查车辆"], env={"HEDUI_USER": "officer_wusan"})
    assert done.exit_code == 0, done.output
    flag = get_flag(reviewed, principal("admin"), removal["id"])
    assert (flag["status"], flag["resolution"], flag["resolved_by"]) == (
        "resolved", "home_visit", "officer_wusan")
    resolved = runner.invoke(app, ["list", "--user", "officer_wusan", "--status", "resolved"])
    assert _ids(resolved.output) == [removal["id"]]
    assert removal["id"] not in _ids(runner.invoke(app, ["list", "--user",
                                                         "officer_wusan"]).output)


def test_filters_and_refusals(reviewed):
    admin = runner.invoke(app, ["list", "--user", "admin", "--status", "all", "--kind", "REMOVE",
                                "--street", "210112002"])
    assert admin.exit_code == 0
    wanted = list_flags(reviewed, principal("admin"), kind="REMOVE", street="210112002")
    assert _ids(admin.output) == [f["id"] for f in wanted] and wanted
    dues = [f["due_date"] for f in wanted]
    assert dues == sorted(dues)

    elsewhere = wanted[0]["id"]
    refused = runner.invoke(app, ["resolve", str(elsewhere), "--user", "officer_wusan",
                                  "--as", "confirmed"])
    assert refused.exit_code == 1 and "outside that jurisdiction" in refused.output
    assert runner.invoke(app, ["show", str(elsewhere), "--user", "nobody"]).exit_code == 1
    assert runner.invoke(app, ["list", "--user", "partner_hrss"]).exit_code == 1
    assert runner.invoke(app, ["list", "--user", "admin", "--kind", "MAYBE"]).exit_code == 2
    assert runner.invoke(app, ["list"]).exit_code == 2  # no user given


def test_listing_another_street_is_refused_loudly_and_audited(reviewed):
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import AuditEvent

    refused = runner.invoke(app, ["list", "--user", "officer_wusan", "--street", "210112002"])
    assert refused.exit_code == 1, refused.output
    assert "共 0 条" not in refused.output
    assert "不能查看" in refused.output and "outside that jurisdiction" in refused.output
    # a community officer may list the street their community lies in
    inside = runner.invoke(app, ["list", "--user", "officer_taoxian1", "--street", "210112003"])
    assert inside.exit_code == 0, inside.output
    flag_elsewhere = list_flags(reviewed, principal("admin"), street="210112002")[0]["id"]
    shown = runner.invoke(app, ["show", str(flag_elsewhere), "--user", "officer_wusan"])
    assert shown.exit_code == 1 and "不在" in shown.output
    with session_scope(reviewed.database_url) as session:
        events = session.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject)
                                 .where(AuditEvent.action == "access.refused")).all()
    assert ("officer_wusan", "access.refused", "street:210112002") in events
    assert ("officer_wusan", "access.refused", f"flag:{flag_elsewhere}") in events
