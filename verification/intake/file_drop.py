"""File-drop intake: take the files a partner dropped (connectors/file_drop.py claims them)
through the ordinary intake — verify, decrypt, decode, validate, stage — and leave a receipt
beside each. A file whose sequence was already accepted from other bytes is a replay."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from connectors import envelope
from connectors.digests import sha256_file
from connectors.file_drop import DropResult, claim_complete_files, drop_folders, finish
from connectors.keys import CentreKeyring, PartnerDirectory
from connectors.registry import load_partners
from verification import codes
from verification.intake import feeds as intake

log = logging.getLogger(__name__)


def scan_drop_folder(settings: Any, root: Path, partner: str, *,
                     keyring: CentreKeyring | None = None, trusted: PartnerDirectory | None = None,
                     require_marker: bool = True,
                     stale_after: dt.timedelta = dt.timedelta(hours=1)) -> list[DropResult]:
    """Take in every complete file in ``<root>/<partner>/inbox``; returns what became of each."""
    keyring = keyring or CentreKeyring.load(settings.keys_dir)
    trusted = trusted or PartnerDirectory.load(settings.keys_dir)
    folders = drop_folders(root, partner)
    claimed = claim_complete_files(folders, require_marker=require_marker,
                                   stale_after=stale_after)
    return [_take_in(settings, partner, path, folders, keyring, trusted) for path in claimed]


def _take_in(settings: Any, partner: str, path: Path, folders: dict[str, Path],
             keyring: CentreKeyring, trusted: PartnerDirectory) -> DropResult:
    try:
        with path.open("rb") as handle:  # routing only; intake authenticates everything
            manifest = envelope.read_manifest(handle)
    except (envelope.EnvelopeError, ValueError) as err:
        return _refused(settings, path, folders, DropResult(
            path.name, "rejected", f"{type(err).__name__}: {err}"), partner)
    if manifest.partner != partner:
        return _refused(settings, path, folders, DropResult(
            path.name, "rejected", f"WrongPartner: the file names partner {manifest.partner!r} "
            f"but was dropped in the folder of {partner!r}", kind=manifest.feed_kind,
            sequence=manifest.sequence), partner)
    if manifest.feed_kind not in load_partners().get(partner, _NoSpec).feeds:
        return _refused(settings, path, folders, DropResult(
            path.name, "rejected", f"UnknownFeed: partner {partner!r} is not registered to "
            f"deliver {manifest.feed_kind!r}", kind=manifest.feed_kind,
            sequence=manifest.sequence), partner)
    final_folder = folders["archive"]
    feed_id = intake.register_feed(settings, partner, manifest.feed_kind, manifest.period,
                                   manifest.sequence, path)
    result = intake.process_feed(settings, feed_id, keyring, trusted)
    reason, status = result.reason, result.status
    digest = sha256_file(path) if status == "accepted" else ""
    if digest and _feed_sha(settings, feed_id) != digest:
        status = "rejected"
        reason = codes.rejection_reason(
            f"Replayed: {manifest.feed_kind} sequence {manifest.sequence} was already accepted "
            "from another file; send new data with a higher sequence number")
        _alert(settings, path, partner, reason, digest)
    if status != "accepted":
        final_folder = folders["rejected"]
    drop = DropResult(path.name, status, reason, feed_id, manifest.feed_kind, manifest.sequence,
                      result.received if status == "accepted" else 0,
                      result.accepted if status == "accepted" else 0,
                      result.quarantined if status == "accepted" else 0)
    final = finish(path, folders, drop, partner, final_folder)
    if final.status == result.status:  # the feed row follows the file to where it now lives
        _move_raw_path(settings, feed_id, path, final_folder / path.name)
    return final


def _refused(settings: Any, path: Path, folders: dict[str, Path], result: DropResult,
             partner: str) -> DropResult:
    """A dropped file refused before it became a feed (unreadable, another partner's, a kind
    the partner does not deliver): moved to rejected/ with its receipt, and alerted and audited
    as a rejected feed is, so an attempt at the drop leaves a record the centre can review. The
    reason is worded as intake's are: Chinese first (codes.rejection_reason)."""
    result = dataclasses.replace(result, reason=codes.rejection_reason(result.reason))
    _alert(settings, path, partner, result.reason)
    return finish(path, folders, result, partner)


def _alert(settings: Any, path: Path, partner: str, reason: str, digest: str = "") -> None:
    from verification.alerts import raise_alert

    raise_alert(settings, "drop.rejected", f"drop:{partner}/{path.name}",
                {"partner": partner, "file": path.name, "sha256": digest or sha256_file(path),
                 "reason": reason[:500]})


class _NoSpec:
    feeds: tuple[str, ...] = ()


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
