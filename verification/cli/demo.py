"""`hedui demo`, `generate`, `partner-server`: the synthetic district and its partners."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from pathlib import Path

import typer

from verification.config import load_settings

app = typer.Typer()


@app.command()
def demo(households: int = typer.Option(300, help="模拟家庭数 / households to generate"),
         seed: int = typer.Option(2026, help="随机种子 / generator seed")) -> None:
    """Run the whole flow on a synthetic 浑南区 district through Airflow, then print a summary."""
    # Airflow's per-task INFO lines would bury the summary; AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
    # brings them back.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    # dag.test() runs tasks through Starlette's TestClient inside Airflow, which warns about
    # its own httpx on every run: nothing a demo user can act on
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from verification.codes import label
    from verification.synthetic.demo import run_demo

    result = run_demo(load_settings(), households=households, seed=seed, say=typer.echo)
    typer.echo("\n核对完成 / review finished")
    typer.echo(f"  家庭数 / households checked: {result.households}")
    for kind, count in sorted(result.flags.items()):
        typer.echo(f"  {label('flags', kind)} {kind}: {count}")
    typer.echo(f"  与预期一致 / matching the ground truth: {result.truth_matched}/"
               f"{result.households}")
    quarantined = sum(f["quarantined"] for f in result.feeds)
    typer.echo(f"  数据隔离行 / rows quarantined with reasons: {quarantined}")
    typer.echo(f"  报告目录 / reports: {result.reports_dir}")
    if result.mismatches:
        typer.echo(f"  不一致 / mismatches: {', '.join(result.mismatches[:10])}", err=True)
        raise typer.Exit(1)


@app.command()
def generate(households: int = typer.Option(300, help="家庭数 / households"),
             seed: int = typer.Option(2026, help="随机种子 / seed"),
             as_of: str = typer.Option("2026-11-01", help="基准日 / as-of date"),
             out: Path | None = typer.Option(None, help="输出目录 / folder (default var/district)")
             ) -> None:
    """Generate a synthetic district: caseload, partner feeds and the ground truth."""
    from verification.synthetic.generator import generate as make
    from verification.synthetic.generator import write_district

    folder = out or load_settings().district_dir
    meta = write_district(make(households, seed, dt.date.fromisoformat(as_of)), folder)
    typer.echo(f"{meta['households']} households, {meta['members']} members, feeds "
               f"{meta['feed_rows']} → {folder}")


@app.command("partner-server")
def partner_server(port: int = typer.Option(8765, help="端口 / loopback port")) -> None:
    """Serve the synthetic district's packed feeds on loopback (for `make up`)."""
    import time

    from verification.synthetic.exchange import connection_env, ensure_test_keys, start_demo_server

    settings = load_settings()
    ensure_test_keys(settings)
    server = start_demo_server(settings, settings.district_dir, port=port)
    typer.echo(f"serving on 127.0.0.1:{server.port}; connections:")
    for key in connection_env(server.port):
        typer.echo(f"  {key}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
