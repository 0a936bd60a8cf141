"""Data contracts: one Table Schema (JSON) per feed kind, and one for the batch file.

These files are published to partner departments and are the single source the validators are
built from (verification/intake/validate.py). Field titles are Chinese (``title``) and English
(``x-title-en``); ``x-hedui.evidence`` says which evidence items a row yields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


class UnknownContract(KeyError):
    pass


def contract_path(kind: str) -> Path:
    return _HERE / "batch.json" if kind == "batch" else _HERE / "feeds" / f"{kind}.json"


@cache
def load_contract(kind: str) -> dict[str, Any]:
    path = contract_path(kind)
    if not path.exists():
        known = ", ".join(feed_kinds())
        raise UnknownContract(f"no contract for feed kind {kind!r}; known kinds: {known}")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True, eq=False)
class Contract:
    """One contract, loaded once and handed to every stage that needs it (intake, validation,
    evidence): nothing on the data path looks a contract up by its kind again.

    ``fields`` are the Table Schema field descriptors as published (``name``, ``title``,
    ``x-title-en``, ``type``, ``constraints``, ``x-identifier``); the rest is what hedui reads
    from the contract's ``x-hedui`` block and its ``primaryKey``.
    """

    kind: str
    version: str
    fields: tuple[Mapping[str, Any], ...]
    primary_key: tuple[str, ...]
    person_id_field: str | None  # the field naming the person a row is about (feeds)
    evidence: tuple[Mapping[str, Any], ...]  # which evidence items a row yields
    descriptor: Mapping[str, Any]  # the contract as published, for the partner kit
    # a payment's fields: a row equal to an earlier one in all of them, under another record
    # id, is the same payment sent twice (counted twice it would double the income)
    duplicate_row_fields: tuple[str, ...] = ()

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.fields]

    @property
    def titles(self) -> dict[str, str]:
        """Field name → Chinese title."""
        return {f["name"]: f["title"] for f in self.fields}

    def field(self, name: str) -> Mapping[str, Any]:
        for spec in self.fields:
            if spec["name"] == name:
                return spec
        raise KeyError(f"contract {self.kind} has no field {name!r}")

    def missing_columns(self, columns: Iterable[str]) -> list[str]:
        """The required fields a file's header lacks. An optional field may be left out (send
        it when you have it: a contract's minor version adds only such fields)."""
        present = set(columns)
        return [f["name"] for f in self.fields
                if f.get("constraints", {}).get("required") and f["name"] not in present]

    def identifier_fields(self, identifier: str) -> list[str]:
        """Fields holding an identifier of that scheme (``resident_id``, ``uscc``)."""
        return [f["name"] for f in self.fields if f.get("x-identifier") == identifier]


@cache
def contract_for(kind: str) -> Contract:
    """The contract for ``kind`` (a feed kind, or ``batch``) as a typed object."""
    raw = load_contract(kind)
    hedui = raw.get("x-hedui", {})
    return Contract(kind=kind, version=str(raw.get("version", "")),
                    fields=tuple(raw["fields"]), primary_key=tuple(raw.get("primaryKey", [])),
                    person_id_field=hedui.get("person_id_field"),
                    evidence=tuple(hedui.get("evidence", [])), descriptor=raw,
                    duplicate_row_fields=tuple(hedui.get("duplicate_row_fields", ())))


def feed_kinds() -> list[str]:
    return sorted(p.stem for p in (_HERE / "feeds").glob("*.json"))


def field_names(kind: str) -> list[str]:
    return contract_for(kind).field_names
