"""The distributed deployment of docs/deployment.md, for real, on loopback: PostgreSQL for the
Airflow metadata and the application, the Celery executor with Redis, and separate api-server,
scheduler, dag-processor, triggerer and two Celery workers. dynamic_review is triggered over the
REST API and its flags must equal those of the in-process run on the same data.

Everything it starts is stopped (process groups), and its two databases and Redis keys are
removed. Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379 (both in CI, where a skip
is a failure: HEDUI_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import flags_by_household, pull_everything, review_in_process
from tests.orchestration.processes import (
    Deployment,
    admin_password,
    airflow_env,
    free_port,
    wait_for,
)
from verification.batches.airflow_api import AirflowApi, AirflowApiConfig
from verification.config import Settings, load_settings

# the two deployment tests run one after the other on one xdist worker (`--dist loadgroup`)
pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.xdist_group("airflow-deployments")]
REDIS_URL = os.environ.get("HEDUI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"
AS_OF = "2026-11-01"
SHARD_HOUSEHOLDS = 4


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as err:
        if os.environ.get("HEDUI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Redis is required here but not reachable at {REDIS_URL}: {err}")
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({err}); this test runs in CI")
    return REDIS_URL


def _admin(statement: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def databases(postgres_url: str):  # noqa: ANN201
    """Two fresh PostgreSQL databases (Airflow metadata, application), dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = {"airflow": f"hedui_dist_{tag}_airflow", "app": f"hedui_dist_{tag}_app"}
    for name in names.values():
        _admin(f"CREATE DATABASE {name}")
    try:
        yield {role: f"{PG_SERVER}/{name}" for role, name in names.items()}
    finally:
        from verification.storage.db import dispose

        dispose(f"{PG_SERVER}/{names['app']}")
        for name in names.values():
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _drop_queue_keys(url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = [queue.encode(), *client.scan_iter(match=f"*{queue}*")]
    client.delete(*keys)


def _distributed(tmp_path: Path, dbs: dict[str, str], broker: str, queue: str) -> Deployment:
    port = free_port()
    env = airflow_env(
        tmp_path / "airflow", tmp_path / "var", port,
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=dbs["airflow"],
        AIRFLOW__CELERY__BROKER_URL=broker,
        AIRFLOW__CELERY__RESULT_BACKEND="db+" + dbs["airflow"],
        AIRFLOW__OPERATORS__DEFAULT_QUEUE=queue,
        AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        HEDUI_DATABASE_URL=dbs["app"],
        # streets in parts (verification/shards.py), so the parts of one street run on both
        # workers; the in-process review it is compared with takes each street whole
        HEDUI_SHARD_HOUSEHOLDS=str(SHARD_HOUSEHOLDS),
    )
    return Deployment(env, tmp_path / "logs", port)


def _failed_logs(airflow_home: Path, tasks: list[dict]) -> str:
    """The end of each failed task's log (what to read when the run failed)."""
    parts = []
    for t in tasks:
        if t["state"] != "success":
            for log in (airflow_home / "logs").rglob(f"task_id={t['task_id']}/**/*.log"):
                lines = log.read_text("utf-8", "replace").splitlines()[-25:]
                parts.append(f"--- {log}\n" + "\n".join(lines))
    return "\n".join(parts)[-6000:]


def _load_data(settings: Settings, district_dir: Path) -> None:
    from verification.intake.roster import load_roster
    from verification.storage import upgrade

    upgrade(settings.database_url)
    load_roster(settings, district_dir / "roster.csv")
    pull_everything(settings, district_dir)


def test_review_on_celery_workers_equals_the_in_process_review(
        tmp_path, district_dir, databases, redis_url):
    import importlib.util

    if importlib.util.find_spec("asyncpg") is None:  # Airflow's async metadata sessions
        pytest.fail("asyncpg is not installed: Airflow on PostgreSQL needs it (pyproject.toml)")
    base = load_settings(tmp_path / "var")
    settings = Settings(home=base.home, database_url=databases["app"], token_key=base.token_key,
                        token_key_id=base.token_key_id)
    _load_data(settings, district_dir)
    queue = f"hedui-test-{uuid.uuid4().hex[:8]}"
    deployment = _distributed(tmp_path, databases, redis_url, queue)
    deployment.run("db", "migrate")
    try:
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            deployment.start(component, component)
        for n in (1, 2):
            deployment.env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
            deployment.start(f"worker{n}", "celery", "worker", "--queues", queue,
                             "--concurrency", "2", "--celery-hostname", f"hedui-w{n}@%h")
        deployment.wait_healthy()
        api = AirflowApi(AirflowApiConfig(deployment.url, "admin",
                                          admin_password(tmp_path / "airflow")))
        wait_for(lambda: any(d["dag_id"] == "dynamic_review" for d in api.request(
            "GET", "/dags", params={"limit": 100})["dags"]), 240, "dynamic_review listed",
            deployment=deployment)

        run = api.trigger("dynamic_review", {"as_of": AS_OF, "run_key": "distributed"})
        finished = api.wait_for_run("dynamic_review", run["dag_run_id"], timeout=480, poll=5)
        tasks = api.task_instances("dynamic_review", run["dag_run_id"])
        states = sorted((t["task_id"], t["map_index"], t["state"]) for t in tasks)
        assert finished["state"] == "success", (states, _failed_logs(tmp_path / "airflow", tasks))
        shards = [t for t in tasks if t["task_id"] == "review_street"]
        from verification.pipeline import load_households
        from verification.shards import plan_shards, shard_names

        parts = shard_names(plan_shards(load_households(settings)["street_code"],
                                        SHARD_HOUSEHOLDS))
        assert len(parts) > 6  # the six streets, in parts
        assert len(shards) == len(parts) and {t["state"] for t in tasks} == {"success"}
        assert {t["queue"] for t in tasks} == {queue}
        # every task was handed to a Celery worker ("received" is logged before it runs; the
        # "succeeded" line may still be unwritten when the run is already marked done)
        ran = {w: sum("execute_workload[" in line and "received" in line for line in
                      (deployment.logs / f"{w}.log").read_text("utf-8", "replace").splitlines())
               for w in ("worker1", "worker2")}
        assert sum(ran.values()) >= len(tasks), ran
        runs = api.request("GET", "/dags/dynamic_review/dagRuns")["dag_runs"]
        # the monthly tick (the 5th, 06:00 Asia/Shanghai: 22:00 UTC on the 4th) may fall while
        # the test runs; any other run (an asset event, a second trigger) is a surprise
        runs = [r for r in runs if r["run_type"] != "scheduled"]
        assert [r["dag_run_id"] for r in runs] == [run["dag_run_id"]], "no surprise runs"
        deployment.check_alive()
    finally:
        deployment.stop()
        _drop_queue_keys(redis_url, queue)

    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Run

    with session_scope(settings.database_url) as session:
        distributed_id = session.scalar(select(Run.id).where(Run.run_key == "distributed"))
    in_process_id = review_in_process(settings, dt.date.fromisoformat(AS_OF), "in-process")
    distributed = flags_by_household(settings, distributed_id)
    in_process = flags_by_household(settings, in_process_id)
    assert len(distributed) == 60

    def rows(frame) -> list[tuple]:  # noqa: ANN001
        return sorted((r.household_code, r.kind, tuple(sorted(r.code)))
                      for r in frame.itertuples())

    assert rows(distributed) == rows(in_process)
