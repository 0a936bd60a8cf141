"""The demo's side of the exchange: TEST ONLY keys, the district's feeds packed as each partner
would pack them, and the reference server serving them on loopback.

Keys here are the deterministic, publicly derivable test keys from connectors/keys.py (ids start
with TEST-ONLY-). They live under ``var/keys`` (gitignored) and must never be used for real data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from connectors import envelope, keys
from connectors.partner_server import FeedCatalogue, PartnerServer
from connectors.registry import load_partners
from verification.config import Settings

DEMO_TOKEN = "TEST-ONLY-partner-token"  # noqa: S105 (marked test credential)


@dataclass
class CentreKeys:
    keyring: keys.CentreKeyring
    trusted: keys.PartnerDirectory


def ensure_test_keys(settings: Settings) -> CentreKeys:
    """Create (once) the centre's test recipient key and trust each partner's test signing key."""
    folder = settings.keys_dir
    if not (folder / "centre" / "CURRENT").exists():
        ring = keys.CentreKeyring([keys.insecure_test_recipient_key()])
        ring.save(folder)
        trusted = keys.PartnerDirectory(
            keys.insecure_test_signing_key(code).public() for code in load_partners()
        )
        trusted.save(folder)
    return CentreKeys(keys.CentreKeyring.load(folder), keys.PartnerDirectory.load(folder))


def sequence_for(period: str) -> int:
    """One feed per period, numbered by the period (2026-10 → 202610), so numbers only grow."""
    return int(period.replace("-", ""))


def publish_district(settings: Settings, district_dir: Path) -> FeedCatalogue:
    """Pack every feed of the synthetic district as its partner would; reuse what is packed."""
    meta = json.loads((district_dir / "district.json").read_text("utf-8"))
    period = meta["period"]
    centre = ensure_test_keys(settings).keyring.current.public()
    catalogue = FeedCatalogue()
    outbox = settings.home / "partner-outbox"
    for code, spec in load_partners().items():
        signer = keys.insecure_test_signing_key(code)
        for kind in spec.feeds:
            plain = district_dir / "feeds" / f"{kind}.csv"
            packed = outbox / code / f"{kind}-{sequence_for(period)}.hedui"
            if not packed.exists() or packed.stat().st_mtime < plain.stat().st_mtime:
                _pack(plain, packed, code, kind, period, signer, centre)
            catalogue.add_file(code, kind, period, sequence_for(period), packed)
    return catalogue


def _pack(plain: Path, packed: Path, partner: str, kind: str, period: str,
          signer: keys.SigningKey, centre: keys.RecipientPublicKey) -> None:
    with plain.open("rb") as handle:
        rows = max(0, sum(1 for _ in handle) - 1)
    manifest = envelope.Manifest(partner=partner, feed_kind=kind, period=period,
                                 sequence=sequence_for(period), row_count=rows,
                                 schema_version="1.0")
    packed.parent.mkdir(parents=True, exist_ok=True)
    tmp = packed.with_suffix(".tmp")
    with plain.open("rb") as src, tmp.open("wb") as dest:
        envelope.pack(src, dest, manifest=manifest, sender=signer, recipient=centre)
    tmp.replace(packed)


def start_demo_server(settings: Settings, district_dir: Path, port: int = 0) -> PartnerServer:
    """Serve the district's packed feeds and point each partner's Airflow Connection at it."""
    catalogue = publish_district(settings, district_dir)
    tokens = dict.fromkeys(load_partners(), DEMO_TOKEN)
    server = PartnerServer(catalogue, port=port, tokens=tokens).start()
    os.environ.update(connection_env(server.port))
    return server


def pull_district(settings: Settings, district_dir: Path,
                  server: PartnerServer | None = None) -> list:
    """Every partner's feeds of a generated district pulled into ``settings``'s database over
    loopback HTTP, as `hedui pull` pulls them: from ``server``, or from a reference server of
    its own serving the district (stopped afterwards). Returns the intake results."""
    from connectors.http_pull import PartnerClient
    from verification import pipeline

    ensure_test_keys(settings)
    own_server = server is None
    if own_server:
        server = PartnerServer(publish_district(settings, district_dir),
                               tokens=dict.fromkeys(load_partners(), DEMO_TOKEN)).start()
    try:
        results = []
        for code in load_partners():
            client = PartnerClient(server.url_for(code), token=DEMO_TOKEN, retries=1,
                                   sleep=lambda _s: None)
            results.extend(pipeline.pull_partner(settings, code, client))
        return results
    finally:
        if own_server:
            server.stop()


def connection_env(port: int) -> dict[str, str]:
    """AIRFLOW_CONN_* variables for every partner, pointing at the reference server."""
    env = {}
    for code, spec in load_partners().items():
        conn = {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http",
                "password": DEMO_TOKEN, "extra": {"path": f"/{code}/v1"}}
        env[f"AIRFLOW_CONN_{spec.conn_id.upper()}"] = json.dumps(conn)
    return env
