"""Exact match on the keyed person token: the only path that can yield a ``certain`` grade.

Member tokens are unique in a well-formed roster, so the join is a hash lookup of every record
token in an index of member tokens (``Index.get_indexer``) followed by one ``take``; that avoids
the sort and the copies of a general merge. A roster where one person sits in two households is
still matched correctly (one row per record x household) by falling back to a merge.

Building the index (a hash table of 2.5 million tokens) costs about as much as looking up ten
million records in it, and a run matches several feeds against one roster: ``RosterIndex``
builds it once, and ``match_exact`` accepts either the members frame or a prepared index.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from verification.matching._grades import GRADE_DTYPE

MEMBER_KEY = "person_token"


class RosterIndex:
    """Members prepared for exact matching: the token index is built once and reused."""

    def __init__(self, members: pd.DataFrame) -> None:
        if MEMBER_KEY not in members.columns:
            raise ValueError(f"members have no {MEMBER_KEY!r} column; tokenise the IDs first")
        if "household_id" not in members.columns:
            raise ValueError("members have no 'household_id' column")
        self.members = members
        self.tokens = pd.Index(members[MEMBER_KEY].to_numpy(dtype=np.int64))
        self.unique = bool(self.tokens.is_unique)  # also builds the hash table, once
        self.key_id = members.attrs.get("token_key_id")

    def __len__(self) -> int:
        return len(self.tokens)


def _roster(members: pd.DataFrame | RosterIndex) -> RosterIndex:
    return members if isinstance(members, RosterIndex) else RosterIndex(members)


def _check_records(records: pd.DataFrame, roster: RosterIndex) -> None:
    if MEMBER_KEY not in records.columns:
        raise ValueError(f"records have no {MEMBER_KEY!r} column; tokenise the IDs first")
    if "household_id" in records.columns:
        raise ValueError(
            "records already carry 'household_id'; matching decides it — drop or rename the column"
        )
    key_ids = {records.attrs.get("token_key_id"), roster.key_id} - {None}
    if len(key_ids) > 1:
        raise ValueError(
            f"records and members were tokenised with different keys {sorted(key_ids)}; "
            "re-tokenise one side with the current key"
        )


def _record_tokens(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """int64 tokens and a mask of records that have one (<NA> where the ID was invalid)."""
    column = records[MEMBER_KEY]
    present = column.notna().to_numpy()
    values = column.to_numpy(dtype=np.int64, na_value=0)
    return values, present


def exact_pairs(
    records: pd.DataFrame, members: pd.DataFrame | RosterIndex
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (record, member) of every exact token match, in record order."""
    index = _roster(members)
    _check_records(records, index)
    tokens, present = _record_tokens(records)
    roster = index.tokens
    if index.unique:
        position = roster.get_indexer(tokens)
        hit = np.flatnonzero((position >= 0) & present)
        return hit, position[hit]
    keyed = pd.DataFrame({"token": tokens[present], "record": np.flatnonzero(present)})
    roster_frame = pd.DataFrame({"token": roster.to_numpy(), "member": np.arange(len(roster))})
    joined = keyed.merge(roster_frame, on="token").sort_values(["record", "member"])
    return joined["record"].to_numpy(), joined["member"].to_numpy()


def match_exact(records: pd.DataFrame, members: pd.DataFrame | RosterIndex) -> pd.DataFrame:
    """Records whose token is in the roster, with ``household_id`` and ``match_grade='certain'``.

    Inner join on ``person_token`` (one row per record x matching member; the record's index is
    kept); records without a token or with a token not in the roster are left out
    (``match_records`` sends them to the probabilistic fallback).
    """
    roster = _roster(members)
    record_rows, member_rows = exact_pairs(records, roster)
    # a fresh frame object (the take already copied the data): new columns stay ours
    matched = records.iloc[record_rows].copy(deep=False)
    matched["household_id"] = roster.members["household_id"].to_numpy()[member_rows]
    matched["match_grade"] = pd.Categorical.from_codes(
        np.zeros(len(matched), dtype=np.int8), dtype=GRADE_DTYPE
    )
    return matched
