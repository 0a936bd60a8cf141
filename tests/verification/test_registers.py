"""The disability register over the roster, and the 户籍 and provident-fund signals."""

import datetime as dt

import pandas as pd

from verification.assessment.policy import load_parameters
from verification.assessment.registers import members_with_disability_register
from verification.flags.signals import change_signals, lodgers_of

AS_OF = dt.date(2026, 11, 1)


def _members() -> pd.DataFrame:
    return pd.DataFrame({"household_id": [1, 1, 2], "person_token": [10, 11, 20],
                         "disability_grade": [0, 2, 0], "disability_type": ["", "limb", ""]})


def _evidence(rows: list[tuple]) -> pd.DataFrame:
    """rows: (household_id, person_token, item, amount, start, grade of the match)."""
    frame = pd.DataFrame(rows, columns=["household_id", "person_token", "item", "amount",
                                        "period_start", "match_grade"])
    return frame.assign(source_kind="disability", feed_id=1,
                        record_ref=[f"R{i}" for i in range(len(frame))],
                        period_start=pd.to_datetime(frame["period_start"]),
                        period_end=pd.to_datetime(frame["period_start"]))


def test_the_latest_certain_certificate_replaces_the_roster_and_others_keep_theirs():
    evidence = _evidence([
        (1, 10, "disability_intellectual", 3.0, "2015-01-01", "certain"),
        (1, 11, "disability_limb", 1.0, "2010-01-01", "certain"),
        (1, 11, "disability_limb", 4.0, "2022-01-01", "certain"),  # reassessed later
        (2, 20, "disability_visual", 1.0, "2020-01-01", "probable"),  # not certain: no effect
        (2, 20, "wage", 900.0, "2026-10-01", "certain"),
    ])
    members = _members()
    out = members_with_disability_register(members, evidence)
    assert out[["disability_grade", "disability_type"]].values.tolist() == [
        [3, "intellectual"], [4, "limb"], [0, ""]]
    assert members["disability_grade"].tolist() == [0, 2, 0]  # the caller's frame is unchanged


def test_a_cancelled_latest_certificate_keeps_the_roster_grade_marked_cancelled():
    """The register's latest record of member 11 is a cancellation: the roster's grade 2
    stays but is marked (what rests on it goes to a caseworker); member 10's cancellation was
    followed by a valid certificate, which replaces the roster as before."""
    evidence = _evidence([
        (1, 10, "disability_cancelled", 1.0, "2012-01-01", "certain"),
        (1, 10, "disability_limb", 4.0, "2021-01-01", "certain"),
        (1, 11, "disability_limb", 2.0, "2015-01-01", "certain"),
        (1, 11, "disability_cancelled", 2.0, "2015-01-01", "certain"),  # the same day: cancelled
        (2, 20, "disability_cancelled", 1.0, "2015-01-01", "possible"),  # not certain: nothing
    ])
    out = members_with_disability_register(_members(), evidence)
    assert out[["disability_grade", "disability_type", "certificate_cancelled"]].values.tolist(
    ) == [[4, "limb", False], [2, "limb", True], [0, "", False]]


def test_without_certificates_the_roster_stands_as_it_is():
    members = _members()
    evidence = _evidence([(1, 10, "wage", 900.0, "2026-10-01", "certain")])
    assert members_with_disability_register(members, evidence) is members


def _signals(rows: list[tuple]) -> pd.DataFrame:
    policy = load_parameters().at("210112", AS_OF)
    evidence = _evidence(rows).assign(source_kind="population")
    return change_signals(evidence, policy, AS_OF).set_index("household_id")


def test_births_moves_in_and_out_within_the_change_window_are_household_changes():
    signals = _signals([
        (1, 10, "hukou_birth", 0.0, "2026-06-03", "certain"),
        (2, 20, "hukou_move_out", 0.0, "2026-09-20", "certain"),
        (3, 30, "hukou_move_in", 0.0, "2019-04-01", "certain"),  # long before the window
        (4, 40, "hukou_move_in", 0.0, "2026-08-01", "possible"),  # not certain
    ])
    changed = signals[signals["code"] == "HOUSEHOLD_CHANGED"]
    assert sorted(changed.index) == [1, 2]
    assert changed.loc[1, "evidence_refs"] == "population:1:R0"


def test_a_household_registration_death_is_a_death_record():
    signals = _signals([(1, 10, "death", 0.0, "2026-10-05", "certain")])
    assert list(signals["code"]) == ["MEMBER_DECEASED"]


def test_provident_fund_contributions_that_began_recently_show_new_employment():
    months = pd.date_range("2026-08-01", "2026-10-01", freq="MS").strftime("%Y-%m-%d")
    signals = _signals([(1, 10, "provident_fund_contribution", 400.0, m, "certain")
                        for m in months])
    # no feed reports the job's wage: its income is unknown (a recipient goes to REVIEW)
    assert list(signals["code"]) == ["NEW_EMPLOYMENT", "EMPLOYMENT_WITHOUT_WAGE"]
    assert signals.set_index("code").loc["EMPLOYMENT_WITHOUT_WAGE", "value"] == 1
    paid = _signals([(1, 10, item, amount, m, "certain") for m in months
                     for item, amount in (("provident_fund_contribution", 400.0),
                                          ("wage", 3000.0))])
    assert list(paid["code"]) == ["NEW_EMPLOYMENT"]


def test_a_certificate_issued_after_the_as_of_date_says_nothing_of_it():
    """A review of 2026-11-01 (or a batch run later for that date) takes the register as it
    stood on that date, as it takes a car or a home registered later: not at all."""
    import datetime as dt

    evidence = _evidence([
        (1, 11, "disability_limb", 1.0, "2010-01-01", "certain"),
        (1, 11, "disability_limb", 4.0, "2026-11-20", "certain"),  # re-graded after the date
        (1, 10, "disability_intellectual", 2.0, "2026-11-20", "certain"),  # first issued after
    ])
    out = members_with_disability_register(_members(), evidence, dt.date(2026, 11, 1))
    assert out[["disability_grade", "disability_type"]].values.tolist()[:2] == [
        [0, ""], [1, "limb"]]
    latest = members_with_disability_register(_members(), evidence, dt.date(2026, 12, 1))
    assert latest[["disability_grade", "disability_type"]].values.tolist()[:2] == [
        [2, "intellectual"], [4, "limb"]]


def test_a_lodgers_death_is_no_members_death() -> None:
    """A roster person without a support duty (a lodger) is no family member: their death
    raises no MEMBER_DECEASED; the same record of a member does."""
    policy = load_parameters().at("210112", AS_OF)
    evidence = _evidence([(1, 10, "death", 0.0, "2026-10-05", "certain"),
                          (2, 20, "death", 0.0, "2026-10-05", "certain")]).assign(
        source_kind="deaths")
    members = pd.DataFrame({"household_id": [1, 1, 2], "person_token": [10, 11, 20],
                            "exclusion": ["no_support_duty", "", None]})
    lodgers = lodgers_of(members)
    assert list(lodgers) == [(1, 10)]
    signals = change_signals(evidence, policy, AS_OF, lodgers)
    assert signals[["household_id", "code"]].values.tolist() == [[2, "MEMBER_DECEASED"]]
