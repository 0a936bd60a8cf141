"""Synthetic roster and partner records with realistic errors, for the Chinese-name evaluation.

The roster is a district of households (members with ID, name, birth date, gender, community;
a household's children carry the first member's surname). Partner records copy a member's fields
with errors drawn at the rates of a ``Rates``, or describe an outsider who is not on the roster
(often sharing a common name). The truth — which member each record belongs to — is kept beside
the records and never shown to the matcher.

Another person's valid ID typed into a record comes in the kinds clerks produce: a family
member's (same household), someone of the same surname, someone born the same year, a namesake
(same name, another birth date) and anyone at all. Partners do not always send birth date and
gender: a record without them carries what its ID number says (``birth_date_from_id`` /
``gender_from_id``, as intake stages it), which for a wrong ID is the wrong person's.

``TUNED`` are the rates the matcher was developed on; ``HELD_OUT`` (another seed, other rates,
more wrong IDs, every partner sending birth date and gender) and ``HELD_OUT_PARTIAL`` (half of
them sending none) are only ever evaluated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from verification.intake.identifiers import canonicalise_ids, make_id, near_miss_ids
from verification.intake.tokens import TokenKey, near_miss_tokens, person_tokens
from verification.matching.address import CONTACT_KEY_COLUMNS, contact_keys
from verification.synthetic.generator import written_address
from verification.synthetic.names import (
    NAME_CORRUPTIONS,
    corrupt_birth_date,
    corrupt_name,
    random_names,
)

KEY = TokenKey("bench-1", b"benchmark key, not a secret")
AREAS = ("210112", "210102", "210103", "210104", "210105", "210106")
AREA_NAMES = tuple(f"辽宁省沈阳市{d}区" for d in ("浑南", "和平", "沈河", "大东", "皇姑", "铁西"))
STREET_NAMES = ("五三", "浑河站西", "桃仙", "祝家", "高坎", "李相", "南湖", "太原街", "北市场",
                "长白", "新华", "滂江")
COMMUNITY_NAMES = ("幸福", "和平", "新城", "白塔堡", "河畔", "长青", "机场", "朱尔", "碾盘",
                   "古城子", "南塔", "光明", "建设", "民主", "团结", "胜利", "东风", "青年",
                   "文化", "花园", "富强", "振兴", "友谊", "安宁", "康乐", "永安", "新兴", "红旗",
                   "惠民", "朝阳")
COMPOUNDS = ("富民小区", "幸福家园", "和平花园", "阳光苑", "河畔新村", "金地名京", "碧桂园",
             "万科城", "长青小区", "机场新村", "白塔小区", "浑南新城", "华润置地", "恒大绿洲",
             "保利花园", "中海城", "龙湖天街", "铁路小区", "电业小区", "纺织新村")
WRONG_ID_KINDS = ("family", "same_surname", "same_birth_year", "namesake", "anyone")


@dataclass(frozen=True)
class Rates:
    """Error rates of one synthetic second source."""

    id_errors: dict[str, float] = field(default_factory=lambda: {
        "valid": 0.70, "missing": 0.14, "typo": 0.10, "other_valid": 0.04, "legacy": 0.02})
    name_error: float = 0.35
    birth_error: float = 0.15
    outsider_share: float = 0.10
    address_share: float = 0.5  # records giving a community (real estate, vehicles)
    birth_sent: float = 0.7  # records whose partner sends birth date and gender
    # address and phone (keyed for the records whose ID is unusable only, as intake does):
    # the share of records whose partner sends an address / a phone, of households that moved
    # since (the address is another), of members whose phone changed since the roster took it
    # (or the roster never had one) and of members the roster has no phone for
    address_sent: float = 0.5
    phone_sent: float = 0.5
    moved: float = 0.1
    phone_changed: float = 0.15
    roster_phone_missing: float = 0.15


TUNED = Rates()
HELD_OUT = Rates(id_errors={"valid": 0.62, "missing": 0.12, "typo": 0.12, "other_valid": 0.10,
                            "legacy": 0.04},
                 name_error=0.45, birth_error=0.2, outsider_share=0.15, address_share=0.3,
                 birth_sent=1.0, address_sent=0.4, phone_sent=0.35, moved=0.15,
                 phone_changed=0.25, roster_phone_missing=0.25)
# the same, but half the partners send no birth date or gender (today's contracts: none do)
HELD_OUT_PARTIAL = Rates(id_errors=HELD_OUT.id_errors, name_error=0.45, birth_error=0.2,
                         outsider_share=0.15, address_share=0.3, birth_sent=0.5,
                         address_sent=0.4, phone_sent=0.35, moved=0.15, phone_changed=0.25,
                         roster_phone_missing=0.25)


@dataclass
class Scenario:
    members: pd.DataFrame  # household_id, person_token, name, birth_date, gender, community_code
    records: pd.DataFrame  # person_token (Int64, <NA> for invalid/missing IDs), name, birth_date…
    truth: pd.Series  # per record: the member's person_token, or <NA> for outsiders
    corruption: pd.DataFrame  # per record: id_error, wrong_id_kind, name_error, birth_error


def _people(rng: np.random.Generator, n: int, first_seq: int) -> pd.DataFrame:
    born = [dt.date(1930, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 33000, n)]
    male = rng.random(n) < 0.5
    seq = (np.arange(n) + first_seq) % 500 * 2 + male
    area = rng.choice(AREAS, n)
    ids = [make_id(a, b, int(s)) for a, b, s in zip(area, born, seq, strict=True)]
    street = rng.integers(1, 13, n)
    community = rng.integers(1, 30, n)
    return pd.DataFrame(
        {
            "id_number": ids,
            "name": random_names(rng, n),
            "birth_date": pd.to_datetime(born),
            "gender": np.where(male, "M", "F"),
            "community_code": [f"{a}{s:03d}{c:03d}" for a, s, c in
                               zip(area, street, community, strict=True)],
        }
    ).drop_duplicates("id_number")


def _typo_id(number: str, rng: np.random.Generator) -> str:
    at = int(rng.integers(0, 17))
    digit = (int(number[at]) + int(rng.integers(1, 10))) % 10
    return number[:at] + str(digit) + number[at + 1 :]


def _record_id(number: str, error: str, other: str, rng: np.random.Generator) -> str | None:
    if error == "missing":
        return None
    if error == "typo":
        return _typo_id(number, rng)
    if error == "other_valid":
        return other
    if error == "legacy" and number[6:8] == "19":
        return number[:6] + number[8:17]
    return number


def _family_surnames(roster: pd.DataFrame) -> pd.Series:
    """Every third member of a household (a child) carries the first member's surname."""
    first = roster.groupby("household_id")["name"].transform("first").str[0]
    child = (np.arange(len(roster)) % 3) == 2
    return roster["name"].where(~child, first + roster["name"].str[1:])


