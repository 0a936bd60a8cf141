"""File-drop transport: a partner puts packed feeds into an inbox folder (a mounted share or an SFTP
target); the centre picks up complete files, takes them in, and leaves a receipt beside each.

This module is the transport only (folders, complete files, claims, receipts); taking a claimed
file in through intake is verification/intake/file_drop.py.

Layout, one folder per partner under the drop root::

    <root>/<partner>/inbox/       the partner writes here
    <root>/<partner>/processing/  claimed by the centre (atomic rename: one scanner per file)
    <root>/<partner>/archive/     taken in (accepted), with <file>.receipt.json beside it
    <root>/<partner>/rejected/    rejected as a whole, with <file>.receipt.json saying why

A file is complete when the partner says so — ``<file>.hedui`` plus an empty ``<file>.hedui.done``
marker written after it (the default) — or, with ``require_marker=False``, when it was renamed
into the inbox as ``*.hedui`` *and* is exactly as long as its signed manifest announces
(``envelope.check_framing``); a file still short is left alone until ``stale_after`` has passed,
then rejected as truncated. Partial names (``*.part``, ``*.tmp``) are never touched.

The envelope is the same as for HTTP pull and so is intake (verify, decrypt, decode, validate,
stage, quarantine): connectors/envelope.py and verification/intake/feeds.py.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from connectors import envelope

log = logging.getLogger(__name__)
SUFFIX = ".hedui"
MARKER = ".done"
FOLDERS = ("inbox", "processing", "archive", "rejected")


@dataclass(frozen=True)
class DropResult:
    """What became of one dropped file."""

    file: str
    status: str  # accepted | rejected
    reason: str = ""
    feed_id: int | None = None
    kind: str = ""
    sequence: int = 0
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    receipt: str = ""  # path of the receipt written beside the file


def drop_folders(root: Path, partner: str) -> dict[str, Path]:
    """The partner's inbox, processing, archive and rejected folders (created if missing)."""
    folders = {name: root / partner / name for name in FOLDERS}
    for path in folders.values():
        path.mkdir(parents=True, exist_ok=True)
    return folders


def complete_files(inbox: Path, *, require_marker: bool = True,
                   stale_after: dt.timedelta = dt.timedelta(hours=1),
                   now: float | None = None) -> list[Path]:
    """The dropped files ready to be taken in, oldest first."""
    now = time.time() if now is None else now
    ready = []
    for path in sorted(inbox.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name)):
        if require_marker:
            if path.with_name(path.name + MARKER).exists():
                ready.append(path)
            continue
        if _framing_complete(path) or now - path.stat().st_mtime >= stale_after.total_seconds():
            ready.append(path)
    return ready


def _framing_complete(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            envelope.check_framing(handle)
        return True
    except envelope.Truncated:
        return False
    except envelope.EnvelopeError:
        return True  # complete but bad: intake rejects it with the reason


def claim_complete_files(folders: dict[str, Path], *, require_marker: bool = True,
                         stale_after: dt.timedelta = dt.timedelta(hours=1)) -> list[Path]:
    """Move every complete file of the inbox into processing/ (an atomic claim: another scanner
    then finds nothing) and return the claimed files, those a scanner that died left in
    processing/ first."""
    claimed = sorted(folders["processing"].glob(f"*{SUFFIX}"))
    for path in complete_files(folders["inbox"], require_marker=require_marker,
                               stale_after=stale_after):
        target = folders["processing"] / path.name
        try:
            os.replace(path, target)
        except FileNotFoundError:
            continue
        path.with_name(path.name + MARKER).unlink(missing_ok=True)
        claimed.append(target)
    return claimed


def finish(path: Path, folders: dict[str, Path], result: DropResult, partner: str,
           folder: Path | None = None) -> DropResult:
    """Move a processed file to ``folder`` (default rejected/) and write its receipt beside it."""
    folder = folder or folders["rejected"]
    dest = _free_name(folder / path.name)
    shutil.move(str(path), dest)
    receipt = dest.with_name(dest.name + ".receipt.json")
    body = {"partner": partner, **asdict(result), "file": dest.name,
            "processed_at": dt.datetime.now(dt.UTC).isoformat()}
    body.pop("receipt")
    tmp = receipt.with_name(receipt.name + ".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", "utf-8")
    tmp.replace(receipt)
    if result.status == "rejected" and result.feed_id is None:
        log.error("ALERT dropped file %s from %s rejected: %s", path.name, partner, result.reason)
    return DropResult(**{**asdict(result), "file": dest.name, "receipt": str(receipt)})


def _free_name(path: Path) -> Path:
    """``path``, or ``name.N`` if a file of that name is already there (a resent file)."""
    if not path.exists():
        return path
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(path)


def drop_file(packed: Path, root: Path, partner: str) -> Path:
    """What a partner does (and the demo and tests): copy under a temporary name, rename into
    the inbox, then write the ``.done`` marker."""
    inbox = drop_folders(root, partner)["inbox"]
    final = inbox / (packed.name if packed.name.endswith(SUFFIX) else packed.name + SUFFIX)
    tmp = final.with_name(final.name + ".part")
    shutil.copyfile(packed, tmp)
    os.replace(tmp, final)
    final.with_name(final.name + MARKER).touch()
    return final
