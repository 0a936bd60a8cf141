"""The caseload: households and members, loaded from a file in the batch-file contract.

The whole file is validated first; if any row fails, nothing is loaded and every error is
reported with its line, field and reason (staff fix the file and submit it again). On success
households are upserted by household code and their members replaced, so loading the same file
twice changes nothing. ID numbers and names are stored only encrypted, plus masked forms for
reports; members are joined by keyed token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, insert, select

from verification import audit, identifiers
from verification.config import Settings
from verification.decode import read_table
from verification.fieldcrypt import load_field_cipher
from verification.storage import session_scope
from verification.storage.models import Authorisation, Household, Member
from verification.tokens import assert_no_collisions, person_tokens
from verification.validation import Validated, validate_frame

HOUSEHOLD_FIELDS = ["area_code", "street_code", "community_code", "status", "category",
                    "urban_rural", "current_benefit"]


class RosterInvalid(ValueError):
    """The file has rows that fail the contract; ``errors`` lists them (line, field, reason)."""

    def __init__(self, errors: pd.DataFrame, received: int) -> None:
        self.errors = errors
        lines = errors["line"].nunique()
        super().__init__(f"{lines} of {received} rows fail the batch-file contract; nothing loaded")


@dataclass(frozen=True)
class RosterLoaded:
    households: int
    members: int
    household_ids: list[int]


def validate_roster(path: Path) -> Validated:
    """Check a batch or roster file against the contract, including household consistency."""
    checked = validate_frame(read_table(path), "batch")
    frame = checked.accepted
    if len(frame):
        # Every row of one household must agree on the household's own fields.
        conflicts = frame.groupby("household_code")[HOUSEHOLD_FIELDS].nunique(dropna=False).gt(1)
        bad_codes = conflicts.index[conflicts.any(axis=1)]
        rows = frame[frame["household_code"].isin(bad_codes)]
        if len(rows):
            extra = pd.DataFrame({"line": rows["_line"], "field": "household_code",
                                  "reason": "HOUSEHOLD_INCONSISTENT",
                                  "message": "rows of this household disagree on street, status "
                                             "or category"})
            checked.quarantine = pd.concat([checked.quarantine, extra], ignore_index=True)
            checked.accepted = frame[~frame["household_code"].isin(bad_codes)]
        heads = frame.groupby("household_code")["relation"].apply(lambda r: (r == "户主").sum())
        no_head = frame[frame["household_code"].isin(heads.index[heads != 1])]
        if len(no_head):
            extra = pd.DataFrame({"line": no_head["_line"], "field": "relation",
                                  "reason": "HEAD_COUNT", "message": "a household needs exactly "
                                  "one member with relation 户主"})
            checked.quarantine = pd.concat([checked.quarantine, extra], ignore_index=True)
            checked.accepted = checked.accepted[~checked.accepted["household_code"]
                                                .isin(no_head["household_code"])]
    return checked


def load_roster(settings: Settings, path: Path, actor: str = "system",
                batch_id: int | None = None) -> RosterLoaded:
    """Load a valid file; authorisations are recorded with ``batch_id`` when the file is a batch."""
    checked = validate_roster(path)
    if len(checked.quarantine):
        raise RosterInvalid(checked.quarantine.sort_values("line"), checked.received)
    frame = checked.accepted
    frame = frame.assign(person_token=person_tokens(settings.token_key, frame["id_number"]))
    assert_no_collisions(frame["id_number"], frame["person_token"])
    with session_scope(settings.database_url) as session:
        ids = _upsert_households(session, frame)
        session.execute(delete(Member).where(Member.household_id.in_(list(ids.values()))))
        member_ids = _insert_members(session, settings, frame, ids)
        _insert_authorisations(session, frame, member_ids, batch_id)
        audit.record(session, actor, "roster.loaded", f"file:{path.name}",
                     {"households": len(ids), "members": len(frame)})
    return RosterLoaded(len(ids), len(frame), sorted(ids.values()))


def _upsert_households(session, frame: pd.DataFrame) -> dict[str, int]:  # noqa: ANN001
    heads = frame.drop_duplicates("household_code").set_index("household_code")
    existing = {h.household_code: h for h in session.scalars(
        select(Household).where(Household.household_code.in_(list(heads.index))))}
    for code, row in heads.iterrows():
        values = {f: (float(row[f]) if f == "current_benefit" and pd.notna(row[f]) else row[f])
                  for f in HOUSEHOLD_FIELDS}
        values["current_benefit"] = values["current_benefit"] or 0.0
        if code in existing:
            for key, value in values.items():
                setattr(existing[code], key, value)
        else:
            existing[code] = Household(household_code=code, **values)
            session.add(existing[code])
    session.flush()
    return {code: h.id for code, h in existing.items()}


def _insert_members(session, settings: Settings, frame: pd.DataFrame,  # noqa: ANN001
                    ids: dict[str, int]) -> dict[str, int]:
    cipher = load_field_cipher()
    rows = []
    for rec in frame.itertuples(index=False):
        born = identifiers.birth_date(rec.id_number)
        grade = 0 if pd.isna(rec.disability_grade) else int(rec.disability_grade)
        rows.append({
            "household_id": ids[rec.household_code], "person_token": int(rec.person_token),
            "token_key_id": settings.token_key_id,
            "id_number_enc": cipher.encrypt(rec.id_number, "members.id_number"),
            "name_enc": cipher.encrypt(rec.name, "members.name"),
            "id_masked": identifiers.mask_id(rec.id_number),
            "name_masked": identifiers.mask_name(rec.name),
            "birth_date": born, "gender": identifiers.gender(rec.id_number),
            "relation": rec.relation, "exclusion": rec.exclusion if pd.notna(rec.exclusion) else "",
            "disability_grade": grade,
            "disability_type": rec.disability_type if pd.notna(rec.disability_type) else "",
            "labour_capacity": True,
        })
    session.execute(insert(Member), rows)
    found = session.execute(select(Member.id, Member.person_token, Member.household_id)
                            .where(Member.household_id.in_(list(ids.values())))).all()
    return {f"{hid}:{tok}": mid for mid, tok, hid in found}


def _insert_authorisations(session, frame: pd.DataFrame,  # noqa: ANN001
                           member_ids: dict[str, int], batch_id: int | None) -> None:
    household_ids = {code: hid for code, hid in session.execute(
        select(Household.household_code, Household.id)
        .where(Household.household_code.in_(frame["household_code"].unique().tolist())))}
    scopes = frame.get("authorisation_scope", pd.Series(pd.NA, index=frame.index))
    expiries = frame.get("authorisation_expires_on", pd.Series(pd.NaT, index=frame.index))
    rows = [{"member_id": member_ids[f"{household_ids[r.household_code]}:{int(r.person_token)}"],
             "reference": r.authorisation_ref, "signed_on": r.authorisation_signed_on.date(),
             "scope": "all" if pd.isna(scope) else str(scope),
             "expires_on": None if pd.isna(expiry) else pd.Timestamp(expiry).date(),
             "batch_id": batch_id}
            for r, scope, expiry in zip(frame.itertuples(index=False), scopes, expiries,
                                        strict=True)]
    session.execute(insert(Authorisation), rows)
