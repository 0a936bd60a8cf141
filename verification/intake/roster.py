"""The caseload: households and members, loaded from a file in the batch-file contract.

The whole file is validated first; if any row fails, nothing is loaded and every error is
reported with its line, field and reason (staff fix the file and submit it again). On success
households are upserted by household code and their members replaced, so loading the same file
twice changes nothing. ID numbers, names, addresses and phones are stored only encrypted (plus
masked forms of ID and name for reports); members are joined by keyed token.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from connectors.decoding import LINE, PROBLEM, DecodeError, decode_bytes
from schemas import Contract, contract_for
from verification import codes
from verification.config import Settings
from verification.intake import identifiers
from verification.intake.problems import CODED_FIELDS
from verification.intake.textcheck import (
    describe_mixed,
    invisible_character_problems,
    mixed_encoding_line,
)
from verification.intake.validate import Validated, validate_frame

HOUSEHOLD_FIELDS = ["area_code", "street_code", "community_code", "status", "category",
                    "urban_rural", "current_benefit"]


class RosterInvalid(ValueError):
    """The file has rows that fail the contract; ``errors`` lists them (line, field, reason)."""

    def __init__(self, errors: pd.DataFrame, received: int) -> None:
        self.errors = errors
        lines = errors["line"].nunique()
        super().__init__(f"{received} 行中有 {lines} 行不符合批次文件规范，未载入任何数据 / "
                         f"{lines} of {received} rows fail the batch-file contract; nothing loaded")


@dataclass(frozen=True)
class RosterLoaded:
    households: int
    members: int
    household_ids: list[int]


def validate_roster(path: Path, *, today: dt.date | None = None) -> Validated:
    """Check a batch or roster file against the contract, including household consistency.

    CSV (UTF-8, UTF-8 with BOM, UTF-16, GBK/GB18030) or XLSX (first visible sheet). A file that
    cannot be read as a whole — mixed encodings, broken quoting, no header, a header lacking
    required columns or naming one twice — raises ``DecodeError`` saying where; otherwise every
    row is accepted or quarantined with its line, field and reason, and the counts reconcile.
    """
    data = path.read_bytes()
    if found := mixed_encoding_line(data):
        raise DecodeError(describe_mixed(found))
    frame = canonical_batch_frame(decode_bytes(data, filename=path))
    contract = contract_for("batch")
    _require_columns(frame, contract)
    if not len(frame):  # a header alone: nothing to check, and nothing must be loaded
        raise DecodeError("文件只有表头，没有数据行 / the file has a header but no rows")
    checked = validate_frame(frame.drop(columns=[PROBLEM]), contract)
    titles = contract.titles
    _quarantine(checked, _unreadable_rows(frame))
    _quarantine(checked, invisible_character_problems(
        frame, [f["name"] for f in contract.fields if f.get("type", "string") == "string"],
        titles))
    _quarantine(checked, _date_problems(checked.accepted, today or dt.date.today()))
    _quarantine(checked, _repeated_persons(checked.accepted))
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
    checked.quarantine = checked.quarantine.sort_values(["line", "field"], kind="stable") \
        .reset_index(drop=True)
    return checked


def read_batch_file(path: Path) -> pd.DataFrame:
    """A batch file decoded with canonical column names and codes (as ``validate_roster``
    reads it), for whatever else reads the stored file."""
    from connectors.decoding import decode_file

    return canonical_batch_frame(decode_file(path))


def canonical_batch_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Headers written as the contract's titles (家庭编号, or the English title) become the
    field names, and coded values written as their Chinese label (在保) become the code, before
    anything is validated; any other header or value is left for the validator to judge."""
    fields = contract_for("batch").fields
    known = {f["name"]: f["name"] for f in fields}
    known.update({f["title"]: f["name"] for f in fields})
    known.update({f["x-title-en"].casefold(): f["name"] for f in fields if f.get("x-title-en")})
    rename = {}
    for column in frame.columns:
        name = known.get(str(column).strip()) or known.get(str(column).strip().casefold())
        if name and name != column and column not in (LINE, PROBLEM):
            rename[column] = name
    named = [rename.get(c, c) for c in frame.columns]
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        raise DecodeError(f"line 1: column {twice[0]!r} appears twice in the header (once by "
                          "its name, once by its title)")
    frame = frame.rename(columns=rename)
    for field, section in CODED_FIELDS.items():
        if field in frame.columns:
            labels = {codes.label(section, code, "zh"): code
                      for code in codes.vocabulary()[section]}
            frame[field] = frame[field].map(
                lambda v, labels=labels: labels.get(v.strip(), v) if isinstance(v, str) else v)
    return frame


