"""File-drop transport: a partner puts packed feeds into an inbox folder (a mounted share or an SFTP
target); the centre picks up complete files, takes them in, and leaves a receipt beside each.

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
stage, quarantine): connectors/envelope.py and verification/intake.py.
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
from typing import Any

import typer

from connectors import envelope
from connectors.digests import sha256_file
from connectors.keys import CentreKeyring, PartnerDirectory

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


def scan_drop_folder(settings: Any, root: Path, partner: str, *,
                     keyring: CentreKeyring | None = None, trusted: PartnerDirectory | None = None,
                     require_marker: bool = True,
                     stale_after: dt.timedelta = dt.timedelta(hours=1)) -> list[DropResult]:
    """Take in every complete file in ``<root>/<partner>/inbox``; returns what became of each."""
    keyring = keyring or CentreKeyring.load(settings.keys_dir)
    trusted = trusted or PartnerDirectory.load(settings.keys_dir)
    folders = drop_folders(root, partner)
    results = []
    # A file left in processing/ by a scanner that died is taken up again first.
    claimed = sorted(folders["processing"].glob(f"*{SUFFIX}"))
    for path in complete_files(folders["inbox"], require_marker=require_marker,
                               stale_after=stale_after):
        target = folders["processing"] / path.name
        try:
            os.replace(path, target)  # atomic claim; another scanner then finds nothing
        except FileNotFoundError:
            continue
        path.with_name(path.name + MARKER).unlink(missing_ok=True)
        claimed.append(target)
    for path in claimed:
        results.append(_take_in(settings, partner, path, folders, keyring, trusted))
    return results


def _take_in(settings: Any, partner: str, path: Path, folders: dict[str, Path],
             keyring: CentreKeyring, trusted: PartnerDirectory) -> DropResult:
    from verification import intake

    try:
        with path.open("rb") as handle:  # routing only; intake authenticates everything
            manifest = envelope.read_manifest(handle)
    except (envelope.EnvelopeError, ValueError) as err:
        return _finish(path, folders, DropResult(path.name, "rejected",
                                                 f"{type(err).__name__}: {err}"), partner)
    if manifest.partner != partner:
        return _finish(path, folders, DropResult(
            path.name, "rejected", f"WrongPartner: the file names partner {manifest.partner!r} "
            f"but was dropped in the folder of {partner!r}", kind=manifest.feed_kind,
            sequence=manifest.sequence), partner)
    from connectors.registry import load_partners

    if manifest.feed_kind not in load_partners().get(partner, _NoSpec).feeds:
        return _finish(path, folders, DropResult(
            path.name, "rejected", f"UnknownFeed: partner {partner!r} is not registered to "
            f"deliver {manifest.feed_kind!r}", kind=manifest.feed_kind,
            sequence=manifest.sequence), partner)
    final_folder = folders["archive"]
    feed_id = intake.register_feed(settings, partner, manifest.feed_kind, manifest.period,
                                   manifest.sequence, path)
    result = intake.process_feed(settings, feed_id, keyring, trusted)
    reason, status = result.reason, result.status
    if status == "accepted" and _feed_sha(settings, feed_id) != sha256_file(path):
        status = "rejected"
        reason = (f"Replayed: {manifest.feed_kind} sequence {manifest.sequence} was already "
                  "accepted from another file; send new data with a higher sequence number")
        log.error("ALERT dropped file %s from %s: %s", path.name, partner, reason)
    if status != "accepted":
        final_folder = folders["rejected"]
    drop = DropResult(path.name, status, reason, feed_id, manifest.feed_kind, manifest.sequence,
                      result.received if status == "accepted" else 0,
                      result.accepted if status == "accepted" else 0,
                      result.quarantined if status == "accepted" else 0)
    final = _finish(path, folders, drop, partner, final_folder)
    if final.status == result.status:  # the feed row follows the file to where it now lives
        _move_raw_path(settings, feed_id, path, final_folder / path.name)
    return final


class _NoSpec:
    feeds: tuple[str, ...] = ()


def _finish(path: Path, folders: dict[str, Path], result: DropResult, partner: str,
            folder: Path | None = None) -> DropResult:
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


def _feed_sha(settings: Any, feed_id: int) -> str:
    from verification.storage import session_scope
    from verification.storage.models import Feed

    with session_scope(settings.database_url) as session:
        return session.get(Feed, feed_id).envelope_sha256


def _move_raw_path(settings: Any, feed_id: int, old: Path, new: Path) -> None:
    from verification.storage import session_scope
    from verification.storage.models import Feed

    with session_scope(settings.database_url) as session:
        feed = session.get(Feed, feed_id)
        if feed.raw_path == str(old):
            feed.raw_path = str(new)




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


def scan_and_report(settings: Any, partner: str, conn_id: str) -> list[dict[str, Any]]:
    """For a partner DAG with ``transport: file_drop``: the drop root comes from the partner's
    Airflow Connection (``extra.drop_root``, else ``host``; ``extra.require_marker`` default
    true). Returns small summaries; raises ``FeedRejected`` if any file was rejected (the task
    fails and alerts, as for HTTP pull)."""
    from airflow.sdk import BaseHook

    from verification.pipeline import FeedRejected

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    root = Path(extra.get("drop_root") or conn.host or "")
    if not str(root) or not root.is_dir():
        raise FileNotFoundError(f"connection {conn_id}: drop root {str(root)!r} is not a folder")
    results = scan_drop_folder(settings, root, partner,
                               require_marker=bool(extra.get("require_marker", True)))
    rejected = [r for r in results if r.status != "accepted"]
    if rejected:
        raise FeedRejected("; ".join(f"{r.file}: {r.reason}" for r in rejected))
    return [asdict(r) for r in results]


# ---- CLI -----------------------------------------------------------------------------------------
app = typer.Typer(help="文件交换 / file-drop transport: take in feeds dropped in an inbox folder.",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """文件交换 / file-drop transport."""


@app.command()
def scan(
    root: Path = typer.Argument(..., help="drop root: <root>/<partner>/inbox"),
    partner: list[str] = typer.Option(None, "--partner", "-p",
                                      help="partner code(s); default: every folder under root"),
    no_marker: bool = typer.Option(False, "--no-marker",
                                   help="take *.hedui renamed into the inbox without a .done"),
) -> None:
    """Take in every complete dropped file and write a receipt beside each."""
    from verification.config import load_settings

    settings = load_settings()
    codes = partner or sorted(p.name for p in root.iterdir() if (p / "inbox").is_dir())
    failed = False
    for code in codes:
        for result in scan_drop_folder(settings, root, code, require_marker=not no_marker):
            typer.echo(f"{code} {result.file}: {result.status} {result.reason}".rstrip())
            failed |= result.status != "accepted"
    raise typer.Exit(1 if failed else 0)
