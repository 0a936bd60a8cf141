"""`hedui partner`: the partner department's kit — keys, contracts, validate, pack, verify.

A partner can prepare a correct feed with no help from the centre:

    hedui partner keygen --partner sihr              # once; send the .pub.pem to the centre
    hedui partner contract wages                     # what the feed must contain
    hedui partner template wages > wages.csv         # an empty feed with the right header
    hedui partner validate wages.csv --kind wages    # every problem, with line and field
    hedui partner pack wages.csv --kind wages --period 2026-10 --sequence 12 \\
        --key keys/sihr-....key.pem --centre centre.pub.pem
    hedui partner verify wages.csv.hedui --trusted keys/sihr-....pub.pem

Validation uses the published contracts (``schemas.load_contract``) and the centre's own validator
(``verification.intake.validate.validate_frame``), so a feed that passes here passes at intake.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from connectors import envelope, keys
from connectors.decoding import LINE, PROBLEM, DecodeError, decode_file
from schemas import Contract
from verification import codes
from verification.intake import problems as row_problems

app = typer.Typer(help="Partner kit: keys, contracts, validate, pack, verify / 合作部门工具包",
                  no_args_is_help=True)

SHOWN_PROBLEMS = 30


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


# ---------------------------------------------------------------------------------------- keys


@app.command()
def keygen(
    partner: Annotated[str, typer.Option(help="Your partner code, as the centre registered it.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the key files.")] = Path(
        "keys"),
    key_id: Annotated[str, typer.Option(help="Key id (default: partner + fingerprint).")] = "",
) -> None:
    """Create a signing key: keep the .key.pem secret, send the .pub.pem to the centre."""
    key = keys.generate_signing_key(partner, key_id=key_id or None)
    private, public = keys.save_signing_key(key, directory)
    typer.echo(f"key id      {key.key_id}")
    typer.echo(f"private key {private}   (keep secret; mode 0600)")
    typer.echo(f"public key  {public}   (send this file to the verification centre)")


# ----------------------------------------------------------------------------------- contracts


@app.command()
def contract(
    kind: Annotated[str, typer.Argument(help="Feed kind; omit to list them.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the Table Schema itself.")] = False,
) -> None:
    """Print the data contract for a feed kind (fields, types, units, constraints)."""
    import schemas

    if not kind:
        for name in schemas.feed_kinds():
            spec = schemas.load_contract(name)
            typer.echo(f"{name:<14} v{spec.get('version', '?'):<5} {spec.get('title', '')} / "
                       f"{spec.get('x-title-en', '')}")
        return
    spec = _contract(kind).descriptor
    if as_json:
        typer.echo(json.dumps(spec, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{spec.get('title', kind)} / {spec.get('x-title-en', '')}  "
               f"(kind {kind}, version {spec.get('version', '?')})")
    for field in spec["fields"]:
        typer.echo(_describe_field(field))
    if keys_ := spec.get("primaryKey"):
        typer.echo(f"unique: {' + '.join(keys_)}")


def _describe_field(field: dict) -> str:
    constraints = dict(field.get("constraints", {}))
    required = "required" if constraints.pop("required", False) else "optional"
    extras = ", ".join(f"{k}={v}" for k, v in constraints.items())
    unit = f" [{field['x-unit']}]" if "x-unit" in field else ""
    line = (f"  {field['name']:<24} {field.get('type', 'string'):<9} {required:<8} "
            f"{field.get('title', '')} / {field.get('x-title-en', '')}{unit}")
    return f"{line}  ({extras})" if extras else line


@app.command()
def template(kind: Annotated[str, typer.Argument(help="Feed kind.")]) -> None:
    """Print an empty CSV feed (the header line) for a feed kind."""
    typer.echo(",".join(_contract(kind).field_names))


def _contract(kind: str) -> Contract:
    import schemas

    try:
        return schemas.contract_for(kind)
    except KeyError as exc:
        raise _fail(str(exc.args[0]) if exc.args else f"unknown feed kind {kind!r}", 2) from None


# ---------------------------------------------------------------------------------- validation


def feed_problems(path: Path, contract: Contract) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode ``path`` and check it against the contract: (frame, problems with line/field)."""
    from verification.intake.validate import validate_frame

    try:
        frame = decode_file(path)
    except DecodeError as exc:
        raise _fail(f"{path}: {exc}") from None
    # an optional field (the identity fields, an account id) may be left out: "send them when
    # you have them"; intake refuses a file without a required one the same way
    if missing := contract.missing_columns(frame.columns):
        raise _fail(f"{path}: the header lacks {', '.join(missing)}; "
                    f"`hedui partner template {contract.kind}` prints the header the contract "
                    "expects")
    broken = frame[frame[PROBLEM] != ""]
    reasons = broken[PROBLEM].str.split(":").str[0].to_numpy()
    details = broken[PROBLEM].str.split(":", n=1).str[1].str.strip().to_numpy()
    structural = pd.DataFrame({  # the decoder's own words beside the row problem's
        "line": broken[LINE].to_numpy(), "field": "", "reason": reasons,
        "message": [row_problems.message(r, {}, detail=d) for r, d in
                    zip(reasons, details, strict=True)],
    })
    validated = validate_frame(frame[frame[PROBLEM] == ""].drop(columns=[PROBLEM]), contract)
    problems = pd.concat([p for p in (structural, validated.quarantine) if len(p)] or [structural],
                         ignore_index=True)
    return frame, problems.sort_values(["line", "field"]).reset_index(drop=True)


