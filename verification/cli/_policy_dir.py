"""`--policy-dir`, the bureau's policy folder laid over the shipped parameters, as the commands
that assess (`hedui run`, `hedui batch submit`) take it."""

from __future__ import annotations

from pathlib import Path

import typer

POLICY_DIR_OPTION = typer.Option(
    None, "--policy-dir", help="本地政策目录 / the bureau's policy folder laid over the "
    "shipped parameters (default: $HEDUI_POLICY_DIR)")


def apply_policy_dir(policy_dir: Path | None) -> None:
    """Use the overlay for this process; a broken folder ends the command in one line."""
    from verification.assessment.policy import ParameterError, use_overlay

    try:
        use_overlay(policy_dir)
    except ParameterError as exc:
        typer.echo(f"参数文件错误 / parameter error: {exc}", err=True)
        raise typer.Exit(1) from None
