"""The fairness audit of a review or batch: who gets which flag, by group, and where the flags
lean on thin evidence (docs/fairness.md).

Set-based over the run's own frames (the shard folders ``finish_review`` writes): each
dimension's groups labelled per distinct value and counted with one bincount per kind, no loop
over households. Household dimensions (household size,
urban/rural, street, current category) count households; person dimensions (age band, disability)
count the counted members of each household, each carrying the household's flag.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from verification import codes, jurisdictions
from verification.config import Settings
from verification.flags.decide import REVIEW_REASONS

SETTINGS_FILE = Path(__file__).with_name("fairness.yaml")
FILE_NAME = "fairness.json"
UNCERTAIN = "MATCH_UNCERTAIN"
_OTHER_REVIEW = tuple(code for code in REVIEW_REASONS if code != UNCERTAIN)
_DISABILITY = {0: ("无残疾", "No disability"), 1: ("一级残疾", "Grade 1"),
               2: ("二级残疾", "Grade 2"), 3: ("三级残疾", "Grade 3"), 4: ("四级残疾", "Grade 4")}
DIMENSIONS = {  # dimension → (unit, Chinese, English)
    "age_band": ("persons", "年龄段", "age band"),
    "disability": ("persons", "残疾等级", "disability"),
    "household_size": ("households", "家庭人数", "household size"),
    "urban_rural": ("households", "城乡", "urban/rural"),
    "street": ("households", "街道", "street"),
    "category": ("households", "现救助类别", "current category"),
}


@dataclass(frozen=True)
class FairnessSettings:
    disparity_ratio: float
    min_group_size: int
    min_flags: int
    highlight_kinds: tuple[str, ...]
    kinds: tuple[str, ...]
    at_risk: dict[str, tuple[str, ...]]
    age_bands: tuple[dict[str, Any], ...]
    household_sizes: tuple[int, ...]


@cache
def fairness_settings(path: Path = SETTINGS_FILE) -> FairnessSettings:
    """The audit's settings (verification/fairness/fairness.yaml), checked."""
    raw = yaml.safe_load(path.read_text("utf-8"))
    settings = FairnessSettings(
        disparity_ratio=float(raw["disparity_ratio"]), min_group_size=int(raw["min_group_size"]),
        min_flags=int(raw["min_flags"]), highlight_kinds=tuple(raw["highlight_kinds"]),
        kinds=tuple(raw["kinds"]),
        at_risk={kind: tuple(statuses) for kind, statuses in raw.get("at_risk", {}).items()},
        age_bands=tuple(raw["age_bands"]), household_sizes=tuple(raw["household_sizes"]))
    unknown = set(settings.kinds) - set(codes.flags())
    if settings.disparity_ratio <= 1 or unknown or not set(settings.highlight_kinds) <= set(
            settings.kinds):
        raise ValueError(f"{path}: disparity_ratio must be > 1, kinds known flag kinds "
                         f"(unknown: {sorted(unknown)}), highlight_kinds among kinds")
    return settings


# ---- the run's frames --------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFrames:
    """One row per household (flag, status, traits) and one per counted member."""

    households: pd.DataFrame  # household_id, kind, status, category, urban_rural, street_code,
    #                           household_size
    persons: pd.DataFrame  # household_id, kind, status, age, disability_grade
    reasons: pd.DataFrame  # household_id, code
    evidence: pd.DataFrame  # household_id, source_kind


def _read(folders: list[Path], name: str, columns: list[str],
          coded: tuple[str, ...] = ()) -> pd.DataFrame:
    """The shards' ``name`` frames; the ``coded`` text columns as categoricals (the few
    distinct codes of millions of rows, never a Python string per row)."""
    parts = [pq.read_table(folder / f"{name}.parquet", columns=columns,
                           read_dictionary=list(coded)).to_pandas()
             for folder in folders if (folder / f"{name}.parquet").exists()]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({column: "category" for column in coded})  # one set of categories


