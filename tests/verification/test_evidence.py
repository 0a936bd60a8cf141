"""Staged rows become evidence items exactly as each contract's x-hedui mapping declares."""

from datetime import date

import pandas as pd

from schemas import contract_for
from verification.assessment.evidence import EVIDENCE_COLUMNS, evidence_from_staged, standing_on


def test_wage_rows_give_wage_and_contribution_items_over_their_month():
    staged = pd.DataFrame({
        "person_token": pd.array([1, 2], dtype="Int64"), "record_id": ["W1", "W2"],
        "period": pd.to_datetime(["2026-10-01", "2026-09-01"]),
        "wage_amount": [3000.0, 2500.0], "si_contribution": [315.0, float("nan")],
    })
    ev = evidence_from_staged(staged, contract_for("wages"), feed_id=9)
    assert list(ev.columns) == EVIDENCE_COLUMNS
    assert sorted(ev["item"]) == ["si_contribution", "wage", "wage"]
    wage = ev[(ev["item"] == "wage") & (ev["record_ref"] == "W1")].iloc[0]
    assert (wage["amount"], wage["feed_id"]) == (3000.0, 9)
    assert (str(wage["period_start"].date()), str(wage["period_end"].date())) == (
        "2026-10-01", "2026-10-31")


def test_only_active_vehicles_count_and_the_type_names_the_item():
    staged = pd.DataFrame({
        "person_token": pd.array([1, 1, 2], dtype="Int64"), "record_id": ["V1", "V2", "V3"],
        "vehicle_type": ["car", "car", "disability_vehicle"],
        "registered_on": pd.to_datetime(["2024-01-05", "2019-03-01", "2025-06-01"]),
        "status": ["active", "deregistered", "active"],
    })
    ev = evidence_from_staged(staged, contract_for("vehicles"), feed_id=3)
    assert ev.set_index("record_ref")["item"].to_dict() == {"V1": "car",
                                                            "V3": "disability_vehicle"}
    assert (ev["amount"] == 0).all()


def test_an_empty_feed_gives_empty_evidence_with_the_seam_columns():
    staged = pd.DataFrame({"person_token": pd.array([], dtype="Int64"), "record_id": [],
                           "date_of_death": pd.to_datetime([])})
    ev = evidence_from_staged(staged, contract_for("deaths"), feed_id=1)
    assert ev.empty and list(ev.columns) == EVIDENCE_COLUMNS


def test_population_changes_map_to_household_items_and_a_death_to_the_death_item():
    staged = pd.DataFrame({
        "person_token": pd.array([1, 2, 3, 4], dtype="Int64"),
        "record_id": ["P1", "P2", "P3", "P4"],
        "event": ["birth", "move_in", "move_out", "death"],
        "event_date": pd.to_datetime(["2026-05-01", "2026-06-01", "2026-07-01", "2026-08-01"]),
    })
    ev = evidence_from_staged(staged, contract_for("population"), feed_id=4)
    assert ev.set_index("record_ref")["item"].to_dict() == {
        "P1": "hukou_birth", "P2": "hukou_move_in", "P3": "hukou_move_out", "P4": "death"}
    death = ev[ev["item"] == "death"].iloc[0]
    assert str(death["period_start"].date()) == "2026-08-01"


def test_a_disability_certificate_gives_its_type_and_grade_a_cancelled_one_its_cancellation():
    staged = pd.DataFrame({
        "person_token": pd.array([1, 2], dtype="Int64"), "record_id": ["D1", "D2"],
        "disability_type": ["disability_limb", "disability_visual"],
        "disability_grade": pd.array([2, 1], dtype="Int64"),
        "issued_on": pd.to_datetime(["2019-03-01", "2012-01-01"]),
        "status": ["valid", "cancelled"],
    })
    ev = evidence_from_staged(staged, contract_for("disability"), feed_id=5)
    assert sorted(ev[["record_ref", "item", "amount"]].values.tolist()) == [
        ["D1", "disability_limb", 2.0], ["D2", "disability_cancelled", 1.0]]


