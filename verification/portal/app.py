"""The portal's FastAPI application: pages for staff, officers and partners, rendered on the
server (Jinja2), in Chinese with an English switch, usable on a phone.

Mounted by plugins/hedui_portal.py into Airflow's API server at ``/hedui``; every page needs an
Airflow login (verification/portal/auth.py) and a hedui role (verification/security/access.yaml),
and shows
only what that role may see. Flag reads and actions go through verification/flags/actions.py, which
checks the jurisdiction and writes the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from verification import codes, jurisdictions
from verification.batches import check as batches
from verification.config import Settings, load_settings
from verification.flags import actions as flag_actions
from verification.localtime import local_today
from verification.portal import analysis, auth, submit, views
from verification.portal.i18n import LANG_COOKIE, LANGUAGES, airflow_state, text
from verification.portal.row_errors import explain, read_errors_csv
from verification.security.access import AccessDenied

HERE = Path(__file__).parent
PAGES = (  # (route name, nav key, permission needed to see it)
    ("dashboard", "nav.dashboard", "flags.read"),
    ("submit_form", "nav.submit", "batches.submit"),
    ("batch_list", "nav.batches", "batches.read"),
    ("inbox", "nav.inbox", "flags.read"),  # staff read it too (they may not act)
    ("feeds", "nav.feeds", None),
    ("simulation_list", "nav.simulations", "analysis.read"),
    ("fairness_list", "nav.fairness", "analysis.read"),
)
# module level, so FastAPI can resolve the (string) annotation of every route
Viewer = Annotated[auth.Viewer, Depends(auth.current_viewer)]


def _can_see(who, permission: str | None) -> bool:  # noqa: ANN001
    if permission is None:
        return who.can("feeds.read") or who.can("feeds.read_own")
    return who.can(permission)


def create_app(settings_factory: Callable[[], Settings] = load_settings,
               today: Callable[[], dt.date] | None = None) -> FastAPI:
    """The portal app. ``settings_factory`` is called per request (tests pass their own)."""
    app = FastAPI(title="hedui portal", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(codes=codes, jurisdictions=jurisdictions, views=views,
                                 LANGUAGES=LANGUAGES, explain=explain)
    templates.env.filters["num"] = _number
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    clock = today or local_today

    def render(request: Request, viewer: auth.Viewer | None, name: str, status_code: int = 200,
               **context: Any) -> HTMLResponse:
        lang = viewer.lang if viewer else "zh"
        nav = [(route, key) for route, key, perm in PAGES
               if viewer and _can_see(viewer.principal, perm)]
        return templates.TemplateResponse(request, name, {
            "viewer": viewer, "lang": lang, "nav": nav, "logout_url": auth.LOGOUT_PATH,
            "t": lambda key, **kw: text(key, lang, **kw), "label": lambda s, c: _label(s, c, lang),
            "local": views.to_local, "page": name.removesuffix(".html"),
            "airflow_state": lambda state: airflow_state(state, lang),
            "colon": "：" if lang == "zh" else ": ", **context},
            status_code=status_code)

    def error_page(request: Request, viewer: auth.Viewer | None, key: str, status_code: int,
                   detail: str = "") -> HTMLResponse:
        return render(request, viewer, "error.html", status_code=status_code, message_key=key,
                      detail=detail)

    @app.exception_handler(auth.LoginRequired)
    async def _login(request: Request, exc: auth.LoginRequired) -> Response:
        if request.method != "GET" or request.headers.get("accept", "").startswith("application/"):
            return Response("login required", status_code=401)
        return RedirectResponse(auth.login_url(exc.next_url), status_code=303)

    @app.exception_handler(auth.NoRole)
    async def _no_role(request: Request, exc: auth.NoRole) -> Response:
        return render(request, None, "error.html", status_code=403, message_key="error.no_role",
                      detail=exc.username)

    @app.exception_handler(AccessDenied)
    async def _denied(request: Request, exc: AccessDenied) -> Response:
        viewer = await auth.current_viewer(request)
        if "jurisdiction" in str(exc):  # answered as a missing id is: ids cannot be probed
            return error_page(request, viewer, "error.not_found", 404)
        return error_page(request, viewer, "error.forbidden", 403)  # no developer English

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        try:
            viewer = await auth.current_viewer(request)
        except (auth.LoginRequired, auth.NoRole):
            return Response(str(exc.detail), status_code=exc.status_code)
        key = {403: "error.csrf", 404: "error.not_found"}.get(exc.status_code, "error.title")
        detail = "" if key != "error.title" else f"HTTP {exc.status_code}"
        return error_page(request, viewer, key, exc.status_code, detail)

    # ---- frame ---------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def home(request: Request, viewer: Viewer) -> Response:
        for route, _, perm in PAGES:
            if _can_see(viewer.principal, perm):
                return RedirectResponse(request.url_for(route), status_code=303)
        return error_page(request, viewer, "error.forbidden", 403)

    @app.get("/lang/{lang}", name="set_language")
    async def set_language(request: Request, lang: str, viewer: Viewer,
                           next: str = "") -> Response:
        root = request.scope.get("root_path", "")
        target = next if next.startswith(root + "/") and "//" not in next else f"{root}/"
        response = RedirectResponse(target, status_code=303)
        if lang in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax",
                                httponly=True, path=root or "/")
        return response

    # ---- dashboard -----------------------------------------------------------------------------
    @app.get("/dashboard", name="dashboard")
    def dashboard(request: Request, viewer: Viewer) -> HTMLResponse:
        data = views.dashboard(settings_factory(), viewer.principal, clock(), viewer.lang)
        return render(request, viewer, "dashboard.html", data=data,
                      chart=views.trend_chart(data["trend"]), flag_order=views.FLAG_ORDER,
                      scope=_scope_names(viewer.principal))

    # ---- batches -------------------------------------------------------------------------------
    @app.get("/submit", name="submit_form")
    def submit_form(request: Request, viewer: Viewer) -> HTMLResponse:
        viewer.principal.require("batches.submit")
        return render(request, viewer, "submit.html", checked=None, categories=batches.CATEGORIES,
                      form={"category": "dibao", "notes": ""}, columns=_batch_columns(viewer.lang))

    @app.get("/submit/template.csv", name="batch_template")
    def batch_template(viewer: Viewer) -> Response:
        viewer.principal.require("batches.submit")
        header = ",".join(c["name"] for c in _batch_columns("zh"))
        return Response(("\ufeff" + header + "\r\n").encode("utf-8"), media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=batch-template.csv"})

    @app.post("/submit", name="submit_batch")
    def submit_batch(request: Request, viewer: Viewer,
                     file: Annotated[UploadFile | None, File()] = None,
                     category: Annotated[str, Form()] = "dibao",
                     notes: Annotated[str, Form()] = "",
                     form_token: Annotated[str, Form()] = "") -> Response:
        viewer.principal.require("batches.submit")
        auth.check_form_token(viewer, form_token)
        settings = settings_factory()
        form = {"category": category, "notes": notes}

        def again(checked: submit.CheckedUpload, status_code: int = 422) -> HTMLResponse:
            return render(request, viewer, "submit.html", status_code=status_code,
                          checked=checked, categories=batches.CATEGORIES, form=form,
                          columns=_batch_columns(viewer.lang),
                          file_name=file.filename if file else "")

        if category not in batches.CATEGORIES:
            return again(submit.CheckedUpload(unreadable=f"category {category!r}"))
        problem = _upload_problem(file, viewer.lang)
        if problem:
            return again(submit.CheckedUpload(unreadable=problem))
        path = submit.staging_path(settings, file.filename or "batch.csv")
        try:
            size = _save_upload(file, path)
            if size > submit.MAX_UPLOAD_BYTES:
                return again(submit.CheckedUpload(unreadable=text(
                    "submit.too_big", viewer.lang, mb=submit.MAX_UPLOAD_BYTES >> 20)))
            checked = submit.check_file(path, viewer.lang)
            if not checked.ok:
                if not checked.unreadable and not checked.received:
                    checked.unreadable = text("submit.empty", viewer.lang)
                return again(checked)
            done = submit.submit(settings, path, category=category, requester=viewer.username,
                                 notes=notes.strip()[:2000])
        finally:
            submit.discard(path)
        url = request.url_for("batch_detail", batch_id=done.batch_id)
        query = urlencode({"submitted": 1, "problem": done.trigger_error})
        return RedirectResponse(f"{url}?{query}", status_code=303)

    @app.get("/batches", name="batch_list")
    def batch_list(request: Request, viewer: Viewer) -> HTMLResponse:
        viewer.principal.require("batches.read")
        return render(request, viewer, "batches.html",
                      batches=views.batch_list(settings_factory()))

    @app.get("/batches/{batch_id}", name="batch_detail")
    def batch_detail(request: Request, batch_id: int, viewer: Viewer,
                     submitted: int = 0, problem: str = "", kind: str = "", street: str = "",
                     q: str = "", page: str = "1") -> HTMLResponse:
        viewer.principal.require("batches.read")
        settings = settings_factory()
        batch = views.batch_detail(settings, batch_id)
        if batch is None:
            return error_page(request, viewer, "error.not_found", 404)
        want = views.FlagFilter.clean(kind=kind, street=street, q=q, page=page)
        found = {"results": [], "total": 0, "page": 1, "pages": 1, "counts": {"kind": {}},
                 "first": 0, "last": 0}
        if batch["status"] == "done" and batch.get("run_id"):
            found = views.batch_results_page(settings, batch["run_id"], want)
        groups = views.group_report_files(batch["files"], batch["reports_dir"])
        row_errors, error_total = ([], 0)
        if batch["status"] == "invalid":
            row_errors, error_total = read_errors_csv(_errors_file(batch))
        return render(request, viewer, "batch.html", batch=batch, groups=groups, want=want,
                      **found, airflow=_safe_dag_state(batch["dag_run_id"]),
                      submitted=bool(submitted), problem=problem[:300],
                      row_errors=row_errors, error_total=error_total)

    @app.get("/batches/{batch_id}/errors.csv", name="batch_errors")
    def batch_errors(request: Request, batch_id: int, viewer: Viewer) -> Response:
        viewer.principal.require("batches.read")
        batch = views.batch_detail(settings_factory(), batch_id)
        found = _errors_file(batch) if batch and batch["status"] == "invalid" else None
        if found is None or not found.is_file():
            return error_page(request, viewer, "error.not_found", 404)
        return FileResponse(found, filename=f"{batch['code']}-errors.csv", media_type="text/csv")

    @app.get("/batches/{batch_id}/download", name="batch_download")
    def batch_download(request: Request, batch_id: int, path: str,
                       viewer: Viewer) -> Response:
        viewer.principal.require("reports.read")
        viewer.principal.require("batches.read")
        settings = settings_factory()
        batch = views.batch_detail(settings, batch_id)
        found = views.allowed_report_file(settings, batch, path) if batch else None
        if found is None:
            return error_page(request, viewer, "error.not_found", 404)
        return FileResponse(found, filename=found.name)

    # ---- officer inbox -------------------------------------------------------------------------
    @app.get("/inbox", name="inbox")
    def inbox(request: Request, viewer: Viewer, status: str = "open", kind: str = "",
              street: str = "", community: str = "", due: str = "", q: str = "",
              sort: str = "due", page: str = "1") -> HTMLResponse:
        viewer.principal.require("flags.read")
        want = views.FlagFilter.clean(status=status, kind=kind, street=street,
                                      community=community, due=due, q=q, sort=sort, page=page)
        today = clock()
        found = views.inbox_page(settings_factory(), viewer.principal, want, today)
        kinds = [k for k in views.FLAG_ORDER if k in found["counts"]["kind"] or k == want.kind]
        return render(request, viewer, "inbox.html", **found, want=want, kinds=kinds,
                      status=want.status, kind=want.kind, sort=want.sort,
                      communities=_communities(found["counts"]["street"], want.street,
                                               viewer.principal),
                      today=today.isoformat(), scope=_scope_names(viewer.principal))

    @app.get("/flags/{flag_id}", name="flag_detail")
    def flag_detail(request: Request, flag_id: int, viewer: Viewer,
                    done: str = "") -> HTMLResponse:
        try:
            flag = flag_actions.get_flag(settings_factory(), viewer.principal, flag_id)
        except flag_actions.FlagActionError:
            return error_page(request, viewer, "error.not_found", 404)
        return render(request, viewer, "flag.html", flag=flag, done=done, error="",
                      resolutions=flag_actions.RESOLUTIONS, today=clock().isoformat(),
                      evidence=views.evidence_groups(flag["evidence"]))

    @app.get("/flags/{flag_id}/report", name="flag_report")
    def flag_report(request: Request, flag_id: int, viewer: Viewer) -> HTMLResponse:
        """The household's 核对报告 of this flag's run, rendered now (whatever the flag's kind);
        the same jurisdiction check as the flag page."""
        from verification.reports import household_report as reports

        settings = settings_factory()
        try:
            run_id = flag_actions.authorise_flag(settings, viewer.principal, flag_id,
                                                 "report.viewed")
            return HTMLResponse(reports.household_report(settings, run_id, flag_id))
        except (flag_actions.FlagActionError, reports.NotInRun):
            return error_page(request, viewer, "error.not_found", 404)
        except reports.EvidencePurged as err:
            return error_page(request, viewer, "error.report_purged", 410, str(err))

    @app.post("/flags/{flag_id}/acknowledge", name="flag_acknowledge")
    def flag_acknowledge(request: Request, flag_id: int, viewer: Viewer,
                         form_token: Annotated[str, Form()] = "") -> Response:
        auth.check_form_token(viewer, form_token)
        flag_actions.acknowledge_flag(settings_factory(), viewer.principal, flag_id)
        url = request.url_for("flag_detail", flag_id=flag_id)
        return RedirectResponse(f"{url}?done=ack", status_code=303)

    @app.post("/flags/{flag_id}/resolve", name="flag_resolve")
    def flag_resolve(request: Request, flag_id: int, viewer: Viewer,
                     resolution: Annotated[str, Form()] = "",
                     note: Annotated[str, Form()] = "",
                     form_token: Annotated[str, Form()] = "") -> Response:
        auth.check_form_token(viewer, form_token)
        settings = settings_factory()
        try:
            flag_actions.resolve_flag(settings, viewer.principal, flag_id, resolution,
                                      note[:2000])
        except flag_actions.FlagActionError as err:
            flag = flag_actions.get_flag(settings, viewer.principal, flag_id)
            return render(request, viewer, "flag.html", status_code=422, flag=flag, done="",
                          error=_resolution_error(str(err), viewer.lang),
                          resolutions=flag_actions.RESOLUTIONS, today=clock().isoformat(),
                          evidence=views.evidence_groups(flag["evidence"]),
                          form={"resolution": resolution, "note": note})
        url = request.url_for("flag_detail", flag_id=flag_id)
        return RedirectResponse(f"{url}?done=resolved", status_code=303)

    # ---- partner feeds -------------------------------------------------------------------------
    @app.get("/feeds", name="feeds")
    def feeds(request: Request, viewer: Viewer) -> HTMLResponse:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        data = views.feed_overview(settings_factory(), viewer.principal, now)
        return render(request, viewer, "feeds.html", partners=data)

    analysis.register(app, render, error_page, settings_factory)  # simulations, fairness
    return app


def _number(value: object) -> str:
    """1234.5 → 1,234.50; 950.0 → 950; anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if value != value:  # NaN
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _label(section: str, code: str, lang: str) -> str:
    try:
        return codes.label(section, code, lang)
    except KeyError:
        return code


def _scope_names(who) -> list[str]:  # noqa: ANN001
    return ([jurisdictions.street_name(s) for s in sorted(who.streets)]
            + [jurisdictions.community_name(c) for c in sorted(who.communities)])


def _communities(street_counts: dict[str, int], street: str, who) -> dict[str, str]:  # noqa: ANN001
    """The communities to offer once a street is chosen (only those ``who`` covers)."""
    if not street or street not in street_counts:
        return {}
    found = jurisdictions.communities(street)
    if who.district_wide or street in who.streets:
        return found
    return {code: name for code, name in found.items() if code in who.communities}


def _batch_columns(lang: str) -> list[dict[str, Any]]:
    from schemas import contract_for

    return [{"name": f["name"], "title": f["title"] if lang == "zh" else f.get("x-title-en"),
             "required": f.get("constraints", {}).get("required", False)}
            for f in contract_for("batch").fields]


def _upload_problem(file: UploadFile | None, lang: str) -> str:
    if file is None or not file.filename:
        return text("submit.no_file", lang)
    if Path(file.filename).suffix.lower() not in submit.ACCEPTED_SUFFIXES:
        return text("submit.bad_type", lang)
    return ""


def _save_upload(file: UploadFile, path: Path) -> int:
    size = 0
    with path.open("wb") as out:
        while block := file.file.read(1 << 20):
            size += len(block)
            if size > submit.MAX_UPLOAD_BYTES:
                break
            out.write(block)
    return size


def _errors_file(batch: dict[str, Any]) -> Path:
    """errors.csv sits beside the stored file (verification/batches.py validate_batch)."""
    return Path(batch["stored_path"]).parent / "errors.csv"


def _safe_dag_state(run_id: str) -> dict[str, Any]:
    try:
        return submit.dag_state(run_id)
    except Exception:  # noqa: BLE001 - Airflow's database is optional for this page
        return {}


def _resolution_error(message: str, lang: str) -> str:
    if "written reason" in message:
        return ("不予采纳必须填写书面理由。" if lang == "zh"
                else "An override needs a written reason.")
    if "already resolved" in message:
        return "该事项已经办结。" if lang == "zh" else "This flag is already resolved."
    if "resolution must be" in message:
        return "请选择处理结果。" if lang == "zh" else "Choose a resolution."
    return message
