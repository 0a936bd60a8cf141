"""One clock for people: every time a person reads (pages, reports, CLI lines) is Asia/Shanghai
with its zone written beside it; every time stored is naive UTC (verification/storage)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
ZONE = "UTC+8"  # what a reader sees beside a time: Beijing time, the same in both languages


def local_today() -> dt.date:
    """Today's date in Asia/Shanghai (an as-of date or a due date is a local day)."""
    return dt.datetime.now(LOCAL_TZ).date()


def as_local(value: dt.datetime | str) -> dt.datetime:
    """A stored time (naive UTC, or its ISO text) as an aware Asia/Shanghai time."""
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(LOCAL_TZ)


def to_local(value: dt.datetime | str | None, *, zone: bool = True, short: bool = False) -> str:
    """A stored time as local minutes with the zone: ``2026-12-02 05:41 UTC+8``; ``short``
    leaves out the year (``12-02 05:41``); nothing for no time."""
    if value is None or value == "":
        return ""
    try:
        when = as_local(value)
    except ValueError:
        return str(value)
    text = when.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M")
    return f"{text} {ZONE}" if zone else text
