"""The feed diff: persons whose rows were added, removed or changed are found, and only they;
order, line numbers and unrelated fields do not count as change."""

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import contract_for
from verification.intake.digests import digest_columns, digests_path, person_digests
from verification.recheck import diff_feeds

WAGES = contract_for("wages")


def _wages(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame([r[1:] for r in rows], columns=["record_id", "period", "wage_amount"])
    frame.insert(0, "person_token", pd.array([r[0] for r in rows], dtype="Int64"))
    frame["period"] = pd.to_datetime(frame["period"])
    return frame.assign(si_contribution=frame["wage_amount"] * 0.1, employer_name="某公司",
                        name_chars="k1", gender="F", _line=np.arange(len(frame)))


def _diff(tmp_path, old: pd.DataFrame, new: pd.DataFrame):
    old.to_parquet(tmp_path / "old.parquet", index=False)
    new.to_parquet(tmp_path / "new.parquet", index=False)
    return diff_feeds(tmp_path / "old.parquet", tmp_path / "new.parquet", WAGES)


BIG = 2**62 + 1  # a token whose low bits a float64 would lose
BEFORE = [(BIG, "a1", "2026-09-01", 3000.0), (BIG, "a2", "2026-10-01", 3000.0),
          (2, "b1", "2026-10-01", 1200.0), (3, "c1", "2026-10-01", 800.0),
          (4, "d1", "2026-10-01", 2500.0), (None, "x1", "2026-10-01", 900.0)]


def test_unchanged_rows_in_another_order_are_no_change(tmp_path):
    old = _wages(BEFORE)
    new = old.iloc[::-1].assign(_line=np.arange(len(old)), employer_name="另一公司")
    got = _diff(tmp_path, old, new)
    assert got.changed_tokens.tolist() == []
    assert (got.added, got.removed, got.changed) == (0, 0, 0)
    assert got.unchanged_persons == 4
    assert (got.unresolved_added, got.unresolved_removed) == (0, 0)
    assert "employer_name" not in got.columns and "_line" not in got.columns


def test_added_removed_and_changed_rows_name_their_persons(tmp_path):
    after = [(BIG, "a1", "2026-09-01", 3000.0), (BIG, "a2", "2026-10-01", 3000.0),
             (BIG, "a3", "2026-11-01", 3100.0),          # person BIG: a month added
             (2, "b1", "2026-10-01", 4200.0),            # person 2: the amount changed
             # person 3: removed
             (4, "d1", "2026-10-01", 2500.0),            # person 4: unchanged
             (5, "e1", "2026-10-01", 700.0),             # person 5: new
             (None, "x2", "2026-10-01", 950.0)]          # an unresolved row replaced
    got = _diff(tmp_path, _wages(BEFORE), _wages(after))
    assert got.changed_tokens.tolist() == [2, 3, 5, BIG]
    assert (got.added, got.removed, got.changed) == (2, 1, 1)
    assert got.unchanged_persons == 1
    assert (got.unresolved_added, got.unresolved_removed) == (1, 1)
    assert got.summary()["persons_changed"] == 4


def test_a_changed_record_id_or_name_form_is_a_change(tmp_path):
    """Both reach the flag: the record id is cited as evidence, the name forms decide a match."""
    old = _wages(BEFORE)
    renamed = old.copy()
    renamed.loc[renamed["person_token"].eq(2).fillna(False), "record_id"] = "b1-new"
    renamed.loc[renamed["person_token"].eq(4).fillna(False), "name_chars"] = "k2"
    got = _diff(tmp_path, old, renamed)
    assert got.changed_tokens.tolist() == [2, 4]
    assert got.changed == 2
    assert {"record_id", "name_chars", "wage_amount", "period"} <= set(digest_columns(WAGES))


def test_no_previous_feed_means_every_person_added(tmp_path):
    new = _wages(BEFORE)
    new.to_parquet(tmp_path / "new.parquet", index=False)
    got = diff_feeds(None, tmp_path / "new.parquet", WAGES)
    assert got.changed_tokens.tolist() == [2, 3, 4, BIG]
    assert got.added == 5 and got.removed == 0 and got.unresolved_added == 1


def test_digests_hold_a_line_per_person_and_are_renewed_when_the_feed_is_newer(tmp_path):
    path = tmp_path / "feed-7.parquet"
    _wages(BEFORE).to_parquet(path, index=False)
    written = person_digests(path, WAGES)
    assert written == digests_path(path) == tmp_path / "feed-7.persons.parquet"
    table = pq.read_table(written).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    assert sorted(table["t"].dropna().tolist()) == [2, 3, 4, BIG]
    assert int(table["n"].sum()) == len(BEFORE)  # the unresolved row kept by its digest
    assert set(table.columns) == {"t", "s", "n"}  # tokens and digests, nothing else
    before = written.stat().st_mtime_ns
    assert person_digests(path, WAGES).stat().st_mtime_ns == before  # kept, not rewritten
    changed = [(BIG, "a1", "2026-09-01", 3100.0), *BEFORE[1:]]
    _wages(changed).to_parquet(path, index=False)
    os.utime(written, ns=(before - 10**9, before - 10**9))  # older than the feed now
    renewed = pq.read_table(person_digests(path, WAGES)).to_pandas(
        types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    assert not renewed.sort_values(["t", "s"]).reset_index(drop=True).equals(
        table.sort_values(["t", "s"]).reset_index(drop=True))
