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


def test_a_refused_file_is_told_in_chinese_first_then_the_english_detail():
    assert codes.rejection_reason("BadSignature: the header signature does not verify") == (
        "BadSignature: 签名校验失败：文件在签名后被改动，或不是用贵单位登记的密钥签名，"
        "请从源文件重新打包 / the header signature does not verify")
    # the more specific code of an intake refusal leads
    listing = codes.rejection_reason("IntakeRejected: ListingRefused: sequence 9 is 5 past")
    assert listing.startswith("ListingRefused: 批次序号或所属期超出中心允许的范围 / sequence 9")
    # a reason without a known code is left as it is; every code has both labels
    assert codes.rejection_reason("something else") == "something else"
    assert all({"zh", "en"} <= set(v) for v in codes.vocabulary()["rejections"].values())
