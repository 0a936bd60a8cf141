"""One at a time: a command that must not run twice at once takes a lock file under HEDUI_HOME.

Two `hedui drop scan` of one folder raced for the same file (one ended in a raw IntegrityError),
and two `hedui run` of one run key for the same work files (one read a half-written Parquet
file). The lock is an advisory ``flock`` on ``$HEDUI_HOME/locks/<name>.lock``: released by the
operating system when the process ends, however it ends, so a killed command never leaves it
held. Airflow's runs are kept apart by the DAGs' own ``max_active_runs``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Busy(RuntimeError):
    """The same work is already running."""


@contextmanager
def exclusive(home: Path, name: str, what: str) -> Iterator[None]:
    """Hold the lock ``name`` while the block runs; ``Busy`` (naming ``what``, Chinese first)
    when another process holds it."""
    folder = home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    handle = os.open(folder / f"{safe}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"另一个{what}正在进行，请等它结束后再试 / another {what} is in "
                       "progress: wait for it to finish and try again") from None
        yield
    finally:
        os.close(handle)  # closing the descriptor releases the lock
