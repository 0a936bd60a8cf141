"""End to end in a browser: Playwright drives Debian's Chromium against a real Airflow API server
(with a scheduler) on loopback, serving the portal as a plugin, logged in through Airflow's own
login page.

Staff upload an invalid batch (row errors in Chinese next to the rows), then a valid one, which the
portal stores and hands to batch_check; the scheduler runs it and the batch page shows it done with
results and reports. An officer opens and resolves a flag of their street and is refused one of
another street. A browser without a login sees no data.

Set ``HEDUI_PORTAL_SCREENSHOTS=docs/img`` to also write the screenshots in docs/ (desktop 1280
and phone 390 wide).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.portal.airflow_server import ACCOUNTS, AirflowServer
from tests.portal.conftest import batch_file, broken_batch_file, build_portal_home
from verification.storage import session_scope
from verification.storage.models import AuditEvent, Flag

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--lang=zh-CN"]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
SHOTS = os.environ.get("HEDUI_PORTAL_SCREENSHOTS", "")
BATCH_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, district_dir: Path) -> Iterator[AirflowServer]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed (apt-get install chromium fonts-noto-cjk)")
    base = tmp_path_factory.mktemp("portal-e2e")
    settings = build_portal_home(base / "home", district_dir)
    running = AirflowServer(settings, base / "airflow", with_scheduler=True).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:  # noqa: ANN201 (playwright Browser)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _context(browser, viewport: dict[str, int], state: dict | None = None):  # noqa: ANN001, ANN202
    return browser.new_context(viewport=viewport, locale="zh-CN", storage_state=state)


def _login(browser, server: AirflowServer, username: str, path: str = "/hedui/"):  # noqa: ANN001, ANN202
    """Log in through Airflow's login page, as a person would; returns the logged-in page."""
    context = _context(browser, DESKTOP)
    page = context.new_page()
    page.set_default_timeout(60_000)  # two shared cores, a scheduler running batches
    page.goto(server.url + path)
    page.wait_for_url(re.compile(r".*/auth/login.*"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(ACCOUNTS[username])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/hedui/.*"))
    return page


def _shot(page, name: str, phone_steps=None) -> None:  # noqa: ANN001
    """Save the page at desktop width and, in a phone-sized context with the same login, again.

    ``phone_steps(phone_page)`` re-creates a page that a plain visit cannot (a form's answer)."""
    if not SHOTS:
        return
    folder = Path(SHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / f"portal-{name}-desktop.png", full_page=True)
    phone = _context(page.context.browser, PHONE, page.context.storage_state())
    small = phone.new_page()
    small.goto(page.url)
    if phone_steps:
        phone_steps(small)
    small.screenshot(path=folder / f"portal-{name}-phone.png", full_page=True)
    phone.close()


def _wait_for_batch(page, url: str) -> str:  # noqa: ANN001
    """Visit the batch page until the batch is done, failed or invalid; its last status.

    A visit that times out (the machine is busy running the batch) is simply tried again."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + BATCH_TIMEOUT_S
    status = ""
    while time.monotonic() < deadline:
        try:
            page.goto(url, timeout=60_000)
            status = page.get_by_test_id("batch-status").get_attribute("data-status",
                                                                       timeout=60_000)
        except PlaywrightTimeout:
            continue
        if status in ("done", "failed", "invalid"):
            break
        time.sleep(5)
    return status


def test_airflow_serves_the_portal_as_a_plugin(server):
    import requests

    token = requests.post(f"{server.url}/auth/token", timeout=30, json={
        "username": "admin", "password": ACCOUNTS["admin"]}).json()["access_token"]
    plugins = requests.get(f"{server.url}/api/v2/plugins", timeout=30,
                           headers={"Authorization": f"Bearer {token}"}).json()["plugins"]
    portal = next(p for p in plugins if p["name"] == "hedui_portal")
    assert [a["url_prefix"] for a in portal["fastapi_apps"]] == ["/hedui"]
    assert portal["external_views"][0]["href"] == "/hedui/"
    page = requests.get(f"{server.url}/hedui/inbox", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200 and "待办核查" in page.text  # a script's bearer token works


def test_a_browser_without_login_sees_no_data(browser, server):
    context = _context(browser, DESKTOP)
    page = context.new_page()
    for path in ("/hedui/inbox", "/hedui/flags/1", "/hedui/batches"):
        page.goto(server.url + path)
        page.wait_for_url(re.compile(r".*/auth/login.*"))
        assert "hedui" not in page.title() and page.locator("[data-flag]").count() == 0
    context.close()


def test_staff_submit_an_invalid_then_a_valid_batch_and_see_it_complete(browser, server,
                                                                       district_dir, tmp_path):
    page = _login(browser, server, "hedui_staff")
    assert page.get_by_test_id("who").inner_text().startswith("hedui_staff")
    assert page.get_by_test_id("days-open").is_visible()
    _shot(page, "dashboard")
    page.get_by_role("link", name="EN").click()
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.get_by_test_id("nav-inbox").count() == 1  # staff read the inbox: in their menu
    _shot(page, "dashboard-en")
    page.get_by_role("link", name="中文").click()
    assert page.locator("h1").inner_text() == "工作台"
    page.get_by_test_id("nav-feeds").click()
    from connectors.registry import load_partners

    assert page.locator(".partner").count() == len(load_partners())
    _shot(page, "feeds")

    broken, bad_lines = broken_batch_file(district_dir, tmp_path / "bad")

    def upload(target, path: Path) -> None:  # noqa: ANN001
        target.goto(server.url + "/hedui/submit")
        target.set_input_files("input[name=file]", str(path))
        target.get_by_role("button", name="校验并提交").click()
        target.wait_for_load_state()

    upload(page, broken)
    errors = page.get_by_test_id("row-errors")
    assert [int(x) for x in errors.locator("tr[data-line]").evaluate_all(
        "rows => rows.map(r => r.dataset.line)")] == sorted(bad_lines)
    line_of = {field: line for line, field in bad_lines.items()}
    row = lambda field: errors.locator(f'tr[data-line="{line_of[field]}"]').inner_text()  # noqa: E731
    assert "身份证号校验位不符" in row("id_number")
    assert "「残疾等级」不能大于 4" in row("disability_grade")
    assert "不是有效日期" in row("authorisation_signed_on")
    _shot(page, "submit-errors", phone_steps=lambda p: upload(p, broken))

    upload(page, batch_file(district_dir, tmp_path / "good"))
    page.wait_for_url(re.compile(r".*/hedui/batches/\d+\?.*"))
    assert page.get_by_test_id("submitted").is_visible()
    code = page.get_by_test_id("batch-code").inner_text()
    assert re.fullmatch(r"B[0-9a-f]{16}-dibao", code)
    assert page.get_by_test_id("not-started").count() == 0

    status = _wait_for_batch(page, page.url.split("?")[0])
    assert status == "done", f"batch ended {status}:\n{server.log_tail('scheduler.log')}"
    assert page.locator(".step-done").count() == 6
    results = page.get_by_test_id("results")
    assert results.locator("tbody tr").count() > 0
    assert results.locator("a.file-link").count() > 0  # each household's 核对报告
    reports = page.get_by_test_id("reports")
    assert reports.get_by_text("batch-report.xlsx").count() == 1
    with page.expect_download() as download:
        reports.get_by_text("batch-report.csv").click()
    assert download.value.suggested_filename == "batch-report.csv"
    assert "家庭编号" in Path(download.value.path()).read_text("utf-8-sig").splitlines()[0]
    _shot(page, "batch")
    page.get_by_test_id("nav-batch_list").click()
    assert code in page.get_by_test_id("batches").inner_text()
    _shot(page, "batches")
    page.context.close()


def test_officer_resolves_a_flag_of_their_street_and_cannot_open_another(browser, server):
    settings = server.settings
    with session_scope(settings.database_url) as session:
        run_id = session.scalar(select(Flag.run_id).order_by(Flag.run_id.desc()).limit(1))
        other = session.scalar(select(Flag.id).where(Flag.run_id == run_id,
                                                     Flag.street_code != "210112001"))
    page = _login(browser, server, "officer_wusan", "/hedui/inbox")
    inbox = page.get_by_test_id("inbox")
    rows = inbox.locator("tr[data-flag]")
    assert rows.count() > 0
    assert "五三街道" in inbox.inner_text() and "浑河站西街道" not in inbox.inner_text()
    _shot(page, "inbox")

    removals = inbox.locator('tr[data-kind="REMOVE"]')
    chosen = removals.first if removals.count() else rows.first
    flag_id = int(chosen.get_attribute("data-flag"))
    page.get_by_test_id(f"open-{flag_id}").click()
    page.wait_for_url(re.compile(rf".*/hedui/flags/{flag_id}$"))
    assert page.get_by_test_id("reasons").locator("li").count() > 0
    if removals.count():  # a removal rests on partner evidence: which department, which record
        assert page.get_by_test_id("evidence").locator("tbody tr").count() > 0
    _shot(page, "flag")
    page.get_by_test_id("acknowledge").click()
    assert page.get_by_test_id("flag-status").get_attribute("data-status") == "acknowledged"
    form = page.get_by_test_id("resolve-form")
    form.get_by_label("转入户核查").check()
    form.locator("textarea[name=note]").fill("车辆登记信息待入户核实")
    page.get_by_test_id("resolve").click()
    assert page.get_by_test_id("flag-status").get_attribute("data-status") == "resolved"
    assert page.get_by_test_id("resolution").inner_text() == "转入户核查"
    with session_scope(settings.database_url) as session:
        stored = session.get(Flag, flag_id)
        assert (stored.status, stored.resolution, stored.resolved_by) == (
            "resolved", "home_visit", "officer_wusan")
        assert session.scalar(select(AuditEvent.id).where(
            AuditEvent.action == "flag.resolved", AuditEvent.subject == f"flag:{flag_id}"))

    response = page.goto(f"{server.url}/hedui/flags/{other}")
    assert response.status == 404  # answered as a missing id: not probeable
    assert "不在您负责的辖区内" in page.get_by_test_id("error").inner_text()
    with session_scope(settings.database_url) as session:
        assert session.get(Flag, other).status == "open"
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_staff_page_filter_and_search_the_inbox_at_both_widths(browser, server, viewport):
    page = _login(browser, server, "hedui_staff", "/hedui/inbox")
    page.set_viewport_size(viewport)
    page.reload()
    first = [r.get_attribute("data-flag") for r in page.locator("tr[data-flag]").all()]
    assert 0 < len(first) <= 50
    total = int(re.search(r"共 ([\d,]+) 条", page.get_by_test_id("range").inner_text())
                .group(1).replace(",", ""))
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    if total > 50:  # the district of the portal tests has more open flags than a page
        page.get_by_test_id("page-next").click()
        page.wait_for_url(re.compile(r".*page=2.*"))
        second = [r.get_attribute("data-flag") for r in page.locator("tr[data-flag]").all()]
        assert second and not set(second) & set(first)
        assert "第 2 /" in page.get_by_test_id("page-at").inner_text()
    code = page.locator("tr[data-flag] .mono").first.inner_text().strip()
    page.get_by_test_id("search").fill(code)
    page.get_by_test_id("search").press("Enter")
    page.wait_for_url(re.compile(r".*q=.*"))
    found = page.locator("tr[data-flag]").all()  # its review flag, and a batch's if any
    assert found and all(code in row.inner_text() for row in found)
    page.goto(server.url + "/hedui/inbox")
    chip = page.get_by_test_id("kind-chips").locator("a[data-testid^=kind-]").first
    expected = int(chip.locator(".count").inner_text().replace(",", ""))
    chip.click()
    page.wait_for_url(re.compile(r".*kind=.*"))
    shown = int(re.search(r"共 ([\d,]+) 条", page.get_by_test_id("range").inner_text())
                .group(1).replace(",", ""))
    assert shown == expected
    if viewport is DESKTOP:
        page.goto(server.url + "/hedui/inbox")
        _shot(page, "inbox-staff")
    page.context.close()
