"""A large feed staged block by block gives exactly what the whole-frame path gives: the same
staged rows and tokens, the same quarantine (duplicate keys across blocks included), the same
counts."""

import datetime as dt
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from schemas import contract_for
from verification.config import load_settings
from verification.intake import earlier_keys
from verification.intake import feeds as intake
from verification.intake.feeds import read_plain_feed as read_feed_table

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import synth  # noqa: E402

RECEIVED = dt.datetime(2026, 12, 1, 9, 0)  # the feed's rows may not be dated after this day
SPREAD = np.uint64(0x9E3779B97F4A7C15)  # a few hashes, over all 64 bits


def _feed_file(tmp_path: Path) -> Path:
    table = synth.build(400, seed=3).feeds["wages"]
    frame = table.to_pandas()
    n = len(frame)
    # keys repeating rows of earlier blocks, one of them also with a bad amount; a blank key
    frame.loc[n - 1, "record_id"] = frame.loc[0, "record_id"]
    frame.loc[n - 2, "record_id"] = " " + frame.loc[1, "record_id"] + " "
    frame.loc[n - 3, ["record_id", "wage_amount"]] = [frame.loc[2, "record_id"], "abc"]
    frame.loc[n - 4, "record_id"] = ""
    frame.loc[n - 5, "record_id"] = frame.loc[n - 6, "record_id"]  # same block
    # one key in the first, a middle and a late block: the first row kept, both others not
    frame.loc[[n // 2, n - 7], "record_id"] = frame.loc[3, "record_id"]
    # a late row repeating an early key whose ID is also unusable: quarantined with both reasons,
    # not taken as identity unresolved (its problems are not all on the ID)
    number = frame.loc[n - 8, "id_number"]
    wrong_check = "0" if number[-1] != "0" else "1"
    frame.loc[n - 8, ["record_id", "id_number"]] = [frame.loc[4, "record_id"],
                                                    number[:-1] + wrong_check]
    # an early row quarantined as unreadable text owns no key: a late row with its key is taken
    frame.loc[5, "name"] = "张\x07三"
    frame.loc[n - 9, "record_id"] = frame.loc[5, "record_id"]
    path = tmp_path / "wages.csv"
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def _whole(settings, path: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    checked = intake._validate(read_feed_table(path), contract_for("wages"), RECEIVED.date())
    staged = intake._staged_rows(settings, checked.accepted, "id_number",
                                 lambda ids: intake._tokens(settings, ids))
    counts = {**checked.counts, "identity_unresolved": checked.unresolved}
    return staged.reset_index(drop=True), checked.quarantine, counts


@pytest.mark.parametrize("collide", [False, True])
def test_blocks_give_the_whole_frame_answer(tmp_path, monkeypatch, collide):
    settings = load_settings(tmp_path / "home")
    path = _feed_file(tmp_path)
    monkeypatch.setattr(intake, "_BLOCK_BYTES", 20_000)  # dozens of blocks
    if collide:  # keys that share a hash are still told apart by their text
        real = earlier_keys._hashes
        monkeypatch.setattr(earlier_keys, "_hashes",
                            lambda db, key: real(db, key) % np.uint64(5) * SPREAD)
    chunked = intake._stage_in_chunks(settings, SimpleNamespace(kind="wages", id=7,
                                                                  received_at=RECEIVED),
                                      contract_for("wages"), path)
    assert chunked is not None
    staged, quarantine, counts = _whole(settings, path)
    assert chunked.counts == counts
    assert counts["quarantined"] >= 5
    pd.testing.assert_frame_equal(chunked.quarantine, quarantine)
    got = pd.read_parquet(chunked.path)
    expected = pd.read_parquet(_parquet(staged, tmp_path))
    pd.testing.assert_frame_equal(got, expected)
    n = counts["received"]
    assert set(quarantine.loc[quarantine["reason"] == "DUPLICATE_KEY", "line"]) >= {
        n + 1, n, n // 2 + 2, n - 5}
    assert 3 + 2 not in set(quarantine["line"])
    late = quarantine[quarantine["line"] == n - 6]
    assert set(late["reason"]) == {"DUPLICATE_KEY", "ID_CHECK"}
    assert n - 7 not in set(quarantine["line"]) and 5 + 2 in set(quarantine["line"])


def _parquet(frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "whole.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_a_file_arrow_cannot_stream_goes_the_whole_way(tmp_path):
    settings = load_settings(tmp_path / "home")
    path = tmp_path / "short.csv"
    path.write_text("record_id,id_number\nr1\n", encoding="utf-8")  # a row short of fields
    assert intake._stage_in_chunks(settings, SimpleNamespace(kind="wages", id=8,
                                                                  received_at=RECEIVED),
                                   contract_for("wages"), path) is None
    assert not list((settings.staging_dir).glob("*.partial"))


@pytest.mark.parametrize("rows", [intake.CHUNK_ROWS])
def test_the_threshold_is_a_million_rows(rows):
    assert rows == 1_000_000
