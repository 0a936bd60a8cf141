"""`hedui keys …`, `hedui audit verify`, `hedui purge`, `hedui export flags`: the security commands.

Each command acts as a user of access.yaml (``--user``, default ``HEDUI_USER``, then the login
name) and checks that user's permission before touching anything. Output is masked; refusals are
one line a person can act on, with exit code 1.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer

from verification.config import load_settings
from verification.security.access import AccessDenied, Principal, principal
from verification.security.privacy import install_log_masking, mask_text

app = typer.Typer(help="安全 / keys, audit, retention and exports.", no_args_is_help=True,
                  add_completion=False)
keys_app = typer.Typer(help="字段加密密钥 / field-encryption keys.", no_args_is_help=True)
audit_app = typer.Typer(help="审计日志 / the audit trail.", no_args_is_help=True)


@audit_app.callback()
def _audit_group() -> None:
    """审计日志 / the audit trail: `hedui audit verify` (a group, so that the command is named
    as the documents name it, not folded into `hedui audit`)."""
export_app = typer.Typer(help="导出 / exports (masked unless permitted).", no_args_is_help=True)
partner_keys_app = typer.Typer(help="协查部门签名公钥 / the partners' signing keys the centre "
                               "trusts.", no_args_is_help=True)
keys_app.add_typer(partner_keys_app, name="partner")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(export_app, name="export")

UserOption = typer.Option(None, "--user", help="acting user (default: HEDUI_USER, then login)")


def acting_user(user: str | None = None) -> Principal:
    """The access.yaml principal the command runs as."""
    name = user or os.environ.get("HEDUI_USER") or getpass.getuser()
    return principal(name)


def say(text: str, err: bool = False) -> None:
    typer.echo(mask_text(text), err=err)


def _refusals(func: Callable[..., Any]) -> Callable[..., Any]:
    """Access refusals and bad configuration become one clear line and exit code 1."""

    @wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        install_log_masking()
        try:
            return func(*args, **kwargs)
        except (AccessDenied, ValueError) as err:
            say(f"refused: {err}", err=True)
            raise typer.Exit(1) from None

    return run


@keys_app.command("status")
@_refusals
def keys_status(user: str | None = UserOption) -> None:
    """How many encrypted values are under each field key (retire a key only at zero)."""
    from verification.security.fieldcrypt import load_field_cipher, using_test_field_key
    from verification.security.keyrotation import key_usage

    acting_user(user).require("keys.manage")
    cipher = load_field_cipher()
    say(f"current field key: {cipher.current} ({cipher.algorithm(cipher.current)})")
    for column, usage in key_usage(load_settings()).items():
        shown = ", ".join(f"{k}: {n}" for k, n in sorted(usage.items())) or "no values"
        say(f"  {column}: {shown}")
    if using_test_field_key(cipher):
        say("WARNING: a public TEST field key is configured; set HEDUI_FIELD_KEYS", err=True)


@keys_app.command("rotate")
@_refusals
def keys_rotate(user: str | None = UserOption,
                batch_size: int = typer.Option(500, min=1, help="rows per transaction")) -> None:
    """Re-encrypt every personal field under the current key (the last in HEDUI_FIELD_KEYS)."""
    from verification.security.keyrotation import rotate

    who = acting_user(user)
    who.require("keys.manage")
    result = rotate(load_settings(), who.username, batch_size=batch_size,
                    progress=lambda col, n: say(f"  {col}: {n} rewritten"))
    for column, n in result.rewritten.items():
        say(f"{column}: {n} values re-encrypted under {result.current}")
    if result.skipped_changed:
        say(f"{result.skipped_changed} values were replaced by another writer meanwhile "
            "(already under the current key)")
    if not result.complete:
        say(f"values remain under old keys: {result.remaining}; run the rotation again",
            err=True)
        raise typer.Exit(1)
    say("rotation complete: old keys may now be removed from HEDUI_FIELD_KEYS")


@partner_keys_app.command("add")
@_refusals
def partner_key_add(file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                                help="the partner's public key (.pub.pem)"),
                    partner: str = typer.Option(..., "--partner", help="partner code "
                                                "(connectors/partners.yaml)"),
                    user: str | None = UserOption) -> None:
    """Trust a partner's public signing key at the centre (audited)."""
    from connectors import keys
    from connectors.registry import load_partners

    who = acting_user(user)
    who.require("keys.manage")
    if partner not in load_partners():
        raise ValueError(f"未登记的协查部门 / unknown partner {partner!r}; one of "
                         f"{', '.join(sorted(load_partners()))}")
    try:
        key = keys.load_partner_public_key(file)
    except Exception as err:  # noqa: BLE001 (any unreadable file: one clear line)
        raise ValueError(f"不是协查部门签名公钥 / not a partner signing public key: {file.name} "
                         f"({err})") from None
    if key.partner and key.partner != partner:
        raise ValueError(f"密钥属于 {key.partner} / the key names partner {key.partner!r}, "
                         f"not {partner!r}")
    settings = load_settings()
    directory = keys.PartnerDirectory.load(settings.keys_dir)
    if directory.revocation(key.key_id):
        raise ValueError(f"密钥已吊销 / key {key.key_id} was revoked; a revoked key is never "
                         "trusted again — the partner must make a new one")
    directory.add(keys.PartnerPublicKey(key.key_id, partner, key.public_key, key.created_at))
    directory.save(settings.keys_dir)
    _audit_key(who.username, "keys.partner.added", key.key_id,
               {"partner": partner, "fingerprint": _partner_fingerprint(key)})
    say(f"trusted {key.key_id} for {partner} (fingerprint {_partner_fingerprint(key)})")


