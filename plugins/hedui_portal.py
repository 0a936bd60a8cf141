"""Airflow plugin: mounts the hedui portal (verification/portal/) in Airflow's API server at
``/hedui``, behind Airflow's login, and adds it to the Airflow UI's menu.

One server to run: `make up` (airflow standalone) serves the Airflow UI, its REST API and the
portal together. The portal reads the same ``HEDUI_HOME`` as the DAGs.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from verification.portal import create_app

URL_PREFIX = "/hedui"


class HeduiPortalPlugin(AirflowPlugin):
    name = "hedui_portal"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX,
                     "name": "hedui 核对业务门户 / verification portal"}]
    # a link in the Airflow UI's Browse menu (no url_route: the portal opens as itself, not
    # framed inside the Airflow UI)
    external_views = [{"name": "核对门户 Portal", "href": f"{URL_PREFIX}/",
                       "destination": "nav", "category": "browse"}]
