"""Portal pages for staff beyond the daily work: policy simulations (政策测算) and the fairness
audit of every review and batch. Read-only; both need ``analysis.read`` (staff and
administrators: a simulation and an audit cover every street).

``register`` adds the routes to the portal app; ``create_app`` calls it with its own page
renderer, so these pages share the frame, the language switch and the error pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from sqlalchemy import select

from verification.config import Settings
from verification.portal import auth
from verification.storage import session_scope
from verification.storage.models import Run

PERMISSION = "analysis.read"
# module level, so FastAPI can resolve the (string) annotation of every route
Viewer = Annotated[auth.Viewer, Depends(auth.current_viewer)]


def register(app: FastAPI, render: Callable[..., HTMLResponse],
             error_page: Callable[..., HTMLResponse],
             settings_factory: Callable[[], Settings]) -> None:
    """Add the simulation and fairness pages to ``app``."""
    from verification import simulation
    from verification.fairness import load_fairness
    from verification.fairness.audit import presented

    @app.get("/simulations", name="simulation_list")
    def simulation_list(request: Request, viewer: Viewer) -> HTMLResponse:
        viewer.principal.require(PERMISSION)
        return render(request, viewer, "simulations.html",
                      simulations=simulation.list_simulations(settings_factory()))

    @app.get("/simulations/{simulation_id}", name="simulation_detail")
    def simulation_detail(request: Request, simulation_id: int, viewer: Viewer) -> HTMLResponse:
        viewer.principal.require(PERMISSION)
        settings = settings_factory()
        record = simulation.load_simulation(settings, simulation_id)
        if record is None:
            return error_page(request, viewer, "error.not_found", 404)
        charts = {}
        for entry in record["scenarios"]:
            found = simulation.simulation_file(settings, simulation_id, entry.get("chart", ""))
            charts[entry.get("chart", "")] = found.read_text("utf-8") if found else ""
        return render(request, viewer, "simulation.html", sim=record, charts=charts)

    @app.get("/simulations/{simulation_id}/files/{name}", name="simulation_download")
    def simulation_download(request: Request, simulation_id: int, name: str,
                            viewer: Viewer) -> Response:
        viewer.principal.require(PERMISSION)
        found = simulation.simulation_file(settings_factory(), simulation_id, name)
        if found is None:
            return error_page(request, viewer, "error.not_found", 404)
        return FileResponse(found, filename=found.name)

    @app.get("/fairness", name="fairness_list")
    def fairness_list(request: Request, viewer: Viewer) -> HTMLResponse:
        viewer.principal.require(PERMISSION)
        settings = settings_factory()
        runs = []
        for run in _finished_runs(settings):
            record = load_fairness(settings, run["id"])
            runs.append({**run, "audited": record is not None,
                         "highlights": len(record["highlights"]) if record else 0,
                         "totals": record["totals"] if record else {}})
        return render(request, viewer, "fairness_runs.html", runs=runs)

    @app.get("/fairness/{run_id}", name="fairness_detail")
    def fairness_detail(request: Request, run_id: int, viewer: Viewer) -> HTMLResponse:
        viewer.principal.require(PERMISSION)
        settings = settings_factory()
        record = load_fairness(settings, run_id)
        if record is None:
            return error_page(request, viewer, "error.not_found", 404)
        return render(request, viewer, "fairness.html", record=record,
                      fairness=presented(record, viewer.lang))


def _finished_runs(settings: Settings) -> list[dict[str, Any]]:
    with session_scope(settings.database_url) as session:
        runs = session.scalars(select(Run).where(Run.status == "done")
                               .order_by(Run.as_of.desc(), Run.id.desc())).all()
        return [{"id": r.id, "run_key": r.run_key, "kind": r.kind, "as_of": r.as_of.isoformat(),
                 "households": r.households, "counts": r.counts or {}} for r in runs]