def _require_columns(frame: pd.DataFrame, contract: Contract) -> None:
    required = [f["name"] for f in contract.fields if f.get("constraints", {}).get("required")]
    missing = [name for name in required if name not in frame.columns]
    if missing:
        found = [c for c in frame.columns if c not in (LINE, PROBLEM)]
        raise DecodeError(
            f"line 1: the header lacks the required column(s) {', '.join(missing)} (found: "
            f"{', '.join(found[:20]) or 'none'}); the first row must name every column once, "
            "without merged cells")


def _quarantine(checked: Validated, problems: pd.DataFrame) -> None:
    """Add row problems and drop their lines from the accepted rows (counts stay reconciled)."""
    if problems.empty:
        return
    checked.quarantine = (pd.concat([checked.quarantine, problems], ignore_index=True)
                          .drop_duplicates(["line", "field"], keep="first")
                          .sort_values(["line", "field"]).reset_index(drop=True))
    checked.accepted = checked.accepted[~checked.accepted["_line"].isin(problems["line"])]


def _unreadable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame[frame[PROBLEM] != ""]
    code = bad[PROBLEM].str.split(":", n=1).str[0]
    return pd.DataFrame({"line": bad[LINE].astype(int), "field": "_row", "reason": code,
                         "message": bad[PROBLEM]})


def _date_problems(frame: pd.DataFrame, today: dt.date) -> pd.DataFrame:
    parts = []
    signed, expires = frame["authorisation_signed_on"], frame["authorisation_expires_on"]
    future = signed.notna() & (signed.dt.date > today)
    parts.append(pd.DataFrame({"line": frame.loc[future, "_line"],
                               "field": "authorisation_signed_on", "reason": "FUTURE_DATE",
                               "message": f"授权日期 (authorisation_signed_on) is after today "
                                          f"({today}); an authorisation cannot be signed later"}))
    before = signed.notna() & expires.notna() & (expires < signed)
    parts.append(pd.DataFrame({"line": frame.loc[before, "_line"],
                               "field": "authorisation_expires_on",
                               "reason": "EXPIRES_BEFORE_SIGNED",
                               "message": "授权有效期至 (authorisation_expires_on) is before the "
                                          "authorisation was signed"}))
    return pd.concat(parts, ignore_index=True)


def _repeated_persons(frame: pd.DataFrame) -> pd.DataFrame:
    """The same person on two rows (one household twice, or two households): both rows, since
    only the staff can tell which is right."""
    repeated = frame[frame["id_number"].notna() & frame["id_number"].duplicated(keep=False)]
    first = repeated.groupby("id_number")["_line"].transform("min")
    last = repeated.groupby("id_number")["_line"].transform("max")
    other = first.where(first != repeated["_line"], last)
    return pd.DataFrame({"line": repeated["_line"], "field": "id_number",
                         "reason": "DUPLICATE_PERSON",
                         "message": "公民身份号码 (id_number): the same person is also on line "
                                    + other.astype(str)})


def load_roster(settings: Settings, path: Path, actor: str = "system",
                batch_id: int | None = None, category: str | None = None) -> RosterLoaded:
    """Load a valid file; authorisations are recorded with ``batch_id`` when the file is a batch.

    ``category`` (a batch's: what its households apply for) is given to the households whose
    row names none; a row's own category is kept."""
    from sqlalchemy import delete

    from verification.intake.tokens import assert_no_collisions, person_tokens
    from verification.security import audit
    from verification.storage import bulk, session_scope
    from verification.storage.models import Authorisation, Household, Member

    checked = validate_roster(path)
    if len(checked.quarantine):
        raise RosterInvalid(checked.quarantine.sort_values("line"), checked.received)
    frame = checked.accepted
    if category and category != "none":
        named = frame["category"].fillna("none").replace("", "none")
        frame = frame.assign(category=named.where(named != "none", category))
    frame = frame.assign(person_token=person_tokens(settings.token_key, frame["id_number"]))
    assert_no_collisions(frame["id_number"], frame["person_token"])
    with session_scope(settings.database_url) as session:
        if batch_id is None:
            _refuse_members_of_other_households(session, frame)
        ids = _upsert_households(session, frame)
        session.execute(delete(Member).where(Member.household_id.in_(list(ids.values()))))
        member_ids = _insert_members(session, settings, frame, ids)
        _insert_authorisations(session, frame, member_ids, batch_id)
        bulk.refresh_statistics(session.connection(), (Household.__table__, Member.__table__,
                                                       Authorisation.__table__))
        audit.record(session, actor, "roster.loaded", f"file:{path.name}",
                     {"households": len(ids), "members": len(frame)})
    return RosterLoaded(len(ids), len(frame), sorted(ids.values()))


