"""The DAG files load in a real Airflow DagBag with no import errors, and only wire."""

import ast
from pathlib import Path

import pytest

from connectors.registry import load_partners
from verification.config import PROJECT_ROOT

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_no_import_errors_and_every_dag_is_there(bag):
    assert bag.import_errors == {}
    expected = {f"partner_{code}" for code in load_partners()} | {
        "dynamic_review", "batch_check", "housekeeping", "feed_recheck"}
    assert expected <= set(bag.dag_ids)


def test_every_dag_is_documented_tagged_and_retries(bag):
    for dag_id in bag.dag_ids:
        dag = bag.dags[dag_id]
        assert dag.doc_md and "hedui" in dag.tags, dag_id
        assert all(task.retries >= 1 for task in dag.tasks), dag_id


def test_partner_dags_emit_feed_assets_through_their_alias(bag):
    """Events go through a per-partner AssetAlias, so only accepted kinds are updated
    (tests/orchestration/test_assets.py runs it); the review waits for every kind."""
    from airflow.sdk import AssetAlias

    for code in load_partners():
        (task,) = bag.dags[f"partner_{code}"].tasks
        assert task.outlets == [AssetAlias(f"hedui-feeds-from-{code}")]
    review = bag.dags["dynamic_review"]
    uris = {a.uri for a in review.timetable.asset_condition.objects}
    assert uris == {f"hedui://feeds/{k}" for spec in load_partners().values() for k in spec.feeds}


def test_recheck_runs_on_any_one_feed_asset_one_run_at_a_time(bag):
    """The full review waits for every kind; the re-check starts on any one of them."""
    from airflow.sdk import AssetAny

    recheck = bag.dags["feed_recheck"]
    condition = recheck.timetable.asset_condition
    assert isinstance(condition, AssetAny)
    assert {a.uri for a in condition.objects} == {
        f"hedui://feeds/{k}" for spec in load_partners().values() for k in spec.feeds}
    assert recheck.max_active_runs == 1
    assert [t.task_id for t in recheck.tasks] == ["recheck", "write_reports"]


def test_review_maps_over_street_shards(bag):
    review = bag.dags["dynamic_review"]
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    assert isinstance(review.get_task("review_street"), MappedOperator)
    assert set(review.params.keys()) == {"as_of", "run_key", "roster_file"}


def test_dag_files_import_no_heavy_modules_at_parse_time():
    """Business modules are imported inside tasks, so parsing stays fast and side-effect free."""
    for path in (PROJECT_ROOT / "dags").glob("*.py"):
        tree = ast.parse(Path(path).read_text("utf-8"))
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        modules = {(n.module or "") if isinstance(n, ast.ImportFrom) else n.names[0].name
                   for n in top}
        assert not modules & {"pandas", "verification.pipeline", "verification.assessment.assess",
                              "sqlalchemy"}, path.name
