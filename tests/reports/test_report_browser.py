"""The HTML reports render in headless Chromium: a PNG that is not blank and a PDF. Chromium is
required here (CI installs it); without it these tests fail and say how to get it."""

import numpy as np
from PIL import Image

from verification.reports.browser import print_pdf, screenshot


def _looks_like_a_page(png) -> None:
    image = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    assert image.shape == (2000, 1280)
    inked = (image < 200).mean()
    assert 0.03 < inked < 0.6, f"{png.name}: {inked:.1%} of the page has ink"
    top, bottom = image[:1000], image[1000:]
    assert (top < 200).mean() > 0.03 and (bottom < 250).mean() > 0.01  # content all the way


def test_street_summary_renders_to_a_readable_png(report_run, tmp_path):
    page = report_run.out / "210112001-五三街道" / "summary.html"
    png = screenshot(page, tmp_path / "street.png")
    assert png.stat().st_size > 60_000
    _looks_like_a_page(png)


def test_household_report_and_district_summary_render(report_run, tmp_path):
    report = next(report_run.out.rglob("核对报告/*.html"))
    _looks_like_a_page(screenshot(report, tmp_path / "household.png"))
    _looks_like_a_page(screenshot(report_run.out / "summary.html", tmp_path / "district.png"))


def test_summary_prints_to_pdf(report_run, tmp_path):
    pdf = print_pdf(report_run.out / "210112002-浑河站西街道" / "summary.html",
                    tmp_path / "summary.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert data.count(b"/Type /Page") - data.count(b"/Type /Pages") >= 2  # A4, several pages


def test_a_missing_browser_is_named_with_the_way_to_install_it(monkeypatch, tmp_path):
    import pytest

    from verification.reports.browser import BrowserMissing, find_chromium

    monkeypatch.setenv("HEDUI_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(BrowserMissing, match="does not exist"):
        find_chromium()
    monkeypatch.delenv("HEDUI_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissing, match="apt-get install chromium"):
        find_chromium()
