"""The hedui web portal (核对业务门户): pages for verification staff, assistance officers and
partner departments, served inside Airflow's API server (plugins/hedui_portal.py)."""

from verification.portal.app import create_app

__all__ = ["create_app"]
