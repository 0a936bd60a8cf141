"""Shared fixtures. Airflow is pointed at a private AIRFLOW_HOME before anything imports it.

Database tests run on SQLite and on PostgreSQL (127.0.0.1:5432, database ``test``). Where no
PostgreSQL answers they are skipped with a clear message; CI sets HEDUI_REQUIRE_POSTGRES=1 so a
skip there is a failure.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="hedui-tests-"))
os.environ["HEDUI_HOME"] = str(_SESSION_HOME)
# Each xdist worker gets its own Airflow metadata database (workers inherit the controller's
# environment, and two workers sharing one SQLite Airflow database clash).
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME / "airflow")
os.environ.pop("HEDUI_DATABASE_URL", None)
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

from verification.airflow_env import configure  # noqa: E402
from verification.config import Settings, load_settings  # noqa: E402

configure(load_settings())

POSTGRES_URL = os.environ.get("HEDUI_TEST_POSTGRES_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _postgres_available() -> str | None:
    import sqlalchemy as sa

    try:
        with sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3}).connect():
            return None
    except Exception as err:  # noqa: BLE001 (any connection failure means "not here")
        return f"{type(err).__name__}: {str(err).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    problem = _postgres_available()
    if problem:
        if os.environ.get("HEDUI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but not reachable at {POSTGRES_URL}: "
                        f"{problem}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({problem}); "
                    "these tests run in CI")
    yield POSTGRES_URL


def _fresh_schema(base_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    schema = f"hedui_t_{uuid.uuid4().hex[:10]}"
    with sa.create_engine(base_url).begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    return f"{base_url}?options=-csearch_path%3D{schema}", schema


def _drop_schema(base_url: str, schema: str) -> None:
    import sqlalchemy as sa

    from verification.storage.db import _engines

    for url in [u for u in _engines if schema in u]:
        _engines.pop(url).dispose()
    with sa.create_engine(base_url).begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated application database on each backend."""
    from verification.storage import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hedui.db'}"
        upgrade(url)
        yield url
        from verification.storage.db import dispose

        dispose(url)
    else:
        base = request.getfixturevalue("postgres_url")
        url, schema = _fresh_schema(base)
        upgrade(url)
        yield url
        _drop_schema(base, schema)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings with a private home and a migrated database (both backends)."""
    base = load_settings(tmp_path / "home")
    return Settings(home=base.home, database_url=database_url, token_key=base.token_key,
                    token_key_id=base.token_key_id)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings with a private home and a migrated SQLite database."""
    from verification.storage import upgrade

    base = load_settings(tmp_path / "home")
    url = f"sqlite:///{tmp_path / 'home' / 'hedui.db'}"
    upgrade(url)
    return Settings(home=base.home, database_url=url, token_key=base.token_key,
                    token_key_id=base.token_key_id)


# ---- a small synthetic district, served by the reference partner server --------------------
@pytest.fixture(scope="session")
def district_dir(tmp_path_factory) -> Path:
    """60 households (deterministic), written once per test session."""
    from verification.synthetic.generator import generate, write_district

    folder = tmp_path_factory.mktemp("district")
    write_district(generate(60, seed=11), folder)
    return folder


def pull_everything(settings: Settings, district: Path, server=None) -> list:  # noqa: ANN001
    """Pull every partner's feeds from the reference server into ``settings``'s database."""
    from verification.synthetic.exchange import pull_district

    return pull_district(settings, district, server)


def pulled_district(home: Path, district: Path) -> Settings:
    """A private home with a migrated SQLite database holding ``district``: every partner's feeds
    pulled from the reference server and the roster loaded, as `hedui pull` + `hedui roster
    load` do; ready for `review_in_process`."""
    from verification.intake.roster import load_roster
    from verification.storage import upgrade

    base = load_settings(home)
    settings = Settings(home=base.home, database_url=f"sqlite:///{home / 'hedui.db'}",
                        token_key=base.token_key, token_key_id=base.token_key_id)
    upgrade(settings.database_url)
    pull_everything(settings, district)
    load_roster(settings, district / "roster.csv")
    return settings


def review_in_process(settings: Settings, as_of, run_key: str = "test-review") -> int:  # noqa: ANN001
    from verification import pipeline

    run_id = pipeline.start_review(settings, run_key, as_of)
    plan = pipeline.prepare_evidence(settings, run_id)
    dirs = [pipeline.review_shard(settings, run_id, shard) for shard in plan.shards]
    pipeline.finish_review(settings, run_id, dirs)
    return run_id


def flags_by_household(settings: Settings, run_id: int):  # noqa: ANN201
    import pandas as pd
    from sqlalchemy import select

    from verification.storage import session_scope
    from verification.storage.models import Flag, FlagReason, Household

    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(Household.household_code, Flag.kind, FlagReason.code)
            .join(Flag, Flag.household_id == Household.id)
            .join(FlagReason, FlagReason.flag_id == Flag.id, isouter=True)
            .where(Flag.run_id == run_id)).all()
    frame = pd.DataFrame(rows, columns=["household_code", "kind", "code"])
    return frame.groupby(["household_code", "kind"])["code"].agg(
        lambda c: set(c.dropna())).reset_index()
