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
from verification.synthetic.names import (
    NAME_CORRUPTIONS,
    corrupt_birth_date,
    corrupt_name,
    random_names,
)

KEY = TokenKey("bench-1", b"benchmark key, not a secret")
AREAS = ("210112", "210102", "210103", "210104", "210105", "210106")
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


TUNED = Rates()
HELD_OUT = Rates(id_errors={"valid": 0.62, "missing": 0.12, "typo": 0.12, "other_valid": 0.10,
                            "legacy": 0.04},
                 name_error=0.45, birth_error=0.2, outsider_share=0.15, address_share=0.3,
                 birth_sent=1.0)
# the same, but half the partners send no birth date or gender (today's contracts: none do)
HELD_OUT_PARTIAL = Rates(id_errors=HELD_OUT.id_errors, name_error=0.45, birth_error=0.2,
                         outsider_share=0.15, address_share=0.3, birth_sent=0.5)


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
    source = pd.concat([roster.sample(records - len(outsiders), random_state=seed, replace=True),
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
    member_frame = roster.assign(person_token=person_tokens(KEY, roster["id_number"])
                                 .astype("int64")).drop(columns="id_number")
    return Scenario(
        members=member_frame,
        records=record_frame,
        truth=person_tokens(KEY, truth_ids),
        corruption=pd.DataFrame({"id_error": id_error, "wrong_id_kind": wrong_kind,
                                 "name_error": name_error, "birth_error": birth_error,
                                 "birth_sent": sent, "in_roster": in_roster}),
    )
