"""The whole review done set-based: a direct reference for ``bench/run.py`` (issue 16).

What a plain DuckDB programme needs to do the same review, stage for stage, on the same packed
feeds, in the same process kind (a spawned worker of the harness), timed in CPU seconds:

1. **intake** — the envelope verified and decrypted with the same library call intake uses,
   the CSV read by DuckDB as text, every row validated by SQL generated from the contract in
   schemas/ (required, number, integer, date and month types, minimum, maximum, maxLength, enum,
   a repeated primary key; an optional identity field's bad value is dropped, as intake does),
   quarantine counts, the GB 11643 check character in SQL, HMAC tokens over distinct valid IDs
   only (``verification.intake.tokens.person_tokens``); the accepted rows typed, as Arrow.
2. **matching + sums** — the exact join on the token and the per-household sums and counts of
   the assessment (``run.duckdb_reference``, the query bench/run.py has compared since issue 10).
3. **category + flags** — per-capita income and financial assets against the dated standard and
   limit, homes, vehicles and businesses, dead members left out: one flag row per household
   (KEEP or REMOVE for recipients, ADD or REJECT otherwise).
4. **database write** — the flag rows COPY'd into a table of their own in PostgreSQL.

It does less than the review — no fuzzy fallback, no reasons, evidence or digests, no audit —
so the ratio says what the rest costs, not that it is waste. Its quarantine counts are printed
beside intake's: the reference reads fewer date and number spellings than intake accepts.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import run as harness

GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


FULL_WIDTH = "０１２３４５６７８９．，ｘＸ"
HALF_WIDTH = "0123456789.,xX"


def _text(column: str) -> str:
    return f"nullif(trim(\"{column}\"), '')"


def _ascii(column: str) -> str:
    """The text with full-width digits made ASCII and every space removed."""
    return (f"nullif(regexp_replace(translate(\"{column}\", '{FULL_WIDTH}', '{HALF_WIDTH}'), "
            f"'\\s', '', 'g'), '')")


def _typed(spec: dict) -> str:
    """The SQL of a field's typed value (NULL where missing or unreadable). The plain spelling
    is tried first; the cleaning runs only for the rows it fails on (COALESCE evaluates its
    later arguments only where the earlier are NULL)."""
    value, name = _text(spec["name"]), spec["name"]
    kind = spec.get("type", "string")
    if kind in ("number", "integer"):  # '1,234.50', '1234.5元', '￥1234', full-width digits
        cleaned = f"regexp_replace({_ascii(name)}, '[元¥￥,]', '', 'g')"
        return f"coalesce(TRY_CAST({value} AS DOUBLE), TRY_CAST({cleaned} AS DOUBLE))"
    if kind == "date":
        return (f"coalesce(TRY_CAST({value} AS DATE), try_strptime({value}, '%Y%m%d')::DATE, "
                f"try_strptime({value}, '%Y/%m/%d')::DATE)")
    if kind == "yearmonth":
        return (f"coalesce(TRY_CAST({value} || '-01' AS DATE), "
                f"try_strptime({value}, '%Y%m')::DATE, TRY_CAST({value} AS DATE))")
    return value


def _problems(spec: dict) -> list[str]:
    """SQL conditions, each true where the field makes its row quarantined; on the table where
    ``"<name>"`` is the raw text and ``"<name>:typed"`` the typed value."""
    name = spec["name"]
    value, typed = _text(name), f'"{name}:typed"'
    rules = spec.get("constraints", {})
    kind = spec.get("type", "string")
    found = []
    if rules.get("required"):
        found.append(f"{value} IS NULL")
    if kind != "string":
        found.append(f"({value} IS NOT NULL AND {typed} IS NULL)")
    if kind == "integer":
        found.append(f"({typed} % 1 <> 0)")
    if "minimum" in rules:
        found.append(f"({typed} < {rules['minimum']})")
    if "maximum" in rules:
        found.append(f"({typed} > {rules['maximum']})")
    if "maxLength" in rules:
        found.append(f"(length({value}) > {rules['maxLength']})")
    if "enum" in rules:
        allowed = ", ".join("'" + str(v).replace("'", "''") + "'" for v in rules["enum"])
        found.append(f"({value} NOT IN ({allowed}))")
    return found


def _any(conditions: list[str]) -> str:
    return " OR ".join(f"coalesce({c}, false)" for c in conditions) or "false"


def _id_columns(column: str) -> str:
    """``_t`` the ID's text, ``_f17`` its first 17 characters (a 15-digit legacy number widened
    with 19), for ``_canonical`` to check."""
    text = f"upper({_ascii(column)})"
    return (f"{text} AS _t, CASE WHEN regexp_full_match({text}, '[0-9]{{15}}') "
            f"THEN substr({text}, 1, 6) || '19' || substr({text}, 7, 9) "
            f"WHEN regexp_full_match({text}, '[0-9]{{17}}[0-9X]') THEN substr({text}, 1, 17) "
            "END AS _f17")


def _canonical() -> str:
    """The canonical 18-character ID from ``_t``/``_f17``, NULL where the number is unusable
    (the GB 11643 check character wrong)."""
    weighted = " + ".join(f"CAST(substr(_f17, {i + 1}, 1) AS INTEGER) * {w}"
                          for i, w in enumerate(GB11643_WEIGHTS))
    check = f"substr('10X98765432', (({weighted}) % 11)::INTEGER + 1, 1)"
    return (f"CASE WHEN _f17 IS NULL THEN NULL WHEN length(_t) = 15 THEN _f17 || {check} "
            f"WHEN {check} = substr(_t, 18, 1) THEN _t END")


def intake_feed(db, plain: Path, contract, key) -> tuple[object, dict[str, int]]:  # noqa: ANN001
    """Validate and type one decrypted feed; returns its accepted rows (Arrow) and counts."""
    from verification.intake.tokens import person_tokens

    source = "'" + str(plain).replace("'", "''") + "'"
    db.execute(f"CREATE OR REPLACE TEMP TABLE raw AS SELECT row_number() OVER () + 1 AS _line, * "
               f"FROM read_csv({source}, all_varchar = true, header = true)")
    present = {r[0] for r in db.execute("DESCRIBE raw").fetchall()}
    fields = [f for f in contract.fields if f["name"] in present and f["name"] != "name"]
    id_field = contract.person_id_field if contract.person_id_field in present else None
    # pass 1: every field typed once, beside its text
    typed = "".join(f', {_typed(f)} AS "{f["name"]}:typed"' for f in fields)
    db.execute(f"CREATE OR REPLACE TEMP TABLE typed AS SELECT *{typed} FROM raw")
    # the canonical ID once per distinct ID text (a person has a dozen rows)
    distinct = (f'SELECT DISTINCT "{id_field}" AS raw_id FROM raw' if id_field else
                "SELECT NULL::VARCHAR AS raw_id WHERE false")
    db.execute(f"CREATE OR REPLACE TEMP TABLE ids AS SELECT raw_id, {_canonical()} AS _id "
               f"FROM (SELECT raw_id, {_id_columns('raw_id')} FROM ({distinct}))")
    # pass 2: the row's problems, the accepted values, the canonical ID
    checks = [p for f in fields if not f.get("x-identity") for p in _problems(f)]
    if contract.primary_key:
        keys = ", ".join(f'"{k}"' for k in contract.primary_key)
        checks.append(f"row_number() OVER (PARTITION BY {keys} ORDER BY _line) > 1")
    values = ", ".join(  # a bad optional identity value is dropped, not quarantined
        f'CASE WHEN {_any(_problems(f))} THEN NULL ELSE "{f["name"]}:typed" END AS "{f["name"]}"'
        if f.get("x-identity") else f'"{f["name"]}:typed" AS "{f["name"]}"'
        for f in fields if f["name"] != id_field)
    joined = (f'LEFT JOIN ids ON ids.raw_id = typed."{id_field}"' if id_field else
              "LEFT JOIN ids ON false")
    db.execute(f"CREATE OR REPLACE TEMP TABLE checked AS SELECT _line, {_any(checks)} AS _bad, "
               f"{values}, ids._id FROM typed {joined}")
    received, quarantined = db.execute(
        "SELECT count(*), count(*) FILTER (WHERE _bad) FROM checked").fetchone()
    ids = db.execute("SELECT DISTINCT _id FROM checked WHERE NOT _bad AND _id IS NOT NULL"
                     ).df()["_id"]
    tokens = pd.DataFrame({"_id": ids, "person_token": person_tokens(key, ids).astype("int64")})
    db.register("tokens", tokens)
    accepted = db.sql("SELECT t.person_token, c.* EXCLUDE (_bad, _id) FROM checked c "
                      "LEFT JOIN tokens t USING (_id) WHERE NOT c._bad").to_arrow_table()
    db.unregister("tokens")
    return accepted, {"received": int(received), "accepted": int(received - quarantined),
                      "quarantined": int(quarantined)}


def _stage(times: dict, name: str, started: tuple[float, float]) -> tuple[float, float]:
    now = (time.perf_counter(), harness._cpu())
    times[name] = {"seconds": round(now[0] - started[0], 3), "cpu": round(now[1] - started[1], 3)}
    return now


def reference_review(settings, meta: dict, as_of, region: str,  # noqa: ANN001
                     postgres_url: str | None) -> dict:
    """The four stages on ``meta``'s packed feeds; wall and CPU seconds of each, the counts."""
    import duckdb
    import pyarrow as pa

    from connectors import envelope
    from schemas import contract_for
    from verification.assessment.policy import load_parameters
    from verification.synthetic.exchange import ensure_test_keys

    centre = ensure_test_keys(settings)
    times: dict[str, dict] = {}
    counts: dict[str, dict[str, int]] = {}
    staged: dict[str, pa.Table] = {}
    clock = (time.perf_counter(), harness._cpu())
    with duckdb.connect() as db, tempfile.TemporaryDirectory(dir=settings.home) as tmp:
        db.execute("SET threads TO 2")
        for kind, feed in meta["feeds"].items():
            plain = Path(tmp) / f"{kind}.csv"
            envelope.unpack_to_path(Path(feed["path"]), plain, keyring=centre.keyring,
                                    trusted=centre.trusted, max_age=None)
            staged[kind], counts[kind] = intake_feed(db, plain, contract_for(kind),
                                                     settings.token_key)
            plain.unlink()
        clock = _stage(times, "intake", clock)
        folder = Path(meta["folder"])
        members = pd.read_parquet(folder / "members.parquet").assign(counted=True)
        policy = load_parameters().at(region, as_of)
        sums, _ = harness.duckdb_reference(staged, members, policy)
        clock = _stage(times, "matching_sums", clock)
        flags = _flags(db, sums, folder, members, policy)
        clock = _stage(times, "category_flags", clock)
        server = _copy_flags(db, flags, postgres_url, Path(tmp)) if postgres_url else None
        _stage(times, "database_write", clock)
    if server is not None:
        times["database_write"]["server_cpu"] = round(server, 3)
    kinds = flags["kind"].value_counts().to_dict()
    return {"stages": times, "counts": counts, "flags": {k: int(v) for k, v in kinds.items()},
            "households": len(flags)}


