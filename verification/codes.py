"""Flag kinds, reason codes and other vocabularies, with their labels, read from codes.yaml."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_CODES_FILE = Path(__file__).with_name("codes.yaml")


# libyaml's loader where PyYAML was built with it (its wheels are): the file is read by every
# process that labels anything, and the pure-Python loader took 90 ms of a CLI command for it.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def vocabulary() -> dict[str, dict[str, dict[str, Any]]]:
    return yaml.load(_CODES_FILE.read_text(encoding="utf-8"), Loader=_LOADER)


def flags() -> dict[str, dict[str, Any]]:
    return vocabulary()["flags"]


def action_kinds() -> list[str]:
    """Flag kinds that ask an officer to act: those with a due date (codes.yaml ``due_days``;
    KEEP, 无变化, has none)."""
    return [kind for kind, meta in flags().items() if meta["due_days"] > 0]


def no_action_kinds() -> list[str]:
    """Flag kinds that ask nothing of an officer (no due date: KEEP, 无变化); inboxes, work
    counts and the dashboard's charts leave them out."""
    return [kind for kind, meta in flags().items() if meta["due_days"] <= 0]


def reasons() -> dict[str, dict[str, Any]]:
    return vocabulary()["reasons"]


def label(section: str, code: str, lang: str = "zh") -> str:
    """Label of ``code`` in ``section`` (flags, reasons, feed_kinds, …); unknown codes raise."""
    try:
        return vocabulary()[section][code][lang]
    except KeyError:
        raise KeyError(f"unknown {section} code {code!r}; add it to {_CODES_FILE.name}") from None


def reason_sentence(code: str, detail: dict[str, Any] | None, lang: str = "zh") -> str:
    """A flag reason as a person reads it: its label, with its figures and their units where
    they tell the officer what to do — 家庭成员死亡（1人死亡，须在3个月内复核）."""
    text = label("reasons", code, lang)
    template = reasons()[code].get("figures", {}).get(lang)
    detail = detail or {}
    if not template or detail.get("value") is None or detail.get("limit") is None:
        return text
    figures = template.format(value=float(detail["value"]), limit=float(detail["limit"]))
    return f"{text}（{figures}）" if lang == "zh" else f"{text} ({figures})"


def rejection_reason(reason: str) -> str:
    """A whole-file refusal as the partner reads it: the code it starts with, the Chinese
    summary of what went wrong and what to do, then the English detail — ``BadSignature: 签名校验
    失败…… / the header signature does not verify …``. The code is the more specific of
    ``IntakeRejected: ListingRefused: …``; a reason without a known code is returned as it is."""
    table = vocabulary()["rejections"]
    parts = reason.split(": ", 2)
    code = parts[0]
    if code == "IntakeRejected" and len(parts) > 2 and parts[1] in table:
        code, parts = parts[1], parts[1:]
    if code not in table or len(parts) < 2:
        return reason
    detail = ": ".join(parts[1:])
    if detail.startswith(table[code]["zh"]):  # already bilingual (MissingColumns names them)
        return f"{code}: {detail}"
    return f"{code}: {table[code]['zh']} / {detail}"


def feed_kinds() -> list[str]:
    return list(vocabulary()["feed_kinds"])


def items(item_class: str | None = None) -> list[str]:
    """Evidence item codes, optionally only those of one class (income, asset, vehicle, …)."""
    table = vocabulary()["items"]
    return [code for code, meta in table.items() if item_class in (None, meta["class"])]
