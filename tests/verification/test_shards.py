"""A large street is reviewed in parts (verification/shards.py): the parts cover its households
once each, and the review's flags, reasons, evidence and reports are those of the street in one
shard."""

import dataclasses
import datetime as dt

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from tests.conftest import flags_by_household, pull_everything, review_in_process
from verification import pipeline
from verification.intake.roster import load_roster
from verification.reports.household_report import household_report
from verification.shards import Shard, plan_shards, shard_names, street_of
from verification.storage import session_scope
from verification.storage.evidence_files import run_evidence
from verification.storage.models import Flag, Household, Run

AS_OF = dt.date(2026, 11, 1)


def test_a_street_over_the_limit_goes_in_parts_of_consecutive_ids():
    streets = pd.Series(["B"] * 11 + ["A"] * 3, index=pd.Index(
        [30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 7, 3, 5], name="household_id"))
    shard_of = plan_shards(streets, limit=4)
    assert shard_names(shard_of) == ["A", "B~30-33", "B~34-37", "B~38-40"]
    assert shard_of.loc[[3, 5, 7]].eq("A").all()
    assert shard_of.loc[36] == "B~34-37"
    assert sorted(shard_of.index) == sorted(streets.index)  # every household once
    for name in shard_names(shard_of):
        part = Shard.parse(name)
        assert part.name == name and street_of(name) == part.street
        if part.span:
            ids = shard_of.index[shard_of.eq(name)]
            assert (ids.min(), ids.max()) == part.span
    assert shard_names(plan_shards(streets, limit=11)) == ["A", "B"]
    with pytest.raises(ValueError, match="shard_households"):
        plan_shards(streets, limit=0)
    with pytest.raises(ValueError, match="shard name"):
        Shard.parse("B~x-y")


def _evidence_by_household(settings, run_id: int) -> pd.DataFrame:
    with session_scope(settings.database_url) as session:
        owners = dict(session.execute(select(Flag.id, Household.household_code).join(
            Household, Household.id == Flag.household_id).where(Flag.run_id == run_id)).all())
        evidence = run_evidence(session, settings.home, run_id)
    evidence["household_code"] = evidence.pop("flag_id").map(owners)
    return evidence.sort_values(list(evidence.columns)).reset_index(drop=True)


def _digests(settings, run_id: int) -> dict[str, str]:
    with session_scope(settings.database_url) as session:
        return dict(session.execute(select(Household.household_code, Flag.evidence_digest).join(
            Household, Household.id == Flag.household_id).where(Flag.run_id == run_id)).all())


def test_a_review_in_parts_flags_as_the_review_by_street(settings, district_dir):
    pull_everything(settings, district_dir)
    load_roster(settings, district_dir / "roster.csv")
    whole = review_in_process(settings, AS_OF, run_key="by-street")
    parts_settings = dataclasses.replace(settings, shard_households=4)
    parts = review_in_process(parts_settings, AS_OF, run_key="in-parts")

    folder = settings.runs_dir / f"run-{parts}"
    split = [p.name.removeprefix("shard-") for p in folder.glob("shard-*~*")]
    assert len(split) > 3  # streets of the 60-household district in parts of at most 4
    sizes = [len(pd.read_parquet(folder / f"shard-{name}" / "households.parquet"))
             for name in split]
    assert max(sizes) <= 4
    # the evidence map holds the parts, and a street's name still finds all of its rows
    source = pq.ParquetFile(folder / "evidence.parquet")
    street = street_of(split[0])
    of_street = set(pipeline.evidence_row_groups(source, street))
    of_parts = {g for name in split if street_of(name) == street
                for g in pipeline.evidence_row_groups(source, name)}
    assert of_street == of_parts and of_street
    # one household's groups: only those of the part that holds it (its 核对报告 reads no more)
    part = Shard.parse(split[0])
    of_household = set(pipeline.evidence_row_groups(source, street, part.first))
    assert of_household == set(pipeline.evidence_row_groups(source, split[0]))
    assert of_household < of_street

    a, b = flags_by_household(settings, whole), flags_by_household(settings, parts)
    pd.testing.assert_frame_equal(a, b)
    assert _digests(settings, whole) == _digests(settings, parts)
    pd.testing.assert_frame_equal(_evidence_by_household(settings, whole),
                                  _evidence_by_household(settings, parts))
    with session_scope(settings.database_url) as session:
        counts = {r.id: (r.households, r.counts) for r in session.scalars(select(Run))}
        flag_id = session.scalars(select(Flag.id).where(
            Flag.run_id == parts, Flag.street_code == street, Flag.kind == "REMOVE")).first()
        code = session.scalar(select(Household.household_code).join(
            Flag, Flag.household_id == Household.id).where(Flag.id == flag_id))
        same = session.scalar(select(Flag.id).join(Household).where(
            Flag.run_id == whole, Household.household_code == code))
    assert counts[whole] == counts[parts]
    # the 核对报告 of a household in a street reviewed in parts shows the same evidence
    report = household_report(parts_settings, parts, flag_id, generated=AS_OF)
    before = household_report(settings, whole, same, generated=AS_OF)

    def plain(page: str, run_id: int, key: str) -> str:  # the run's number and key aside
        return (page.replace(f"{code}-{run_id}", code).replace(f"run #{run_id}", "run")
                .replace(key, "key"))

    assert plain(report, parts, "in-parts") == plain(before, whole, "by-street")
    # and so for every household of the street, whichever part holds it
    with session_scope(settings.database_url) as session:
        pairs = session.execute(select(Household.household_code, Flag.run_id, Flag.id).join(
            Household, Household.id == Flag.household_id).where(
            Flag.street_code == street, Flag.run_id.in_([whole, parts]))).all()
    ids = {(c, r): i for c, r, i in pairs}
    codes = sorted({c for c, _, _ in pairs})
    assert len(codes) > 4
    for code in codes:
        assert plain(household_report(parts_settings, parts, ids[code, parts], generated=AS_OF),
                     parts, "in-parts") == plain(household_report(
                         settings, whole, ids[code, whole], generated=AS_OF), whole, "by-street")
