"""Who is asking: the Airflow login behind the request, mapped to a hedui ``Principal``.

The portal runs inside Airflow's API server, so it trusts exactly what Airflow trusts: the JWT
that Airflow's auth manager issued at login, sent as the ``_token`` cookie by the browser (or as a
bearer token by a script). It is checked by Airflow's own ``get_user`` dependency (signature,
expiry, revocation); a request without a valid login is sent to Airflow's login page and sees no
data. The Airflow login name is then looked up in verification/security/access.yaml for the hedui
role
and jurisdiction.

Forms that change something carry a token derived from the login (double submit): a page on
another site cannot read the login cookie, so it cannot forge the form.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials

from verification.portal.i18n import LANG_COOKIE, pick_language
from verification.security.access import AccessDenied, Principal, principal

LOGIN_PATH = "/api/v2/auth/login"
LOGOUT_PATH = "/api/v2/auth/logout"
_CSRF_CONTEXT = b"hedui-portal-form"


class LoginRequired(Exception):
    """No valid Airflow login on the request: the handler redirects to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next_url = next_url


class NoRole(Exception):
    """A valid Airflow login that hedui does not know (not in access.yaml)."""

    def __init__(self, username: str, lang: str) -> None:
        super().__init__(f"user {username!r} has no role in hedui")
        self.username, self.lang = username, lang


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: their hedui principal, language and form token."""

    principal: Principal
    lang: str
    form_token: str

    @property
    def username(self) -> str:
        return self.principal.username


def login_url(next_path: str) -> str:
    return f"{LOGIN_PATH}?next={quote(next_path, safe='/')}"


def _next_path(request: Request) -> str:
    path = request.url.path
    return f"{path}?{request.url.query}" if request.url.query else path


def _credential(request: Request) -> str | None:
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


async def airflow_username(request: Request) -> str:
    """The login name of the request's Airflow user; raises ``LoginRequired`` without one."""
    from airflow.api_fastapi.core_api.security import get_user

    header = request.headers.get("authorization", "")
    bearer = None
    if header.lower().startswith("bearer "):
        bearer = HTTPAuthorizationCredentials(scheme="Bearer", credentials=header[7:].strip())
    try:
        user = await get_user(request, None, bearer)
    except HTTPException as err:
        if err.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
            raise LoginRequired(_next_path(request)) from None
        raise
    return user.get_name()


def form_token(credential: str) -> str:
    return hmac.new(_CSRF_CONTEXT, credential.encode(), hashlib.sha256).hexdigest()[:32]


async def current_viewer(request: Request) -> Viewer:
    """FastAPI dependency: the authenticated viewer, or ``LoginRequired`` / ``NoRole``."""
    username = await airflow_username(request)
    lang = pick_language(request.cookies.get(LANG_COOKIE))
    try:
        who = principal(username)
    except AccessDenied:
        raise NoRole(username, lang) from None
    return Viewer(principal=who, lang=lang, form_token=form_token(_credential(request) or ""))


def check_form_token(viewer: Viewer, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(submitted, viewer.form_token):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "form token missing or wrong")
