"""Addresses and phones: the parser on addresses as clerks write them, the keyed parts, and the
fallback lifting a record without ID to its person on address and phone agreement."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from verification.intake.identifiers import canonicalise_ids, make_id
from verification.intake.tokens import TokenKey, person_tokens
from verification.matching import CERTAIN, MatchSettings, default_settings, match_records
from verification.matching.address import (
    ADDRESS_KEY_COLUMNS,
    PHONE_KEY_COLUMNS,
    address_keys,
    contact_keys,
    normalise_phones,
    parse_addresses,
    phone_keys,
)
from verification.synthetic.names import random_names

KEY = TokenKey("test-1", b"a test key, not a secret")

# (address as written, street, community, road, road number, compound, building, unit, room)
WRITTEN = [
    ("辽宁省沈阳市浑南区五三街道白塔堡社区富民小区3号楼2单元501室",
     "五三街道", "白塔堡社区", None, None, "富民小区", "3", "2", "501"),
    ("沈阳市浑南区白塔堡社区富民小区3-2-501", None, "白塔堡社区", None, None, "富民小区",
     "3", "2", "501"),
    ("浑南区白塔堡社区 富民小区 3栋2门501", None, "白塔堡社区", None, None, "富民小区",
     "3", "2", "501"),
    ("白塔堡社区富民小区三号楼二单元五零一室", None, "白塔堡社区", None, None, "富民小区",
     "3", "2", "501"),
    ("辽宁沈阳浑南区五三街道沈营路29-12号3栋2单元501", "五三街道", None, "沈营路", "29-12",
     None, "3", "2", "501"),
    ("浑南区五三街道青年大街123号富民小区12#楼1单元1102", "五三街道", None, "青年大街", "123",
     "富民小区", "12", "1", "1102"),
    ("桃仙街道机场社区居民委员会十二栋三单元二零一", "桃仙街道", "机场社区", None, None, None,
     "12", "3", "201"),
    ("ＦＵ民小区０３号楼　０２单元　０５０１室", None, None, None, None, "FU民小区", "3", "2",
     "501"),
    ("祝家镇王士兰村村委会5组", "祝家镇", "王士兰村", None, None, None, None, None, None),
    ("富民小区3-501", None, None, None, None, "富民小区", "3", None, "501"),
    ("浑南区李相街道金地名京十七号楼五单元六零四室", "李相街道", None, None, None, "金地名京",
     "17", "5", "604"),
    ("碾盘社区金地名京9-2-703", None, "碾盘社区", None, None, "金地名京", "9", "2", "703"),
    ("北京市朝阳区望京街道望京西园212号楼1单元101", "望京街道", None, None, None, "望京西园",
     "212", "1", "101"),
]


@pytest.mark.parametrize("row", WRITTEN, ids=[r[0] for r in WRITTEN])
def test_addresses_as_written_are_parsed_into_their_parts(row: tuple) -> None:
    parts = parse_addresses(pd.Series([row[0]])).iloc[0]
    assert tuple(parts) == row[1:]


def test_missing_and_blank_addresses_have_no_parts_and_no_keys() -> None:
    values = pd.Series([None, "", "   ", "某地"], dtype=object)
    assert parse_addresses(values).iloc[:3].isna().all().all()
    keys = address_keys(values, KEY)
    assert keys.isna().all().all()  # 某地 names no place


def test_one_flat_written_four_ways_shares_its_room_key() -> None:
    written = pd.Series(["辽宁省沈阳市浑南区五三街道白塔堡社区富民小区3号楼2单元501室",
                         "白塔堡社区富民小区3-2-501", "浑南区富民小区3栋2门501",
                         "富民小区三号楼二单元五零一"])
    keys = address_keys(written, KEY)
    rooms = [set(k.split()) for k in keys["address_rooms"]]
    assert all(rooms[0] & r for r in rooms)
    other_room = address_keys(pd.Series(["富民小区3号楼2单元502室"]), KEY)
    other_building = address_keys(pd.Series(["富民小区4号楼2单元501室"]), KEY)
    assert not set(other_room["address_rooms"][0].split()) & rooms[0]
    assert set(other_room["address_buildings"][0].split()) & set(
        keys["address_buildings"][0].split())
    assert not set(other_building["address_buildings"][0].split()) & set(
        keys["address_buildings"][0].split())
    assert set(other_building["address_places"][0].split()) & set(
        keys["address_places"][0].split())


def test_address_keys_reveal_nothing_and_depend_on_the_key() -> None:
    value = pd.Series(["白塔堡社区富民小区3号楼2单元501室"])
    keys = address_keys(value, KEY)
    text = " ".join(keys.iloc[0].tolist())
    assert not any(char in text for char in "白塔堡社区富民小区号楼单元室") and "501" not in text
    assert address_keys(value, b"another key").iloc[0].tolist() != keys.iloc[0].tolist()


def test_phones_are_normalised_and_keyed_whole_and_by_their_last_eight_digits() -> None:
    written = pd.Series(["13912345678", "+86 139-1234-5678", "0086 13912345678",
                         "024-2412 3456", "24123456", "１３９１２３４５６７８", "12345", None])
    digits = normalise_phones(written)
    assert digits.tolist()[:6] == ["13912345678"] * 3 + ["02424123456", "24123456",
                                                          "13912345678"]
    assert digits.iloc[6:].isna().all()
    keys = phone_keys(written, KEY)
    assert keys["phone_key"].iloc[:3].nunique() == 1 and keys["phone_key"].iloc[5] == keys[
        "phone_key"].iloc[0]
    assert keys["phone_key"].iloc[3] != keys["phone_key"].iloc[4]
    assert keys["phone_tail"].iloc[3] == keys["phone_tail"].iloc[4]  # with and without 024
    assert keys.iloc[6:].isna().all().all()


# The fallback -----------------------------------------------------------------------------------


def _district(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = 3000
    born = [dt.date(1940, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 25000, n)]
    male = rng.random(n) < 0.5
    ids = [make_id("210112", b, int(i % 500) * 2 + int(m))
           for i, (b, m) in enumerate(zip(born, male, strict=True))]
    people = pd.DataFrame({"id_number": ids, "name": random_names(rng, n),
                           "birth_date": pd.to_datetime(born), "gender": np.where(male, "M", "F")}
                          ).drop_duplicates("id_number", ignore_index=True)
    people["household_id"] = np.arange(len(people)) // 3
    house = people["household_id"].to_numpy()
    community = np.array(["白塔堡社区", "五三社区", "新城社区", "站西社区"])[house % 4]
    compound = np.array(["富民小区", "幸福家园", "和平花园", "阳光苑", "河畔新村"])[house % 5]
    people["address"] = [f"{c}{p}{h % 13 + 1}号楼{h % 5 + 1}单元{h % 17 + 101}室"
                         for c, p, h in zip(community, compound, house, strict=True)]
    people["phone"] = [f"139{int(v):08d}" for v in rng.integers(0, 10**8, len(people))]
    roster = pd.concat([
        people.drop(columns=["id_number", "address", "phone"]).assign(
            person_token=person_tokens(KEY, people["id_number"]).astype("int64")),
        contact_keys(people["address"], people["phone"], KEY, people.index)], axis=1)
    return people, roster


def _records(frame: pd.DataFrame, with_id: bool) -> pd.DataFrame:
    """Records as intake stages them: a valid ID's token, or no ID and keyed contacts."""
    out = frame.drop(columns=["household_id", "id_number", "address", "phone"])
    if with_id:
        return out.assign(person_token=person_tokens(
            KEY, canonicalise_ids(frame["id_number"]).values))
    out = out.assign(person_token=pd.array([pd.NA] * len(frame), dtype="Int64"))
    return pd.concat([out, contact_keys(frame["address"], frame["phone"], KEY, frame.index)],
                     axis=1)


