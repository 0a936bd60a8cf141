"""One DAG per partner department, generated from connectors/partners.yaml.

Each run pulls the partner's new feeds over its Airflow Connection, takes them in (verify,
decrypt, validate, stage, quarantine) and sends the partner a receipt. A successful pull updates
the Asset of each feed kind, which can trigger the dynamic review. Logic lives in
verification/pipeline.py; this file only wires.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

from connectors.registry import feed_asset_name, load_partners
from verification.alerts import on_task_failure

DOC = """\
### {name_zh} · {name_en}

Pulls feeds **{feed_list}** from the partner (transport `{transport}`, Airflow Connection
`{conn_id}`), verifies the signature and decrypts them, validates every row against its
contract (schemas/feeds/), stages accepted rows and quarantines the rest with reasons, then
acknowledges with a receipt. A feed rejected as a whole (bad signature, wrong key, truncated,
replayed) fails this task and raises an alert; its absence never counts as data.
"""


def _partner_dag(code: str):  # noqa: ANN202 (returns a DAG)
    spec = load_partners()[code]

    @dag(
        dag_id=f"partner_{code}",
        schedule=spec.schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
        catchup=False,
        max_active_runs=1,
        tags=["hedui", "partner-feed", code],
        doc_md=DOC.format(feed_list=", ".join(spec.feeds), **spec.__dict__),
        default_args={"retries": 3, "retry_delay": timedelta(minutes=2),
                      "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=30),
                      "on_failure_callback": on_task_failure},
    )
    def partner_feed():
        @task(outlets=[Asset(feed_asset_name(kind)) for kind in spec.feeds],
              execution_timeout=timedelta(hours=2))
        def pull_feeds() -> list[dict]:
            """Pull, take in and acknowledge every new feed of this partner."""
            from connectors.hooks import PartnerHook
            from verification import pipeline
            from verification.config import load_settings

            client = PartnerHook(spec.conn_id).get_conn()
            return pipeline.pull_and_report(load_settings(), code, client)

        pull_feeds()

    return partner_feed()


for _code in load_partners():
    globals()[f"partner_{_code}"] = _partner_dag(_code)
