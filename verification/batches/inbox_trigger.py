"""The batch inbox watcher: an Airflow event trigger that turns a file dropped into the inbox into
an Asset event, which starts a ``batch_check`` run (event-driven scheduling, Airflow 3).

How it works: ``dags/batch_check.py`` is scheduled on the Asset ``hedui://inbox/batches``, whose
``AssetWatcher`` runs this trigger in the triggerer process. Every ``poke_interval`` seconds it
lists the inbox; a file that has not changed for ``settle_seconds`` (so a copy still in progress
is left alone) is *claimed* by renaming it into ``inbox/claimed/`` — an atomic rename, so each
file fires exactly once even if the triggerer restarts or two triggerers race — and an event with
the claimed path is yielded. Airflow records it as an Asset event (``extra.payload``) and the
scheduler creates the ``batch_check`` run, whose first task reads the paths from the triggering
events. Several files landing together may arrive in one run; the run checks each of them.

Ignored: hidden files, ``*.part``/``*.tmp`` (uploads in progress) and folders (``batches/``,
``claimed/``). Light imports only: the DAG processor imports this module when parsing.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".crdownload")


def claim_ready_files(directory: Path, settle_seconds: float,
                      now: float | None = None) -> list[tuple[str, Path]]:
    """Claim every settled file in ``directory``: returns ``(original name, claimed path)``.

    A file another process claimed first (the rename fails) is skipped."""
    now = time.time() if now is None else now
    claimed_dir = directory / "claimed"
    found: list[tuple[str, Path]] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return found
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name.endswith(IN_PROGRESS_SUFFIXES) or not entry.is_file():
            continue
        if now - entry.stat().st_mtime < settle_seconds:
            continue
        claimed_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        target = claimed_dir / f"{stamp}-{os.getpid()}-{name}"
        try:
            os.rename(entry.path, target)
        except FileNotFoundError:
            continue
        found.append((name, target))
    return found


class BatchInboxTrigger(BaseEventTrigger):
    """Fire once per file dropped into ``directory`` (see the module docstring)."""

    def __init__(self, directory: str, poke_interval: float = 10.0,
                 settle_seconds: float = 2.0) -> None:
        super().__init__()
        self.directory = directory
        self.poke_interval = poke_interval
        self.settle_seconds = settle_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("verification.batches.inbox_trigger.BatchInboxTrigger",
                {"directory": self.directory, "poke_interval": self.poke_interval,
                 "settle_seconds": self.settle_seconds})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        directory = Path(self.directory)
        while True:
            claimed = await asyncio.to_thread(claim_ready_files, directory, self.settle_seconds)
            for name, path in claimed:
                self.log.info("batch inbox: claimed %s", name)
                yield TriggerEvent({"path": str(path), "name": name})
            await asyncio.sleep(self.poke_interval)
