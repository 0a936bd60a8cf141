"""The portal's routes through FastAPI's TestClient, with real Airflow logins (JWTs issued by the
simple auth manager) and a reviewed district: who sees what, what a submission does, what an
officer's actions write."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.portal.conftest import batch_file, broken_batch_file
from verification.flags import actions as flag_actions
from verification.portal import create_app
from verification.portal.row_errors import explain
from verification.security.access import principal
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Batch, Flag

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def app(portal_settings):  # noqa: ANN001, ANN201
    """The portal mounted at /hedui in a parent app, as Airflow's API server mounts it."""
    parent = FastAPI()
    parent.mount("/hedui", create_app(settings_factory=lambda: portal_settings))
    return parent


@pytest.fixture
def client_for(app, airflow_tokens):  # noqa: ANN001, ANN201
    def make(username: str | None, lang: str = "zh") -> TestClient:
        client = TestClient(app, base_url="http://testserver/hedui/", follow_redirects=False)
        if username:
            client.cookies.set("_token", airflow_tokens(username))
        client.cookies.set("hedui_lang", lang)
        return client

    return make


def _form_token(html: str) -> str:
    return re.search(r'name="form_token" value="([0-9a-f]+)"', html).group(1)


def test_no_login_sees_no_data_and_is_sent_to_airflow_login(client_for):
    anonymous = client_for(None)
    for path in ("/dashboard", "/inbox", "/batches", "/feeds", "/flags/1"):
        response = anonymous.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/api/v2/auth/login?next=")
        assert "/hedui" + path in response.headers["location"]
    forged = client_for(None)
    forged.cookies.set("_token", "not.a.jwt")
    assert forged.get("/inbox").status_code == 303
    assert anonymous.post("/flags/1/resolve", data={"resolution": "confirmed"}).status_code == 401


def test_airflow_user_without_a_hedui_role_is_refused(client_for):
    response = client_for("someone_else").get("/dashboard")
    assert response.status_code == 403
    assert "尚未在核对系统中分配角色" in response.text


def test_menu_follows_the_role(client_for):
    officer = client_for("officer_wusan").get("/dashboard").text
    assert "待办核查" in officer and "提交核对" not in officer and "协查数据" not in officer
    staff = client_for("hedui_staff").get("/dashboard").text
    assert "提交核对" in staff and "核对批次" in staff and "协查数据" in staff
    assert 'data-testid="nav-inbox"' in staff  # staff may read the inbox: it is in their menu
    partner = client_for("partner_hrss")
    assert partner.get("/").headers["location"].endswith("/hedui/feeds")
    assert partner.get("/dashboard").status_code == 403


def test_officer_inbox_holds_only_open_flags_of_their_street_soonest_first(client_for,
                                                                          portal_settings):
    html = client_for("officer_wusan").get("/inbox").text
    shown = [int(i) for i in re.findall(r'data-flag="(\d+)"', html)]
    mine = [f for f in flag_actions.list_flags(portal_settings, principal("officer_wusan"))
            if f["kind"] != "KEEP" and f["status"] != "resolved"]
    assert shown and set(shown) == {f["id"] for f in mine}
    assert "浑河站西街道" not in html and "五三街道" in html
    dues = [f["due_date"] for f in sorted(mine, key=lambda f: shown.index(f["id"]))]
    assert dues == sorted(dues)


def test_inbox_sorts_by_due_date_both_ways(client_for):
    def due_dates(html: str) -> list[str]:
        return re.findall(r'<td data-label="办理期限" class="nowrap">(\d{4}-\d{2}-\d{2})', html)

    client = client_for("hedui_staff")  # district-wide: flags with different due dates
    soonest = due_dates(client.get("/inbox").text)
    assert len(set(soonest)) > 1 and soonest == sorted(soonest)
    latest = due_dates(client.get("/inbox?sort=-due").text)
    assert latest == sorted(soonest, reverse=True)


