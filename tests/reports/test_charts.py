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


def test_the_ageing_chart_s_title_labels_and_legend_do_not_overlap(monkeypatch):
    """Issue 17: the ageing chart's bar label ran into its title. Drawn for real, the boxes of
    the title, every bar label and the legend are apart, the tallest bar's label included."""
    drawn = []
    svg = charts._svg
    monkeypatch.setattr(charts, "_svg", lambda fig: drawn.append(fig) or svg(fig))
    charts.ageing(pd.Series([3, 5, 40, 95, 95, 95, 200]),
                  pd.Series([False, False, True, True, True, True, False]))
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = drawn[0]
    with plt.rc_context(charts._STYLE):  # the closed figure drawn again, in its own fonts
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        ax = fig.axes[0]
        title = ax.title.get_window_extent(renderer)
        labels = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
        legend = ax.get_legend().get_window_extent(renderer)
    assert labels, "the bars are labelled"
    for box in [*labels, legend]:
        assert not title.overlaps(box), (title, box)
    for box in labels:
        assert not legend.overlaps(box), (legend, box)
