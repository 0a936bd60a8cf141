"""The partner registry (connectors/partners.yaml): which department sends which feeds, how often,
and which Airflow Connection holds its endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from schemas import feed_kinds

REGISTRY_FILE = Path(__file__).with_name("partners.yaml")


@dataclass(frozen=True)
class PartnerSpec:
    code: str
    name_zh: str
    name_en: str
    feeds: tuple[str, ...]
    schedule: str
    conn_id: str
    transport: str
    expected_interval_days: int


@cache
def load_partners(path: Path = REGISTRY_FILE) -> dict[str, PartnerSpec]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["partners"]
    known = set(feed_kinds())
    partners = {}
    for code, spec in raw.items():
        unknown = set(spec["feeds"]) - known
        if unknown:
            raise ValueError(f"{path.name}: partner {code} lists unknown feed kinds "
                             f"{sorted(unknown)}")
        partners[code] = PartnerSpec(code=code, feeds=tuple(spec.pop("feeds")), **spec)
    return partners


def partner_for_kind(kind: str) -> PartnerSpec:
    for spec in load_partners().values():
        if kind in spec.feeds:
            return spec
    raise KeyError(f"no partner delivers feed kind {kind!r}")


def feed_asset_name(kind: str) -> str:
    """The Airflow Asset updated whenever a feed of ``kind`` is accepted."""
    return f"hedui://feeds/{kind}"


def delivered_kinds() -> list[str]:
    """Feed kinds some registered partner delivers as whole feeds (a contract alone does not make
    a feed; a query-list partner answers batch checks about named persons only)."""
    return sorted({kind for spec in load_partners().values() if spec.transport != "query_list"
                   for kind in spec.feeds})