def test_officer_cannot_open_or_resolve_a_flag_of_another_street(client_for, portal_settings):
    other = next(f for f in flag_actions.list_flags(portal_settings, principal("admin"))
                 if f["street_code"] != "210112001")
    client = client_for("officer_wusan")
    response = client.get(f"/flags/{other['id']}")
    missing = client.get("/flags/999999999")
    # another street's flag is answered exactly as a missing one: ids cannot be probed
    assert response.status_code == missing.status_code == 404
    def said(html: str) -> str:  # the page's message (its language links name the address)
        return html.split('data-testid="error"', 1)[1].split("</section>", 1)[0]

    assert said(response.text) == said(missing.text) and "不在您负责的辖区内" in said(missing.text)
    assert other["household_code"] not in response.text
    assert other["community_code"] not in response.text
    report = client.get(f"/flags/{other['id']}/report")  # nor its 核对报告
    assert report.status_code == client.get("/flags/999999999/report").status_code == 404
    assert other["household_code"] not in report.text
    assert client_for("admin").get(f"/flags/{other['id']}/report").status_code == 200
    assert client_for("partner_hrss").get(f"/flags/{other['id']}/report").status_code == 403
    mine = next(f for f in flag_actions.list_flags(portal_settings, principal("officer_wusan")))
    token = _form_token(client.get(f"/flags/{mine['id']}").text)
    response = client.post(f"/flags/{other['id']}/resolve",
                           data={"resolution": "confirmed", "form_token": token})
    assert response.status_code == 404
    with session_scope(portal_settings.database_url) as session:
        assert session.get(Flag, other["id"]).status != "resolved"


def test_officer_resolves_a_flag_override_needs_a_reason_and_it_is_audited(client_for,
                                                                          portal_settings):
    client = client_for("officer_wusan")
    flag = next(f for f in flag_actions.list_flags(portal_settings, principal("officer_wusan"))
                if f["kind"] in ("REMOVE", "REVIEW", "ADD", "REJECT") and f["status"] == "open")
    page = client.get(f"/flags/{flag['id']}")
    assert page.status_code == 200 and flag["household_code"] in page.text
    assert flag["head_id"] in page.text and "*" in flag["head_id"]
    token = _form_token(page.text)
    assert client.post(f"/flags/{flag['id']}/resolve",
                       data={"resolution": "confirmed"}).status_code == 403  # no form token
    refused = client.post(f"/flags/{flag['id']}/resolve",
                          data={"resolution": "overridden", "note": " ", "form_token": token})
    assert refused.status_code == 422 and "书面理由" in refused.text
    ack = client.post(f"/flags/{flag['id']}/acknowledge", data={"form_token": token})
    assert ack.status_code == 303
    done = client.post(f"/flags/{flag['id']}/resolve",
                       data={"resolution": "overridden", "note": "入户核实：车辆已于上月转让",
                             "form_token": token})
    assert done.status_code == 303 and done.headers["location"].endswith("?done=resolved")
    shown = client.get(done.headers["location"]).text
    assert "已办结" in shown and "车辆已于上月转让" in shown
    with session_scope(portal_settings.database_url) as session:
        stored = session.get(Flag, flag["id"])
        assert (stored.status, stored.resolution, stored.resolved_by) == (
            "resolved", "overridden", "officer_wusan")
        actions = session.scalars(select(AuditEvent.action).where(
            AuditEvent.subject == f"flag:{flag['id']}")).all()
    assert {"flag.viewed", "flag.acknowledged", "flag.resolved"} <= set(actions)
    done_list = client.get("/inbox?status=done").text
    assert f'data-flag="{flag["id"]}"' in done_list


