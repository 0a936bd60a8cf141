"""Fixtures for the orchestration tests: a migrated Airflow metadata database, the project's
DagBag, and a private hedui home with a district's feeds already taken in.

Tasks read their settings from the environment (``HEDUI_HOME``), as they do in production, so
``hedui_home`` points HEDUI_HOME at a private folder for the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import pull_everything
from verification.config import PROJECT_ROOT, Settings, load_settings


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The metadata database, migrated (serialised: xdist workers may share AIRFLOW_HOME)."""
    from verification.airflow_env import migrate_airflow_db

    migrate_airflow_db()


@pytest.fixture(scope="session")
def dag_bag(airflow_db):  # noqa: ANN001, ANN201
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


@pytest.fixture
def hedui_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A private, migrated SQLite home that the DAGs' tasks use (through HEDUI_HOME)."""
    from verification.storage import upgrade

    monkeypatch.setenv("HEDUI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HEDUI_DATABASE_URL", raising=False)
    settings = load_settings()
    upgrade(settings.database_url)
    yield settings
    from verification.storage.db import dispose

    dispose(settings.database_url)


@pytest.fixture
def fed_home(hedui_home: Settings, district_dir: Path) -> Settings:
    """``hedui_home`` with every partner feed of the session's district accepted."""
    results = pull_everything(hedui_home, district_dir)
    assert {r.status for r in results} == {"accepted"}
    return hedui_home


def district_as_of(district_dir: Path) -> str:
    return json.loads((district_dir / "district.json").read_text("utf-8"))["as_of"]


def run_state(run) -> str:  # noqa: ANN001
    return str(getattr(run, "state", "")).rsplit(".", 1)[-1]
