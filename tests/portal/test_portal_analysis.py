"""The portal's simulation and fairness pages, with real Airflow logins: staff see the stored
simulations and every run's audit; officers and partners do not."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from verification import simulation
from verification.assessment.policy import DEFAULT_DIRECTORY
from verification.fairness import load_fairness
from verification.portal import create_app
from verification.storage import session_scope
from verification.storage.models import Run

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def client_for(portal_settings, airflow_tokens):  # noqa: ANN001, ANN201
    parent = FastAPI()
    parent.mount("/hedui", create_app(settings_factory=lambda: portal_settings))

    def make(username: str, lang: str = "zh") -> TestClient:
        client = TestClient(parent, base_url="http://testserver/hedui/", follow_redirects=False)
        client.cookies.set("_token", airflow_tokens(username))
        client.cookies.set("hedui_lang", lang)
        return client

    return make


@pytest.fixture(scope="module")
def simulated(portal_settings, tmp_path_factory) -> dict:  # noqa: ANN001
    inputs = simulation.load_run_inputs(portal_settings)
    base = simulation.load_scenario(DEFAULT_DIRECTORY, "基线")
    folder = tmp_path_factory.mktemp("scenario") / "standard+8pct"
    scenario = simulation.load_scenario(simulation.write_raised_standard(
        folder, 8, inputs.region, inputs.as_of))
    versions, results = simulation.simulate(inputs, base, [scenario])
    out = simulation.write_simulation(portal_settings, inputs, base, versions, results, "test")
    return simulation.load_simulation(portal_settings, int(out.name.split("-")[1]))


def test_staff_list_and_open_a_simulation(client_for, simulated):
    staff = client_for("hedui_staff")
    listing = staff.get("/simulations")
    assert listing.status_code == 200
    assert f"#{simulated['id']}" in listing.text and "standard+8pct" in listing.text
    page = staff.get(f"/simulations/{simulated['id']}")
    assert page.status_code == 200
    totals = simulated["scenarios"][0]["totals"]
    assert f"{totals['gain_households']} / {totals['gain_persons']}" in page.text
    assert "<svg" in page.text and simulated["scenarios"][0]["digest"][:16] in page.text
    workbook = staff.get(f"/simulations/{simulated['id']}/files/政策测算.xlsx")
    assert workbook.status_code == 200 and workbook.content[:2] == b"PK"
    assert staff.get(f"/simulations/{simulated['id']}/files/..%2Fsimulation.json"
                     ).status_code == 404
    assert staff.get("/simulations/9999").status_code == 404
    assert "Policy simulations" in client_for("hedui_staff", "en").get("/simulations").text


def test_fairness_pages_show_the_runs_audit(client_for, portal_settings):
    staff = client_for("hedui_staff")
    listing = staff.get("/fairness")
    assert listing.status_code == 200
    with session_scope(portal_settings.database_url) as session:
        runs = session.scalars(select(Run).where(Run.status == "done")).all()
        keys = [(r.id, r.run_key) for r in runs]
    for _, run_key in keys:
        assert run_key in listing.text
    run_id = keys[-1][0]
    record = load_fairness(portal_settings, run_id)
    page = staff.get(f"/fairness/{run_id}")
    assert page.status_code == 200
    assert "证据单薄的结论（按街道）" in page.text
    for street in record["streets"]:
        assert street["street"] in page.text
    marker = "highlights" if record["highlights"] else "no-highlights"
    marker = f'data-testid="{marker}"'
    assert marker in page.text
    assert staff.get("/fairness/9999").status_code == 404


def test_officers_and_partners_see_neither(client_for):
    officer = client_for("officer_wusan")
    assert "政策测算" not in officer.get("/dashboard").text
    for path in ("/simulations", "/fairness", "/fairness/1", "/simulations/1"):
        assert officer.get(path).status_code == 403
        assert client_for("partner_hrss").get(path).status_code == 403
