"""Point Airflow at the project's airflow.cfg, dags folder and var/airflow — before it is imported.

Airflow reads its configuration once, at its first import; the CLI and the tests call
``configure()`` first so `hedui demo`, `make up` and the test suite all see the same setup.
Variables already set by an operator win.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from verification.config import PROJECT_ROOT, Settings


def configure(settings: Settings) -> dict[str, str]:
    env = {
        "HEDUI_ROOT": str(PROJECT_ROOT),
        "HEDUI_HOME": str(settings.home),
        "AIRFLOW_HOME": str(settings.home / "airflow"),
        "AIRFLOW_CONFIG": str(PROJECT_ROOT / "airflow.cfg"),
    }
    for key, value in env.items():
        os.environ.setdefault(key, value)
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    return {k: os.environ[k] for k in env}


def airflow_command() -> list[str]:
    """The `airflow` executable of this environment."""
    candidate = Path(sys.executable).with_name("airflow")
    return [str(candidate)] if candidate.exists() else [sys.executable, "-m", "airflow"]


def migrate_airflow_db() -> None:
    """`airflow db migrate` (idempotent) in a child process, with this process's environment.

    Serialised by a lock file in AIRFLOW_HOME: two processes migrating one database at once
    (parallel test workers, two `hedui demo`) would both try to create the same tables."""
    import fcntl

    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".hedui-migrate.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run([*airflow_command(), "db", "migrate"], capture_output=True,
                                text=True, env=os.environ.copy(), check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"airflow db migrate failed:\n{tail}")
