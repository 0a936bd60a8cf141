"""The charts lay out Chinese text with the font the project ships (no system font needed) and
say nothing while doing it: no "Glyph … missing" warning, no font-manager complaint."""

from __future__ import annotations

import logging
import warnings

import pandas as pd
from matplotlib import font_manager

from verification.reports import charts


def test_every_chart_is_drawn_with_the_shipped_cjk_font_and_without_a_warning(caplog):
    assert font_manager.findfont("Noto Sans CJK SC") == charts.CJK_FONT_FILE
    assert charts.CJK_FONT_FILE.endswith("NotoSansCJK-VF.otf.ttc")
    table = pd.DataFrame({"street": ["五三街道", "浑河站西街道", "桃仙街道"],
                          "kind": ["REMOVE", "REVIEW", "KEEP"]})
    history = pd.DataFrame({"run_label": ["2026-10", "2026-11"], "kind": ["REVIEW", "REVIEW"],
                            "n": [3, 5]})
    with warnings.catch_warnings(), caplog.at_level(logging.DEBUG, "matplotlib"):
        warnings.simplefilter("error")
        drawn = [charts.flags_by_kind(table["kind"]),
                 charts.flags_by_area(table, "street", "各街道核对结论"),
                 charts.trend(history),
                 charts.ageing(pd.Series([3, 40, 95]), pd.Series([False, True, True]))]
    assert all(svg.startswith("<svg") for svg in drawn)
    assert "浑河站西街道" in drawn[1]  # text stays text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert charts.register_cjk_font() == charts.CJK_FONT_FILE  # idempotent
    assert sum(e.fname == charts.CJK_FONT_FILE
               for e in font_manager.fontManager.ttflist) == 5  # SC, TC, HK, JP, KR: once each


def test_csv_amounts_read_as_in_the_workbook():
    from verification.reports.flag_reports import _csv_number

    assert [_csv_number(v) for v in (750.0, 1812.6, float("nan"), 3, "750.0")] == [
        "750", "1812.60", "", 3, "750.0"]
