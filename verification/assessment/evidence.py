"""Staged partner rows → evidence items, as each contract declares in ``x-hedui.evidence``.

A mapping names the item (fixed ``item`` or a column ``item_field``), the ``amount`` column (yuan
per month for income, yuan value for assets), the ``period`` (a month) or ``date`` column, and an
optional ``where`` filter (e.g. only active vehicles). One row may yield several items (a wage
row gives the wage and the social-insurance contribution).

A dated item is a record of a day (a car registered, a balance queried): its ``period_end`` is
its ``period_start``. A mapping with ``snapshot_of`` (the columns that name one account of the
person: a deposit) yields stocks, read as they stood: a balance stands from its date until the
next balance of the same account, and its ``period_end`` is that next date (``standing_on``), so
twelve month-end balances of one account count once, not twelve times. A mapping with
``holding_of`` (the column that names one property: a home's 不动产权证号, a car's plate) gives
every item its ``holding`` key, so a flat a couple owns together, registered once per co-owner,
is one home of the household, not two (``assess._count_holdings``); items of other mappings
have none.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas import Contract

EVIDENCE_COLUMNS = ["person_token", "source_kind", "feed_id", "record_ref", "item", "amount",
                    "period_start", "period_end", "holding"]


def empty_evidence() -> pd.DataFrame:
    return pd.DataFrame({
        "person_token": pd.Series(dtype="int64"), "source_kind": pd.Series(dtype="string"),
        "feed_id": pd.Series(dtype="int64"), "record_ref": pd.Series(dtype="string"),
        "item": pd.Series(dtype="string"), "amount": pd.Series(dtype="float64"),
        "period_start": pd.Series(dtype="datetime64[ns]"),
        "period_end": pd.Series(dtype="datetime64[ns]"),
        "holding": pd.Series(dtype="Int64"),
    })


# What matching decided for a staged row, carried onto each of its items when present.
MATCH_COLUMNS = ("household_id", "match_grade")


def staged_columns(contract: Contract) -> list[str]:
    """The staged columns ``evidence_from_staged`` reads for a feed of ``contract`` (a staged
    feed holds many more: names as keys, employers, addresses; reading only these keeps a
    province's feeds cheap to turn into evidence)."""
    wanted = ["person_token", "record_id"]
    for mapping in contract.evidence:
        wanted += [*mapping.get("where", {}), *(mapping[k] for k in ("item_field", "amount",
                                                                     "period", "date")
                                                if k in mapping), *mapping.get("snapshot_of", ()),
                   *([mapping["holding_of"]] if "holding_of" in mapping else [])]
    return list(dict.fromkeys(wanted))


def evidence_from_staged(staged: pd.DataFrame, contract: Contract, feed_id: int) -> pd.DataFrame:
    """Evidence items of staged rows (``evidence_table``) as pandas, for the few households of a
    batch or a re-check; ``household_id`` and ``match_grade``, when present, keep their types."""
    carried = [c for c in MATCH_COLUMNS if c in staged.columns]
    # only the columns read: converting a staged frame converts every column it has
    staged = staged[[c for c in (*staged_columns(contract), *carried) if c in staged.columns]]
    table = evidence_table(pa.Table.from_pandas(staged, preserve_index=False), contract, feed_id)
    out = table.to_pandas()
    types = {"person_token": "int64", "source_kind": "string", "item": "string",
             "record_ref": "string", "holding": "Int64", **{c: staged[c].dtype for c in carried}}
    return out.astype(types) if len(out) else empty_evidence().assign(
        **{c: staged[c].iloc[:0].reset_index(drop=True) for c in carried})


def evidence_table(staged: pa.Table, contract: Contract, feed_id: int) -> pa.Table:
    """Evidence items of staged rows, in Arrow (a review turns millions of rows into items).
    Rows already matched (``household_id``, ``match_grade``, their ``person_token`` the matched
    member's) keep those columns on every item; of rows not yet matched, those whose identity is
    unresolved (token null) are left out — only the matcher (verification/matching/run.py) can
    place them. Items come mapping by mapping, each in the staged rows' order."""
    carried = [c for c in MATCH_COLUMNS if c in staged.column_names]
    if not carried:
        staged = staged.filter(pc.is_valid(staged.column("person_token")))
    parts = []
    for mapping in contract.evidence:
        rows = staged
        if "amount" in mapping and mapping["amount"] not in rows.column_names:
            continue  # an optional amount the partner does not send (tax paid): no such items
        for column, value in mapping.get("where", {}).items():
            rows = rows.filter(pc.equal(rows.column(column), value))  # null: not equal
        if "amount" in mapping:
            rows = rows.filter(pc.is_valid(rows.column(mapping["amount"])))
        if not rows.num_rows:
            continue
        n = rows.num_rows
        if "period" in mapping:
            month = _timestamps(rows.column(mapping["period"])).astype("datetime64[M]")
            start = pa.array(month.astype("datetime64[ns]"), from_pandas=True)
            end = pa.array(((month + 1).astype("datetime64[D]") - 1).astype("datetime64[ns]"),
                           from_pandas=True)  # the month's last day
        else:
            if "snapshot_of" in mapping:
                rows = _one_balance_per_day(rows, mapping["snapshot_of"], mapping["date"])
                n = rows.num_rows
            start = end = pc.cast(rows.column(mapping["date"]), pa.timestamp("ns"))
            if "snapshot_of" in mapping:
                end = _next_snapshot(rows, mapping["snapshot_of"], start)
        item = (pc.cast(rows.column(mapping["item_field"]), pa.string())
                if "item_field" in mapping else _repeated(mapping["item"], n))
        amount = (pc.cast(rows.column(mapping["amount"]), pa.float64()) if "amount" in mapping
                  else pa.array(np.zeros(n)))
        parts.append(pa.table({
            "person_token": pc.cast(rows.column("person_token"), pa.int64()),
            "source_kind": _repeated(contract.kind, n),
            "feed_id": pa.array(np.full(n, feed_id, dtype=np.int64)),
            "record_ref": pc.cast(rows.column("record_id"), pa.string()),
            "item": item, "amount": amount, "period_start": start, "period_end": end,
            "holding": _holding(rows, mapping.get("holding_of")),
            **{column: rows.column(column) for column in carried},
        }))
    if not parts:
        empty = pa.Table.from_pandas(empty_evidence(),
                                     preserve_index=False).replace_schema_metadata()
        return empty if not carried else pa.table({
            **{c: empty.column(c) for c in empty.column_names},
            **{c: staged.column(c).slice(0, 0) for c in carried}})
    return pa.concat_tables(parts)


def _holding(rows: pa.Table, column: str | None) -> pa.Array:
    """Each row's property key (a stable 64-bit hash of the ``column`` text: the certificate
    number itself is not carried), null where the mapping names none or the row has none."""
    if column is None or column not in rows.column_names:
        return pa.nulls(rows.num_rows, pa.int64())
    text = pc.utf8_trim_whitespace(pc.cast(rows.column(column), pa.string())).combine_chunks()
    given = pc.fill_null(pc.greater(pc.utf8_length(text), 0), False).to_numpy(
        zero_copy_only=False)
    codes = pd.util.hash_array(np.asarray(text.to_pylist(), dtype=object)).view(np.int64)
    return pa.array(codes, pa.int64(), mask=~given)


def _one_balance_per_day(rows: pa.Table, account: list[str], date_column: str) -> pa.Table:
    """The rows less repeats of one balance: a later row of the same person, day and account
    where the partner named the account in full (every ``account`` column given, an
    ``account_id`` among them) is the same balance sent twice, not a second holding (audit 7:
    one account's 15,000 reported twice was 30,000). Rows of an account not named in full
    stay: several holdings the partner did not tell apart."""
    named = [c for c in account if c in rows.column_names]
    if not rows.num_rows or len(named) < len(account):
        return rows
    frame = rows.select(["person_token", *named, date_column]).to_pandas()
    full = frame[named].notna().all(axis=1) & (frame[named].astype(str) != "").all(axis=1)
    repeat = full & frame.duplicated(keep="first")
    return rows.filter(pa.array(~repeat.to_numpy())) if repeat.any() else rows


def _next_snapshot(rows: pa.Table, account: list[str], dated: pa.ChunkedArray) -> pa.Array:
    """Per row, the date of the next later row of the same person and account (its own date
    where there is none): where a balance stops standing. Rows of one account on one day are
    several holdings the partner did not tell apart, and all of them stand."""
    day = pc.cast(dated, pa.timestamp("ns")).to_numpy(zero_copy_only=False)
    ends = day.copy()
    known = np.flatnonzero(~np.isnat(day))
    if not len(known):
        return pa.array(ends, pa.timestamp("ns"), from_pandas=True)
    account_code = np.zeros(rows.num_rows, dtype=np.int64)
    for column in ["person_token", *(c for c in account if c in rows.column_names)]:
        encoded = pc.dictionary_encode(rows.column(column)).combine_chunks()  # null: -1 below
        code = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        account_code = pd.factorize(account_code * (len(encoded.dictionary) + 1) + code + 1)[0]
    days = day[known].astype("datetime64[D]").astype(np.int64)
    span = int(days.max() - days.min()) + 1
    key = account_code[known] * span + (days - days.min())  # account, then day: one integer
    order = np.argsort(key, kind="stable")
    ranked = key[order]
    following = np.searchsorted(ranked, ranked, side="right")  # first row of a later day
    later = following < len(ranked)
    later[later] = ranked[following[later]] // span == ranked[later] // span
    rows_with_next = known[order[later]]
    ends[rows_with_next] = day[known[order[following[later]]]]
    return pa.array(ends, pa.timestamp("ns"), from_pandas=True)


def _timestamps(column: pa.ChunkedArray) -> np.ndarray:
    """A date or timestamp column as numpy datetime64[ns] (null: NaT)."""
    return pc.cast(column, pa.timestamp("ns")).to_numpy(zero_copy_only=False)


def _repeated(value: str, n: int) -> pa.Array:
    """``value`` ``n`` times as Arrow text, without n Python strings."""
    return pa.array([value], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))


def dated_by(stamps: np.ndarray, as_of: date) -> np.ndarray:
    """Whether each record's date (datetime64[ns]) is on or before ``as_of``; an undated record
    counts as known by then. A record dated later says nothing of the as-of date, whatever it
    records (a car, a home, a 残联 certificate, a death)."""
    return np.isnat(stamps) | (stamps <= np.datetime64(as_of, "ns"))


def standing_on(starts: np.ndarray, ends: np.ndarray, as_of: date) -> np.ndarray:
    """Whether each dated record stands on ``as_of``: dated by then (``dated_by``) and not
    replaced by then by a later snapshot of the same account (a balance's ``period_end`` is the
    next balance's date; any other dated record ends where it starts)."""
    replaced = (ends > starts) & (ends <= np.datetime64(as_of, "ns"))  # NaT: never replaced
    return dated_by(starts, as_of) & ~replaced
