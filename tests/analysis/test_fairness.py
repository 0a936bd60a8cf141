"""The fairness audit: stored with every run, its counts equal the flags in the database, groups
beyond the configured ratio are highlighted (and only they), and the run summary shows it."""

import dataclasses

import pandas as pd
from sqlalchemy import select

from tests.analysis.conftest import AS_OF
from verification.fairness import fairness_settings, load_fairness
from verification.fairness.audit import RunFrames, rates
from verification.reports import write_run_reports
from verification.storage import session_scope
from verification.storage.evidence_files import run_evidence
from verification.storage.models import Flag, FlagReason, Household, Member


def _database_flags(settings, run_id):
    with session_scope(settings.database_url) as session:
        flags = pd.DataFrame(session.execute(
            select(Flag.id, Flag.household_id, Flag.kind, Household.status,
                   Household.urban_rural, Household.street_code)
            .join(Household, Household.id == Flag.household_id)
            .where(Flag.run_id == run_id)).all(),
            columns=["flag_id", "household_id", "kind", "status", "urban_rural", "street_code"])
        sources = run_evidence(session, settings.home, run_id, columns=["flag_id",
                                                                        "source_kind"])
        reasons = pd.DataFrame(session.execute(
            select(FlagReason.flag_id, FlagReason.code).join(Flag)
            .where(Flag.run_id == run_id)).all(), columns=["flag_id", "code"])
        members = pd.DataFrame(session.execute(
            select(Member.household_id, Member.birth_date, Member.exclusion)).all(),
            columns=["household_id", "birth_date", "exclusion"])
    return flags, sources, reasons, members


def test_stored_audit_counts_equal_the_database(reviewed):
    record = load_fairness(reviewed.settings, reviewed.run_id)
    assert record["run_id"] == reviewed.run_id and record["as_of"] == AS_OF.isoformat()
    flags, sources, reasons, members = _database_flags(reviewed.settings, reviewed.run_id)
    assert record["households"] == len(flags)
    at_risk = fairness_settings().at_risk
    got = {(r["group"], r["kind"]): r for r in record["rates"] if r["dimension"] == "urban_rural"}
    for area, label in (("urban", "城镇"), ("rural", "农村")):
        part = flags[flags["urban_rural"] == area]
        for kind in fairness_settings().kinds:
            eligible = part[part["status"].isin(at_risk[kind])] if kind in at_risk else part
            row = got[(label, kind)]
            assert (row["n"], row["at_risk"]) == (len(part), len(eligible))
            assert row["count"] == int((eligible["kind"] == kind).sum())
            assert row["rate"] == round(row["count"] / len(eligible), 4) if len(eligible) else 0
    counted = members[members["exclusion"].fillna("") == ""]
    counted = counted[counted["household_id"].isin(flags["household_id"])]
    ages = [r for r in record["rates"] if r["dimension"] == "age_band" and r["kind"] == "REVIEW"]
    assert sum(r["n"] for r in ages) == len(counted) == record["persons"]

    removed = flags[flags["kind"] == "REMOVE"]
    kinds = sources.groupby("flag_id")["source_kind"].nunique()
    review = flags[flags["kind"] == "REVIEW"]
    uncertain = set(reasons.loc[reasons["code"] == "MATCH_UNCERTAIN", "flag_id"])
    for street in record["streets"]:
        mine = removed[removed["street_code"] == street["street_code"]]
        assert street["remove"] == len(mine)
        assert street["remove_single_source"] == int(mine["flag_id"].map(kinds).eq(1).sum())
        theirs = review[review["street_code"] == street["street_code"]]
        assert street["review"] == len(theirs)
        assert street["review_uncertain"] == int(theirs["flag_id"].isin(uncertain).sum())
    assert record["totals"]["remove"] == len(removed) > 0


def _frames(groups: dict[str, tuple[int, int]]) -> RunFrames:
    """Recipients per street: {street: (households, of which REMOVE)}."""
    rows = []
    for street, (n, removed) in groups.items():
        rows += [{"household_id": len(rows) + i, "kind": "REMOVE" if i < removed else "KEEP",
                  "status": "recipient", "category": "dibao", "urban_rural": "urban",
                  "street_code": street, "household_size": 1} for i in range(n)]
    households = pd.DataFrame(rows)
    persons = households[["household_id", "kind", "status"]].assign(age=40, disability_grade=0)
    return RunFrames(households, persons, pd.DataFrame(columns=["household_id", "code"]),
                     pd.DataFrame(columns=["household_id", "source_kind"]))


def test_groups_beyond_the_ratio_are_highlighted_both_ways():
    frames = _frames({"210112001": (100, 30), "210112002": (100, 10), "210112003": (100, 10),
                      "210112004": (10, 5)})
    table = rates(frames)
    removal = table[(table["dimension"] == "street") & (table["kind"] == "REMOVE")]
    removal = removal.set_index(removal["group"].str[-10:-1])
    assert removal.loc["210112001", "rate"] == 0.3
    assert removal.loc["210112001", "rest_rate"] == round(25 / 210, 4)
    assert removal.loc["210112001", "direction"] == "higher"
    assert bool(removal.loc["210112001", "highlighted"])
    # 10 % against (30 + 10 + 5) / 210 = 21 %: below 1/1.5 of the rest
    assert removal.loc["210112002", "direction"] == "lower"
    # half removed, but a group of 10 is below min_group_size: shown, never highlighted
    assert removal.loc["210112004", "rate"] == 0.5 and not removal.loc["210112004",
                                                                       "highlighted"]
    strict = dataclasses.replace(fairness_settings(), disparity_ratio=5.0)
    assert not rates(frames, strict)["highlighted"].any()
    even = _frames({"210112001": (100, 10), "210112002": (100, 10)})
    assert not rates(even)["highlighted"].any()


def test_run_summary_shows_the_audit(reviewed):
    out = write_run_reports(reviewed.settings, reviewed.run_id)
    page = (out / "summary.html").read_text("utf-8")
    assert "公平性审查" in page and "证据单薄的结论" in page
    record = load_fairness(reviewed.settings, reviewed.run_id)
    for street in record["streets"]:
        assert street["street"] in page
    assert (out / "fairness.json").exists()


def test_the_audit_outlives_the_runs_work_folder(reviewed):
    write_run_reports(reviewed.settings, reviewed.run_id)
    stored = reviewed.settings.runs_dir / f"run-{reviewed.run_id}" / "fairness.json"
    expected = load_fairness(reviewed.settings, reviewed.run_id)
    stored.rename(stored.with_suffix(".away"))  # as housekeeping's run_workdirs purge would
    try:
        assert load_fairness(reviewed.settings, reviewed.run_id) == expected
    finally:
        stored.with_suffix(".away").rename(stored)
    assert load_fairness(reviewed.settings, 9999) is None
