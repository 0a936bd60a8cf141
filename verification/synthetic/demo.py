"""`hedui demo`: the whole flow on a synthetic district, through real Airflow.

Sets up the databases, generates the district, serves its feeds from the reference partner server
on loopback, runs every partner-feed DAG and then the dynamic_review DAG with ``dag.test()``, and
checks the flags against the generator's ground truth. Rerunning reuses what is there: feeds
already received are not pulled again and the review run (same run key) is replaced, so nothing
is duplicated. Asking for a different district resets the demo's state first.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from verification.airflow_env import configure, migrate_airflow_db
from verification.config import PROJECT_ROOT, Settings
from verification.storage import session_scope, upgrade
from verification.storage.db import dispose

DEMO_RUN_KEY = "demo-review"
_STATE = ("hedui.db", "hedui.db-wal", "hedui.db-shm", "staging", "feeds", "partner-outbox",
          "runs", "reports", "district", "keys", "tmp")


@dataclass
class DemoResult:
    households: int
    flags: dict[str, int]
    reports_dir: Path
    truth_matched: int
    mismatches: list[str] = field(default_factory=list)
    feeds: list[dict] = field(default_factory=list)


def run_demo(settings: Settings, households: int = 300, seed: int = 2026,
             say: Callable[[str], None] = print) -> DemoResult:
    configure(settings)
    _reset_if_other_district(settings, households, seed, say)
    say("· 初始化数据库 / migrating the application and Airflow databases")
    upgrade(settings.database_url)
    migrate_airflow_db()
    meta = _ensure_district(settings, households, seed, say)
    from verification.synthetic.exchange import ensure_test_keys, start_demo_server

    ensure_test_keys(settings)
    server = start_demo_server(settings, settings.district_dir)
    say(f"· 协查部门参考服务已启动 / reference partner server on 127.0.0.1:{server.port}")
    try:
        bag = _dag_bag()
        from connectors.registry import load_partners

        for code in load_partners():
            _run_dag(bag, f"partner_{code}", None, say)
        conf = {"as_of": meta["as_of"], "run_key": DEMO_RUN_KEY,
                "roster_file": str(settings.district_dir / "roster.csv")}
        _run_dag(bag, "dynamic_review", conf, say)
    finally:
        server.stop()
    return _summarise(settings)


def _reset_if_other_district(settings: Settings, households: int, seed: int,
                             say: Callable[[str], None]) -> None:
    meta_file = settings.district_dir / "district.json"
    if not meta_file.exists():
        return
    meta = json.loads(meta_file.read_text("utf-8"))
    if (meta["households"], meta["seed"]) != (households, seed):
        say(f"· 新的模拟辖区，清空演示数据 / new district requested: resetting {settings.home}")
        dispose(settings.database_url)
        for name in _STATE:
            target = settings.home / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


def _ensure_district(settings: Settings, households: int, seed: int,
                     say: Callable[[str], None]) -> dict:
    meta_file = settings.district_dir / "district.json"
    if meta_file.exists():
        return json.loads(meta_file.read_text("utf-8"))
    from verification.synthetic.generator import generate, write_district

    say(f"· 生成模拟辖区 / generating {households} households of 浑南区 (seed {seed})")
    return write_district(generate(households, seed), settings.district_dir)


def _dag_bag():  # noqa: ANN202 (airflow type, imported late)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag


def _run_dag(bag, dag_id: str, conf: dict | None, say: Callable[[str], None]) -> None:  # noqa: ANN001
    say(f"· Airflow 运行 / running DAG {dag_id}")
    run = bag.get_dag(dag_id).test(run_conf=conf)
    state = str(getattr(run, "state", ""))
    if not state.endswith("success"):
        raise RuntimeError(f"DAG {dag_id} finished in state {state}; see the log above")


def _summarise(settings: Settings) -> DemoResult:
    from verification.storage.models import Feed, Flag, Household, Run

    with session_scope(settings.database_url) as session:
        run = session.scalar(select(Run).where(Run.run_key == DEMO_RUN_KEY))
        flags = pd.DataFrame(session.execute(
            select(Household.household_code, Flag.kind).join(Flag)
            .where(Flag.run_id == run.id)).all(), columns=["household_code", "kind"])
        feeds = [{"kind": f.kind, "status": f.status, "received": f.rows_received,
                  "accepted": f.rows_accepted, "quarantined": f.rows_quarantined}
                 for f in session.scalars(select(Feed).order_by(Feed.id))]
        reports_dir = settings.at_home(run.reports_dir)
    truth = pd.read_csv(settings.district_dir / "truth.csv")
    both = truth.merge(flags, on="household_code", how="left")
    wrong = both[both["expected_flag"] != both["kind"]]
    return DemoResult(households=len(flags), flags=flags["kind"].value_counts().to_dict(),
                      reports_dir=reports_dir, truth_matched=len(both) - len(wrong),
                      mismatches=wrong["household_code"].tolist(), feeds=feeds)

