"""A review run's partner rows matched to household members, in one pass (docs/matching.md,
"In the flow").

Staged feeds carry, for every row, the keyed person token (<NA> when the ID number was unusable:
*identity unresolved*), keyed name forms and birth date and gender — the row's own when the
partner sent them, else read off the ID, flagged so (verification/intake/feeds.py). Members get
the same columns here: names are decrypted in memory only, keyed with the same token key and
dropped; nothing raw is written anywhere.

All feeds of the run are matched in one ``match_records`` call, so every exact token match labels
the weights the fallback uses. A person appears in many rows (twelve monthly wages, one row per
pension month): rows with the same identity columns are matched once and the answer is put back
on every row, which keeps the matcher's work proportional to persons, not rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select

from verification.config import Settings
from verification.intake.tokens import TokenKey
from verification.matching import (
    GRADE_DTYPE,
    MatchResult,
    MatchSettings,
    match_records,
    person_keys,
)
from verification.matching.address import (
    ADDRESS_KEY_COLUMNS,
    PHONE_KEY_COLUMNS,
    address_keys,
    phone_keys,
)
from verification.matching.names import NAME_KEY_COLUMNS, name_keys
from verification.security.fieldcrypt import load_field_cipher
from verification.storage import bulk, session_scope
from verification.storage.models import Household, Member

IDENTITY_COLUMNS = ("person_token", *NAME_KEY_COLUMNS, "birth_date", "gender",
                    "birth_date_from_id", "gender_from_id", "id_near", *ADDRESS_KEY_COLUMNS,
                    *PHONE_KEY_COLUMNS)
LINK_COLUMNS = ["row", "household_id", "person_token", "match_grade"]
# whether the row's birth date / gender were read off its ID number (verification/intake/
# feeds.py); a file staged before these were kept has neither: its fields were then all read off
# the ID
_FLAGS = ("birth_date_from_id", "gender_from_id")


def people_for_matching(settings: Settings, key: TokenKey,
                        household_ids: list[int] | None = None) -> pd.DataFrame:
    """Every member (or those of ``household_ids``) with what the matcher compares:
    ``person_token``, ``household_id``, keyed name forms, ``birth_date``, ``gender``,
    ``community_code``, and keyed address and phone parts where the roster holds them. Names,
    addresses and phones are decrypted in memory, keyed and dropped within this call."""
    query = (select(Member.household_id, Member.person_token, Member.birth_date, Member.gender,
                    Household.community_code, Member.name_enc, Household.address_enc,
                    Member.phone_enc)
             .join(Household, Household.id == Member.household_id)
             .order_by(Member.id))  # the same order whichever plan the database takes
    queries = [query] if household_ids is None else [
        query.where(Member.household_id.in_(chunk)) for chunk in bulk.in_chunks(household_ids)]
    with session_scope(settings.database_url) as session:  # a province: millions of members
        # as columns (COPY on PostgreSQL), not a Python tuple per member: 1.5 of the 3.5 CPU-s
        # of a 250,000-member roster went on the rows
        read = [bulk.read_frame(session.connection(), q) for q in queries]
    fetched = read[0] if len(read) == 1 else pd.concat(read, ignore_index=True)
    del read
    cipher = load_field_cipher()
    columns = ["household_id", "person_token", "birth_date", "gender", "community_code"]
    people = fetched[columns].copy()
    people["birth_date"] = pd.to_datetime(people["birth_date"])  # a date, or its text on SQLite
    names = pd.Series(cipher.decrypt_many(fetched["name_enc"], "members.name"), dtype=object)
    keyed = name_keys(names, key).reset_index(drop=True)
    addresses = _decrypted(cipher, fetched["address_enc"],
                           "households.address")  # one per household: members share it
    phones = _decrypted(cipher, fetched["phone_enc"], "members.phone")
    contacts = pd.concat([address_keys(addresses, key), phone_keys(phones, key)], axis=1)
    del names, fetched, addresses, phones
    people = pd.concat([people, keyed, contacts], axis=1).astype(
        {"household_id": "int64", "person_token": "int64", "birth_date": "datetime64[ns]"})
    people = person_keys(people, key)  # + birth_ymd, birth_ym
    # the text as Arrow-backed strings, not Python objects: a province's 2.5 M members with a
    # dozen keyed columns each held about 2 GiB of the matching process as objects
    return people.astype({c: pd.StringDtype("pyarrow") for c in people.columns
                          if people[c].dtype == object})


def _decrypted(cipher, blobs: pd.Series, aad: str) -> pd.Series:  # noqa: ANN001 (FieldCipher)
    """Optional encrypted values (None where the roster holds none), each distinct ciphertext
    decrypted once (a household's members share its address)."""
    codes, distinct = pd.factorize(blobs, use_na_sentinel=True)  # read_frame gives bytes
    plain = np.array([*cipher.decrypt_many(distinct, aad), None], dtype=object)
    return pd.Series(plain[np.where(codes < 0, len(distinct), codes)], dtype=object)


@dataclass
class RunMatch:
    """The matched rows of every staged file, per file: ``file_links(i)`` gives the i-th file's —
    the row's position in the file, the household and member token it was matched to, and the
    grade (one row per household when a person sits in two). Links are built one file at a time
    from each row's run-wide identity and the identities' matches: a province's 40 M links held
    at once for all files were a gigabyte of the matching process."""

    result: MatchResult | None
    matched: pd.DataFrame  # identity, household_id, person_token, match_grade
    rows: int
    identities: int
    row_identity: list[np.ndarray]  # per file: each row's run-wide identity
    # per file: the file positions of the rows matched (None: every row, in order)
    row_positions: list[np.ndarray | None] | None = None
    # identities linked to their valid ID's owner only because nobody else fits them
    # (``id_owner_links``), included in ``matched`` as possible
    id_owner_links: int = 0

    @property
    def links(self) -> list[pd.DataFrame]:
        """Every file's links (``file_links``), all at once: for a few households' feeds."""
        return [self.file_links(i) for i in range(len(self.row_identity))]

    def file_links(self, i: int) -> pd.DataFrame:
        """The i-th file's rows with their matches, in file order: the inner merge of the rows
        and ``matched`` on the identity, sorted by row (stable) as the evidence reads them. Where
        no row has two matches, as index arithmetic on integer arrays (a wages feed is ten
        million rows); a person matched in two households keeps the merge's order of the two."""
        identity = self.row_identity[i]
        at = self.row_positions[i] if self.row_positions else None
        order, starts, counts = self._by_identity
        per_row = counts[identity]
        if per_row.max(initial=0) > 1:
            rows = pd.DataFrame({"row": np.arange(len(identity)) if at is None else at,
                                 "identity": identity.astype(np.int64)})
            return rows.merge(self.matched, on="identity", how="inner")[LINK_COLUMNS] \
                .sort_values("row", kind="stable", ignore_index=True)
        row = np.flatnonzero(per_row)
        taken = order[starts[identity[row]]]
        return pd.DataFrame({
            "row": row if at is None else at[row].astype(np.int64),
            "household_id": self.matched["household_id"].to_numpy()[taken],
            "person_token": self.matched["person_token"].to_numpy()[taken],
            "match_grade": pd.Categorical.from_codes(
                self.matched["match_grade"].cat.codes.to_numpy()[taken], dtype=GRADE_DTYPE),
        })[LINK_COLUMNS]

    @cached_property
    def _by_identity(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``matched``'s rows ordered by identity (stable), where each identity's start in
        that order and how many matches each identity has (zero for one matched nowhere)."""
        identity = self.matched["identity"].to_numpy(dtype=np.int64)
        size = max([int(identity.max(initial=-1)),
                    *(int(rows.max(initial=-1)) for rows in self.row_identity)]) + 1
        counts = np.bincount(identity, minlength=size).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return np.argsort(identity, kind="stable"), starts, counts

    def candidates(self, paths: list[Path], feed_ids: list[int]) -> pd.DataFrame:
        """What the officer is shown for each row sent to REVIEW: the row (``feed_id``,
        ``record_ref``) and its candidates, best first (household, member token, probability
        and the level of each comparison). No names, no ID numbers."""
        shown = self.result.candidates if self.result is not None else pd.DataFrame()
        if not len(shown):
            return pd.DataFrame(columns=["feed_id", "record_ref"])
        parts = []
        positions = self.row_positions or [None] * len(paths)
        for path, feed_id, identity, at in zip(paths, feed_ids, self.row_identity, positions,
                                               strict=True):
            rows = np.flatnonzero(np.isin(identity, shown["record_index"].to_numpy()))
            if len(rows):  # taken in Arrow: a feed's millions of refs stay text buffers
                refs = pq.read_table(path, columns=["record_id"]).column(0).take(
                    pa.array(rows if at is None else at[rows])).to_numpy(zero_copy_only=False)
                parts.append(pd.DataFrame({"feed_id": feed_id, "record_ref": refs,
                                           "record_index": identity[rows]}))
        if not parts:
            return pd.DataFrame(columns=["feed_id", "record_ref"])
        rows = pd.concat(parts, ignore_index=True)
        return rows.merge(shown, on="record_index").drop(columns=["record_index"])


def match_staged(paths: list[Path], people: pd.DataFrame, key: TokenKey,
                 settings: MatchSettings | None = None, *, only_roster_tokens: bool = False,
                 prefilter: bool = False,
                 prefiltered: list[tuple[pa.Table, np.ndarray]] | None = None) -> RunMatch:
    """Match the rows of every staged file in ``paths`` to ``people`` in one ``match_records``
    call; returns the links per file.

    ``only_roster_tokens`` (a batch: ``people`` are a few households, not the roster): rows whose
    valid ID names someone not among ``people`` are left out — they are somebody else's, and the
    fallback would only find them namesakes; the unresolved rows and the rows of ``people``'s
    tokens are matched as in a review.

    ``prefilter`` (implies ``only_roster_tokens``; a batch or a re-check of a few households
    against feeds of millions of rows): the rows that filter would leave out are not even
    read — only the token column of each file is read whole — which gives the same links at a
    fraction of the cost; the links' ``row`` stays the row's position in its file.

    ``prefiltered`` (with ``prefilter``): those rows already read, per file, by
    ``rows_of_tokens`` with the identity columns among others — a caller that needs more of the
    same rows (``pipeline.matched_evidence``: the evidence columns) scans each feed once."""
    distinct, per_file, rows, kept = [], [], 0, []
    wanted = people["person_token"].to_numpy(dtype=np.int64) if prefilter else None
    for i, path in enumerate(paths):
        table, at = _identities(path, wanted, prefiltered[i] if prefiltered else None)
        kept.append(at)
        rows += table.num_rows
        group, first = identity_groups(table)
        per_file.append(_narrow(group))
        # only the file's distinct identities are kept, and as Arrow: the file's own rows (ten
        # million for wages) are let go before the next file is read
        distinct.append(_canonical(table.take(pa.array(first))))
        del table, group, first
    table = pa.concat_tables(distinct) if distinct else _canonical(_identities(None)[0])
    offsets = np.cumsum([0] + [d.num_rows for d in distinct])
    del distinct
    overall, first = identity_groups(table)
    records = _identity_frame(table.take(pa.array(first)))
    del table
    if only_roster_tokens or prefilter:  # the index stays the run-wide identity number
        token = records["person_token"]
        records = records[token.isna().to_numpy() | token.isin(people["person_token"]).to_numpy()]
    result = None
    matched = pd.DataFrame({"identity": pd.Series(dtype="int64"),
                            "household_id": pd.Series(dtype="int64"),
                            "person_token": pd.Series(dtype="int64"),
                            "match_grade": pd.Categorical([], dtype=GRADE_DTYPE)})
    if len(records) and len(people):
        # A few households among a city's feeds: a record without a usable ID is as likely to
        # be each of their members as any person the feeds name — not, as among the rows kept
        # here (every one of them theirs), almost surely one of them.
        persons = _persons_in(paths) if only_roster_tokens or prefilter else 0
        share = min(1.0, len(people) / persons) if persons else None
        result = match_records(_comparable(records, key), people, settings, key=key,
                               match_share=share)
        found = result.matched
        matched = pd.DataFrame({
            "identity": found.index.to_numpy(dtype=np.int64),
            "household_id": found["household_id"].to_numpy(dtype=np.int64),
            "person_token": found["person_token_matched"].to_numpy(dtype=np.int64),
            "match_grade": pd.Categorical(found["match_grade"], dtype=GRADE_DTYPE),
        })
    owners = id_owner_links(result.unmatched, people) if result is not None else matched[:0]
    matched = pd.concat([matched, owners], ignore_index=True) if len(owners) else matched
    identities = [_narrow(overall[offsets[i] + group])  # file's own groups → run-wide ones
                  for i, group in enumerate(per_file)]
    return RunMatch(result, matched, rows, len(records), identities, kept,
                    id_owner_links=len(owners))


def id_owner_links(unmatched: pd.DataFrame, people: pd.DataFrame) -> pd.DataFrame:
    """Links, graded ``possible``, of the records the matcher placed nowhere although their valid
    ID number names a member: the name (and birth date or gender, when sent) on the record is
    another person's, so the ID was refuted, and the fallback found nobody the record describes
    (or only at a gated grade). Such a record may be a clerical mix-up or the member under a
    name the roster does not know; left unmatched, a death or a wage under a recipient's own ID
    number vanished (second outside probe). As possible evidence on the owner's household it
    decides nothing: a death sends the household to REVIEW, a record that would change the
    outcome does (MATCH_UNCERTAIN), any other is listed in the run's unresolved-records.csv."""
    tokens = unmatched["person_token"]
    placed = tokens.notna().to_numpy()
    records = pd.DataFrame({"identity": unmatched.index.to_numpy(dtype=np.int64)[placed],
                            "person_token": tokens[placed].to_numpy(dtype=np.int64)})
    owners = people[["household_id", "person_token"]].astype("int64")
    links = records.merge(owners, on="person_token")  # a person in two households: both
    return links[["identity", "household_id", "person_token"]].assign(
        match_grade=pd.Categorical(np.full(len(links), "possible"), dtype=GRADE_DTYPE))


def _narrow(numbers: np.ndarray) -> np.ndarray:
    """Group numbers (never negative) as int32 where they fit: one per staged row."""
    return numbers.astype(np.int32) if numbers.max(initial=0) < 2**31 else numbers


def identity_groups(frame: pd.DataFrame | pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group of equal identity columns (missing values equal to each other), numbered
    in order of first appearance, and the position of each group's first row — what
    ``groupby(IDENTITY_COLUMNS, dropna=False, sort=False).ngroup()`` and ``drop_duplicates``
    give, on integer codes: a feed of ten million rows has a dozen rows per person. An Arrow
    table is coded in Arrow (a staged file's millions of rows never become pandas strings)."""
    group, span = np.zeros(len(frame), dtype=np.int64), 1
    for column in IDENTITY_COLUMNS:
        codes, size = _column_codes(frame[column])
        if span * (size + 1) >= _RADIX_LIMIT:  # renumber before the combined code overflows
            group, uniques = pd.factorize(group)
            span = max(len(uniques), 1)
        group, span = group * (size + 1) + codes, span * (size + 1)
    group, uniques = pd.factorize(group)  # numbered in order of first appearance
    first = np.empty(len(uniques), dtype=np.int64)
    first[group[::-1]] = np.arange(len(group) - 1, -1, -1)  # the earliest row wins
    return group, first


# the columns' codes are combined as one mixed-radix int64 while it fits, and renumbered (one
# factorisation) only before it would not: a few factorisations instead of one per column
_RADIX_LIMIT = 1 << 62


def _column_codes(values: pd.Series | pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Codes of equal values (missing as one more value) in order of first appearance, and how
    many distinct values there are."""
    if isinstance(values, pd.Series):
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        return codes, len(uniques)
    encoded = pc.dictionary_encode(values.combine_chunks(), null_encoding="encode")
    return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            len(encoded.dictionary))


def _comparable(records: pd.DataFrame, key: TokenKey) -> pd.DataFrame:
    """Records as the matcher compares them: text columns Arrow-backed as read (a province's
    millions of distinct identities as Python strings were gigabytes), the flags boolean and
    ``birth_ymd``/``birth_ym`` from the birth date."""
    flags = {c: records[c].fillna(True).astype(bool) for c in _FLAGS}
    return person_keys(records.assign(**flags), key)


@cache
def _duckdb() -> duckdb.DuckDBPyConnection:
    """This process's in-memory DuckDB (each caller works on its own cursor)."""
    return duckdb.connect()


def rows_of_tokens(path: Path, columns: list[str], tokens: np.ndarray
                   ) -> tuple[pa.Table, np.ndarray]:
    """``columns`` of the rows of a staged file whose token is one of ``tokens`` or missing, in
    file order, and those rows' positions in the file. DuckDB pushes the token filter into the
    Parquet scan, so the other columns are decoded for those rows only: for a re-check's 1 % of
    persons about a tenth of the CPU of reading the columns whole and taking the rows."""
    present = set(pq.read_schema(path).names)
    fields = "".join(f', "{c}"' for c in columns if c in present)
    source = "'" + str(path).replace("'", "''") + "'"
    with _duckdb().cursor() as db:  # a cursor of one in-memory database: opening one costs more
        db.register("wanted", pa.table({"t": pa.array(np.asarray(tokens, dtype=np.int64))}))
        table = db.sql(f"SELECT file_row_number AS row_in_file{fields} "
                       f"FROM read_parquet({source}, file_row_number = true) "
                       "WHERE person_token IS NULL OR person_token IN (SELECT t FROM wanted) "
                       "ORDER BY row_in_file").to_arrow_table()
    positions = table.column("row_in_file").to_numpy().astype(np.int64)
    return table.drop_columns(["row_in_file"]), positions


def _persons_in(paths: list[Path]) -> int:
    """About how many distinct persons (tokens) the staged files name: one scan of their token
    columns (HyperLogLog, a few per cent off: it sets a prior, not a count anyone reads)."""
    present = [path for path in paths if "person_token" in pq.read_schema(path).names]
    if not present:
        return 0
    sources = ", ".join("'" + str(path).replace("'", "''") + "'" for path in present)
    with _duckdb().cursor() as db:
        found = db.sql("SELECT approx_count_distinct(person_token) FROM "
                       f"read_parquet([{sources}], union_by_name = true)").fetchall()
    return int(found[0][0] or 0) if found else 0


def _identities(path: Path | None, tokens: np.ndarray | None = None,
                read: tuple[pa.Table, np.ndarray] | None = None
                ) -> tuple[pa.Table, np.ndarray | None]:
    """The identity columns of a staged file as Arrow (absent ones — a file staged before they
    were kept — as nulls: they then give no evidence either way), and, when ``tokens`` are
    given, only of the rows whose token is one of them or missing, with those rows' positions
    (``read``: those rows as ``rows_of_tokens`` already gave them)."""
    present = set(pq.read_schema(path).names) if path is not None else set()
    wanted = [c for c in IDENTITY_COLUMNS if c in present]
    positions = None
    if path is None:
        table = pa.table({})
    elif tokens is None:
        table = pq.read_table(path, columns=wanted)
    else:
        table, positions = read if read is not None else rows_of_tokens(path, wanted, tokens)
        table = table.select(wanted)
    for column in IDENTITY_COLUMNS:
        if column not in table.column_names:
            table = table.append_column(column, pa.nulls(table.num_rows, _IDENTITY_TYPES.get(
                column, pa.string())))
    return table.select(list(IDENTITY_COLUMNS)), positions


# types of identity columns a staged file may lack (the rest are text)
_IDENTITY_TYPES = {"person_token": pa.int64(), "birth_date": pa.timestamp("ns"),
                   **dict.fromkeys(_FLAGS, pa.bool_())}


def _canonical(table: pa.Table) -> pa.Table:
    """Identity rows in the types ``_identity_frame`` gives them, so the files' distinct rows
    concatenate as one Arrow table (token int64, birth date timestamp, flags boolean, text)."""
    types = {**_IDENTITY_TYPES, "person_token": pa.int64()}
    return pa.table({c: pc.cast(table.column(c), types.get(c, pa.string()))
                     for c in IDENTITY_COLUMNS})


def _identity_frame(table: pa.Table) -> pd.DataFrame:
    """Identity rows as the matcher takes them: nullable token, datetime birth date, boolean
    flags, Arrow-backed strings."""
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(),  # text stays Arrow
                                          pa.string(): pd.StringDtype("pyarrow")}.get)
    types = {"person_token": "Int64", "birth_date": "datetime64[ns]",
             **dict.fromkeys(_FLAGS, "boolean")}
    return frame[list(IDENTITY_COLUMNS)].astype(
        {**dict.fromkeys(IDENTITY_COLUMNS, "string[pyarrow]"), **types})
