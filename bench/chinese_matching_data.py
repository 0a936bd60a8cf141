"""Synthetic roster and partner records with realistic errors, for the Chinese-name evaluation.

The roster is a district of households (members with ID, name, birth date, gender, community).
Partner records copy a member's fields with errors drawn at the rates below, or describe an
outsider who is not on the roster (often sharing a common name). The truth — which member each
record belongs to — is kept beside the records and never shown to the matcher.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from verification.intake.identifiers import canonicalise_ids, make_id
from verification.intake.tokens import TokenKey, person_tokens
from verification.synthetic.names import (
    NAME_CORRUPTIONS,
    corrupt_birth_date,
    corrupt_name,
    random_names,
)

KEY = TokenKey("bench-1", b"benchmark key, not a secret")
AREAS = ("210112", "210102", "210103", "210104", "210105", "210106")
ID_ERRORS = {"valid": 0.70, "missing": 0.14, "typo": 0.10, "other_valid": 0.04, "legacy": 0.02}
NAME_ERROR_RATE = 0.35
BIRTH_ERROR_RATE = 0.15
OUTSIDER_SHARE = 0.10
ADDRESS_SHARE = 0.5


@dataclass
class Scenario:
    members: pd.DataFrame  # household_id, person_token, name, birth_date, gender, community_code
    records: pd.DataFrame  # person_token (Int64, <NA> for invalid/missing IDs), name, birth_date…
    truth: pd.Series  # per record: the member's person_token, or <NA> for outsiders
    corruption: pd.DataFrame  # per record: id_error, name_error, birth_error (for break-downs)


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


def build(members: int = 100_000, records: int = 20_000, seed: int = 4) -> Scenario:
    rng = np.random.default_rng(seed)
    roster = _people(rng, members, 0).reset_index(drop=True)
    roster["household_id"] = np.arange(len(roster)) // 3
    outsiders = _people(rng, int(records * OUTSIDER_SHARE), members)
    outsiders = outsiders[~outsiders["id_number"].isin(roster["id_number"])]
    source = pd.concat([roster.sample(records - len(outsiders), random_state=seed, replace=True),
                        outsiders], ignore_index=True)
    in_roster = np.r_[np.ones(len(source) - len(outsiders), bool), np.zeros(len(outsiders), bool)]
    id_error = rng.choice(list(ID_ERRORS), len(source), p=list(ID_ERRORS.values()))
    name_error = np.where(rng.random(len(source)) < NAME_ERROR_RATE,
                          rng.choice(NAME_CORRUPTIONS, len(source)), "")
    birth_error = rng.random(len(source)) < BIRTH_ERROR_RATE
    others = roster["id_number"].to_numpy()[rng.integers(0, len(roster), len(source))]
    raw_ids = [_record_id(n, e, o, rng) for n, e, o in
               zip(source["id_number"], id_error, others, strict=True)]
    names = [corrupt_name(n, e, rng) if e else n for n, e in zip(source["name"], name_error,
                                                                 strict=True)]
    births = [corrupt_birth_date(b.date(), rng) if e else b.date() for b, e in
              zip(source["birth_date"], birth_error, strict=True)]
    canonical = canonicalise_ids(pd.Series(raw_ids, dtype=object)).values
    record_frame = pd.DataFrame(
        {
            "record_ref": [f"R{i:07d}" for i in range(len(source))],
            "person_token": person_tokens(KEY, canonical),
            "name": names,
            "birth_date": pd.to_datetime(births),
            "gender": source["gender"].to_numpy(),
            # address-bearing feeds (real estate, vehicles) give a community; wages do not
            "community_code": np.where(rng.random(len(source)) < ADDRESS_SHARE,
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
        corruption=pd.DataFrame({"id_error": id_error, "name_error": name_error,
                                 "birth_error": birth_error, "in_roster": in_roster}),
    )