def test_flag_page_links_the_household_s_report_rendered_on_demand(client_for,
                                                                     portal_settings):
    client = client_for("officer_wusan")
    mine = flag_actions.list_flags(portal_settings, principal("officer_wusan"))
    keep = next(f for f in mine if f["kind"] == "KEEP")  # no bulk report: rendered now
    page = client.get(f"/flags/{keep['id']}").text
    link = re.search(r'href="([^"]+)"[^>]*data-testid="report-link"', page).group(1)
    assert link.endswith(f"/flags/{keep['id']}/report")
    report = client.get(f"/flags/{keep['id']}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "居民家庭经济状况核对报告" in report.text and keep["household_code"] in report.text
    assert "继续保障" in report.text
    assert not re.search(r"(?<![\d*])\d{17}[\dXx](?![\d*])", report.text)
    with session_scope(portal_settings.database_url) as session:
        actions = session.scalars(select(AuditEvent.action).where(
            AuditEvent.subject == f"flag:{keep['id']}")).all()
    assert "report.viewed" in actions


def test_a_purged_run_s_report_says_so(client_for, portal_settings, monkeypatch, tmp_path):
    from verification.reports import household_report

    monkeypatch.setattr(household_report, "_evidence_path", lambda *_: tmp_path / "gone.parquet")
    mine = flag_actions.list_flags(portal_settings, principal("officer_wusan"))[0]
    response = client_for("officer_wusan").get(f"/flags/{mine['id']}/report")
    assert response.status_code == 410
    assert "已按保留期限清理" in response.text and "purged" in response.text


def test_invalid_batch_shows_each_bad_row_in_chinese_and_stores_nothing(client_for,
                                                                       portal_settings,
                                                                       district_dir, tmp_path):
    path, bad = broken_batch_file(district_dir, tmp_path)
    client = client_for("hedui_staff")
    token = _form_token(client.get("/submit").text)
    with session_scope(portal_settings.database_url) as session:
        before = len(session.scalars(select(Batch)).all())
    response = client.post("/submit", data={"category": "dibao", "form_token": token},
                           files={"file": (path.name, path.read_bytes(), "text/csv")})
    assert response.status_code == 422
    lines = [int(x) for x in re.findall(r'<tr data-line="(\d+)"', response.text)]
    assert lines == sorted(bad)
    rows = dict(zip(lines, re.split(r'<tr data-line="\d+"', response.text)[1:], strict=True))
    by_field = {field: rows[line] for line, field in bad.items()}
    assert "身份证号校验位不符" in by_field["id_number"]
    assert "「残疾等级」不能大于 4" in by_field["disability_grade"]
    assert "「授权日期」不是有效日期" in by_field["authorisation_signed_on"]
    id_line = next(line for line, field in bad.items() if field == "id_number")
    raw = path.read_text("utf-8-sig").splitlines()[id_line - 1].split(",")
    assert not any(v in response.text for v in raw if len(v) == 18)  # no raw ID echoed
    with session_scope(portal_settings.database_url) as session:
        assert len(session.scalars(select(Batch)).all()) == before


def test_valid_batch_is_stored_registered_and_audited(client_for, portal_settings,
                                                     district_dir, tmp_path):
    path = batch_file(district_dir, tmp_path)
    client = client_for("hedui_staff")
    token = _form_token(client.get("/submit").text)
    response = client.post("/submit", data={"category": "dibao", "notes": "第一批",
                                            "form_token": token},
                           files={"file": (path.name, path.read_bytes(), "text/csv")})
    assert response.status_code == 303
    location = response.headers["location"]
    batch_id = int(re.search(r"/batches/(\d+)\?", location).group(1))
    with session_scope(portal_settings.database_url) as session:
        batch = session.get(Batch, batch_id)
        assert batch.requester == "hedui_staff" and batch.notes == "第一批"
        stored = Path(batch.stored_path)
        # kept sealed (it holds full ID numbers), the same bytes once opened
        assert stored.suffix == ".sealed" and stored.stat().st_mode & 0o077 == 0
        assert path.read_bytes() not in stored.read_bytes()
        from verification.batches.check import opened
        with opened(portal_settings, stored) as plain:
            assert plain.read_bytes() == path.read_bytes() and plain.name == path.name
        assert batch.file_name == path.name
        events = session.scalars(select(AuditEvent.action).where(
            AuditEvent.subject == f"batch:{batch_id}")).all()
    assert "batch.submitted" in events
    page = client.get(location).text
    assert batch.batch_code in page
    if batch.dag_run_id:  # Airflow knows batch_check (its DAGs were parsed earlier this session)
        assert "批次已提交" in page and 'data-status="received"' in page
    else:  # no run could be created: the batch says so (failed, with the reason), never
        # "submitted" or "in progress"
        assert 'data-status="failed"' in page and "核对任务未能启动" in page
        assert "批次已提交" not in page and "核对进行中" not in page
    assert batch.batch_code in client.get("/batches").text
    assert not list((portal_settings.home / "tmp" / "portal-uploads").glob("*/*"))


def test_upload_without_form_token_or_with_wrong_type_is_refused(client_for, tmp_path):
    client = client_for("hedui_staff")
    other = tmp_path / "x.pdf"
    other.write_bytes(b"%PDF-1.4")
    assert client.post("/submit", files={"file": (other.name, b"x", "text/csv")}
                       ).status_code == 403
    token = _form_token(client.get("/submit").text)
    response = client.post("/submit", data={"form_token": token},
                           files={"file": (other.name, other.read_bytes(), "application/pdf")})
    assert response.status_code == 422 and "只接受 CSV 或 Excel" in response.text
    officer = client_for("officer_wusan")
    assert officer.get("/submit").status_code == 403


def test_dashboard_counts_are_scoped_to_the_jurisdiction(client_for, portal_settings):
    staff = client_for("hedui_staff").get("/dashboard").text
    officer = client_for("officer_wusan").get("/dashboard").text
    assert "桃仙街道" in staff and "桃仙街道" not in officer
    everything = flag_actions.list_flags(portal_settings, principal("admin"))
    mine = [f for f in everything if f["street_code"] == "210112001"]
    total = re.search(r'data-total="(\d+)"', officer).group(1)
    assert int(total) == len(mine)
    checked = int(re.search(r'data-testid="households">(\d+)<', officer).group(1))
    assert checked == len(mine) < int(re.search(r'data-testid="households">(\d+)<',
                                                staff).group(1))  # their street, not the district
    assert 'data-testid="trend"' in staff and staff.count("<rect") >= 2


def test_partner_feeds_page_shows_counts_and_next_delivery(client_for, portal_settings):
    html = client_for("hedui_staff").get("/feeds").text
    assert "人力资源和社会保障局" in html and "预计下次交付" in html
    from connectors.registry import delivered_kinds

    assert html.count('class="feed-kind"') == len(delivered_kinds())  # every kind delivered
    own = client_for("partner_hrss").get("/feeds").text
    assert "人力资源和社会保障局" in own and "不动产登记中心" not in own


def test_english_switch(client_for):
    client = client_for("officer_wusan")
    response = client.get("/lang/en", params={"next": "/hedui/inbox"})
    assert response.status_code == 303 and response.headers["location"] == "/hedui/inbox"
    assert response.cookies.get("hedui_lang") == "en"
    english = client_for("officer_wusan", lang="en").get("/inbox").text
    assert "Officer inbox" in english and "待办核查" not in english
    assert client.get("/lang/en", params={"next": "https://evil.example/"}
                      ).headers["location"] == "/hedui/"


@pytest.mark.parametrize(("reason", "field", "expected"), [
    ("REQUIRED", "name", "「姓名」不能为空"),
    ("NOT_ALLOWED", "status", "recipient（在保）"),
    ("BAD_FORMAT", "community_code", "「社区代码」应为 12 位数字"),
    ("ABOVE_MAXIMUM", "disability_grade", "「残疾等级」不能大于 4"),
    ("SOMETHING_NEW", "name", "validator words"),
])
def test_row_errors_are_explained_in_chinese(reason, field, expected):
    assert expected in explain(reason, field, "x", "zh", "validator words")


def _xlsx(rows: list[list[str]], path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def test_xlsx_batches_are_checked_like_csv(client_for, portal_settings, district_dir,
                                           tmp_path):
    import csv

    source = batch_file(district_dir, tmp_path, statuses=("monitored",))
    rows = list(csv.reader(source.read_text("utf-8-sig").splitlines()))
    client = client_for("hedui_staff")
    token = _form_token(client.get("/submit").text)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    bad = [list(r) for r in rows]
    bad[2][bad[0].index("relation")] = "表哥"
    bad_path = _xlsx(bad, tmp_path / "有错误.xlsx")
    refused = client.post("/submit", data={"form_token": token},
                          files={"file": (bad_path.name, bad_path.read_bytes(), xlsx)})
    assert refused.status_code == 422
    assert re.findall(r'<tr data-line="(\d+)"', refused.text) == ["3"]
    assert "「与户主关系」填写为“表哥”，不在允许范围内" in refused.text
    good = _xlsx(rows, tmp_path / "监测对象.xlsx")
    accepted = client.post("/submit", data={"form_token": token, "category": "edge"},
                           files={"file": (good.name, good.read_bytes(), xlsx)})
    assert accepted.status_code == 303
    batch_id = int(re.search(r"/batches/(\d+)\?", accepted.headers["location"]).group(1))
    with session_scope(portal_settings.database_url) as session:
        batch = session.get(Batch, batch_id)
        assert (batch.file_name, batch.category) == ("监测对象.xlsx", "edge")


def test_whole_file_problems_and_repeated_persons_are_said_plainly(client_for, district_dir,
                                                                  tmp_path):
    client = client_for("hedui_staff")
    token = _form_token(client.get("/submit").text)
    headless = tmp_path / "缺列.csv"
    headless.write_text("household_code,name\nHN1,张三\n", "utf-8")
    response = client.post("/submit", data={"form_token": token},
                           files={"file": (headless.name, headless.read_bytes(), "text/csv")})
    assert response.status_code == 422 and "表头缺少必填列" in response.text
    source = batch_file(district_dir, tmp_path)
    lines = source.read_text("utf-8-sig").splitlines()
    twice = tmp_path / "重复.csv"
    twice.write_text("\n".join([*lines, lines[1]]) + "\n", "utf-8")
    response = client.post("/submit", data={"form_token": token},
                           files={"file": (twice.name, twice.read_bytes(), "text/csv")})
    assert response.status_code == 422
    assert "同一人在本文件中出现了两次（另见第 " in response.text


def test_a_batch_refused_off_the_portal_shows_its_row_errors_in_chinese(client_for,
                                                                        portal_settings,
                                                                        district_dir, tmp_path):
    """The CLI, REST and inbox paths validate in verification/batches.py: their refusals reach
    the batch page with line, household code, field and what is wrong, and errors.csv."""
    from verification.batches import check as batches

    path, bad = broken_batch_file(district_dir, tmp_path)
    ref = batches.register_batch(portal_settings, path, category="edge", requester="cli")
    with pytest.raises(batches.BatchInvalid):
        batches.validate_batch(portal_settings, ref.id)
    client = client_for("hedui_staff")
    page = client.get(f"/batches/{ref.id}").text
    assert 'data-status="invalid"' in page and "校验错误" in page
    lines = [int(x) for x in re.findall(r'<tr data-line="(\d+)"', page)]
    assert lines == sorted(bad)
    codes = pd.read_csv(path, dtype=str, keep_default_na=False)["household_code"]
    for line in bad:
        assert codes[line - 2] in page.split(f'data-line="{line}"')[1].split("</tr>")[0]
    assert "身份证号校验位不符" in page and "「残疾等级」不能大于 4" in page
    download = client.get(f"/batches/{ref.id}/errors.csv")
    assert download.status_code == 200 and download.content.startswith(b"\xef\xbb\xbf")
    assert download.content.decode("utf-8-sig").startswith("行号,家庭编号,字段")
    english = client_for("hedui_staff", lang="en").get(f"/batches/{ref.id}").text
    assert "check character does not match" in english