def _report(path: Path, frame: pd.DataFrame, problems: pd.DataFrame,
            contract: Contract) -> None:
    bad_rows = problems["line"].nunique() if len(problems) else 0
    typer.echo(f"{path}: 共 {len(frame)} 行，合格 {len(frame) - bad_rows} 行，有问题 {bad_rows} 行"
               f" / {len(frame)} rows, {len(frame) - bad_rows} valid, {bad_rows} with problems "
               f"({frame.attrs.get('encoding')}, {frame.attrs.get('content_type')})")
    titles = contract.titles
    for row in problems.head(SHOWN_PROBLEMS).itertuples(index=False):
        field = f" · 「{titles.get(row.field, row.field)}」({row.field})" if row.field else ""
        typer.echo(f"  第 {row.line} 行 / line {row.line}{field} · {row.message} [{row.reason}]")
    if len(problems) > SHOWN_PROBLEMS:
        typer.echo(f"  …… 另有 {len(problems) - SHOWN_PROBLEMS} 处 / and "
                   f"{len(problems) - SHOWN_PROBLEMS} more")


@app.command()
def validate(
    feed: Annotated[Path, typer.Argument(help="The plain feed file (CSV, XLSX or JSON Lines).")],
    kind: Annotated[str, typer.Option(help="Feed kind (see `hedui partner contract`).")],
) -> None:
    """Check a plain feed against its contract; exit 1 if any row has a problem."""
    contract = _contract(kind)
    frame, problems = feed_problems(feed, contract)
    _report(feed, frame, problems, contract)
    if len(problems):
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------- pack


@app.command()
def pack(
    feed: Annotated[Path, typer.Argument(help="The plain feed file.")],
    kind: Annotated[str, typer.Option(help="Feed kind.")],
    period: Annotated[str, typer.Option(help="Period the feed covers: YYYY-MM (or YYYY-MM-DD).")],
    sequence: Annotated[int, typer.Option(help="Feed number; must exceed the last one sent.")],
    key: Annotated[Path, typer.Option(help="Your signing key (.key.pem).")],
    centre: Annotated[Path, typer.Option(help="The centre's public key (.pub.pem).")],
    out: Annotated[Path | None, typer.Option(help="Output file (default FEED.hedui).")] = None,
    suite: Annotated[str, typer.Option(envvar="HEDUI_ENVELOPE_SUITE", help=(
        "Cipher suite; default aes256gcm-<the centre key's KEM>. Deployments on the national "
        "algorithms use sm4gcm-…"))] = "",
    allow_row_errors: Annotated[bool, typer.Option(help=(
        "Pack even if some rows fail validation (the centre will quarantine them)."))] = False,
) -> None:
    """Validate a plain feed against its contract, then encrypt it to the centre and sign it."""
    spec = _contract(kind)
    frame, problems = feed_problems(feed, spec)
    _report(feed, frame, problems, spec)
    if len(problems) and not allow_row_errors:
        raise _fail("not packed: fix the rows above (or pass --allow-row-errors)")
    try:
        signer = keys.load_signing_key(key)
        recipient = keys.load_recipient_public_key(centre)
    except (keys.KeyFileError, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    draft = envelope.Manifest(
        partner=signer.partner, feed_kind=kind, period=period, sequence=sequence,
        row_count=len(frame), schema_version=spec.version,
        content_type=frame.attrs["content_type"],
    )
    target = out or feed.with_name(feed.name + ".hedui")
    partial = target.with_name(target.name + ".partial")
    try:
        with open(feed, "rb") as src, open(partial, "wb") as dst:
            signed = envelope.pack(src, dst, manifest=draft, sender=signer, recipient=recipient,
                                   suite=suite or f"aes256gcm-{recipient.kem}")
        os.replace(partial, target)
    except (envelope.EnvelopeError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise _fail(f"not packed: {exc}") from None
    typer.echo(f"packed {target} ({target.stat().st_size} bytes)")
    typer.echo(signed.to_json())


# -------------------------------------------------------------------------------------- verify


@app.command()
def verify(
    packed: Annotated[Path, typer.Argument(help="A packed feed (.hedui).")],
    trusted: Annotated[list[Path] | None, typer.Option(help=(
        "A partner public key to check the signature with (repeatable)."))] = None,
    centre_key: Annotated[list[Path] | None, typer.Option(help=(
        "A centre private key (repeatable): decrypt and check every chunk, as intake does."))]
    = None,
) -> None:
    """Check a packed feed as the centre would; exit 1 naming the failure."""
    try:
        directory = keys.PartnerDirectory(keys.load_partner_public_key(p) for p in trusted or [])
        keyring = keys.CentreKeyring(keys.load_recipient_key(p) for p in centre_key or [])
    except (keys.KeyFileError, ValueError) as exc:
        raise _fail(str(exc), 2) from None
    try:
        with open(packed, "rb") as src:
            if len(keyring):
                manifest = envelope.verify(src, keyring=keyring, trusted=directory)
            else:
                manifest = envelope.check_framing(src, trusted=directory if trusted else None)
    except envelope.EnvelopeError as exc:
        raise _fail(f"REJECTED ({exc.reason}) 拒收: "
                    f"{codes.rejection_reason(f'{type(exc).__name__}: {exc}')}") from None
    typer.echo(f"OK: {packed}")
    typer.echo(f"  signature  {'verified' if trusted else 'NOT checked (pass --trusted)'}")
    content = ("decrypted, every chunk authentic, digest matches" if len(keyring)
               else "length checked; decrypting needs a centre key (--centre-key)")
    typer.echo(f"  content    {content}")
    typer.echo(manifest.to_json())
