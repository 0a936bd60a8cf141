"""A record that carries a recipient's valid ID number under another person's name and birth date
(a clerical mix-up, or the recipient under a name the roster does not know). The matcher refuses
to call it the ID owner's (never certain) and may find nobody else it describes; the record must
not vanish. It reaches the ID owner's household as uncertain evidence: a death always sends the
household to REVIEW, a record that would change the outcome does, and one that would change
nothing is listed in the run's unresolved-records.csv (second outside probe)."""

import datetime as dt
import json
import shutil

import pandas as pd
import pytest

from tests.conftest import flags_by_household, pull_everything, review_in_process
from verification.intake.roster import load_roster

AS_OF = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def large_district(tmp_path_factory):
    """300 households, as the demo: enough token-matched identities for the matcher to learn its
    weights (method ``labelled``), under which a wholly different name and birth date refute
    the ID (with the prior weights such a pair stays ``possible``)."""
    from verification.synthetic.generator import generate, write_district

    folder = tmp_path_factory.mktemp("district-300")
    write_district(generate(300, seed=11), folder)
    return folder


def _append(path, rows: list[dict]) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).fillna("").to_csv(
        path, index=False, encoding="utf-8")


def test_a_record_under_a_recipients_id_with_another_name_reaches_the_id_owner(
        settings, large_district, tmp_path):
    district = tmp_path / "district"
    shutil.copytree(large_district, district)
    truth = pd.read_csv(district / "truth.csv", dtype=str)
    roster = pd.read_csv(district / "roster.csv", dtype=str, keep_default_na=False)
    kept = truth.loc[truth["scenario"] == "keep", "household_code"].tolist()[:3]
    heads = roster[roster["household_code"].isin(kept) & (roster["relation"] == "户主")]
    owner = dict(zip(heads["household_code"], heads["id_number"], strict=True))
    died, earns, small = kept
    stranger = {"name": "欧阳振华", "gender": "男", "birth_date": "1931-03-09"}
    _append(district / "feeds" / "deaths.csv", [
        {"record_id": "DE9000001", "id_number": owner[died], **stranger,
         "date_of_death": "2026-10-03"}])
    wages = pd.read_csv(district / "feeds" / "wages.csv", dtype=str)
    payer = wages.iloc[0]
    _append(district / "feeds" / "wages.csv", [
        {"record_id": record, "id_number": owner[code], **stranger, "period": "2026-10",
         "employer_name": payer["employer_name"],
         "employer_credit_code": payer["employer_credit_code"], "wage_amount": amount,
         "si_contribution": "0.00"}
        for record, code, amount in (("WA9000001", earns, "9000.00"),
                                     ("WA9000002", small, "1.00"))])

    assert {r.status for r in pull_everything(settings, district)} == {"accepted"}
    load_roster(settings, district / "roster.csv")
    run_id = review_in_process(settings, AS_OF, run_key="id-with-another-name")
    got = flags_by_household(settings, run_id).set_index("household_code")
    for code in (died, earns):  # never REMOVE on it, never silently KEEP: an officer looks
        assert got.loc[code, "kind"] == "REVIEW", code
        assert "MATCH_UNCERTAIN" in got.loc[code, "code"]
    assert got.loc[small, "kind"] == "KEEP"  # one yuan changes nothing ...
    folder = settings.runs_dir / f"run-{run_id}"
    listed = pd.read_csv(folder / "unresolved-records.csv", dtype=str)
    assert "WA9000002" in set(listed["record_ref"])  # ... and is listed for the run
    evidence = pd.read_parquet(folder / "evidence.parquet", columns=["record_ref", "match_grade"])
    grades = evidence.set_index("record_ref")["match_grade"].astype(str)
    assert set(grades.loc[["DE9000001", "WA9000001", "WA9000002"]]) == {"possible"}
    log = json.loads((folder / "matching.json").read_text("utf-8"))
    assert log["model"]["method"] == "labelled"
    assert log["id_owner_links"] == 3
