"""docs/partners.md shows an example for every feed kind, and every example passes the contract
(as `hedui partner validate` checks it), so the page a partner follows cannot drift."""

import re
from pathlib import Path

import pytest

from schemas import contract_for, feed_kinds
from verification.cli.partner import feed_problems

DOC = Path(__file__).resolve().parents[2] / "docs" / "partners.md"
EXAMPLE = re.compile(r"^### (?P<kind>[a-z_]+) — .*?```csv\n(?P<body>.*?)```", re.S | re.M)


def _examples() -> dict[str, str]:
    return {m["kind"]: m["body"] for m in EXAMPLE.finditer(DOC.read_text("utf-8"))}


def test_every_feed_kind_has_an_example():
    assert set(_examples()) == set(feed_kinds())


@pytest.mark.parametrize("kind", sorted(feed_kinds()))
def test_example_passes_its_contract(kind, tmp_path):
    path = tmp_path / f"{kind}.csv"
    path.write_text(_examples()[kind], "utf-8")
    frame, problems = feed_problems(path, contract_for(kind))
    assert len(frame) >= 1
    assert problems.empty, problems