class RosterConflict(ValueError):
    """A person in the file is already a member of a caseload household the file does not
    hold: loading it would put one person in two households (their income counted twice)."""


def _refuse_members_of_other_households(session, frame: pd.DataFrame) -> None:  # noqa: ANN001
    from sqlalchemy import select

    from verification.storage.models import Household, Member

    tokens = [int(t) for t in frame["person_token"]]
    codes = set(frame["household_code"])
    found = []
    for at in range(0, len(tokens), 10_000):  # a city's caseload: bound each statement's list
        found += session.execute(
            select(Member.person_token, Household.household_code)
            .join(Household, Household.id == Member.household_id)
            .where(Member.person_token.in_(tokens[at:at + 10_000]))).all()
    elsewhere = [(token, code) for token, code in found if code not in codes]
    if not elsewhere:
        return
    by_token = frame.set_index("person_token")
    token, code = elsewhere[0]
    row = by_token.loc[token]
    row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
    raise RosterConflict(
        f"{len(elsewhere)} 人已是其他家庭的成员（如 {identifiers.mask_id(row['id_number'])} 在 "
        f"{code}，本文件列入 {row['household_code']}）；请把两户的新名单一并载入，未载入任何数据 / "
        f"{len(elsewhere)} person(s) already belong to another household of the caseload (e.g. "
        f"{identifiers.mask_id(row['id_number'])} in {code}, listed here in "
        f"{row['household_code']}); load both households' new rows together; nothing loaded")


def household_addresses(frame: pd.DataFrame) -> pd.Series:
    """Each household's address: the head's row's, else the first row's that gives one (the
    contract asks for the same address on every row, or on the head's row only)."""
    if "address" not in frame:
        return pd.Series(dtype=object)
    given = frame[frame["address"].notna()]
    order = (given["relation"] != "户主").to_numpy()  # the head's row first
    given = given.iloc[np.argsort(order, kind="stable")]
    return given.drop_duplicates("household_code").set_index("household_code")["address"]


def _upsert_households(session, frame: pd.DataFrame) -> dict[str, int]:  # noqa: ANN001
    from sqlalchemy import select

    from verification.security.fieldcrypt import load_field_cipher
    from verification.storage.models import Household

    heads = frame.drop_duplicates("household_code").set_index("household_code")
    existing = {h.household_code: h for h in session.scalars(
        select(Household).where(Household.household_code.in_(list(heads.index))))}
    addresses = household_addresses(frame)
    cipher = load_field_cipher()
    for code, row in heads.iterrows():
        values = {f: _or_default(f, row[f]) for f in HOUSEHOLD_FIELDS}
        address = addresses.get(code)
        values["address_enc"] = (None if address is None
                                 else cipher.encrypt(address, "households.address"))
        if code in existing:
            for key, value in values.items():
                setattr(existing[code], key, value)
        else:
            existing[code] = Household(household_code=code, **values)
            session.add(existing[code])
    session.flush()
    return {code: h.id for code, h in existing.items()}


# The documented value of an optional field left empty (schemas/batch.json): a missing amount is
# no current benefit, a missing category none. NaN or NA must never reach the database.
_HOUSEHOLD_DEFAULTS = {"current_benefit": 0.0, "category": "none"}


def _or_default(field: str, value: object) -> object:
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return _HOUSEHOLD_DEFAULTS.get(field, value)
    return float(value) if field == "current_benefit" else value


def _insert_members(session, settings: Settings, frame: pd.DataFrame,  # noqa: ANN001
                    ids: dict[str, int]) -> dict[str, int]:
    from sqlalchemy import insert, select

    from verification.security.fieldcrypt import load_field_cipher
    from verification.storage.models import Member

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
            "phone_enc": (cipher.encrypt(phone, "members.phone")
                          if isinstance(phone := getattr(rec, "phone", None), str) else None),
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
    from sqlalchemy import insert, select

    from verification.storage.models import Authorisation, Household

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
