"""A row's problem said in words: the validators' reason code and the field's contract entry
(schemas/: title, enum, limits) made into a sentence that says what is wrong and what to write
instead, from codes.yaml ``row_problems`` (one wording for every place a row problem is shown:
a feed's quarantine and receipt, `hedui partner validate`, a batch's errors.csv and page).
Values are echoed only for coded fields; ID numbers and names never are."""

from __future__ import annotations

import re
from typing import Any

from verification import codes

# Batch-file fields whose coded values have labels in verification/codes.yaml (section): a file
# may give either the code (recipient) or its Chinese label (在保).
CODED_FIELDS = {"status": "household_status", "category": "categories",
                "urban_rural": "urban_rural", "exclusion": "exclusion",
                "disability_type": "disability_type"}


def sentence(reason: str, spec: dict[str, Any], lang: str, value: str = "",
             fallback: str = "", **extra: object) -> str:
    """One problem of the field ``spec`` (a contract field) as a sentence in ``lang``;
    ``value`` the row's value, shown for an enum; ``fallback`` the validator's own words for a
    code codes.yaml does not know; ``extra`` fills the template's other places ({limit})."""
    title = spec.get("title", spec.get("name", "")) if lang == "zh" else spec.get(
        "x-title-en", spec.get("title", spec.get("name", "")))
    limits = {k: _number(v) for k, v in spec.get("constraints", {}).items()}
    if reason == "NOT_ALLOWED" and spec.get("constraints", {}).get("enum"):
        return _not_allowed(spec, title, value, lang)
    if reason == "BAD_FORMAT":
        return _bad_format(spec, title, lang)
    template = codes.vocabulary()["row_problems"].get(reason, {}).get(lang)
    if template is None:  # a code without wording: keep the validator's own words
        return fallback or reason
    other = re.search(r"line (\d+)", fallback)
    other_text = "" if not other else (f"（另见第 {other.group(1)} 行）" if lang == "zh"
                                       else f" (see also line {other.group(1)})")
    example = "2026-10" if spec.get("type") == "yearmonth" else "2026-10-01"
    fill = {"limit": "今天" if lang == "zh" else "today", "example": example, **limits, **extra}
    return template.format(title=title, other=other_text, **fill)


def message(reason: str, spec: dict[str, Any], detail: str = "", **extra: object) -> str:
    """The problem as a quarantine row stores it: Chinese, then English (with ``detail``, the
    validator's specifics, when it has them)."""
    english = sentence(reason, spec, "en", **extra)
    return f"{sentence(reason, spec, 'zh', **extra)} / {english}" + (
        f" ({detail})" if detail else "")


def _number(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _not_allowed(spec: dict[str, Any], title: str, value: str, lang: str) -> str:
    allowed = [v for v in spec.get("constraints", {}).get("enum", []) if v != ""]
    # a batch's coded fields have labels; a feed's field of the same name (a business's
    # status) has its own values
    labels = codes.vocabulary().get(CODED_FIELDS.get(spec["name"], ""), {})
    shown = [f"{v}（{labels[v][lang]}）" if v in labels else v for v in allowed]
    if lang == "zh":
        given = f"填写为“{value}”，" if value else ""
        return f"「{title}」{given}不在允许范围内；应为：{'、'.join(shown)}"
    given = f" is {value!r}, which" if value else ""
    return f"{title}{given} is not allowed; use one of: {', '.join(shown)}"


def _bad_format(spec: dict[str, Any], title: str, lang: str) -> str:
    pattern = spec.get("constraints", {}).get("pattern", "")
    digits = re.fullmatch(r"\\d\{(\d+)\}", pattern)
    if digits:
        n = digits.group(1)
        return f"「{title}」应为 {n} 位数字" if lang == "zh" else f"{title} must be {n} digits"
    return f"「{title}」格式不正确" if lang == "zh" else f"{title} has the wrong format"