@pytest.fixture(scope="module")
def contacts() -> dict:
    people, roster = _district(47)
    clean = people.sample(800, random_state=4)  # valid IDs: they label the weights
    rest = people.drop(clean.index)
    plain = rest.sample(300, random_state=5)  # no ID, clean name and birth date, contacts sent
    hard = rest.drop(plain.index).sample(200, random_state=6)
    # one character of the name wrong and no birth date: name and gender alone place nobody
    # (no blocking rule on name or birth date even pairs them)
    hard = hard.assign(name=[n[0] + "某" + n[2:] if len(n) > 2 else n + "某" for n in hard["name"]],
                       birth_date=pd.NaT)
    moved = hard.assign(address="站西社区河畔新村8号楼1单元901室", phone="13800000000")
    truth = person_tokens(KEY, pd.concat([clean, plain, hard])["id_number"]).astype("int64")
    return {"roster": roster, "truth": truth.reset_index(drop=True), "first_hard": 1100,
            "agree": pd.concat([_records(clean, True), _records(plain, False),
                                _records(hard, False)], ignore_index=True),
            "moved": pd.concat([_records(clean, True), _records(plain, False),
                                _records(moved, False)], ignore_index=True)}


def _hard_links(result, contacts: dict) -> pd.DataFrame:  # noqa: ANN001
    matched = result.matched
    return matched[matched.index >= contacts["first_hard"]]


