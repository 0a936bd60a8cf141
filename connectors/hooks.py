"""Airflow hook for partner departments: the only code that reads an Airflow Connection.

A partner's Connection (conn_type ``http``) holds host, port and schema (``http``/``https``), the
bearer token as password, and in ``extra``: ``path`` (URL prefix, e.g. ``/hrss/v1``),
``verify`` (CA bundle path or true), ``cert``/``key`` (client certificate for mutual TLS).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from connectors.http_pull import PartnerClient


class PartnerHook(BaseHook):
    conn_name_attr = "partner_conn_id"
    default_conn_name = "hedui_partner_default"
    conn_type = "http"
    hook_name = "hedui partner department"

    def __init__(self, partner_conn_id: str = default_conn_name, **client_options: Any) -> None:
        super().__init__()
        self.partner_conn_id = partner_conn_id
        self.client_options = client_options

    def get_conn(self) -> PartnerClient:
        conn = self.get_connection(self.partner_conn_id)
        extra = conn.extra_dejson
        scheme = conn.schema or "https"
        port = f":{conn.port}" if conn.port else ""
        base_url = f"{scheme}://{conn.host}{port}{extra.get('path', '')}"
        cert = (extra["cert"], extra["key"]) if extra.get("cert") else None
        return PartnerClient(base_url, token=conn.password or None,
                             verify=extra.get("verify", True), cert=cert, **self.client_options)
