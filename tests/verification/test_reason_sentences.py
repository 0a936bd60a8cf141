"""Reasons read as sentences with their units (codes.yaml ``figures``), in both languages: no
bare "核对值 1 · 标准 3"."""

from __future__ import annotations

import pytest

from verification import codes


def test_a_death_and_a_conflict_read_as_sentences_with_units():
    assert codes.reason_sentence("MEMBER_DECEASED", {"value": 1.0, "limit": 3.0}) == \
        "家庭成员死亡（1人死亡，须在3个月内复核）"
    assert codes.reason_sentence("SOURCES_CONFLICT", {"value": 6.0, "limit": 0.0}) == \
        "数据来源相互矛盾（死亡登记后仍有6条收入或缴费记录）"
    assert codes.reason_sentence("INCOME_OVER_STANDARD", {"value": 1234.5, "limit": 1000},
                                 "en") == ("Per-capita income above the standard (¥1,234.50 per "
                                           "person a month; the standard is ¥1,000.00)")


@pytest.mark.parametrize("code", [c for c, spec in codes.reasons().items()
                                  if "figures" in spec])
def test_every_figure_template_formats_in_both_languages(code):
    for lang in ("zh", "en"):
        text = codes.reason_sentence(code, {"value": 2.0, "limit": 1.0}, lang)
        assert text.startswith(codes.label("reasons", code, lang)) and "2" in text
    assert codes.reason_sentence(code, {}, "zh") == codes.label("reasons", code)  # no figures
