"""Every data contract is well formed, labelled in Chinese and English, and maps its rows only to
evidence items the policy knows — so a new contract cannot silently feed nothing."""

import pytest

from schemas import feed_kinds, load_contract
from verification import codes

KINDS = feed_kinds()
TYPES = {"string", "number", "integer", "date", "yearmonth"}


def test_every_contract_has_a_vocabulary_entry():
    assert set(KINDS) <= set(codes.feed_kinds())


@pytest.mark.parametrize("kind", [*KINDS, "batch"])
def test_fields_are_typed_and_titled_in_both_languages(kind):
    contract = load_contract(kind)
    assert contract["version"] and contract["title"] and contract["x-title-en"]
    for field in contract["fields"]:
        assert field["type"] in TYPES, (kind, field["name"])
        assert field["title"] and field["x-title-en"], (kind, field["name"])
    names = [f["name"] for f in contract["fields"]]
    assert len(names) == len(set(names))
    assert contract["x-hedui"]["person_id_field"] in names


@pytest.mark.parametrize("kind", KINDS)
def test_evidence_mappings_name_known_items_and_existing_columns(kind):
    contract = load_contract(kind)
    fields = {f["name"]: f for f in contract["fields"]}
    known = set(codes.items())
    assert contract["x-hedui"]["evidence"], kind
    for mapping in contract["x-hedui"]["evidence"]:
        if "item" in mapping:
            assert mapping["item"] in known
        else:
            assert set(fields[mapping["item_field"]]["constraints"]["enum"]) <= known
        for key in ("amount", "period", "date"):
            if key in mapping:
                assert mapping[key] in fields, (kind, key)
        assert ("period" in mapping) != ("date" in mapping)
        assert set(mapping.get("where", {})) <= set(fields)
