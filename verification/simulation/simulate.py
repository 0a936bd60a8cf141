"""Re-assess a finished review's households under other parameters and compare (政策测算).

The inputs are exactly what the review assessed: the households and members its shards kept
(``shard-*/households.parquet``, ``members.parquet``), its matched evidence
(``evidence.parquet``) and its sources (the feed versions the run recorded), all under
``var/runs/run-<id>/``. Nothing is written to the database and no flag is raised: a simulation
says what the assessment would give, household by household, and what it would cost.

Each scenario is compared with the baseline (by default the shipped parameters): a household
*gains* when the baseline finds it eligible for no category and the scenario for one, *loses* in
the opposite case, and *changes category* when both find it eligible for different ones. A
household undetermined in either (missing or stale source, no counted member) is counted apart:
its outcome does not depend on the parameters. Costs are the monthly cash benefits (低保 and 特困
support; edge and rigid-spending households get no cash benefit in the assessment) and twelve
times that a year.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from verification.assessment.assess import CATEGORIES, assess
from verification.config import Settings
from verification.simulation.scenarios import Scenario
from verification.storage import session_scope
from verification.storage.models import Run

CHANGES = ("gain", "loss", "change", "same", "undetermined")
ALL_CATEGORIES = (*CATEGORIES, "none")


class SimulationError(RuntimeError):
    """The simulation cannot run; the message says why in Chinese and English."""


@dataclass(frozen=True)
class RunInputs:
    """What one finished review assessed."""

    run_id: int
    run_key: str
    as_of: dt.date
    region: str
    policy_version: str  # the version the review itself used
    households: pd.DataFrame  # index household_id
    members: pd.DataFrame
    evidence: pd.DataFrame
    sources: pd.DataFrame


def latest_review(settings: Settings) -> int:
    with session_scope(settings.database_url) as session:
        found = session.scalar(select(Run.id).where(Run.kind == "review", Run.status == "done")
                               .order_by(Run.as_of.desc(), Run.id.desc()).limit(1))
    if found is None:
        raise SimulationError("还没有已完成的核对，无法测算 / no finished review to simulate on")
    return found


def load_run_inputs(settings: Settings, run_id: int | None = None) -> RunInputs:
    """The households, members, evidence and sources of review ``run_id`` (default: the
    latest finished review), as its shards kept them."""
    from verification.pipeline import sources_frame

    run_id = latest_review(settings) if run_id is None else run_id
    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise SimulationError(f"没有编号为 {run_id} 的核对 / no run {run_id}")
        if run.status != "done":
            raise SimulationError(f"核对 {run_id} 尚未完成（{run.status}）/ run {run_id} is not "
                                  "finished")
        facts = (run.run_key, run.as_of, run.region, run.policy_version, run.feed_versions)
    folder = settings.runs_dir / f"run-{run_id}"
    shards = sorted(folder.glob("shard-*/households.parquet"))
    if not shards or not (folder / "evidence.parquet").exists():
        raise SimulationError(
            f"核对 {run_id} 的暂存数据不存在（已清理，或该次核对早于测算功能），请重新运行该次核对"
            f" / run {run_id} kept no staged households and evidence in {folder}: rerun it")
    households = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    households = households.set_index("household_id")
    members = pd.concat([pd.read_parquet(p.with_name("members.parquet")) for p in shards],
                        ignore_index=True)
    evidence = pd.read_parquet(folder / "evidence.parquet")
    evidence = evidence[evidence["household_id"].isin(households.index)]
    return RunInputs(run_id, facts[0], facts[1], facts[2], facts[3], households, members,
                     evidence.reset_index(drop=True), sources_frame(facts[4]))


# ---- assess and compare ------------------------------------------------------------------------
@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    policy_versions: dict[str, str]  # region → version the scenario gives on the as-of date
    households: pd.DataFrame  # one row per household: the comparison with the baseline

    @property
    def changed(self) -> pd.DataFrame:
        return self.households[self.households["change"].isin(("gain", "loss", "change"))]


def assess_under(inputs: RunInputs, scenario: Scenario) -> tuple[pd.DataFrame, dict[str, str]]:
    result = assess(inputs.households, inputs.members, inputs.evidence, inputs.sources,
                    scenario.tree, inputs.as_of, with_reasons=False)
    return result.results, result.policy_versions


def compare(households: pd.DataFrame, base: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """One row per household: where it is, its persons, baseline and scenario outcome and
    benefit, and the change (``CHANGES``). Vectorised over all households."""
    before, after = base["category"].to_numpy(), new["category"].to_numpy()
    undetermined = (base["decision"].eq("undetermined") | new["decision"].eq("undetermined"))
    change = np.select(
        [undetermined.to_numpy(), (before == "none") & (after != "none"),
         (before != "none") & (after == "none"), before != after],
        ["undetermined", "gain", "loss", "change"], default="same")
    return pd.DataFrame({
        "household_code": households["household_code"].to_numpy(),
        "street_code": households["street_code"].to_numpy(),
        "community_code": households["community_code"].to_numpy(),
        "urban_rural": households["urban_rural"].to_numpy(),
        "persons": new["household_size"].fillna(0).astype(np.int64).to_numpy(),
        "base_category": before, "new_category": after,
        "base_benefit": base["benefit"].fillna(0.0).to_numpy(dtype=np.float64),
        "new_benefit": new["benefit"].fillna(0.0).to_numpy(dtype=np.float64),
        "per_capita_income": new["per_capita_income"].to_numpy(dtype=np.float64),
        "base_standard": base["standard"].to_numpy(dtype=np.float64),
        "new_standard": new["standard"].to_numpy(dtype=np.float64),
        "decided": ~undetermined.to_numpy(),
        "change": change,
    }, index=households.index)


def simulate(inputs: RunInputs, baseline: Scenario,
             scenarios: list[Scenario]) -> tuple[dict[str, str], list[ScenarioResult]]:
    """The baseline's policy versions and one comparison per scenario."""
    if not scenarios:
        raise SimulationError("至少需要一个测算情景 / give at least one scenario "
                              "(--parameters DIR or --raise-standard 5,7,10)")
    base, base_versions = assess_under(inputs, baseline)
    results = []
    for scenario in scenarios:
        new, versions = assess_under(inputs, scenario)
        results.append(ScenarioResult(scenario, versions, compare(inputs.households, base, new)))
    return base_versions, results