def _flags(db, sums: pd.DataFrame, folder: Path, members: pd.DataFrame,  # noqa: ANN001
           policy) -> pd.DataFrame:  # noqa: ANN001
    """One flag row per household: the category rule on the sums."""
    households = pd.read_parquet(folder / "households.parquet").reset_index(names="household_id")
    size = members.groupby("household_id").size().rename("size").reset_index()
    standard = {u: float(policy.require("dibao.standard", u)) for u in ("urban", "rural")}
    months = float(policy.require("assets.financial_limit_months"))
    homes = int(policy.value("assets.homes_allowed") or 1)
    db.register("sums", sums.reset_index())
    db.register("households", households[["household_id", "status", "urban_rural"]])
    db.register("sizes", size)
    flags = db.execute(f"""
        WITH h AS (
          SELECT h.household_id, h.status, coalesce(s.size, 1) AS size,
                 CASE h.urban_rural WHEN 'rural' THEN {standard['rural']}
                      ELSE {standard['urban']} END AS standard,
                 -- net of 转移性支出 (taxes, personal social-insurance contributions)
                 greatest(coalesce(x.income_monthly, 0) - coalesce(x.transfer_monthly, 0), 0)
                   AS income, coalesce(x.financial_assets, 0) AS fin,
                 coalesce(x.homes, 0) AS homes, coalesce(x.vehicles, 0) AS vehicles,
                 coalesce(x.businesses, 0) AS businesses
          FROM households h LEFT JOIN sizes s USING (household_id)
          LEFT JOIN sums x USING (household_id))
        SELECT household_id, income / size AS income_per_capita,
               CASE WHEN income / size < standard AND fin / size <= standard * {months}
                         AND homes <= {homes} AND vehicles = 0 AND businesses = 0
                    THEN (CASE WHEN status = 'recipient' THEN 'KEEP' ELSE 'ADD' END)
                    ELSE (CASE WHEN status = 'recipient' THEN 'REMOVE' ELSE 'REJECT' END)
               END AS kind
        FROM h ORDER BY household_id""").df()
    for name in ("sums", "households", "sizes"):
        db.unregister(name)
    return flags


def _copy_flags(db, flags: pd.DataFrame, url: str, tmp: Path) -> float:  # noqa: ANN001
    """COPY the flag rows into a table of a schema of their own; the backend's CPU seconds."""
    import psycopg2

    csv = tmp / "flags.csv"
    db.register("flags", flags)
    db.execute(f"COPY flags TO '{csv}' (HEADER false)")
    db.unregister("flags")
    dsn = url.replace("postgresql+psycopg2://", "postgresql://").split("?")[0]
    schema = f"hedui_reference_{os.getpid()}"
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        before = harness.backend_cpu(pid)
        cursor.execute(f"CREATE SCHEMA {schema}")
        try:
            cursor.execute(f"CREATE TABLE {schema}.flags (household_id bigint PRIMARY KEY, "
                           "income_per_capita double precision, kind text NOT NULL)")
            with csv.open(encoding="utf-8") as source:
                cursor.copy_expert(f"COPY {schema}.flags FROM STDIN (FORMAT csv)", source)
            connection.commit()
            used = harness.backend_cpu(pid) - before
        finally:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")
            connection.commit()
    return used
