"""Partner DAGs update the Asset of a feed kind only when a feed of that kind was accepted, and
once every kind has been updated the scheduler's own query says dynamic_review is due."""

from __future__ import annotations

import pytest

from connectors.registry import feed_asset_name, load_partners
from tests.orchestration.conftest import run_state

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def _events_by_uri() -> dict[str, list[dict]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(AssetModel.uri, AssetEvent.extra)
                               .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)).all()
    found: dict[str, list[dict]] = {}
    for uri, extra in rows:
        found.setdefault(uri, []).append(extra)
    return found


def _sync_dags_to_db() -> None:
    """What the DAG processor does: every DAG of every bundle into the metadata database."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = DagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)


def _unpause_with_empty_queue(dag_id: str) -> None:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))
        session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id))


def _review_is_due() -> tuple[set[str], bool]:
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        queued = set(session.scalars(select(AssetModel.uri).join(
            AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetDagRunQueue.target_dag_id == "dynamic_review")))
        _query, triggered = DagModel.dags_needing_dagruns(session)
        due = "dynamic_review" in triggered
        session.rollback()  # release the row locks; nothing was changed
    return queued, due


def test_accepted_feeds_update_their_assets_and_make_the_review_due(
        dag_bag, hedui_home, district_dir, monkeypatch):
    from verification.synthetic.exchange import connection_env, ensure_test_keys, start_demo_server

    ensure_test_keys(hedui_home)
    server = start_demo_server(hedui_home, district_dir)
    for key, value in connection_env(server.port).items():
        monkeypatch.setenv(key, value)
    partners = load_partners()
    uris = {feed_asset_name(k) for spec in partners.values() for k in spec.feeds}
    try:
        _sync_dags_to_db()
        _unpause_with_empty_queue("dynamic_review")
        first, *others = partners
        assert run_state(dag_bag.get_dag(f"partner_{first}").test()) == "success"
        before = {uri: len(v) for uri, v in _events_by_uri().items()}
        queued, due = _review_is_due()
        assert not due, "the review must wait for every feed kind"

        for code in others:
            assert run_state(dag_bag.get_dag(f"partner_{code}").test()) == "success"
        events = _events_by_uri()
        for code in others:
            for kind in partners[code].feeds:
                new = events[feed_asset_name(kind)][before.get(feed_asset_name(kind), 0):]
                assert [e["partner"] for e in new] == [code], kind
                assert new[0]["feed_id"] > 0
        queued, due = _review_is_due()
        assert queued == uris and due

        # nothing new from the partner: its run succeeds and updates no Asset
        again = dag_bag.get_dag(f"partner_{first}").test()
        assert run_state(again) == "success"
        after = _events_by_uri()
        assert all(len(after[feed_asset_name(k)]) == len(events[feed_asset_name(k)])
                   for k in partners[first].feeds)
    finally:
        server.stop()