def run_frames(shard_dirs: list[str], as_of: dt.date) -> RunFrames:
    folders = [Path(folder) for folder in shard_dirs]
    flags = _read(folders, "flags", ["household_id", "kind"])
    households = _read(folders, "households", ["household_id", "status", "category",
                                                "urban_rural", "street_code"])
    sizes = _read(folders, "assessments", ["household_id", "household_size"])
    table = (flags.astype({"kind": str})
             .merge(households, on="household_id", how="left")
             .merge(sizes, on="household_id", how="left"))
    members = _read(folders, "members", ["household_id", "birth_date", "disability_grade",
                                         "counted"])
    members = members[members["counted"].fillna(False).astype(bool)]
    persons = members.merge(table[["household_id", "kind", "status"]], on="household_id")
    persons = persons.assign(age=_age(persons["birth_date"], as_of))
    return RunFrames(table, persons,
                     _read(folders, "flag_reasons", ["household_id", "code"], ("code",)),
                     _read(folders, "flag_evidence", ["household_id", "source_kind"],
                           ("source_kind",)))


def _age(births: pd.Series, as_of: dt.date) -> np.ndarray:
    born = pd.to_datetime(births)
    before = (born.dt.month > as_of.month) | ((born.dt.month == as_of.month)
                                               & (born.dt.day > as_of.day))
    return (as_of.year - born.dt.year - before.astype(int)).to_numpy()


# ---- groups ------------------------------------------------------------------------------------
def _groups(frames: RunFrames,
            config: FairnessSettings) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    """dimension → (the frame it counts, each row's group label)."""
    h, p = frames.households, frames.persons
    bands = pd.Series("", index=p.index, dtype=object)
    for band in config.age_bands:
        bands[(p["age"] >= band["from"]).to_numpy() & (p["age"] <= band["to"]).to_numpy()] = (
            band["zh"])
    grades = p["disability_grade"].fillna(0).astype(int).clip(0, 4)
    largest = max(config.household_sizes)
    size = h["household_size"].fillna(0).astype(int)
    return {
        "age_band": (p, bands.where(bands != "", "其他年龄")),
        "disability": (p, _labels(grades, lambda g: _DISABILITY[g][0])),
        "household_size": (h, _labels(size.clip(upper=largest),
                                      lambda n: f"{n}人及以上" if n == largest else f"{n}人")),
        "urban_rural": (h, _labels(h["urban_rural"], lambda u: codes.label("urban_rural", u))),
        "street": (h, _labels(h["street_code"],
                              lambda s: f"{jurisdictions.street_name(s)}（{s}）")),
        "category": (h, _labels(h["category"].fillna("none"),
                                lambda c: codes.label("categories", c))),
    }


def _labels(values: pd.Series, label: Callable[[Any], str]) -> pd.Series:
    """``values.map(label)`` with ``label`` called once per distinct value, not per row."""
    positions, distinct = pd.factorize(values, use_na_sentinel=False)
    labels = np.array([label(value) for value in distinct], dtype=object)
    return pd.Series(labels[positions], index=values.index)


def rates(frames: RunFrames, config: FairnessSettings | None = None) -> pd.DataFrame:
    """One row per dimension, group and kind: n (all in the group), at_risk, count, rate, the
    rest of the dimension's rate, their ratio and whether the difference is highlighted."""
    config = config or fairness_settings()
    parts = []
    for dimension, (frame, group) in _groups(frames, config).items():
        # each row's group as a number (sorted labels, as a sorted groupby gives them), once
        # per dimension; each kind's counts are then a bincount
        positions, labels = pd.factorize(group.to_numpy(), sort=True)
        for kind in config.kinds:
            parts.append(_kind_rates(frame, positions, labels, kind, config).assign(
                dimension=dimension))
    table = pd.concat(parts, ignore_index=True)
    table["unit"] = table["dimension"].map(lambda d: DIMENSIONS[d][0])
    return table[["dimension", "unit", "group", "kind", "n", "at_risk", "count", "rate",
                  "rest_rate", "ratio", "direction", "highlighted"]]


