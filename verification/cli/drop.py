"""`hedui drop`: take in feeds dropped in a partner's inbox folder
(verification/intake/file_drop.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from verification.intake.file_drop import scan_drop_folder

app = typer.Typer(help="文件交换 / file-drop transport: take in feeds dropped in an inbox folder.",
                  no_args_is_help=True)


@app.callback()
def _group() -> None:
    """文件交换 / file-drop transport."""


@app.command()
def scan(
    root: Path = typer.Argument(..., help="drop root: <root>/<partner>/inbox"),
    partner: list[str] = typer.Option(None, "--partner", "-p",
                                      help="partner code(s); default: every folder under root"),
    no_marker: bool = typer.Option(False, "--no-marker",
                                   help="take *.hedui renamed into the inbox without a .done"),
) -> None:
    """Take in every complete dropped file and write a receipt beside each."""
    from verification.config import load_settings
    from verification.locks import exclusive

    settings = load_settings()
    codes = partner or sorted(p.name for p in root.iterdir() if (p / "inbox").is_dir())
    failed = False
    with exclusive(settings.home, "drop-scan", "文件交换扫描 drop scan"):
        for code in codes:
            for result in scan_drop_folder(settings, root, code, require_marker=not no_marker):
                typer.echo(f"{code} {result.file}: {result.status} {result.reason}".rstrip())
                failed |= result.status != "accepted"
    raise typer.Exit(1 if failed else 0)