def test_excluded_payments_and_tax_categories_keep_their_own_items():
    subsidies = pd.DataFrame({
        "person_token": pd.array([1, 1], dtype="Int64"), "record_id": ["S1", "S2"],
        "period": pd.to_datetime(["2026-09-01", "2026-10-01"]),
        "payment_type": ["scholarship", "assistance_payment"], "amount": [500.0, 620.0]})
    tax = pd.DataFrame({
        "person_token": pd.array([2], dtype="Int64"), "record_id": ["T1"],
        "period": pd.to_datetime(["2026-09-01"]), "income_category": ["labour_remuneration"],
        "taxable_income": [3000.0]})
    assert sorted(evidence_from_staged(subsidies, contract_for("subsidies"), 6)["item"]) == [
        "assistance_payment", "scholarship"]
    taxed = evidence_from_staged(tax, contract_for("tax"), 7)
    assert list(taxed["item"]) == ["labour_remuneration"]  # no tax paid sent: no tax item
    # the tax paid, where sent, is its own item (转移性支出, deducted from income)
    paid = evidence_from_staged(tax.assign(tax_paid=[120.0]), contract_for("tax"), 7)
    assert list(zip(paid["item"], paid["amount"], strict=True)) == [
        ("labour_remuneration", 3000.0), ("income_tax", 120.0)]



def test_evidence_rows_reordered_by_slices_equal_a_gather():
    import numpy as np
    import pyarrow as pa

    from verification.pipeline import _reordered

    rng = np.random.default_rng(7)
    street = np.sort(rng.integers(0, 5, 200))  # one mapping's items, grouped by street
    table = pa.table({"record_ref": [f"R{i}" for i in range(200)], "street": street})
    wages = pa.concat_tables([table, table])  # two mappings (wage, contribution), each grouped
    cases = [(table, np.argsort(street, kind="stable")),  # already in order: no copy
             (wages, np.argsort(np.concatenate([street, street]), kind="stable")),  # 10 runs
             (table, rng.permutation(200)),  # any order at all
             (table.slice(0, 0), np.arange(0))]
    for rows, order in cases:
        assert _reordered(rows, order).equals(rows.take(pa.array(order, pa.int64())))


def test_a_balance_stands_until_the_next_balance_of_the_same_account():
    staged = pd.DataFrame({
        "person_token": pd.array([1, 1, 1, 1, 2, 1], dtype="Int64"),
        "record_id": ["D1", "D2", "D3", "D4", "D5", "D6"],
        "institution": ["盛京银行", "盛京银行", "盛京银行", "盛京银行", "盛京银行", "招商银行"],
        "account_type": ["deposit", "deposit", "deposit", "security", "deposit", "deposit"],
        "account_id": ["A", "A", "B", "A", "A", "A"],
        "balance": [100.0, 200.0, 50.0, 9.0, 7.0, 1.0],
        "as_of": pd.to_datetime(["2026-08-31", "2026-09-30", "2026-08-31", "2026-08-31",
                                 "2026-08-31", "2026-08-31"]),
    })
    ev = evidence_from_staged(staged, contract_for("deposits"), feed_id=4)
    ends = {r: str(e.date()) for r, e in zip(ev["record_ref"], ev["period_end"], strict=True)}
    # D1 is replaced by D2 (same person, bank, type and account); every other balance is the
    # latest of its account and ends where it starts
    assert ends == {"D1": "2026-09-30", "D2": "2026-09-30", "D3": "2026-08-31",
                    "D4": "2026-08-31", "D5": "2026-08-31", "D6": "2026-08-31"}
    starts, stops = ev["period_start"].to_numpy(), ev["period_end"].to_numpy()
    standing = dict(zip(ev["record_ref"], standing_on(starts, stops, date(2026, 10, 1)),
                        strict=True))
    assert [r for r, s in standing.items() if not s] == ["D1"]
    # on a day between the two, the first still stands and the second is not yet known
    between = dict(zip(ev["record_ref"], standing_on(starts, stops, date(2026, 9, 15)),
                       strict=True))
    assert (between["D1"], between["D2"]) == (True, False)