def _kind_rates(frame: pd.DataFrame, positions: np.ndarray, labels: np.ndarray, kind: str,
                config: FairnessSettings) -> pd.DataFrame:
    statuses = config.at_risk.get(kind)
    at_risk = (frame["status"].isin(statuses).to_numpy() if statuses
               else np.ones(len(frame), dtype=bool))
    flagged = at_risk & (frame["kind"].to_numpy() == kind)
    grouped = positions >= 0  # a row without a group counts in none (as groupby drops it)

    def per_group(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(positions[grouped], None if weights is None else weights[grouped],
                           minlength=len(labels)).astype(np.int64)

    table = pd.DataFrame({"group": labels, "n": per_group(None),
                          "at_risk": per_group(at_risk.astype(np.int64)),
                          "count": per_group(flagged.astype(np.int64))})
    rest_n = table["at_risk"].sum() - table["at_risk"]
    rest_count = table["count"].sum() - table["count"]
    table["rate"] = _share(table["count"], table["at_risk"])
    table["rest_rate"] = _share(rest_count, rest_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["ratio"] = np.where(table["rest_rate"] > 0, table["rate"] / table["rest_rate"],
                                  np.nan)
    big = (table["at_risk"] >= config.min_group_size) & (rest_n >= config.min_group_size)
    higher = big & (table["count"] >= config.min_flags) & (table["rate"] > table["rest_rate"]) & (
        table["rate"] >= config.disparity_ratio * table["rest_rate"])
    lower = big & (table["at_risk"] * table["rest_rate"] >= config.min_flags) & (
        table["rate"] * config.disparity_ratio <= table["rest_rate"])
    table["direction"] = np.select([higher, lower], ["higher", "lower"], default="")
    table["highlighted"] = (higher | lower) & (kind in config.highlight_kinds)
    return table.assign(kind=kind)


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    return (part / whole.where(whole > 0)).fillna(0.0).round(4)


def thin_evidence(frames: RunFrames) -> pd.DataFrame:
    """Per street: REMOVE flags resting on evidence from one source kind only, and REVIEW flags
    raised by uncertain matches (with an uncertain match among their reasons; and those with no
    other reason to review)."""
    h = frames.households
    removed = h.loc[h["kind"].eq("REMOVE"), ["household_id", "street_code"]]
    sources = frames.evidence.groupby("household_id")["source_kind"].nunique()
    single = removed["household_id"].map(sources).fillna(0).eq(1)
    review = h.loc[h["kind"].eq("REVIEW"), ["household_id", "street_code"]]
    reasons = frames.reasons[frames.reasons["household_id"].isin(review["household_id"])]
    uncertain = set(reasons.loc[reasons["code"].eq(UNCERTAIN), "household_id"])
    other = set(reasons.loc[reasons["code"].isin(_OTHER_REVIEW), "household_id"])
    review = review.assign(uncertain=review["household_id"].isin(uncertain),
                           only=review["household_id"].isin(uncertain - other))
    table = pd.DataFrame({"households": h.groupby("street_code").size()})
    table["remove"] = removed.groupby("street_code").size()
    table["remove_single_source"] = removed[single.to_numpy()].groupby("street_code").size()
    table["review"] = review.groupby("street_code").size()
    table["review_uncertain"] = review[review["uncertain"]].groupby("street_code").size()
    table["review_uncertain_only"] = review[review["only"]].groupby("street_code").size()
    table = table.fillna(0).astype(int).reset_index()
    table["street"] = table["street_code"].map(jurisdictions.street_name)
    return table


# ---- stored with the run -----------------------------------------------------------------------
def audit(shard_dirs: list[str], as_of: dt.date,
          config: FairnessSettings | None = None) -> dict[str, Any]:
    """The whole audit as plain data (what ``fairness.json`` holds)."""
    config = config or fairness_settings()
    frames = run_frames(shard_dirs, as_of)
    table = rates(frames, config)
    streets = thin_evidence(frames)
    return {
        "as_of": as_of.isoformat(),
        "households": int(len(frames.households)), "persons": int(len(frames.persons)),
        "settings": {"disparity_ratio": config.disparity_ratio,
                     "min_group_size": config.min_group_size, "min_flags": config.min_flags,
                     "highlight_kinds": list(config.highlight_kinds),
                     "at_risk": {k: list(v) for k, v in config.at_risk.items()}},
        "dimensions": [{"dimension": d, "unit": unit, "zh": zh, "en": en}
                       for d, (unit, zh, en) in DIMENSIONS.items()],
        "rates": _records(table),
        "highlights": _records(table[table["highlighted"]]),
        "streets": _records(streets),
        "totals": {column: int(streets[column].sum()) for column in streets.columns
                   if column not in ("street_code", "street")},
    }


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    clean = table.astype(object).where(table.notna(), None)
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in clean.to_dict("records")]


def fairness_path(settings: Settings, run_id: int) -> Path:
    return settings.runs_dir / f"run-{run_id}" / FILE_NAME


def write_fairness(settings: Settings, run_id: int, shard_dirs: list[str]) -> Path:
    """Audit the run from its shard folders and store ``fairness.json`` in the run's folder
    (replacing an earlier one: a rerun of the run rewrites it)."""
    from verification.storage import session_scope
    from verification.storage.models import Run

    with session_scope(settings.database_url) as session:
        run = session.get(Run, run_id)
        facts = {"run_id": run_id, "run_key": run.run_key, "kind": run.kind,
                 "policy_version": run.policy_version}
        as_of = run.as_of
    path = fairness_path(settings, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**facts, **audit(shard_dirs, as_of)}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, ensure_ascii=False, indent=1), "utf-8")
    temporary.replace(path)  # readers never see half a file
    return path


