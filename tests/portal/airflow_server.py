"""A real Airflow API server (and, when asked, a scheduler) on loopback, for the browser tests.

Started with the project's airflow.cfg in a private AIRFLOW_HOME: the metadata database is
migrated, the DAGs are serialized into it (as the DAG processor would), batch_check is unpaused,
and the portal's demo accounts get known passwords in the simple auth manager's password file.
Every process is started in its own process group and stopped with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from verification.airflow_env import airflow_command
from verification.config import PROJECT_ROOT, Settings

# Airflow login → password for the tests; roles come from verification/security/access.yaml.
ACCOUNTS = {"admin": "admin-e2e-pw", "hedui_staff": "staff-e2e-pw",
            "officer_wusan": "wusan-e2e-pw", "officer_zhanxi": "zhanxi-e2e-pw"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AirflowServer:
    settings: Settings
    airflow_home: Path
    with_scheduler: bool = True
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        users = ",".join(f"{name}:{'admin' if name == 'admin' else 'viewer'}"
                         for name in ACCOUNTS)
        env.update({
            "HEDUI_ROOT": str(PROJECT_ROOT), "HEDUI_HOME": str(self.settings.home),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW_CONFIG": str(PROJECT_ROOT / "airflow.cfg"),
            "AIRFLOW__API__PORT": str(self.port), "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
        })
        env.pop("HEDUI_DATABASE_URL", None)
        return env

    def _airflow(self, *args: str, timeout: float = 300) -> None:
        result = subprocess.run([*airflow_command(), *args], env=self.env(), capture_output=True,
                                text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{tail}")

    def prepare(self) -> None:
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        (self.airflow_home / "simple_auth_manager_passwords.json.generated").write_text(
            json.dumps(ACCOUNTS), "utf-8")
        self._airflow("db", "migrate")
        self._airflow("dags", "reserialize")
        self._airflow("dags", "unpause", "batch_check")

    def _spawn(self, *args: str, log: str) -> None:
        out = (self.airflow_home / log).open("wb")
        self.processes.append(subprocess.Popen(
            [*airflow_command(), *args], env=self.env(), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True))

    def start(self, timeout: float = 120) -> AirflowServer:
        self.prepare()
        self._spawn("api-server", "--port", str(self.port), "--workers", "1",
                    log="api-server.log")
        if self.with_scheduler:
            self._spawn("scheduler", log="scheduler.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                break
            try:
                if requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the API server did not come up; see {self.airflow_home}/*.log:\n"
                           + self.log_tail("api-server.log"))

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.airflow_home / name
        return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:]) \
            if path.exists() else ""

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.processes.clear()