# ---- summaries ---------------------------------------------------------------------------------
_AREA_COLUMNS = ["households", "persons", "eligible_base", "eligible_new", "gain_households",
                 "gain_persons", "loss_households", "loss_persons", "change_households",
                 "change_persons", "undetermined_households", "monthly_base", "monthly_new"]


def indicators(table: pd.DataFrame) -> pd.DataFrame:
    """Per household the numbers the area tables add up (``by_area`` takes it, so the street,
    community and total tables share one computation)."""
    change, persons = table["change"].to_numpy(), table["persons"].to_numpy()
    frame = {"street_code": table["street_code"].to_numpy(),
             "community_code": table["community_code"].to_numpy(),
             "households": np.ones(len(table), dtype=np.int64), "persons": persons,
             "eligible_base": (table["base_category"] != "none").to_numpy(dtype=np.int64),
             "eligible_new": (table["new_category"] != "none").to_numpy(dtype=np.int64)}
    for name in ("gain", "loss", "change", "undetermined"):
        hit = change == name
        frame[f"{name}_households"] = hit.astype(np.int64)
        if name != "undetermined":
            frame[f"{name}_persons"] = np.where(hit, persons, 0)
    frame["monthly_base"] = table["base_benefit"].to_numpy()
    frame["monthly_new"] = table["new_benefit"].to_numpy()
    return pd.DataFrame(frame)


def by_area(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per street (or street and community; ``[]``: the total): households, persons,
    gaining/losing/changing households and persons, eligible before and after, monthly and
    yearly cost and change. ``table`` is a comparison or its ``indicators``."""
    frame = table if "households" in table.columns else indicators(table)
    if keys:
        grouped = frame.groupby(keys, sort=True)[_AREA_COLUMNS].sum().reset_index()
    else:
        grouped = frame[_AREA_COLUMNS].sum().to_frame().T.astype(
            {c: "int64" for c in _AREA_COLUMNS if not c.startswith("monthly")})
    return _costs(grouped)


def by_category(table: pd.DataFrame) -> pd.DataFrame:
    """Per category: households and persons in it before and after, entering and leaving it,
    and the monthly and yearly cost of its benefits before and after."""
    moved = table["base_category"] != table["new_category"]
    sides = {
        "base": table.groupby("base_category").agg(
            households_base=("persons", "size"), persons_base=("persons", "sum"),
            monthly_base=("base_benefit", "sum")),
        "new": table.groupby("new_category").agg(
            households_new=("persons", "size"), persons_new=("persons", "sum"),
            monthly_new=("new_benefit", "sum")),
        "entering": table[moved].groupby("new_category").agg(
            entering_households=("persons", "size"), entering_persons=("persons", "sum")),
        "leaving": table[moved].groupby("base_category").agg(
            leaving_households=("persons", "size"), leaving_persons=("persons", "sum")),
    }
    frame = pd.concat(sides.values(), axis=1).reindex(list(ALL_CATEGORIES)).fillna(0)
    counts = [c for c in frame.columns if not c.startswith("monthly")]
    frame[counts] = frame[counts].astype("int64")
    frame = frame.rename_axis("category").reset_index()
    return _costs(frame[["category", "households_base", "households_new", "persons_base",
                         "persons_new", "entering_households", "entering_persons",
                         "leaving_households", "leaving_persons", "monthly_base",
                         "monthly_new"]])


def _costs(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("monthly_base", "monthly_new"):
        frame[column] = frame[column].astype(float).round(2)
    frame["monthly_change"] = (frame["monthly_new"] - frame["monthly_base"]).round(2)
    for part in ("base", "new", "change"):
        frame[f"yearly_{part}"] = (frame[f"monthly_{part}"] * 12).round(2)
    return frame


def standards(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """urban/rural → the baseline's and the scenario's standard (the most common one, should
    households of several regions differ)."""
    found: dict[str, dict[str, float | None]] = {}
    for area, part in table.groupby("urban_rural"):
        found[str(area)] = {side: _mode(part[f"{side}_standard"]) for side in ("base", "new")}
    return found


def _mode(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mode().iloc[0]) if len(values) else None


def simulation_home(settings: Settings) -> Path:
    return settings.home / "simulations"
