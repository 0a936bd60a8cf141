"""One DAG per partner department, generated from connectors/partners.yaml.

Each run pulls the partner's new feeds over its Airflow Connection, takes them in (verify,
decrypt, validate, stage, quarantine) and sends the partner a receipt. The Asset of a feed kind
(``hedui://feeds/<kind>``) is updated only when a new feed of that kind was accepted: the task's
outlet is an AssetAlias per partner, through which it emits one event per accepted kind (a run
that found nothing new emits none). dynamic_review is scheduled on all feed Assets together.
Logic lives in verification/pipeline.py; this file only wires.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, AssetAlias, dag, get_current_context, task

from connectors.registry import feed_asset_name, load_partners
from verification.alerts import on_task_failure
from verification.security.logmask import install_log_masking

# Resident ID numbers in any log line of these tasks are masked (stdlib only: cheap to parse).
install_log_masking()

DOC = """\
### {name_zh} · {name_en}

Pulls feeds **{feed_list}** from the partner (transport `{transport}`, Airflow Connection
`{conn_id}`), verifies the signature and decrypts them, validates every row against its
contract (schemas/feeds/), stages accepted rows and quarantines the rest with reasons, then
acknowledges with a receipt. A feed rejected as a whole (bad signature, wrong key, truncated,
replayed) fails this task and raises an alert; its absence never counts as data. Each accepted
feed updates the Asset of its kind, which (with the other kinds) triggers `dynamic_review`.
"""


def partner_alias_name(code: str) -> str:
    return f"hedui-feeds-from-{code}"


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
        alias = AssetAlias(partner_alias_name(code))

        @task(outlets=[alias], execution_timeout=timedelta(hours=2))
        def pull_feeds() -> list[dict]:
            """Pull, take in and acknowledge every new feed of this partner; update the Asset
            of each kind that had a feed accepted."""
            from verification import pipeline
            from verification.config import load_settings

            summaries = pipeline.take_in_new_feeds(load_settings(), code)
            events = get_current_context()["outlet_events"][alias]
            for item in summaries:
                if item["status"] == "accepted":
                    events.add(Asset(feed_asset_name(item["kind"])),
                               extra={"feed_id": item["feed_id"], "sequence": item["sequence"],
                                      "partner": code})
            return summaries

        pull_feeds()

    return partner_feed()


for _code in load_partners():
    globals()[f"partner_{_code}"] = _partner_dag(_code)