def test_address_and_phone_agreement_lifts_a_record_without_id_to_its_person(contacts) -> None:
    result = match_records(contacts["agree"], contacts["roster"], key=KEY)
    found = _hard_links(result, contacts)
    assert len(found) >= 0.95 * 200
    assert (found["person_token_matched"].to_numpy()
            == contacts["truth"][found.index].to_numpy()).all()
    assert CERTAIN not in set(found["match_grade"].astype(str))  # never certain
    assert result.blocking["address_rooms"] > 0 and result.blocking["phone_key"] > 0
    weights = result.model["comparisons"]
    assert weights["address"]["same_room"]["weight"] > 5 > 0 > weights["address"]["else"][
        "weight"]
    assert weights["phone"]["exact"]["weight"] > 5 > 0 > weights["phone"]["else"]["weight"]
    # the same records without their address and phone keys: nobody is found
    blind = contacts["agree"].drop(columns=[*ADDRESS_KEY_COLUMNS, *PHONE_KEY_COLUMNS])
    assert not len(_hard_links(match_records(blind, contacts["roster"], key=KEY), contacts))


def test_address_and_phone_disagreement_does_not_lift_it(contacts) -> None:
    result = match_records(contacts["moved"], contacts["roster"], key=KEY)
    assert not len(_hard_links(result, contacts))


def test_address_and_phone_never_decide_a_token_match(contacts) -> None:
    """Token records carrying someone else's address and phone are graded exactly as without
    them (contacts are no evidence on a token match), and settings cannot make them part of
    what a certain link needs."""
    from dataclasses import replace

    records = contacts["agree"].iloc[:800].drop(columns=[*ADDRESS_KEY_COLUMNS,
                                                         *PHONE_KEY_COLUMNS])
    roster = contacts["roster"]
    other = roster.sample(800, random_state=9)
    keys = other[[*ADDRESS_KEY_COLUMNS, *PHONE_KEY_COLUMNS]].to_numpy()
    with_keys = pd.concat([records, pd.DataFrame(keys, index=records.index, columns=[
        *ADDRESS_KEY_COLUMNS, *PHONE_KEY_COLUMNS], dtype="string")], axis=1)
    plain = match_records(records, roster, key=KEY).matched
    keyed = match_records(with_keys, roster, key=KEY).matched
    assert (keyed["match_grade"].astype(str) == plain["match_grade"].astype(str)).all()
    with pytest.raises(ValueError, match="may not decide a certain link"):
        replace(default_settings(), certain_agreement=(("address", ("same_room",), False),))
    assert MatchSettings.from_json(default_settings().to_json()).fallback_only == (
        "address", "phone")
