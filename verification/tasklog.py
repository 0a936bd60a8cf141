"""Business counts in the Airflow task logs, Chinese with English beside: what each task of the
review, batch and partner DAGs received, accepted, quarantined, checked and flagged.

The task's own logger (``airflow.task`` propagates every library logger) shows these lines in
the task log the operators read; the counts are the ones the task returns or records, never
personal data."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from verification import codes

log = logging.getLogger("hedui.tasks")


def feeds_taken_in(partner: str, results: Iterable[Any]) -> None:
    """One line per feed: rows received, accepted and quarantined, and what became of it."""
    results = list(results)
    if not results:
        log.info("合作方 %s：没有新的数据批次 / partner %s: no new feeds", partner, partner)
    for r in results:
        outcome = "已接收 accepted" if r.status == "accepted" else f"已拒收 rejected: {r.reason}"
        log.info("合作方 %s 数据 %s 第 %s 批：收到 %d 行，接收 %d 行，隔离 %d 行（%s）/ "
                 "partner %s feed %s #%s: %d rows received, %d accepted, %d quarantined",
                 partner, r.kind, r.sequence, r.received, r.accepted, r.quarantined, outcome,
                 partner, r.kind, r.sequence, r.received, r.accepted, r.quarantined)


def rows_checked(batch_code: str, received: int, errors: int) -> None:
    log.info("批次 %s：收到 %d 行，%d 处错误 / batch %s: %d rows received, %d errors",
             batch_code, received, errors, batch_code, received, errors)


def households_loaded(batch_code: str, households: int, members: int) -> None:
    log.info("批次 %s：载入 %d 户 %d 人 / batch %s: %d households, %d members loaded",
             batch_code, households, members, batch_code, households, members)


def evidence_matched(run_id: int, evidence_rows: int, matched_rows: int, staged_rows: int,
                     shards: int) -> None:
    log.info("运行 %s：%d 条比对证据（暂存 %d 行中匹配 %d 行），%d 个街道 / run %s: %d evidence "
             "rows from %d matched of %d staged rows, %d streets", run_id, evidence_rows,
             staged_rows, matched_rows, shards, run_id, evidence_rows, matched_rows,
             staged_rows, shards)


def households_checked(run_id: int, households: int, flags: Mapping[str, int],
                       street: str = "") -> None:
    """Households checked and the flags by kind (KEEP included: every household gets one);
    ``street``: the one street a shard task checked."""
    zh, en = (f" 街道 {street}", f" street {street}") if street else ("", "")
    by_kind_zh = "，".join(f"{codes.flags()[k]['zh']} {n}" for k, n in flags.items()) or "无"
    by_kind_en = ", ".join(f"{k} {n}" for k, n in flags.items()) or "none"
    log.info("运行 %s%s：核对 %d 户；核查结论 %s / run %s%s: %d households checked; flags by "
             "kind: %s", run_id, zh, households, by_kind_zh, run_id, en, households, by_kind_en)


def batch_evidence(batch_code: str, run_id: int, evidence_rows: int, answered: int,
                   asked: int) -> None:
    log.info("批次 %s（运行 %s）：%d 条比对证据，%d/%d 个查询已答复 / batch %s (run %s): %d "
             "evidence rows, %d of %d queries answered", batch_code, run_id, evidence_rows,
             answered, asked, batch_code, run_id, evidence_rows, answered, asked)


def reports_written(run_id: int, files: int, folder: str) -> None:
    log.info("运行 %s：写出报告 %d 个文件 / run %s: %d report files written to %s", run_id,
             files, run_id, files, folder)
