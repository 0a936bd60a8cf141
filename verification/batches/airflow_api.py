"""A small client for the Airflow 3 REST API (``/api/v2``), for `hedui batch submit/status` and
the deployment tests.

Authentication is Airflow 3's token flow: ``POST /auth/token`` with the user name and password
returns an ``access_token`` (a JWT) sent as ``Authorization: Bearer``; a 401 later (the token
expired) logs in once more. Configuration comes from the environment:

    HEDUI_AIRFLOW_URL       e.g. http://127.0.0.1:8080 (no trailing /api/v2)
    HEDUI_AIRFLOW_USER      e.g. admin
    HEDUI_AIRFLOW_PASSWORD  the user's password (from a secret store; never in a file in git)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

TERMINAL_STATES = frozenset({"success", "failed"})


class AirflowApiError(RuntimeError):
    """The API server refused or failed a request; the message says which and why."""


class DagPaused(AirflowApiError):
    """The target DAG is paused in Airflow: a run would wait, queued, until someone unpauses it."""

    def __init__(self, dag_id: str) -> None:
        self.dag_id = dag_id
        super().__init__(f"调度平台中的 {dag_id} 处于暂停状态，未创建运行；请管理员执行 "
                         f"`airflow dags unpause {dag_id}` 后重试 / the {dag_id} DAG is paused "
                         f"in Airflow and no run was created: unpause it "
                         f"(`airflow dags unpause {dag_id}`) and try again")


@dataclass(frozen=True)
class AirflowApiConfig:
    url: str
    user: str
    password: str

    @classmethod
    def from_env(cls) -> AirflowApiConfig | None:
        """The configured API server, or None when HEDUI_AIRFLOW_URL is not set."""
        url = os.environ.get("HEDUI_AIRFLOW_URL", "").strip()
        if not url:
            return None
        user = os.environ.get("HEDUI_AIRFLOW_USER", "")
        password = os.environ.get("HEDUI_AIRFLOW_PASSWORD", "")
        if not user or not password:
            raise AirflowApiError("HEDUI_AIRFLOW_URL is set but HEDUI_AIRFLOW_USER or "
                                  "HEDUI_AIRFLOW_PASSWORD is not")
        return cls(url.rstrip("/"), user, password)


class AirflowApi:
    def __init__(self, config: AirflowApiConfig, *, timeout: float = 30.0,
                 session: requests.Session | None = None) -> None:
        self.config = config
        self.timeout = timeout
        self.session = session or requests.Session()
        self._token: str | None = None

    # -- auth ----------------------------------------------------------------------------------
    def login(self) -> str:
        """``POST /auth/token`` → access token (kept for later requests)."""
        try:
            response = self.session.post(f"{self.config.url}/auth/token", timeout=self.timeout,
                                         json={"username": self.config.user,
                                               "password": self.config.password})
        except requests.RequestException as err:
            raise AirflowApiError(f"无法连接调度平台 {self.config.url}（{type(err).__name__}）"
                                  f" / cannot reach Airflow at {self.config.url}: "
                                  f"{type(err).__name__}") from err
        if response.status_code not in (200, 201):
            hint = ("用户名或密码错误 / wrong user name or password"
                    if response.status_code in (401, 403) else "登录失败 / login failed")
            raise AirflowApiError(f"以 {self.config.user} 登录调度平台失败：{hint} — login to "
                                  f"{self.config.url} as {self.config.user} failed: "
                                  f"HTTP {response.status_code} {response.text[:200]}")
        self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """An ``/api/v2`` call with the bearer token; JSON back. Logs in again once on 401."""
        for attempt in (1, 2):
            if self._token is None:
                self.login()
            try:
                response = self.session.request(
                    method, f"{self.config.url}/api/v2{path}", timeout=self.timeout,
                    headers={"Authorization": f"Bearer {self._token}"}, **kwargs)
            except requests.RequestException as err:
                raise AirflowApiError(f"调度平台无响应 / no answer from Airflow: {method} "
                                      f"/api/v2{path}: {type(err).__name__}") from err
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            if response.status_code >= 400:
                raise AirflowApiError(f"{method} /api/v2{path}: HTTP {response.status_code} "
                                      f"{response.text[:300]}")
            return response.json() if response.content else None
        raise AirflowApiError(f"{method} /api/v2{path}: not authorised")  # pragma: no cover

    # -- DAGs and runs ---------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (no authentication needed)."""
        response = self.session.get(f"{self.config.url}/api/v2/monitor/health",
                                    timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self.request("GET", f"/dags/{dag_id}")

    def dag_details(self, dag_id: str) -> dict[str, Any]:
        """Includes ``params``: the trigger form's schema."""
        return self.request("GET", f"/dags/{dag_id}/details")

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None,
                run_id: str | None = None, *, unpause: bool = True) -> dict[str, Any]:
        """Create a run now; returns the run with ``dag_was_paused``.

        A paused DAG would leave the run queued without a word, so it is never triggered as it
        is: with ``unpause`` (new DAGs start paused) it is unpaused first, and that is checked;
        without, or when the unpause does not take, this raises ``DagPaused``."""
        paused = bool(self.dag(dag_id).get("is_paused"))
        if paused:
            if not unpause:
                raise DagPaused(dag_id)
            if self.set_paused(dag_id, False).get("is_paused", False):
                raise DagPaused(dag_id)
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return {**run, "dag_was_paused": paused}

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        body = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                            params={"limit": 1000})
        return body["task_instances"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600.0,
                     poll: float = 3.0, sleep: Callable[[float], None] = time.sleep
                     ) -> dict[str, Any]:
        """Poll until the run is ``success`` or ``failed``; raise ``TimeoutError`` after
        ``timeout`` seconds with the run's last state."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} run {run_id} still {run['state']} after "
                                   f"{timeout:.0f} s")
            sleep(poll)
