"""The partner registry drives the partner DAGs: every feed kind has exactly one partner."""

import pytest
import yaml

from connectors.registry import feed_asset_name, load_partners, partner_for_kind
from schemas import feed_kinds


def test_every_feed_kind_is_delivered_by_one_partner():
    delivered = [kind for spec in load_partners().values() for kind in spec.feeds]
    assert sorted(delivered) == sorted(set(delivered))
    assert set(delivered) <= set(feed_kinds())
    assert partner_for_kind("vehicles").code == "police"
    assert feed_asset_name("wages") == "hedui://feeds/wages"


def test_a_registry_naming_an_unknown_feed_kind_is_refused(tmp_path):
    path = tmp_path / "partners.yaml"
    path.write_text(yaml.safe_dump({"partners": {"x": {
        "name_zh": "某部门", "name_en": "Some department", "feeds": ["horoscopes"],
        "schedule": "@daily", "conn_id": "c", "transport": "http_pull",
        "expected_interval_days": 1}}}), "utf-8")
    with pytest.raises(ValueError, match="unknown feed kinds"):
        load_partners(path)
