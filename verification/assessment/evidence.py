"""Staged partner rows → evidence items, as each contract declares in ``x-hedui.evidence``.

A mapping names the item (fixed ``item`` or a column ``item_field``), the ``amount`` column (yuan
per month for income, yuan value for assets), the ``period`` (a month) or ``date`` column, and an
optional ``where`` filter (e.g. only active vehicles). One row may yield several items (a wage
row gives the wage and the social-insurance contribution).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas import Contract

EVIDENCE_COLUMNS = ["person_token", "source_kind", "feed_id", "record_ref", "item", "amount",
                    "period_start", "period_end"]


def empty_evidence() -> pd.DataFrame:
    return pd.DataFrame({
        "person_token": pd.Series(dtype="int64"), "source_kind": pd.Series(dtype="string"),
        "feed_id": pd.Series(dtype="int64"), "record_ref": pd.Series(dtype="string"),
        "item": pd.Series(dtype="string"), "amount": pd.Series(dtype="float64"),
        "period_start": pd.Series(dtype="datetime64[ns]"),
        "period_end": pd.Series(dtype="datetime64[ns]"),
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
                                                if k in mapping)]
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
             "record_ref": "string", **{c: staged[c].dtype for c in carried}}
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
            start = end = pc.cast(rows.column(mapping["date"]), pa.timestamp("ns"))
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
            **{column: rows.column(column) for column in carried},
        }))
    if not parts:
        empty = pa.Table.from_pandas(empty_evidence(),
                                     preserve_index=False).replace_schema_metadata()
        return empty if not carried else pa.table({
            **{c: empty.column(c) for c in empty.column_names},
            **{c: staged.column(c).slice(0, 0) for c in carried}})
    return pa.concat_tables(parts)


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
