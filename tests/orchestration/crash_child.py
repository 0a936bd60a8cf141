"""Run one pipeline step in a child process and SIGKILL it in the middle (the idempotency
tests' crash): ``shard`` dies while writing a shard's files, leaving a truncated Parquet file;
``finish`` dies inside the database transaction, after the flags are inserted.

    python crash_child.py shard RUN_ID STREET
    python crash_child.py finish RUN_ID SHARD_DIR...
"""

from __future__ import annotations

import os
import signal
import sys

import pandas as pd

from verification import pipeline
from verification.config import load_settings


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    mode, run_id, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    settings = load_settings()
    if mode == "shard":
        real = pd.DataFrame.to_parquet

        def dying(self, path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if str(path).endswith("flag_reasons.parquet"):
                with open(path, "wb") as handle:
                    handle.write(b"PAR1-half-written")
                _die()
            return real(self, path, *args, **kwargs)

        pd.DataFrame.to_parquet = dying
        pipeline.review_shard(settings, run_id, rest[0])
    elif mode == "finish":
        real_reasons = pipeline._insert_reasons

        def dying_reasons(session, frame, flag_ids):  # noqa: ANN001, ANN202
            real_reasons(session, frame, flag_ids)
            session.flush()
            _die()

        pipeline._insert_reasons = dying_reasons
        pipeline.finish_review(settings, run_id, rest)
    raise SystemExit(f"{mode}: the step finished instead of being killed")


if __name__ == "__main__":
    main()
