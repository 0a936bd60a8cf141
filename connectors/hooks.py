"""Airflow hook for partner departments: the only code that reads an Airflow Connection.

A partner's Connection (conn_type ``http``) holds host, port and schema (``http``/``https``), the
bearer token as password, and in ``extra``: ``path`` (URL prefix, e.g. ``/hrss/v1``),
``verify`` (CA bundle path or true), ``cert``/``key`` (client certificate for mutual TLS).
A ``file_drop`` partner's Connection names its folder: ``extra.drop_root`` (else ``host``) and
``extra.require_marker`` (default true: a file is taken only once its ``.done`` marker is there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from connectors.http_pull import PartnerClient


@dataclass(frozen=True)
class DropFolder:
    root: Path
    require_marker: bool


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

    def drop_folder(self) -> DropFolder:
        """The folder a ``file_drop`` partner writes into; refused in one line if it is not one."""
        conn = self.get_connection(self.partner_conn_id)
        extra = conn.extra_dejson
        root = Path(extra.get("drop_root") or conn.host or "")
        if not str(root) or not root.is_dir():
            raise FileNotFoundError(
                f"连接 {self.partner_conn_id} 的投递目录 {str(root)!r} 不存在，"
                f"请检查 Airflow 连接 / connection {self.partner_conn_id}: drop root "
                f"{str(root)!r} is not a folder")
        return DropFolder(root, bool(extra.get("require_marker", True)))
