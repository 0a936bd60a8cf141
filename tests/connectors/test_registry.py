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


def test_the_transport_decides_what_a_partner_dag_does(sqlite_settings, tmp_path, monkeypatch):
    """file_drop takes in the Connection's folder; query_list has nothing to fetch."""
    import json

    from connectors import registry
    from connectors.registry import PartnerSpec
    from verification import pipeline

    drop_root = tmp_path / "drop"
    drop_root.mkdir()
    specs = {
        "market": PartnerSpec("market", "市场监督管理局", "Market", ("business",), "@daily",
                              "hedui_partner_market", "file_drop", 35),
        "hrss": PartnerSpec("hrss", "人社局", "HRSS", ("wages",), "@daily",
                            "hedui_partner_hrss", "query_list", 35),
    }
    monkeypatch.setattr(registry, "load_partners", lambda *a: specs)
    monkeypatch.setattr(pipeline, "load_partners", lambda *a: specs)
    monkeypatch.setenv("AIRFLOW_CONN_HEDUI_PARTNER_MARKET", json.dumps(
        {"conn_type": "fs", "extra": {"drop_root": str(drop_root)}}))
    assert pipeline.take_in_new_feeds(sqlite_settings, "market") == []  # empty folder
    assert pipeline.take_in_new_feeds(sqlite_settings, "hrss") == []
    assert registry.delivered_kinds() == ["business"]