def _wrong_ids(source: pd.DataFrame, roster: pd.DataFrame, kinds: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """For each source row, another roster person's valid ID of the given kind (the person the
    row describes excluded); a kind with no such person falls back to anyone."""
    ids = roster["id_number"].to_numpy()
    groups = {
        "family": roster.groupby("household_id").indices,
        "same_surname": roster.groupby(roster["name"].str[0]).indices,
        "same_birth_year": roster.groupby(roster["birth_date"].dt.year).indices,
        "namesake": roster.groupby("name").indices,
    }
    keys = {
        "family": source["household_id"].to_numpy(),
        "same_surname": source["name"].str[0].to_numpy(),
        "same_birth_year": source["birth_date"].dt.year.to_numpy(),
        "namesake": source["name"].to_numpy(),
    }
    out = ids[rng.integers(0, len(ids), len(source))]
    for row, kind in enumerate(kinds):
        if kind not in groups:
            continue
        pool = groups[kind].get(keys[kind][row], np.array([], dtype=np.int64))
        pool = pool[ids[pool] != source["id_number"].iat[row]]
        if kind == "namesake":  # another birth date, or it would be the same person on paper
            pool = pool[roster["birth_date"].to_numpy()[pool] != source["birth_date"].iat[row]]
        if len(pool):
            out[row] = ids[pool[rng.integers(0, len(pool))]]
    return out


def _hints(raw_ids: list[str | None]) -> tuple[pd.Series, pd.Series]:
    """Birth date and gender read off the ID as the partner sent it (what intake stages when
    the partner sends no birth date or gender)."""
    from verification.intake.validate import identity_hints

    raw = pd.Series(raw_ids, dtype="string")
    return identity_hints(raw, canonicalise_ids(pd.Series(raw_ids, dtype=object)).values)


def build(members: int = 100_000, records: int = 20_000, seed: int = 4,
          rates: Rates = TUNED) -> Scenario:
    rng = np.random.default_rng(seed)
    roster = _people(rng, members, 0).reset_index(drop=True)
    roster["household_id"] = np.arange(len(roster)) // 3
    roster["name"] = _family_surnames(roster)
    outsiders = _people(rng, int(records * rates.outsider_share), members)
    outsiders = outsiders[~outsiders["id_number"].isin(roster["id_number"])]
    source = pd.concat([roster.assign(roster_row=np.arange(len(roster))).sample(
        records - len(outsiders), random_state=seed, replace=True),
                        outsiders.assign(household_id=-1)], ignore_index=True)
    in_roster = np.r_[np.ones(len(source) - len(outsiders), bool), np.zeros(len(outsiders), bool)]
    errors = rates.id_errors
    id_error = rng.choice(list(errors), len(source), p=list(errors.values()))
    wrong_kind = np.where(id_error == "other_valid",
                          rng.choice(WRONG_ID_KINDS, len(source)), "")
    name_error = np.where(rng.random(len(source)) < rates.name_error,
                          rng.choice(NAME_CORRUPTIONS, len(source)), "")
    birth_error = rng.random(len(source)) < rates.birth_error
    others = _wrong_ids(source, roster, wrong_kind, rng)
    raw_ids = [_record_id(n, e, o, rng) for n, e, o in
               zip(source["id_number"], id_error, others, strict=True)]
    names = [corrupt_name(n, e, rng) if e else n for n, e in zip(source["name"], name_error,
                                                                 strict=True)]
    births = pd.to_datetime([corrupt_birth_date(b.date(), rng) if e else b.date() for b, e in
                             zip(source["birth_date"], birth_error, strict=True)])
    sent = rng.random(len(source)) < rates.birth_sent
    hint_born, hint_gender = _hints(raw_ids)
    canonical = canonicalise_ids(pd.Series(raw_ids, dtype=object)).values
    record_frame = pd.DataFrame(
        {
            "record_ref": [f"R{i:07d}" for i in range(len(source))],
            "person_token": person_tokens(KEY, canonical),
            # the tokens of the valid numbers an unusable one may have meant, as intake stages
            "id_near": near_miss_tokens(KEY, near_miss_ids(pd.Series(raw_ids, dtype=object))),
            "name": names,
            "birth_date": np.where(sent, births, hint_born.to_numpy()).astype("datetime64[ns]"),
            "gender": np.where(sent, source["gender"].to_numpy(), hint_gender.to_numpy(
                dtype=object, na_value=None)),
            "birth_date_from_id": ~sent,
            "gender_from_id": ~sent,
            # address-bearing feeds (real estate, vehicles) give a community; wages do not
            "community_code": np.where(rng.random(len(source)) < rates.address_share,
                                       source["community_code"].to_numpy(), None),
        }
    )
    truth_ids = pd.Series(np.where(in_roster, source["id_number"], None), dtype=object)
    # addresses and phones from a stream of their own: the rest is what it was without them
    contacts = np.random.default_rng([seed, 23])
    homes = _homes(contacts, int(roster["household_id"].max()) + 1)
    roster_phone = np.array([_mobile(contacts) for _ in range(len(roster))], dtype=object)
    roster_phone[contacts.random(len(roster)) < rates.roster_phone_missing] = None
    record_frame = pd.concat([record_frame, _record_contacts(
        contacts, source, in_roster, homes, roster_phone, rates, record_frame)], axis=1)
    member_frame = roster.assign(person_token=person_tokens(KEY, roster["id_number"])
                                 .astype("int64")).drop(columns="id_number")
    member_frame = pd.concat([member_frame, contact_keys(
        pd.Series([_roster_address(homes[h]) for h in roster["household_id"]],
                  index=roster.index),
        pd.Series(roster_phone, index=roster.index), KEY, roster.index)], axis=1)
    return Scenario(
        members=member_frame,
        records=record_frame,
        truth=person_tokens(KEY, truth_ids),
        corruption=pd.DataFrame({"id_error": id_error, "wrong_id_kind": wrong_kind,
                                 "name_error": name_error, "birth_error": birth_error,
                                 "birth_sent": sent, "in_roster": in_roster}),
    )


def _mobile(rng: np.random.Generator) -> str:
    return f"1{int(rng.integers(3, 10))}{int(rng.integers(0, 10**9)):09d}"


def _homes(rng: np.random.Generator, households: int) -> list[tuple]:
    """Per household: (street, community, compound, building, unit, room, district) — several
    households per building, a few hundred buildings per community."""
    area = rng.integers(0, len(AREAS), households)
    street = rng.integers(0, len(STREET_NAMES), households)
    community = rng.integers(0, len(COMMUNITY_NAMES), households)
    compound = rng.integers(0, len(COMPOUNDS), households)
    building, unit = rng.integers(1, 40, households), rng.integers(1, 7, households)
    room = rng.integers(1, 19, households) * 100 + rng.integers(1, 5, households)
    return [(f"{STREET_NAMES[s]}街道", f"{COMMUNITY_NAMES[c]}社区", COMPOUNDS[p], int(b), int(u),
             int(r), AREA_NAMES[a])
            for a, s, c, p, b, u, r in zip(area, street, community, compound, building, unit,
                                           room, strict=True)]


def _roster_address(home: tuple) -> str:
    street, community, compound, building, unit, room, district = home
    return f"{district}{street}{community}{compound}{building}号楼{unit}单元{room}室"


def _record_contacts(rng: np.random.Generator, source: pd.DataFrame, in_roster: np.ndarray,
                     homes: list[tuple], roster_phone: np.ndarray, rates: Rates,
                     records: pd.DataFrame) -> pd.DataFrame:
    """Keyed address and phone parts of the records whose ID is unusable (as intake stages
    them): the household's address as the partner writes it (or another, for households that
    moved and for outsiders), the member's phone (or a changed or unknown one)."""
    n = len(source)
    household = source["household_id"].to_numpy()
    sends_address = rng.random(n) < rates.address_sent
    sends_phone = rng.random(n) < rates.phone_sent
    moved = rng.random(n) < rates.moved
    changed = rng.random(n) < rates.phone_changed
    others = _homes(rng, n)
    addresses = np.full(n, None, dtype=object)
    phones = np.full(n, None, dtype=object)
    own_rows = source["roster_row"].fillna(-1).to_numpy(dtype=np.int64)
    for i in range(n):
        home = homes[household[i]] if in_roster[i] and not moved[i] else others[i]
        if sends_address[i]:
            addresses[i] = written_address(rng, *home)
        if sends_phone[i]:
            known = roster_phone[own_rows[i]] if in_roster[i] else None
            phone = known if known is not None and not changed[i] else _mobile(rng)
            phones[i] = str(rng.choice([phone, f"+86 {phone}",
                                        f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"]))
    unusable = records["person_token"].isna().to_numpy()
    out = pd.DataFrame({c: pd.Series(pd.NA, index=records.index, dtype="string")
                        for c in CONTACT_KEY_COLUMNS})
    rows = records.index[unusable]
    keys = contact_keys(pd.Series(addresses[unusable], index=rows),
                        pd.Series(phones[unusable], index=rows), KEY, rows)
    out.loc[rows, list(keys.columns)] = keys
    return out
