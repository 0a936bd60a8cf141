"""Streets (街道) and communities (社区) of the district: codes and names, read from
jurisdictions.yaml. Reports are routed by these codes so an officer sees only their own."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

_FILE = Path(__file__).with_name("jurisdictions.yaml")


@cache
def _doc() -> dict:
    return yaml.safe_load(_FILE.read_text(encoding="utf-8"))


def district() -> tuple[str, str]:
    d = _doc()["district"]
    return d["code"], d["name"]


def streets() -> dict[str, str]:
    return {code: s["name"] for code, s in _doc()["streets"].items()}


def communities(street: str | None = None) -> dict[str, str]:
    found = {}
    for code, s in _doc()["streets"].items():
        if street in (None, code):
            found.update(s["communities"])
    return found


def street_name(code: str) -> str:
    return streets().get(code, code)


def community_name(code: str) -> str:
    return communities().get(code, code)