@partner_keys_app.command("list")
@_refusals
def partner_key_list(user: str | None = UserOption) -> None:
    """The partner keys the centre trusts, with fingerprints and revocations."""
    from connectors import keys

    acting_user(user).require("keys.manage")
    directory = keys.PartnerDirectory.load(load_settings().keys_dir)
    if not len(directory):
        say("no partner keys / 尚无协查部门公钥")
    for key in sorted(directory, key=lambda k: (k.partner, k.key_id)):
        revoked = directory.revocation(key.key_id)
        state = f"吊销 / revoked {revoked.at}: {revoked.reason}" if revoked else "有效 / trusted"
        test = " [TEST KEY]" if key.is_test_key else ""
        say(f"{key.partner:<12} {key.key_id:<40} {_partner_fingerprint(key)}  {state}{test}")


@partner_keys_app.command("revoke")
@_refusals
def partner_key_revoke(key_id: str = typer.Argument(..., help="key id (see `keys partner list`)"),
                       reason: str = typer.Option(..., "--reason", help="why (audited)"),
                       user: str | None = UserOption) -> None:
    """Stop trusting a partner key: feeds signed with it are refused from now on (audited)."""
    from connectors import keys

    who = acting_user(user)
    who.require("keys.manage")
    settings = load_settings()
    directory = keys.PartnerDirectory.load(settings.keys_dir)
    key = directory.get(key_id)
    if key is None:
        raise ValueError(f"没有该公钥 / no partner key {key_id!r}")
    revoked = directory.revoke(key_id, reason)
    directory.save(settings.keys_dir)
    _audit_key(who.username, "keys.partner.revoked", key_id,
               {"partner": key.partner, "reason": reason, "at": revoked.at})
    say(f"revoked {key_id} ({key.partner}) at {revoked.at}")


def _partner_fingerprint(key: Any) -> str:
    """SHA-256 of the raw public key, the first 16 hex digits in groups of four."""
    import hashlib

    from cryptography.hazmat.primitives import serialization as ser

    raw = key.public_key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return ":".join(digest[i:i + 4] for i in range(0, 16, 4))


def _audit_key(actor: str, action: str, key_id: str, detail: dict[str, Any]) -> None:
    from verification.security import audit
    from verification.storage import session_scope

    with session_scope(load_settings().database_url) as session:
        audit.record(session, actor, action, f"partner_key:{key_id}", detail)


@audit_app.command("verify")
@_refusals
def audit_verify(user: str | None = UserOption,
                 expect_head: str | None = typer.Option(
                     None, "--expect-head", help="a head printed by an earlier verify, kept "
                     "outside the database: it must still be in the chain")) -> None:
    """Check the audit chain, and that the head the latest run anchored is still in it; report
    the first event that does not hold."""
    from verification.security.audit import latest_anchors, verify_chain
    from verification.storage import evidence_files, session_scope

    acting_user(user).require("audit.verify")
    settings = load_settings()
    with session_scope(settings.database_url) as session:
        anchors = latest_anchors(session, settings.audit_anchor_file)
        check = verify_chain(session, expect_head=expect_head, anchors=anchors)
        evidence_problems = evidence_files.verify_runs(session, settings.home)
    for problem in evidence_problems:
        say(f"核对证据文件有误 / evidence file check failed: {problem}", err=True)
    if check.ok:
        anchored = "; ".join(a.where for a in anchors) or "no run has finished yet"
        say(f"audit chain intact: {check.events} events, head {check.head} (anchors checked: "
            f"{anchored})")
        if evidence_problems:
            raise typer.Exit(1)
        return
    where = (f"at event {check.first_break} (event {check.events} in order)"
             if check.first_break else f"after {check.events} events")
    say(f"audit chain BROKEN {where}: {check.reason}", err=True)
    raise typer.Exit(1)


@app.command("purge")
@_refusals
def purge(user: str | None = UserOption,
          days: int | None = typer.Option(None, min=1, help="override HEDUI_RETENTION_DAYS"),
          dry_run: bool = typer.Option(False, "--dry-run", help="list, delete nothing")) -> None:
    """Delete raw feeds and staged data past the retention period (HEDUI_RETENTION_DAYS)."""
    from verification.security.retention import purge as run_purge

    who = acting_user(user)
    who.require("retention.purge")
    result = run_purge(load_settings(), who.username, days=days, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    say(f"{verb} {result.files} files ({result.bytes} bytes) received before "
        f"{result.cutoff:%Y-%m-%d}: feeds {result.feeds or 'none'}")
    if result.kept_in_use:
        say(f"kept, still in use by reviews: feeds {result.kept_in_use}")


@export_app.command("flags")
@_refusals
def export_flags(run_id: int = typer.Argument(..., help="review or batch run id"),
                 out: Path = typer.Option(..., "--out", help="CSV file to write"),
                 unmasked: bool = typer.Option(False, "--unmasked",
                                               help="full names and ID numbers (audited)"),
                 user: str | None = UserOption) -> None:
    """A run's flags within your jurisdiction as CSV, masked unless --unmasked is permitted."""
    from verification.security.privacy import export_flags as export
    from verification.security.privacy import write_export

    table = export(load_settings(), acting_user(user), run_id, unmasked=unmasked)
    write_export(table, out)
    say(f"{len(table)} flags → {out}" + (" (UNMASKED; recorded in the audit trail)"
                                          if unmasked else " (masked)"))
