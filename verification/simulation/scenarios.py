"""Scenarios of a policy simulation: parameter folders, each a whole tree ``load_parameters``
reads, and the helper that writes "the shipped parameters with the 低保 standard raised by p %".

A scenario folder is an ordinary parameter tree (docs/policy.md), validated the same way as the
shipped one; its digest and the policy version it gives for the run's region and date are what
a simulation records, so the result can be reproduced from the folder.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import yaml

from verification.assessment.policy import (
    DEFAULT_DIRECTORY,
    ParameterError,
    ParameterTree,
    load_parameters,
)

STANDARD = "dibao.standard"


class ScenarioError(ValueError):
    """A scenario cannot be used; the message says why in Chinese and English."""


@dataclass(frozen=True)
class Scenario:
    name: str  # shown in the reports: the folder's name, or "基线 / baseline"
    directory: Path
    tree: ParameterTree


def load_scenario(directory: Path, name: str | None = None) -> Scenario:
    """A parameter folder as a scenario; a folder that does not validate is refused, naming the
    file and key (as ``hedui policy check`` does)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(f"参数目录不存在 / no such parameter folder: {directory}")
    try:
        tree = load_parameters(directory)
    except ParameterError as err:
        raise ScenarioError(f"参数文件错误 / parameter error: {err}") from None
    return Scenario(name or directory.name, directory, tree)


def scenario_name(percent: float) -> str:
    return f"standard+{percent:g}pct"


def write_raised_standard(out: Path, percent: float, region: str, effective: dt.date,
                          base: Path = DEFAULT_DIRECTORY) -> Path:
    """Copy the parameter tree ``base`` to ``out`` and add, in ``region``'s dibao.yaml, the
    standard in force there on ``effective`` raised by ``percent`` % (urban and rural, rounded
    half up to the yuan), in force from ``effective``. Replaces ``out``; returns it.

    The 特困 support follows (it is a multiple of the standard); other parameters are the base's.
    """
    if not 0 < percent <= 100:
        raise ScenarioError(f"提高比例须在 0–100 之间 / percent must be in (0, 100]: {percent}")
    tree = load_scenario(base).tree
    if region not in tree.regions:
        raise ScenarioError(f"地区 {region} 未登记 / region not listed in regions.yaml")
    current = tree.at(region, effective).value(STANDARD)
    if current is None:
        raise ScenarioError(f"{region} 在 {effective} 没有低保标准 / no {STANDARD} in force")
    raised = {part: _raise(current[part], percent) for part in ("urban", "rural")}
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(base, out)
    file = out / region / "dibao.yaml"
    file.parent.mkdir(exist_ok=True)
    data = (yaml.safe_load(file.read_text("utf-8")) if file.exists() else None) or {}
    values = {str(day): entry for day, entry in  # dates as text, so they sort with the new one
              data.setdefault("standard", {}).setdefault("values", {}).items()}
    values[effective.isoformat()] = {"value": raised, "reference": {
        "title": f"测算情景：低保标准在{current['urban']}/{current['rural']}元基础上"
                 f"提高{percent:g}%（非正式文件）",
        "en": f"SIMULATION: standard raised by {percent:g} % (not a document)", "example": True}}
    data["standard"]["values"] = dict(sorted(values.items()))
    header = (f"# 测算情景 / simulation scenario: {STANDARD} +{percent:g} % from "
              f"{effective.isoformat()}, written by `hedui simulate --raise-standard` from "
              f"{base}.\n# Not a policy document: do not copy into the shipped parameters.\n")
    file.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    load_scenario(out)  # what was written must load like any parameter tree
    return out


def _raise(value: float, percent: float) -> int:
    raised = Decimal(str(value)) * (Decimal(100) + Decimal(str(percent))) / Decimal(100)
    return int(raised.quantize(Decimal(1), rounding=ROUND_HALF_UP))
