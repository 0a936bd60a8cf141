"""`hedui policy`: show the parameters in force for a region and date, and check the files."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from verification.assessment.policy._tree import (
    ParameterError,
    ParameterTree,
    Policy,
    ResolvedValue,
    load_parameters,
    region_chain,
)

app = typer.Typer(help="Assistance policy parameters / 救助政策参数", no_args_is_help=True)

DirectoryOption = Annotated[
    Path | None,
    typer.Option("--parameters", help="Parameter directory (default: the shipped parameters)."),
]
OverlayOption = Annotated[
    Path | None,
    typer.Option("--policy-dir", help="本地政策目录，覆盖随附参数 / the bureau's policy folder "
                 "laid over the shipped parameters (default: $HEDUI_POLICY_DIR)."),
]


@app.command()
def show(
    region: Annotated[str, typer.Option(help="6-digit area code, e.g. 210112")] = "210112",
    on: Annotated[str, typer.Option("--date", help="Date YYYY-MM-DD; default today")] = "",
    directory: DirectoryOption = None,
    policy_dir: OverlayOption = None,
) -> None:
    """Print every value in force with its source region and reference (中文 / English)."""
    tree = _load_or_exit(directory, policy_dir)
    try:
        day = date.fromisoformat(on) if on else date.today()
        chain = region_chain(region)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    policy = tree.at(region, day)
    typer.echo(f"{_region_name(tree, region)} {region} · {day.isoformat()} · {policy.version}")
    if tree.overlay:
        typer.echo(f"本地政策目录 / policy overlay: {tree.overlay}")
    typer.echo("回退顺序 / fall-back: " + " → ".join(chain))
    topic = ""
    for path, resolved in policy.values.items():
        if path.split(".")[0] != topic:
            topic = path.split(".")[0]
            typer.echo(f"\n[{topic}]")
        typer.echo(_describe(path, resolved, policy))


@app.command()
def check(directory: DirectoryOption = None, policy_dir: OverlayOption = None) -> None:
    """Validate every parameter file (and the policy overlay); exit 1 naming the file and key
    of the first error: unknown parameters or keys, missing references, dates given twice."""
    tree = _load_or_exit(directory, policy_dir)
    count = sum(len(entries) for entries in tree.entries.values())
    typer.echo(f"OK: {len(tree.definitions)} parameters, {count} dated values, "
               f"{len(tree.regions)} regions ({tree.directory})")
    if tree.overlay:
        overlaid = sorted({f"{region}:{path}" for (region, path), entries in tree.entries.items()
                           if entries and str(tree.overlay) in entries[0].file})
        typer.echo(f"本地政策目录 / policy overlay {tree.overlay}: {len(overlaid)} parameters "
                   f"replaced ({', '.join(overlaid)}); digest {tree.digest[:16]}")


@app.command("test")
def test_cases(
    files: Annotated[list[Path], typer.Argument(help="YAML case files (OpenFisca-style).")],
    directory: DirectoryOption = None,
) -> None:
    """Run readable cases through the assessment; exit 1 listing every case that does not hold.

    用可读案例检验政策参数 / check the parameters against readable cases."""
    from verification.assessment.policy.cases import check_case, load_case_file

    tree = _load_or_exit(directory)
    failed = total = 0
    for path in files:
        for case in load_case_file(path):
            total += 1
            problems = check_case(case, tree)
            if problems:
                failed += 1
                typer.echo(f"✗ {path.name}: {case.get('name', '?')}")
                for problem in problems:
                    typer.echo(f"    {problem}")
    typer.echo(f"{total - failed}/{total} 个案例通过 / cases hold")
    if failed:
        raise typer.Exit(1)


@app.command("eval")
def eval_cases(
    folder: Annotated[Path, typer.Argument(help="folder of rule cases (*.yaml) with policies/")]
    = Path("tests/policy/cases/rules"),
) -> None:
    """Run the cases written from the rules through the real path (caseload or batch file,
    packed partner feeds, the cases' policy overlays) and print pass counts per rule family.

    按规则类别统计案例通过数 / pass counts per rule family; exit 1 if any case fails."""
    from verification.assessment.policy.case_runner import main

    raise typer.Exit(main([str(folder)]))


def _load_or_exit(directory: Path | None, overlay: Path | None = None) -> ParameterTree:
    try:
        return load_parameters(directory, overlay=overlay)
    except ParameterError as exc:
        typer.echo(f"参数文件错误 / parameter error: {exc}", err=True)
        raise typer.Exit(1) from None


def _region_name(tree: ParameterTree, region: str) -> str:
    names = tree.regions.get(region)
    return f"{names['zh']} / {names['en']}" if names else "(未登记地区 / unlisted region)"


def _describe(path: str, resolved: ResolvedValue, policy: Policy) -> str:
    definition = resolved.definition
    head = f"  {path}: {definition.description['zh']} / {definition.description['en']}"
    if resolved.value is None:
        return f"{head}\n      未设定 / not set"
    since = resolved.start.isoformat() if resolved.start else ""
    lines = [
        head,
        f"      = {_format(resolved.value)} ({definition.unit})  "
        f"自 / since {since}, 地区 / region {resolved.region}",
        f"      依据 / reference: {policy.reference(path)}",
    ]
    return "\n".join(lines)


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {item}" for key, item in value.items())
    if isinstance(value, list):
        return "; ".join(_format(item) for item in value)
    return str(value)
