"""Matching: exact on tokens, the probabilistic fallback, the safety rule, settings as data."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypinyin import lazy_pinyin
from rapidfuzz.distance import OSA

from verification.intake.identifiers import canonicalise_ids, make_id
from verification.intake.tokens import TokenKey, person_tokens
from verification.matching import (
    CERTAIN,
    GRADES,
    POSSIBLE,
    PROBABLE,
    Comparison,
    ComparisonLevel,
    MatchSettings,
    best_per_left,
    block_on,
    default_settings,
    grade_requires_review,
    grade_supports_removal,
    link,
    match_exact,
    match_records,
    name_key,
    name_keys,
    normalise_name,
    person_keys,
)
from verification.matching._compare import comparison_matrix
from verification.matching._trad_simp import _PAIRS, TRAD_TO_SIMP
from verification.synthetic.names import corrupt_birth_date, corrupt_name, random_names

KEY = TokenKey("test-1", b"a test key, not a secret")


# Safety rule -----------------------------------------------------------------------------------


def test_only_certain_supports_removal() -> None:
    assert grade_supports_removal(CERTAIN)
    for grade in (PROBABLE, POSSIBLE, "none"):
        assert not grade_supports_removal(grade)


def test_probable_and_possible_require_review() -> None:
    assert [grade_requires_review(g) for g in GRADES] == [False, True, True, False]


@pytest.mark.parametrize("grade", ["Certain", "sure", "", None])
def test_unknown_grade_is_refused_not_treated_as_weak(grade: object) -> None:
    with pytest.raises(ValueError, match="unknown match grade"):
        grade_supports_removal(grade)  # type: ignore[arg-type]


# Exact match -----------------------------------------------------------------------------------


def _members(tokens: list[int], households: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"household_id": households, "person_token": tokens}).astype("int64")


def test_match_exact_inner_joins_on_token_and_keeps_record_columns() -> None:
    members = _members([10, 20, 30], [1, 1, 2])
    records = pd.DataFrame(
        {"person_token": pd.array([20, None, 30, 99, 20], dtype="Int64"),
         "amount": [1.0, 2.0, 3.0, 4.0, 5.0]},
        index=["a", "b", "c", "d", "e"],
    )
    matched = match_exact(records, members)
    assert matched.index.tolist() == ["a", "c", "e"]
    assert matched["household_id"].tolist() == [1, 2, 1]
    assert matched["amount"].tolist() == [1.0, 3.0, 5.0]
    assert (matched["match_grade"] == CERTAIN).all()
    assert "household_id" not in records.columns  # input untouched


def test_match_exact_with_a_person_in_two_households() -> None:
    members = _members([10, 10, 20], [1, 2, 3])
    records = pd.DataFrame({"person_token": pd.array([10, 20], dtype="Int64")})
    matched = match_exact(records, members)
    assert sorted(zip(matched.index, matched["household_id"], strict=True)) == [
        (0, 1), (0, 2), (1, 3)
    ]


def test_match_exact_empty_and_all_missing() -> None:
    members = _members([10], [1])
    empty = pd.DataFrame({"person_token": pd.array([], dtype="Int64")})
    assert len(match_exact(empty, members)) == 0
    missing = pd.DataFrame({"person_token": pd.array([None, None], dtype="Int64")})
    assert len(match_exact(missing, members)) == 0


def test_match_exact_refuses_records_that_already_carry_a_household() -> None:
    records = pd.DataFrame({"person_token": pd.array([10], dtype="Int64"), "household_id": [5]})
    with pytest.raises(ValueError, match="household_id"):
        match_exact(records, _members([10], [1]))


def test_match_exact_needs_tokens() -> None:
    with pytest.raises(ValueError, match="person_token"):
        match_exact(pd.DataFrame({"id_number": ["x"]}), _members([10], [1]))


# Settings --------------------------------------------------------------------------------------


def test_default_settings_round_trip_json() -> None:
    settings = default_settings()
    text = settings.to_json()
    assert MatchSettings.from_json(text) == settings
    assert json.loads(text)["probable_threshold"] == settings.probable_threshold


def test_custom_settings_round_trip() -> None:
    settings = MatchSettings(
        comparisons=(Comparison("dob", "dob", (ComparisonLevel("exact", "exact"),
                                               ComparisonLevel("near", "osa", 1))),),
        blocking_rules=tuple(block_on("a", "b") | block_on("c")),
        probable_threshold=0.999,
        possible_threshold=0.6,
        exact_contradiction_weight=None,
    )
    assert MatchSettings.from_json(settings.to_json()) == settings


def test_blocking_rules_compose() -> None:
    assert tuple(block_on("a") | block_on("b", "c")) == (("a",), ("b", "c"))
    assert tuple((block_on("a") | block_on("b")) & block_on("c")) == (("a", "c"), ("b", "c"))


@pytest.mark.parametrize(
    "changes",
    [{"possible_threshold": 0.995}, {"probable_threshold": 1.0}, {"blocking_rules": ()},
     {"valid_id_mismatch_grade": "certain"}],
)
def test_invalid_settings_are_refused(changes: dict) -> None:
    data = default_settings().to_dict() | changes
    with pytest.raises(ValueError):
        MatchSettings.from_dict(data)


def test_level_needs_a_threshold_and_a_known_kind() -> None:
    with pytest.raises(ValueError, match="threshold"):
        ComparisonLevel("near", "osa")
    with pytest.raises(ValueError, match="unknown kind"):
        ComparisonLevel("x", "soundex")


# Names -----------------------------------------------------------------------------------------


def test_traditional_table_pairs_read_the_same() -> None:
    for pair in _PAIRS:
        assert lazy_pinyin(pair[0]) == lazy_pinyin(pair[1]), pair
    assert all(len(pair) == 2 and pair[0] != pair[1] for pair in _PAIRS)


def test_normalise_name() -> None:
    assert normalise_name(" 張 曉明 ") == "张晓明"
    assert normalise_name("阿依古丽·买买提") == "阿依古丽买买提"
    assert normalise_name("ＬＩ明") == "LI明"


def test_name_keys_agree_as_designed() -> None:
    base = name_key("张晓明", KEY)
    assert name_key("張曉明", KEY) == base  # traditional
    homophone = name_key("张小明", KEY)
    assert homophone["name_chars"] != base["name_chars"]
    assert homophone["name_sounds"] == base["name_sounds"]
    fuzzy = name_key("刘洋", KEY), name_key("牛洋", KEY)
    assert fuzzy[0]["name_sounds"] != fuzzy[1]["name_sounds"]
    assert fuzzy[0]["name_fuzzy"] == fuzzy[1]["name_fuzzy"]
    swapped = name_key("张明晓", KEY)
    assert OSA.distance(swapped["name_chars"], base["name_chars"]) == 1


def test_name_keys_hold_no_name_characters_and_depend_on_the_key() -> None:
    keyed = name_key("张晓明", KEY)
    assert not set("张晓明zhangxiaoming") & set("".join(keyed.values()))
    other_key = TokenKey("other", b"another key")
    assert name_key("张晓明", other_key)["name_chars"] != keyed["name_chars"]


def test_name_keys_column_handles_missing() -> None:
    keys = name_keys(pd.Series(["张晓明", None, "", "張曉明"], index=[3, 4, 5, 6]), KEY)
    assert keys.index.tolist() == [3, 4, 5, 6]
    assert keys["name_chars"].isna().tolist() == [False, True, True, False]
    assert keys.loc[3, "name_chars"] == keys.loc[6, "name_chars"]


@given(st.sampled_from(sorted(TRAD_TO_SIMP.values())), st.sampled_from(sorted(TRAD_TO_SIMP)))
def test_traditional_and_simplified_names_get_the_same_keys(surname: str, given: str) -> None:
    simplified = surname + TRAD_TO_SIMP[given]
    traditional = {v: k for k, v in TRAD_TO_SIMP.items()}.get(surname, surname) + given
    assert name_key(traditional, KEY) == name_key(simplified, KEY)


# Comparison levels -----------------------------------------------------------------------------


def test_comparison_levels_strongest_first_and_null() -> None:
    settings = default_settings()
    names = pd.Series(["张晓明", "张小明", "张明晓", "张晓", "李雷", None])
    left = pd.concat([name_keys(names, KEY),
                      pd.DataFrame({"birth_ymd": ["19800312", "19800312", "19801203", "19800313",
                                                  "19810101", "19800312"]})], axis=1)
    right = pd.concat([name_keys(pd.Series(["张晓明"]), KEY),
                       pd.DataFrame({"birth_ymd": ["19800312"]})], axis=1)
    comparisons = settings.comparisons[:2]  # name, birth date
    gamma = comparison_matrix(left, right, np.arange(6), np.zeros(6, dtype=int), comparisons)
    name_labels = [("null", *comparisons[0].level_labels)[g + 1] for g in gamma[:, 0]]
    birth_labels = [("null", *comparisons[1].level_labels)[g + 1] for g in gamma[:, 1]]
    assert name_labels == ["exact", "homophone", "one_edit_or_swap", "one_edit_or_swap", "else",
                           "null"]
    assert birth_labels == ["exact", "exact", "month_day_swapped", "one_digit_or_swap", "else",
                            "exact"]


# Probabilistic linking (unlabelled EM) ----------------------------------------------------------


def _people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    born = [dt.date(1940, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 25000, n)]
    male = rng.random(n) < 0.5
    ids = [make_id("210112", b, int(i % 500) * 2 + int(m))
           for i, (b, m) in enumerate(zip(born, male, strict=True))]
    return pd.DataFrame({
        "id_number": ids,
        "name": random_names(rng, n),
        "birth_date": pd.to_datetime(born),
        "gender": np.where(male, "M", "F"),
        "community_code": [f"210112{s:03d}{c:03d}" for s, c in
                           zip(rng.integers(1, 13, n), rng.integers(1, 30, n), strict=True)],
    }).drop_duplicates("id_number", ignore_index=True)


def test_em_links_two_noisy_copies_without_labels() -> None:
    rng = np.random.default_rng(7)
    people = _people(rng, 1500)
    copy = people.copy()
    noisy = rng.random(len(copy)) < 0.4
    copy.loc[noisy, "name"] = [corrupt_name(n, "homophone", rng) for n in copy.loc[noisy, "name"]]
    settings = MatchSettings(
        comparisons=default_settings().comparisons,
        blocking_rules=tuple(block_on("name_sounds") | block_on("birth_ymd")),
    )
    result = link(person_keys(copy, KEY), person_keys(people, KEY), settings)
    best = best_per_left(result.pairs, 0.0)
    linked = best[best["match_probability"] >= settings.possible_threshold]
    correct = (linked["left_row"] == linked["right_row"]).sum()
    assert result.model.method == "em"
    assert correct / len(linked) > 0.99
    assert correct / len(people) > 0.97


# End to end: corrupted records go to REVIEW, never REMOVE -------------------------------------


@pytest.fixture(scope="module")
def district() -> dict:
    rng = np.random.default_rng(11)
    people = _people(rng, 4000)
    people["household_id"] = np.arange(len(people)) // 3
    members = people.assign(person_token=person_tokens(KEY, people["id_number"]).astype("int64"))
    source = people.sample(1500, random_state=3, replace=True).reset_index(drop=True)
    kind = rng.choice(["clean", "missing_id", "typo_id", "wrong_id"], len(source),
                      p=[0.6, 0.15, 0.15, 0.1])
    raw = source["id_number"].to_numpy(dtype=object).copy()
    raw[kind == "missing_id"] = None
    raw[kind == "typo_id"] = [r[:3] + str((int(r[3]) + 1) % 10) + r[4:]
                              for r in raw[kind == "typo_id"]]
    others = people["id_number"].to_numpy()[rng.integers(0, len(people), len(source))]
    raw[kind == "wrong_id"] = others[kind == "wrong_id"]
    dirty = rng.random(len(source)) < 0.3
    names = [corrupt_name(n, str(rng.choice(["homophone", "swap", "traditional", "typo"])), rng)
             if d else n for n, d in zip(source["name"], dirty, strict=True)]
    born = [pd.Timestamp(corrupt_birth_date(b.date(), rng)) if rng.random() < 0.1 else b
            for b in source["birth_date"]]
    records = pd.DataFrame({
        "record_ref": [f"W{i:05d}" for i in range(len(source))],
        "person_token": person_tokens(KEY, canonicalise_ids(pd.Series(raw)).values),
        "name": names,
        "birth_date": born,
        "gender": source["gender"],
    })
    truth = person_tokens(KEY, source["id_number"]).astype("int64")
    result = match_records(records, members.drop(columns="id_number"), key=KEY)
    return {"result": result, "kind": kind, "truth": truth, "records": records,
            "members": members.drop(columns="id_number")}


def test_end_to_end_certain_only_for_clean_ids_and_always_right(district: dict) -> None:
    matched = district["result"].matched
    certain = matched[matched["match_grade"] == CERTAIN]
    kinds = district["kind"][certain.index]
    assert set(kinds) <= {"clean"}  # typo, missing and wrong IDs are never certain
    assert (certain["person_token_matched"] == district["truth"][certain.index]).all()


def test_end_to_end_corrupted_records_lead_to_review_never_removal(district: dict) -> None:
    matched = district["result"].matched
    corrupted = matched[district["kind"][matched.index] != "clean"]
    assert len(corrupted) > 300
    assert not corrupted["match_grade"].map(grade_supports_removal).any()
    assert corrupted["match_grade"].map(grade_requires_review).all()


def test_end_to_end_fallback_finds_most_people_without_a_valid_id(district: dict) -> None:
    matched = district["result"].matched
    kind = district["kind"]
    no_valid_id = np.flatnonzero(np.isin(kind, ["missing_id", "typo_id"]))
    found = matched.loc[matched.index.isin(no_valid_id)]
    right = found["person_token_matched"] == district["truth"][found.index]
    assert right.mean() > 0.98
    assert len(found) / len(no_valid_id) > 0.9


def test_end_to_end_review_shows_candidates_with_explanations(district: dict) -> None:
    result = district["result"]
    review = result.matched[result.matched["match_grade"].isin([PROBABLE, POSSIBLE])]
    shown = result.candidates
    assert set(review.index) <= set(shown["record_index"])
    first = shown[shown["rank"] == 1]
    assert {"level_name", "level_birth_date", "match_probability"} <= set(shown.columns)
    assert first["record_index"].is_unique
    assert not shown.filter(like="name").apply(
        lambda col: col.astype(str).str.contains("[\u4e00-\u9fff]").any()
    ).any()  # officers see the levels, and no raw names travel with the candidates


def test_end_to_end_partition_and_run_log(district: dict) -> None:
    result = district["result"]
    records = district["records"]
    matched_rows = set(result.matched.index)
    assert matched_rows.isdisjoint(result.unmatched.index)
    assert matched_rows | set(result.unmatched.index) == set(records.index)
    log = json.loads(json.dumps(result.run_log()))  # serialisable, for the run record
    assert log["model"]["method"] == "labelled"
    assert MatchSettings.from_dict(log["settings"]) == result.settings
    assert sum(log["counts"][g] for g in GRADES) == len(records)


def test_prepared_roster_index_gives_the_same_matches() -> None:
    from verification.matching import RosterIndex

    members = _members([10, 20, 30], [1, 1, 2])
    records = pd.DataFrame({"person_token": pd.array([30, None, 10, 7], dtype="Int64")})
    index = RosterIndex(members)
    assert match_exact(records, index).equals(match_exact(records, members))
    assert match_exact(records, index)["household_id"].tolist() == [2, 1]


def _no_usable_ids() -> tuple[pd.DataFrame, pd.DataFrame]:
    """200 records of a 600-member roster, none with a usable ID: nothing labels the weights."""
    rng = np.random.default_rng(5)
    people = _people(rng, 600)
    people["household_id"] = np.arange(len(people)) // 3
    members = people.assign(person_token=person_tokens(KEY, people["id_number"]).astype("int64"))
    records = people.sample(200, random_state=1).drop(columns=["id_number", "household_id"])
    records = records.assign(person_token=pd.array([None] * len(records), dtype="Int64"))
    return records, members.drop(columns="id_number")


def test_without_token_matches_to_learn_from_fallback_is_at_most_possible() -> None:
    records, members = _no_usable_ids()
    result = match_records(records, members, key=KEY)
    assert result.model["method"] == "prior"  # no token-verified pairs: weights from the prior
    assert len(result.matched) > 0
    assert set(result.matched["match_grade"].astype(str)) <= {POSSIBLE}


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from(["x", "y", ""])),
             max_size=12),
    st.lists(st.tuples(st.sampled_from(["a", "c", None]), st.sampled_from(["x", "z", None])),
             max_size=12),
)
def test_blocking_union_equals_brute_force(left_rows: list, right_rows: list) -> None:
    from verification.matching._blocking import candidate_pairs

    left = pd.DataFrame(left_rows, columns=["p", "q"], dtype=object)
    right = pd.DataFrame(right_rows, columns=["p", "q"], dtype=object)
    rules = (("p",), ("p", "q"), ("q",))
    li, ri = candidate_pairs(left, right, rules)

    def agree(x: object, y: object) -> bool:
        return x not in (None, "") and x == y

    expected = {(i, j) for i, lrow in enumerate(left_rows) for j, rrow in enumerate(right_rows)
                if any(all(agree(lrow["pq".index(c)], rrow["pq".index(c)]) for c in rule)
                       for rule in rules)}
    assert set(zip(li.tolist(), ri.tolist(), strict=True)) == expected
    assert len(li) == len(expected)  # each pair once


def test_scoring_in_chunks_gives_the_same_result(district: dict) -> None:
    from dataclasses import replace

    records, members = district["records"], district["members"]
    whole = replace(default_settings(), training_records=300)
    chunked = replace(whole, score_chunk_records=37)
    a = match_records(records, members, whole, key=KEY)
    b = match_records(records, members, chunked, key=KEY)
    columns = ["household_id", "person_token_matched", "match_grade", "match_weight"]
    assert a.matched[columns].sort_index().equals(b.matched[columns].sort_index())
    assert a.counts == b.counts


def test_candidates_list_each_member_once_per_record(district: dict) -> None:
    shown = district["result"].candidates
    assert not shown.duplicated(["record_index", "person_token"]).any()
    assert (shown.groupby("record_index")["rank"].max() <= default_settings().max_candidates).all()


def test_mixing_keyed_and_raw_names_needs_the_key() -> None:
    members = pd.concat([_members([10], [1]), name_keys(pd.Series(["张三"]), KEY)], axis=1)
    records = pd.DataFrame({"person_token": pd.array([None], dtype="Int64"), "name": ["张三"]})
    with pytest.raises(ValueError, match="pass key="):
        match_records(records, members)
    assert match_records(records, members, key=KEY).counts["records"] == 1


# Another person's valid ID typed into a record: never certain ---------------------------------


def _wrong_id_case(kind: str, people: pd.DataFrame, row: int, rng: np.random.Generator) -> int:
    """A roster person other than ``row`` whose valid ID a clerk could type into row's record.
    Except for namesakes, their name must sound different from row's: a homophone namesake whose
    number is on a record without birth date is the same person on paper."""
    me = people.iloc[row]
    sounds = people["sounds"].to_numpy()
    same = {
        "family": people["household_id"] == me["household_id"],
        "same_surname": people["name"].str[0] == me["name"][0],
        "same_birth_year": people["birth_date"].dt.year == me["birth_date"].year,
        "namesake": (people["name"] == me["name"]) & (people["birth_date"] != me["birth_date"]),
    }[kind]
    other_sound = (sounds != sounds[row]) | (kind == "namesake")
    pool = np.flatnonzero(same.to_numpy() & other_sound & (np.arange(len(people)) != row))
    return int(pool[rng.integers(0, len(pool))]) if len(pool) else -1


@pytest.fixture(scope="module")
def mixups() -> dict:
    rng = np.random.default_rng(23)
    people = _people(rng, 3000)
    people["household_id"] = np.arange(len(people)) // 3
    # children carry the first member's surname; every 40th person has a namesake elsewhere
    first = people.groupby("household_id")["name"].transform("first").str[0]
    child = np.arange(len(people)) % 3 == 2
    people["name"] = people["name"].where(~child, first + people["name"].str[1:])
    namesakes = np.arange(0, len(people) - 7, 40)
    people.loc[namesakes + 7, "name"] = people.loc[namesakes, "name"].to_numpy()
    people["sounds"] = name_keys(people["name"], KEY)["name_fuzzy"]
    members = people.drop(columns="sounds").assign(
        person_token=person_tokens(KEY, people["id_number"]).astype("int64"))
    clean = rng.choice(len(people), 800, replace=False)
    rows, ids, kinds, own = list(clean), list(people["id_number"].to_numpy()[clean]), \
        ["clean"] * len(clean), [True] * len(clean)
    for kind in ("family", "same_surname", "same_birth_year", "namesake"):
        candidates = namesakes if kind == "namesake" else rng.choice(len(people), 80)
        for row in candidates:
            other = _wrong_id_case(kind, people, int(row), rng)
            for sends_birth in ((True,) if kind == "namesake" else (True, False)):
                if other >= 0:
                    rows.append(int(row))
                    ids.append(people["id_number"].iat[other])
                    kinds.append(kind)
                    own.append(sends_birth)
    source = people.iloc[rows].reset_index(drop=True)
    own = np.array(own)
    hinted = people.set_index("id_number").loc[ids]  # what the typed number says
    records = pd.DataFrame({
        "person_token": person_tokens(KEY, pd.Series(ids)),
        "name": source["name"],
        "birth_date": np.where(own, source["birth_date"], hinted["birth_date"].to_numpy()),
        "gender": np.where(own, source["gender"], hinted["gender"].to_numpy()),
        "birth_date_from_id": ~own,
        "gender_from_id": ~own,
    })
    result = match_records(records, members.drop(columns="id_number"), key=KEY)
    truth = person_tokens(KEY, source["id_number"]).astype("int64")
    return {"result": result, "kind": np.array(kinds), "truth": truth, "own": own}


def test_another_persons_valid_id_is_never_certain(mixups: dict) -> None:
    matched = mixups["result"].matched
    kind = pd.Series(mixups["kind"])
    assert (kind != "clean").sum() > 300
    assert {"family", "same_surname", "same_birth_year", "namesake"} <= set(kind)
    certain = matched[matched["match_grade"] == CERTAIN]
    assert set(kind[certain.index]) == {"clean"}
    assert (certain["person_token_matched"] == mixups["truth"][certain.index]).all()
    mixed = matched[kind[matched.index].to_numpy() != "clean"]
    assert not mixed["match_grade"].map(grade_supports_removal).any()


def test_clean_records_stay_certain_beside_mixups(mixups: dict) -> None:
    matched = mixups["result"].matched
    clean = np.flatnonzero(mixups["kind"] == "clean")
    graded = matched["match_grade"].reindex(clean).astype(str)
    assert (graded == CERTAIN).mean() > 0.99


def test_certain_agreement_names_known_levels() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="unknown levels"):
        replace(default_settings(), certain_agreement=(("name", ("identical",), True),))


def test_the_share_of_mixed_up_ids_is_estimated_from_the_token_pairs(mixups: dict) -> None:
    # counted are the mix-ups that agree with the ID's owner on nothing (a relative's or a
    # same-surname person's number); namesakes and the same birth year resemble the owner
    kind = mixups["kind"][mixups["own"]]
    unlike = np.isin(kind, ["family", "same_surname"]).mean()
    assert 0.7 * unlike < mixups["result"].model["mixup_rate"] < 1.2 * (kind != "clean").mean()


def test_pairs_per_rule_are_counted_before_comparing_and_bounded() -> None:
    from verification.matching._blocking import candidate_pairs, pairs_per_rule

    left = pd.DataFrame({"a": ["x", "x", "y", None], "b": ["1", "2", "1", "1"]})
    right = pd.DataFrame({"a": ["x", "x", "x", "y"], "b": ["1", "1", "3", "1"]})
    rules = (("a",), ("b",), ("a", "b"))
    counts = pairs_per_rule(left, right, rules)
    for rule in rules:
        assert counts[" & ".join(rule)] == len(candidate_pairs(left, right, (rule,))[0])
    # a block of more members than the bound proposes nothing: x has three members
    bounded = pairs_per_rule(left, right, rules, max_block=2)
    assert bounded["a"] == 1 and bounded["a"] == len(candidate_pairs(left, right, (("a",),), 2)[0])
    assert bounded["b"] == 0  # b=1 has three members too
    # a bound per rule name: the rules not named have none
    named = pairs_per_rule(left, right, rules, max_block={"a": 2})
    assert named == {"a": 1, "b": counts["b"], "a & b": counts["a & b"]}
    assert len(candidate_pairs(left, right, rules, {"a": 2})[0]) == len(
        candidate_pairs(left, right, (("a",), ("b",), ("a", "b")), {"a": 2, "b": None})[0])


def test_derived_blocking_columns_are_cut_from_keyed_columns() -> None:
    from verification.matching._blocking import with_derived

    frame = pd.DataFrame({"birth_ymd": ["19800101", None], "name_sounds": ["\ue001\ue002", ""]})
    derived = with_derived(frame, (("name_sounds", "birth_year"), ("name_last_sound",)))

    def values(column: str) -> list:  # the cut columns are Arrow-backed: missing is <NA>
        return derived[column].astype(object).where(derived[column].notna(), None).tolist()

    assert values("birth_year") == ["1980", None]
    assert values("name_last_sound") == ["\ue002", None]
    assert "birth_year" not in with_derived(frame, (("name_sounds",),)).columns
    limits = default_settings().block_limits
    assert limits["name_sounds"] == 100 and limits["name_sounds & birth_year"] == 2000


# Grade gating: only grades measured at review precision may put a household on REVIEW ---------


def test_each_grade_precision_is_measured_in_the_run(district: dict) -> None:
    # records whose token names them are placed again as if their ID were unusable; the
    # estimate must be near the precision the grades really have on this district
    result, truth = district["result"], district["truth"]
    measured = result.grade_precision
    assert measured["records"] >= 200 and measured["gated"] == []
    matched = result.matched
    right = matched["person_token_matched"].to_numpy() == truth[matched.index].to_numpy()
    for grade in (PROBABLE, POSSIBLE):
        here = (matched["match_grade"] == grade).to_numpy()
        assert here.sum() > 20
        assert abs(measured["precision"][grade] - right[here].mean()) < 0.05


def test_a_grade_below_review_precision_goes_to_the_candidates_file_only(district: dict) -> None:
    from dataclasses import replace

    records, members = district["records"], district["members"]
    # not measured in the run: the settings' table says possible links are mostly wrong
    weak = replace(default_settings(), calibration_records=0,
                   measured_grade_precision=(("probable", 0.99), ("possible", 0.5)))
    result = match_records(records, members, weak, key=KEY)
    gated = set(result.grade_precision["gated"])
    assert gated == {POSSIBLE} and (result.matched["match_grade"] == PROBABLE).sum() > 100
    assert not result.matched["match_grade"].astype(str).isin(gated).any()
    held = result.candidates[result.candidates["gated"]]
    assert len(held) and set(held["record_grade"].astype(str)) <= gated
    assert set(held["record_index"]) <= set(result.unmatched.index)  # no evidence from them
    assert result.counts["gated"] == held["record_index"].nunique()
    assert set(result.matched.index) | set(result.unmatched.index) == set(records.index)


def test_without_labels_the_measured_table_gates() -> None:
    from dataclasses import replace

    records, members = _no_usable_ids()
    kept = match_records(records, members, key=KEY)
    assert kept.grade_precision["records"] == 0 and len(kept.matched)  # 0.970 ≥ 0.9
    weak = replace(default_settings(), measured_grade_precision=(("possible", 0.06),))
    result = match_records(records, members, weak, key=KEY)
    assert result.grade_precision["gated"] == [POSSIBLE]
    assert len(result.matched) == 0 and result.candidates["gated"].all()


# One record, one person: twins in one monthly file -----------------------------------------


@pytest.fixture(scope="module")
def twins() -> dict:
    rng = np.random.default_rng(31)
    people = _people(rng, 1500)
    pairs = 60
    born = [dt.date(1980, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 9000, pairs)]
    surnames = rng.choice(list("王李张刘陈杨赵黄周吴"), pairs)
    twin_rows = []
    for k in range(pairs):  # same birth date, gender and community; adjacent sequence numbers
        for j, given_name in enumerate(("伟明", "伟华")):
            twin_rows.append({"id_number": make_id("210112", born[k], 600 + 4 * k + 2 * j),
                              "name": surnames[k] + given_name, "birth_date": pd.Timestamp(born[k]),
                              "gender": "F", "community_code": f"210112{k % 12 + 1:03d}001"})
    twins_frame = pd.DataFrame(twin_rows)
    people = pd.concat([people, twins_frame], ignore_index=True)
    people["household_id"] = np.arange(len(people)) // 3
    members = people.assign(person_token=person_tokens(KEY, people["id_number"]).astype("int64"))
    clean = people.iloc[: len(people) - 2 * pairs].sample(700, random_state=2)
    first, second = twins_frame.iloc[0::2], twins_frame.iloc[1::2]
    # the second twin's given name mistyped: one character from both twins' names
    blurred = second.assign(name=second["name"].str[:2] + "X")
    month = []
    for source in ("2026-01", "2026-02"):
        unresolved = pd.concat([first, blurred]).assign(id_number=None)
        month.append(pd.concat([clean, unresolved]).assign(source=source))
    table = pd.concat(month, ignore_index=True)
    truth = pd.concat([clean, first, second] * 2, ignore_index=True)
    records = table.drop(columns=["household_id"]).assign(
        person_token=person_tokens(KEY, canonicalise_ids(table["id_number"]).values))
    return {"records": records.drop(columns="id_number"), "members": members.drop(
        columns="id_number"), "truth": person_tokens(KEY, truth["id_number"]).astype("int64"),
        "second": np.flatnonzero(records["name"].str.endswith("X").to_numpy())}


def test_one_record_per_person_assigns_twins_one_to_one(twins: dict) -> None:
    from dataclasses import replace

    records, members, truth = twins["records"], twins["members"], twins["truth"]
    plain = match_records(records, members, key=KEY).matched
    # without the assignment the blurred twin's record falls on the first twin, who has a record
    on_first = plain.reindex(twins["second"])["person_token_matched"]
    assert (on_first != truth[twins["second"]]).mean() > 0.5
    settings = replace(default_settings(), one_record_per_person=True)
    matched = match_records(records, members, settings, key=KEY).matched
    per_source = matched.assign(source=records["source"].to_numpy()[matched.index])
    assert not per_source.duplicated(["source", "person_token_matched"]).any()
    second = matched.reindex(twins["second"])
    assert (second["person_token_matched"] == truth[twins["second"]]).all()
    assert set(second["match_grade"].astype(str)) <= {PROBABLE, POSSIBLE}
    right = matched["person_token_matched"] == truth[matched.index]
    assert right.all()


# ID near-misses: a mistyped number still points at the person it was meant to be -------------


def test_a_mistyped_id_finds_its_owner_when_name_and_birth_date_are_dirty_too() -> None:
    from verification.intake.identifiers import near_miss_ids
    from verification.intake.tokens import near_miss_tokens

    rng = np.random.default_rng(41)
    people = _people(rng, 3000)
    people["household_id"] = np.arange(len(people)) // 3
    members = people.assign(person_token=person_tokens(KEY, people["id_number"]).astype("int64"))
    clean = people.sample(800, random_state=4)
    typed = people.drop(clean.index).sample(200, random_state=5)
    # one digit of the ID wrong, one character of the name wrong, the birth year's last digit
    # wrong: no blocking rule on name or birth date finds them
    wrong_digit = [n[:9] + str((int(n[9]) + 5) % 10) + n[10:] for n in typed["id_number"]]
    dirty = typed.assign(id_number=wrong_digit,
                         name=[n[0] + "X" + n[2:] if len(n) > 2 else n + "X"
                               for n in typed["name"]],
                         birth_date=[b.replace(year=b.year + (1 if b.year % 10 < 9 else -1))
                                     for b in typed["birth_date"]])
    source = pd.concat([clean, dirty], ignore_index=True)
    records = source.drop(columns=["household_id"]).assign(
        person_token=person_tokens(KEY, canonicalise_ids(source["id_number"]).values),
        id_near=near_miss_tokens(KEY, near_miss_ids(source["id_number"])))
    records = records.drop(columns="id_number")
    truth = person_tokens(KEY, pd.concat([clean, typed])["id_number"]).astype("int64")
    truth = truth.reset_index(drop=True)
    result = match_records(records, members.drop(columns="id_number"), key=KEY)
    assert result.blocking["id_near"] >= len(typed)
    found = result.matched.loc[result.matched.index >= len(clean)]
    assert len(found) / len(typed) > 0.95
    assert (found["person_token_matched"] == truth[found.index]).all()
    assert set(found["match_grade"].astype(str)) <= {PROBABLE, POSSIBLE}  # never certain
    # without the near-miss tokens the same records are mostly lost
    blind = match_records(records.drop(columns="id_near"), members.drop(columns="id_number"),
                          key=KEY).matched
    assert (blind.index >= len(clean)).sum() < 0.5 * len(typed)


def test_agreeing_on_a_common_name_weighs_less_than_on_a_rare_one() -> None:
    from dataclasses import replace

    rng = np.random.default_rng(43)
    people = _people(rng, 1500)
    people.loc[:59, "name"] = "王伟"  # sixty namesakes; 欧阳娜娜 is one person
    people.loc[60, "name"] = "欧阳娜娜"
    people["household_id"] = np.arange(len(people)) // 3
    members = people.assign(person_token=person_tokens(KEY, people["id_number"]).astype("int64"))
    clean = people.iloc[100:].sample(500, random_state=6)
    unknown = people.iloc[[0, 60]]  # the same fields but the name: no ID
    source = pd.concat([clean, unknown], ignore_index=True)
    records = source.drop(columns=["household_id"]).assign(
        person_token=person_tokens(KEY, canonicalise_ids(source["id_number"]).values))
    records.loc[len(clean):, "person_token"] = pd.NA
    records = records.drop(columns="id_number")
    roster = members.drop(columns="id_number")

    def weights(settings: MatchSettings) -> np.ndarray:
        matched = match_records(records, roster, settings, key=KEY).matched
        return matched.loc[[len(clean), len(clean) + 1], "match_weight"].to_numpy()

    common, rare = weights(default_settings())
    assert rare - common > np.log2(30)  # sixty holders of the name against one
    flat_common, flat_rare = weights(replace(default_settings(), term_frequency=()))
    assert abs(flat_rare - flat_common) < 1.0  # without it both names weigh alike


def test_run_links_are_the_inner_merge_of_rows_and_matches_file_by_file() -> None:
    """RunMatch.file_links builds, per file, what merging each row's identity with the
    identities' matches gives, in file order (as the evidence reads them): a person in two
    households twice (in the matches' order), identities matched nowhere left out,
    prefiltered rows at their file positions."""
    from verification.matching import GRADE_DTYPE
    from verification.matching.run import LINK_COLUMNS, RunMatch

    matched = pd.DataFrame({
        "identity": np.array([4, 0, 2, 4, 5], dtype=np.int64),
        "household_id": np.array([40, 10, 20, 41, 50], dtype=np.int64),
        "person_token": np.array([400, 100, 200, 400, 500], dtype=np.int64),
        "match_grade": pd.Categorical(["certain", "probable", "certain", "possible",
                                       "certain"], dtype=GRADE_DTYPE)})
    identities = [np.array([0, 1, 4, 2, 4, 3], dtype=np.int32),
                  np.array([6, 5, 1], dtype=np.int32), np.array([], dtype=np.int32)]
    positions = [None, np.array([3, 7, 9], dtype=np.int64), np.array([], dtype=np.int64)]
    run = RunMatch(None, matched, rows=9, identities=7, row_identity=identities,
                   row_positions=positions)
    for i, (identity, at) in enumerate(zip(identities, positions, strict=True)):
        rows = pd.DataFrame({"row": np.arange(len(identity)) if at is None else at,
                             "identity": identity.astype(np.int64)})
        expected = rows.merge(matched, on="identity", how="inner")[LINK_COLUMNS].sort_values(
            "row", kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(run.file_links(i), expected)
    first = run.file_links(0)
    assert first["row"].tolist() == [0, 2, 2, 3, 4, 4]  # file order; row 1 matched nobody
    assert sorted(first["household_id"]) == [10, 20, 40, 40, 41, 41]
    assert [len(links) for links in run.links] == [6, 1, 0]


def test_a_one_family_batch_weighs_agreement_as_a_district_does(district: dict) -> None:
    """A batch is matched against its own members only. Its random record × member pairs are
    mostly the record and its own person, and each name is held by one member in three: u and
    a name's share must come from the population (settings.population_u), not from those
    pairs, or a car on a mistyped ID weighs nothing and an applicant is added over it."""
    members, records = district["members"], district["records"]
    household = members[members["household_id"] == members["household_id"].iat[30]]
    person = household.iloc[0]
    typo = pd.DataFrame({"record_ref": ["CAR1"], "person_token": pd.array([None], "Int64"),
                         "name": [person["name"]],
                         "birth_date": [person["birth_date"]], "gender": [person["gender"]]})
    own = records[records["person_token"].isin(household["person_token"])]
    for share in (None, 1 / len(members)):  # the batch's prior: one person of the city's
        result = match_records(pd.concat([typo, own], ignore_index=True), household, key=KEY,
                               match_share=share)
        found = result.matched.loc[result.matched["record_ref"] == "CAR1"]
        assert list(found["person_token_matched"]) == [person["person_token"]]
        assert set(found["match_grade"].astype(str)) <= {PROBABLE, POSSIBLE}
        weights = result.model["comparisons"]
        district_weights = district["result"].model["comparisons"]
        for name in ("name", "birth_date"):  # within a factor of 8 of the district's evidence
            assert abs(weights[name]["exact"]["weight"]
                       - district_weights[name]["exact"]["weight"]) < 3