def load_fairness(settings: Settings, run_id: int) -> dict[str, Any] | None:
    """The run's stored audit, or None when the run has none (not finished, or older). The
    run's work folder is purged after a month (housekeeping.yaml run_workdirs); the copy beside
    its reports is kept as long as they are."""
    for path in (fairness_path(settings, run_id),
                 settings.reports_dir / f"run-{run_id}" / FILE_NAME):
        if path.exists():
            return json.loads(path.read_text("utf-8"))
    return None


# ---- shown to staff ----------------------------------------------------------------------------
def presented(record: dict[str, Any], lang: str = "zh") -> dict[str, Any]:
    """The stored audit arranged for a page (the run summary and the portal): highlighted
    disparities first, then each dimension's groups with every kind's count and rate, then the
    per-street thin-evidence counts. Labels in ``lang``."""
    names = {d["dimension"]: d["zh" if lang == "zh" else "en"] for d in record["dimensions"]}
    units = {"households": "户" if lang == "zh" else "households",
             "persons": "人" if lang == "zh" else "persons"}
    kinds = list(dict.fromkeys(r["kind"] for r in record["rates"]))
    dimensions = []
    for dimension, label in names.items():
        rows: dict[str, dict[str, Any]] = {}
        for r in (r for r in record["rates"] if r["dimension"] == dimension):
            row = rows.setdefault(r["group"], {"group": r["group"], "n": r["n"], "cells": []})
            row["cells"].append({**r, "rate_text": f"{r['rate']:.1%}"})
            row["highlighted"] = row.get("highlighted", False) or r["highlighted"]
        unit = next((units[r["unit"]] for r in record["rates"] if r["dimension"] == dimension),
                    "")
        dimensions.append({"dimension": dimension, "label": label, "unit": unit,
                           "rows": list(rows.values())})
    highlights = [{**h, "dimension_label": names[h["dimension"]],
                   "kind_label": codes.label("flags", h["kind"], lang),
                   "rate_text": f"{h['rate']:.1%}", "rest_text": f"{h['rest_rate']:.1%}",
                   "ratio_text": "—" if h["ratio"] is None else f"{h['ratio']:.2f}",
                   "direction_label": _direction(h["direction"], lang)}
                  for h in record["highlights"]]
    every = "全部家庭" if lang == "zh" else "all households"
    at_risk = record["settings"].get("at_risk", {})
    denominators = [{"kind": codes.label("flags", k, lang), "of": "、".join(
        codes.label("household_status", s, lang) for s in at_risk[k]) if k in at_risk else every}
        for k in kinds]
    return {"kinds": [{"kind": k, "label": codes.label("flags", k, lang)} for k in kinds],
            "denominators": denominators,
            "dimensions": dimensions, "highlights": highlights, "streets": record["streets"],
            "totals": record["totals"], "settings": record["settings"],
            "households": record["households"], "persons": record["persons"]}


def _direction(direction: str, lang: str) -> str:
    if lang == "zh":
        return {"higher": "偏高", "lower": "偏低"}.get(direction, "")
    return direction
