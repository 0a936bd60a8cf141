"""Staged partner rows → evidence items, as each contract declares in ``x-hedui.evidence``.

A mapping names the item (fixed ``item`` or a column ``item_field``), the ``amount`` column (yuan
per month for income, yuan value for assets), the ``period`` (a month) or ``date`` column, and an
optional ``where`` filter (e.g. only active vehicles). One row may yield several items (a wage
row gives the wage and the social-insurance contribution).
"""

from __future__ import annotations

import pandas as pd

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
    """Evidence items of staged rows. Rows already matched (``household_id``, ``match_grade``,
    their ``person_token`` the matched member's) keep those columns on every item; of rows not
    yet matched, those whose identity is unresolved (token <NA>) are left out — only the matcher
    (verification/matching/run.py) can place them."""
    carried = [c for c in MATCH_COLUMNS if c in staged.columns]
    # only the columns read below: filtering a staged frame copies every column it has
    staged = staged[[c for c in (*staged_columns(contract), *carried) if c in staged.columns]]
    if not carried:  # not matched yet: rows without a token (identity unresolved) need matching
        staged = staged[staged["person_token"].notna()]
    base = empty_evidence()
    for column in carried:
        base[column] = staged[column].iloc[:0].reset_index(drop=True)
    parts = [base]
    for mapping in contract.evidence:
        rows = staged
        for column, value in mapping.get("where", {}).items():
            rows = rows[rows[column] == value]
        if "amount" in mapping:
            rows = rows[rows[mapping["amount"]].notna()]
        if rows.empty:
            continue
        if "period" in mapping:
            month = pd.to_datetime(rows[mapping["period"]]).to_numpy().astype("datetime64[M]")
            start = pd.Series(month.astype("datetime64[ns]"), index=rows.index)
            end = pd.Series(((month + 1).astype("datetime64[D]") - 1).astype("datetime64[ns]"),
                            index=rows.index)  # the month's last day
        else:
            start = end = pd.to_datetime(rows[mapping["date"]])
        item = rows[mapping["item_field"]] if "item_field" in mapping else mapping["item"]
        parts.append(pd.DataFrame({
            "person_token": rows["person_token"].astype("int64"),
            "source_kind": contract.kind, "feed_id": feed_id,
            "record_ref": rows["record_id"].astype("string"),
            "item": item,
            "amount": rows[mapping["amount"]].astype("float64") if "amount" in mapping else 0.0,
            "period_start": start.astype("datetime64[ns]"),
            "period_end": end.astype("datetime64[ns]"),
            **{column: rows[column] for column in carried},
        }))
    out = pd.concat(parts, ignore_index=True)
    return out.astype({"source_kind": "string", "item": "string", "record_ref": "string"})
