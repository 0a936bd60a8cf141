"""Data contracts: one Table Schema (JSON) per feed kind, and one for the batch file.

These files are published to partner departments and are the single source the validators are
built from (verification/validation.py). Field titles are Chinese (``title``) and English
(``x-title-en``); ``x-hedui.evidence`` says which evidence items a row yields.
"""

from __future__ import annotations

import json
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


def feed_kinds() -> list[str]:
    return sorted(p.stem for p in (_HERE / "feeds").glob("*.json"))


def field_names(kind: str) -> list[str]:
    return [f["name"] for f in load_contract(kind)["fields"]]
