"""The vectorised helpers of verification/flags/decide.py agree with their plain definitions."""

import dataclasses
import datetime as dt

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


def test_flags_from_the_assessments_citations_equal_flags_from_the_text():
    """The integer path (reasons' ``cites`` into the assessment's citations) gives the flags,
    reasons and evidence that citing by the ref text gives: two regions (each numbers its own
    lists), a wage record with a second item under the same reference (it comes along with
    the cited one), a record matched to two households, a death, uncertain and certain rows."""
    from verification.assessment.assess import assess
    from verification.assessment.policy import load_parameters
    from verification.assessment.policy.cases import case_frames
    from verification.flags.decide import decide_flags

    on = dt.date(2025, 7, 1)
    parts = []
    for household_id, region, wage in ((1, "210112", 9000.0), (2, "210113", 300.0),
                                       (3, "210112", 5000.0)):
        households, members, evidence, sources = case_frames({
            "date": on, "region": region, "urban_rural": "urban",
            "members": [{"name": "户主", "age": 45}, {"name": "配偶", "age": 44}],
            "evidence": [{"member": "户主", "item": "wage", "amount": wage},
                         {"member": "配偶", "item": "car", "amount": 0},
                         {"member": "配偶", "item": "death"}]})
        households.index = pd.Index([household_id], name="household_id", dtype=np.int64)
        households["status"] = "recipient"
        for frame in (members, evidence):
            frame["household_id"] = household_id
            frame["person_token"] += household_id * 10_000
        parts.append((households, members, evidence, sources))
    households = pd.concat([p[0] for p in parts])
    members = pd.concat([p[1] for p in parts], ignore_index=True)
    evidence = pd.concat([p[2] for p in parts], ignore_index=True)
    wage = evidence[evidence["item"] == "wage"]
    second_item = wage.assign(item="si_contribution", amount=100.0)  # same record, other item
    shared = wage.iloc[[0]].assign(household_id=3, match_grade="probable")  # in two households
    evidence = pd.concat([evidence, second_item, shared], ignore_index=True)
    tree = load_parameters()
    result = assess(households, members, evidence, parts[0][3], tree, on)
    assert result.citations.evidence_rows == len(evidence) and len(result.citations)
    policy = tree.at("210112", on)
    by_integers = decide_flags(households, result.results, result.reasons, evidence, on, policy,
                               citations=result.citations)
    by_text = decide_flags(households, result.results, result.reasons.drop(columns=["cites"]),
                           evidence, on, policy)
    assert (by_integers.evidence["item"] == "si_contribution").any()
    for got, expected in zip(dataclasses.astuple(by_integers), dataclasses.astuple(by_text),
                             strict=True):
        pd.testing.assert_frame_equal(got, expected)


def test_record_codes_read_arrow_backed_text_of_several_chunks():
    import pyarrow as pa

    from verification.flags.decide import _record_codes

    refs = pa.chunked_array([pa.array(["R1", "R2"]), pa.array(["R1", "R3"])])
    evidence = pd.DataFrame({
        "source_kind": ["wages", "wages", "wages", "tax"], "feed_id": [1, 1, 1, 2],
        "record_ref": pd.Series(pd.arrays.ArrowStringArray(refs))})
    plain = evidence.astype({"record_ref": object})
    for rows in (np.arange(4), np.array([0, 2, 3])):
        codes, unambiguous = _record_codes(evidence, rows)
        assert unambiguous
        assert codes.tolist() == _record_codes(plain, rows)[0].tolist()
        assert codes[0] == codes[2] if len(rows) == 4 else codes[0] == codes[1]
