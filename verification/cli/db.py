"""`hedui db`: the application database."""

from __future__ import annotations

import typer

from verification.config import load_settings

app = typer.Typer(help="应用数据库 / the application database.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """应用数据库 / the application database."""


@app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the application database (idempotent)."""
    from verification.storage import upgrade
    from verification.storage.db import current_revision

    settings = load_settings()
    upgrade(settings.database_url)
    typer.echo(f"database at revision {current_revision(settings.database_url)}: "
               f"{_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


