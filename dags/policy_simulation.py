"""policy_simulation: 政策测算 — what a policy change would cost and whom it would reach.

Triggered by hand (the form's params, with Chinese titles): re-assesses a finished review's staged
households, members and evidence under each scenario — parameter folders on the server, and/or
the shipped parameters with the 低保 standard raised by the given percents — and writes the
simulation's folder (var/simulations/sim-<n>/: JSON, XLSX, HTML, charts), which staff open in the
portal (政策测算). No flag is written. The same as `hedui simulate` (docs/simulation.md); logic
in verification/simulation/service.py, this file only wires.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from verification.alerts import on_task_failure
from verification.security.logmask import install_log_masking

install_log_masking()


@dag(
    dag_id="policy_simulation",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=2,
    tags=["hedui", "simulation"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2),
                  "on_failure_callback": on_task_failure},
    params={
        "raise_standard": Param("5,7,10", type="string", title="低保标准提高百分比 / raise by %",
                                description="逗号分隔，如 5,7,10；留空则不生成 / e.g. 5,7,10"),
        "parameters": Param([], type="array", title="情景参数目录 / scenario folders",
                            description="服务器上的参数目录 / parameter folders on the server"),
        "from_run": Param(None, type=["null", "integer"], title="核对编号 / review run id",
                          description="留空为最近一次已完成的核对 / empty: the latest review"),
    },
)
def policy_simulation():
    @task
    def simulate(params: dict | None = None) -> dict:
        from pathlib import Path

        from verification.config import load_settings
        from verification.simulation import service

        params = params or {}
        outcome = service.run_simulation(load_settings(), service.Request(
            parameters=[Path(p) for p in params.get("parameters") or []],
            percents=service.parse_percents(params.get("raise_standard", "")),
            from_run=params.get("from_run")))
        return {"folder": str(outcome.folder), "scenarios": service.summary_lines(outcome)}

    simulate()


policy_simulation()
