"""One clock for people: stored naive UTC is read as Asia/Shanghai with its zone."""

from __future__ import annotations

import datetime as dt

from verification.localtime import as_local, to_local


def test_stored_utc_is_shown_as_beijing_time_with_its_zone():
    assert to_local(dt.datetime(2026, 12, 1, 21, 41, 40)) == "2026-12-02 05:41 UTC+8"
    assert to_local("2026-12-01T21:41:40") == "2026-12-02 05:41 UTC+8"
    assert to_local("2026-12-01T21:41:40", short=True, zone=False) == "12-02 05:41"
    aware = dt.datetime(2026, 12, 2, 5, 41, tzinfo=as_local("2026-12-01T21:41:00").tzinfo)
    assert to_local(aware) == "2026-12-02 05:41 UTC+8"  # already local: unchanged
    assert to_local(None) == "" and to_local("") == ""
