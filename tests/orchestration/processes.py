"""Starting and stopping real Airflow processes for the deployment tests.

Each component runs in its own process group (``start_new_session``) so stopping it ends every
child it spawned (task supervisors, gunicorn/uvicorn workers, Celery pool processes): SIGTERM to
the group, then SIGKILL after a grace period. Output goes to a log file whose tail is shown when
something does not come up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from verification.airflow_env import airflow_command
from verification.config import PROJECT_ROOT

HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(airflow_home: Path, hedui_home: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of one deployment: the project's airflow.cfg, private homes, own ports."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "HEDUI_", "PYTEST_"))}
    # `airflow standalone` starts its components as `airflow …` from PATH
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "HEDUI_ROOT": str(PROJECT_ROOT), "HEDUI_HOME": str(hedui_home),
        "AIRFLOW_HOME": str(airflow_home), "AIRFLOW_CONFIG": str(PROJECT_ROOT / "airflow.cfg"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        # every deployment on this machine needs its own log-server ports
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    })
    env.update(extra)
    return env


@dataclass
class Deployment:
    """The processes of one Airflow deployment, stopped together."""

    env: dict[str, str]
    logs: Path
    port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str, timeout: float = 300) -> str:
        """A one-off ``airflow`` command (e.g. ``db migrate``); its output, or an error."""
        result = subprocess.run([*airflow_command(), *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{tail}")
        return result.stdout

    def start(self, name: str, *args: str) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen([*airflow_command(), *args], env=self.env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def tail(self, lines: int = 40) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text("utf-8", errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow processes exited: {dead}\n{self.tail()}")

    def wait_healthy(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                last = health
                if all(health.get(c, {}).get("status") == "healthy" for c in HEALTH_COMPONENTS):
                    return health
            except (requests.RequestException, ValueError) as err:
                last = err
            time.sleep(2)
        raise TimeoutError(f"not healthy after {timeout:.0f} s: {last}\n{self.tail()}")

    def stop(self, grace: float = 30) -> None:
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # leftovers of the group, if any
            proc.wait(timeout=10)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def admin_password(airflow_home: Path) -> str:
    """The simple auth manager's generated password for ``admin``."""
    path = airflow_home / "simple_auth_manager_passwords.json.generated"
    return json.loads(path.read_text("utf-8"))["admin"]


def wait_for(predicate, timeout: float, what: str, poll: float = 2.0,  # noqa: ANN001
              deployment: Deployment | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deployment is not None:
            deployment.check_alive()
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s"
                       + (f"\n{deployment.tail()}" if deployment else ""))
