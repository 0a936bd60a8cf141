"""Pull one partner in a child process and SIGKILL it at one step of intake (the chaos suite's
crash; see tests/orchestration/crash_child.py for the review's):

    python intake_crash_child.py STEP PARTNER URL TOKEN

STEP is where the process dies:
  before_register  the feed is downloaded, not yet registered
  after_register   registered (``received`` committed), process_feed not started
  during_staging   half of the staged Parquet file written
  before_commit    staged file and quarantine written in the transaction, not committed
  before_receipt   the outcome committed, the receipt not sent
"""

from __future__ import annotations

import os
import signal
import sys

from connectors.http_pull import PartnerClient
from verification import pipeline
from verification.config import load_settings
from verification.intake import feeds as intake


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(step: str) -> None:
    if step == "before_register":
        intake.register_feed = lambda *a, **k: _die()
    elif step == "after_register":
        intake.process_feed = lambda *a, **k: _die()
    elif step == "during_staging":
        real = intake.pq.write_table  # how intake writes the staged file

        def half_written(table, path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if "staging" in str(path):
                with open(path, "wb") as handle:
                    handle.write(b"PAR1-half-written")
                _die()
            return real(table, path, *args, **kwargs)

        intake.pq.write_table = half_written
    elif step == "before_commit":
        real_record = intake._record_staged

        def recorded_then_killed(settings, session, feed, staged, manifest):  # noqa: ANN001, ANN202
            real_record(settings, session, feed, staged, manifest)
            session.flush()
            _die()

        intake._record_staged = recorded_then_killed
    elif step == "before_receipt":
        pipeline._send_receipt = lambda *a, **k: _die()
    else:
        raise SystemExit(f"unknown step {step!r}")


def main() -> None:
    step, partner, url, token = sys.argv[1:5]
    _arm(step)
    client = PartnerClient(url, token=token, retries=1, sleep=lambda _s: None)
    pipeline.pull_partner(load_settings(), partner, client)
    raise SystemExit(f"{step}: the pull finished instead of being killed")


if __name__ == "__main__":
    main()
