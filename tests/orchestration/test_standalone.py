"""`make up`: `airflow standalone` with the project's airflow.cfg comes up healthy, lists the hedui
DAGs with no import errors, serves the batch_check trigger form's schema, and a batch file dropped
into the inbox is checked through the AssetWatcher — the whole embedded default, for real."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from connectors.registry import load_partners
from tests.orchestration.processes import (
    Deployment,
    admin_password,
    airflow_env,
    free_port,
    wait_for,
)
from verification.batches.airflow_api import AirflowApi, AirflowApiConfig

# the two deployment tests run one after the other on one xdist worker (`--dist loadgroup`)
pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.xdist_group("airflow-deployments")]
HEDUI_DAGS = {f"partner_{c}" for c in load_partners()} | {
    "dynamic_review", "batch_check", "housekeeping"}


def _batch_states(api: AirflowApi) -> list[tuple[str, str]]:
    runs = api.request("GET", "/dags/batch_check/dagRuns", params={"limit": 20})["dag_runs"]
    return [(r["run_type"], r["state"]) for r in runs]


def test_make_up_is_healthy_lists_the_dags_and_the_inbox_starts_a_batch(tmp_path, district_dir):
    from verification.batches.check import batch_status
    from verification.config import load_settings
    from verification.storage import upgrade
    from verification.storage.db import dispose

    hedui_home, airflow_home = tmp_path / "var", tmp_path / "var" / "airflow"
    port = free_port()
    deployment = Deployment(airflow_env(airflow_home, hedui_home, port), tmp_path / "logs", port)
    settings = load_settings(hedui_home)
    upgrade(settings.database_url)  # what `make up` does first: hedui db upgrade
    deployment.run("db", "migrate")
    deployment.start("standalone", "standalone")
    try:
        health = deployment.wait_healthy()
        assert health["metadatabase"]["status"] == "healthy"
        api = AirflowApi(AirflowApiConfig(deployment.url, "admin", admin_password(airflow_home)))

        def listed() -> set[str]:
            found = {d["dag_id"] for d in api.request("GET", "/dags",
                                                      params={"limit": 100})["dags"]}
            return found if found >= HEDUI_DAGS else set()

        assert wait_for(listed, 240, "hedui DAGs listed", deployment=deployment) >= HEDUI_DAGS
        errors = api.request("GET", "/importErrors")
        assert errors["total_entries"] == 0, errors

        params = api.dag_details("batch_check")["params"]
        assert set(params) == {"batch_file", "category", "requester", "notes", "as_of",
                               "policy_dir"}
        assert params["batch_file"]["schema"]["title"].startswith("批次文件路径")
        assert params["category"]["schema"]["enum"] == ["dibao", "edge", "rigid", "tekun"]
        assert params["category"]["schema"]["values_display"]["dibao"] == "低保"
        assert params["requester"]["schema"]["title"].startswith("提交人")
        assert all(p["description"] for p in params.values())

        # The inbox: drop a file, the AssetWatcher's trigger claims it, batch_check runs.
        api.set_paused("batch_check", False)
        roster = pd.read_csv(district_dir / "roster.csv", dtype=str, keep_default_na=False)
        inbox = hedui_home / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        upload = inbox / "窗口受理批次.csv.part"
        roster[roster["status"] == "applicant"].to_csv(upload, index=False, encoding="utf-8-sig")
        landed = upload.with_name("窗口受理批次.csv")
        upload.rename(landed)
        old = time.time() - 30
        os.utime(landed, (old, old))

        def finished() -> list[tuple[str, str]]:
            states = _batch_states(api)
            return [s for s in states if s[1] in ("success", "failed")]

        done = wait_for(finished, 420, "batch_check run from the inbox", poll=5,
                        deployment=deployment)
        assert done == [("asset_triggered", "success")], deployment.tail()
        assert not landed.exists()
        status = batch_status(settings, 1)
        assert status["file"].endswith("窗口受理批次.csv") and status["status"] == "done"
        assert status["requester"] == "inbox" and status["reports_dir"]
    finally:
        deployment.stop()
        dispose(settings.database_url)
