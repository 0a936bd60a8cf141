"""The vectorised helpers of verification/flags/decide.py agree with their plain definitions."""

import numpy as np
import pandas as pd

from verification.flags.decide import _flag_evidence, _listed, _stable_refs, cite_refs, code_mask


def test_code_mask_reads_categories_as_the_rows_would():
    codes = pd.Series(["ELIGIBLE_DIBAO", None, "TEKUN_SUPPORTER", "ELIGIBLE_DIBAO"])
    for column in (codes, codes.astype("category")):
        got = code_mask(column, lambda code: code.str.startswith(("ELIGIBLE", "nan")))
        assert got.tolist() == column.astype(str).str.startswith(("ELIGIBLE", "nan")).tolist()


def test_stable_refs_drop_feed_ids_in_any_script():
    refs = pd.Series(["wages:12:WA1;deaths:3:DE:7:x", None, "wages:١٢:WA1", "a::missing"])
    expected = refs.fillna("").astype(str).str.replace(r":\d*:", ":", regex=True)
    assert _stable_refs(refs).tolist() == expected.tolist()


def test_listed_is_membership_in_the_comma_separated_list():
    kinds = pd.Series(["wages", "deposits", None, "wages"], dtype="string")
    lists = pd.Series(["wages,deposits", "wages", "", "deposits"])
    expected = [k in g.split(",") for k, g in zip(kinds.astype(str), lists, strict=True)]
    assert _listed(kinds, lists).tolist() == expected


def test_flag_evidence_with_ambiguous_refs_dedupes_on_every_column():
    # "a:b" kind, feed 1 and record "r" spell the same ref as kind "a", ... — never in real
    # feeds, but the rows must still come out as a merge + drop_duplicates would give them.
    evidence = pd.DataFrame({
        "person_token": [1, 2, 3, 4], "source_kind": ["a:1", "a", "a", "a"],
        "feed_id": [2, 1, 1, 1], "record_ref": ["r", "2:r", "2:r", "2:r"],
        "item": ["wage", "wage", "wage", "pension"], "amount": [1.0, 2.0, 3.0, 4.0],
        "household_id": np.array([1, 1, 1, 1], dtype=np.int64),
    })
    reasons = pd.DataFrame({"household_id": [1], "evidence_refs": ["a:1:2:r"]})
    refs = evidence["source_kind"] + ":" + evidence["feed_id"].astype(str) + ":" + evidence[
        "record_ref"]
    expected = pd.DataFrame({"household_id": [1], "ref": ["a:1:2:r"]}).merge(
        evidence.assign(ref=refs), on=["household_id", "ref"]).drop(columns=["ref"])
    expected = expected.drop_duplicates(["household_id", "source_kind", "feed_id", "record_ref",
                                         "item"])
    cited, citations = cite_refs(reasons, evidence)
    pd.testing.assert_frame_equal(_flag_evidence(cited, evidence, citations), expected)
