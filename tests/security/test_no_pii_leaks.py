"""The whole demo flow leaves no raw ID number and no full name of any generated person anywhere
outside the encrypted columns: not in a log line, a report (CSV, XLSX, HTML), a staging or run
Parquet file, any other file under HEDUI_HOME, or any text column of the application database.

Not scanned, on purpose: ``feeds/`` (the envelopes exactly as received — encrypted), and
``district/`` + ``partner-outbox/``, which stand for the outside world (the partner departments'
own systems and the caseload file staff hand in); in a deployment they are not on this machine.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from verification.config import PROJECT_ROOT, load_settings
from verification.intake.identifiers import canonical_text, is_valid_id
from verification.synthetic.demo import run_demo

NOT_SCANNED = ("feeds", "district", "partner-outbox")
ENCRYPTED = {("members", "id_number_enc"), ("members", "name_enc"), ("members", "phone_enc"),
             ("households", "address_enc")}


@contextmanager
def _captured_output() -> Iterator[list[str]]:
    """Every byte written to fd 1/2 and every log record (formatted, with tracebacks)."""
    lines: list[str] = []
    handler = logging.StreamHandler(io.StringIO())
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            os.dup2(sink.fileno(), fd)
        try:
            yield lines
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            root.removeHandler(handler)
            root.setLevel(old_level)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines())
            lines.extend(handler.stream.getvalue().splitlines())


class Scanner:
    """Finds generated persons' ID numbers (18-digit, legacy 15-digit) and full names."""

    def __init__(self, district: Path) -> None:
        ids: set[str] = set()
        names: set[str] = set()
        for path in [district / "roster.csv", *sorted((district / "feeds").glob("*.csv"))]:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            for raw in frame.get("id_number", []):
                text = canonical_text(raw)
                if is_valid_id(text):
                    ids.add(text)
            names.update(n.strip() for n in frame.get("name", []) if len(n.strip()) >= 2)
        assert len(ids) > 100 and len(names) > 100, "the district should hold many persons"
        self.ids = ids
        legacy = {i[:6] + i[8:17] for i in ids if i[6:8] == "19"}
        self._id_pattern = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])")
        self._ids = ids | legacy
        self._names = re.compile("|".join(map(re.escape, sorted(names, key=len, reverse=True))))
        self._public = _public_terms()

    def leaks(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFKC", text)
        found = [m.group() for m in self._id_pattern.finditer(text)
                 if m.group().upper() in self._ids]
        # Street and community names, labels and headers are public text, whatever surname
        # they happen to share with a generated person: blank them out before looking for names.
        public = self._public.sub(lambda m: " " * len(m.group()), text)
        found += [m.group() for m in self._names.finditer(public)]
        return found


def _public_terms() -> re.Pattern[str]:
    terms: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            terms.add(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for name in ("jurisdictions.yaml", "codes.yaml"):
        walk(yaml.safe_load((PROJECT_ROOT / "verification" / name).read_text("utf-8")))
    from verification.reports.flag_reports import HEADERS

    terms.update(HEADERS.values())
    terms = {t for t in terms if re.search(r"[\u4e00-\u9fff]", t)}
    return re.compile("|".join(map(re.escape, sorted(terms, key=len, reverse=True))))


@pytest.fixture(scope="module")
def demo_home() -> Iterator[tuple[Path, Scanner, list[str]]]:
    settings = load_settings()  # the session's HEDUI_HOME (Airflow is configured for it)
    with _captured_output() as lines:
        result = run_demo(settings, households=150, seed=5, say=lambda s: print(s, flush=True))
    assert result.households == 150 and not result.mismatches
    yield settings.home, Scanner(settings.district_dir), lines


def _file_texts(path: Path) -> Iterator[tuple[str, str]]:
    """(where, text) for a file: Parquet by column, XLSX by archive member, else the raw bytes."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        for column in frame.columns:
            yield f"{path}:{column}", "\n".join(frame[column].astype(str).tolist())
        return
    data = path.read_bytes()
    if data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield f"{path}!{member}", archive.read(member).decode("utf-8", "replace")
        return
    for encoding in ("utf-8", "gb18030"):
        yield f"{path} ({encoding})", data.decode(encoding, "replace")


def _scanned_files(home: Path) -> list[Path]:
    return [p for p in sorted(home.rglob("*")) if p.is_file()
            and p.relative_to(home).parts[0] not in NOT_SCANNED]


def test_the_scanner_finds_what_it_looks_for(demo_home):
    home, scanner, _ = demo_home
    some_id = sorted(scanner.ids)[0]
    roster = pd.read_csv(home / "district" / "roster.csv", dtype=str)
    name = roster["name"].iloc[0]
    assert scanner.leaks(f"x {some_id} y") == [some_id]
    assert scanner.leaks(f"x{name}y") == [name]
    assert scanner.leaks(f"{some_id[:6]}{some_id[8:17]}") == [some_id[:6] + some_id[8:17]]
    assert scanner.leaks("浑南区 五三街道 核对结论") == []


def test_no_log_line_holds_personal_data(demo_home):
    _, scanner, lines = demo_home
    assert len(lines) > 20, "the demo's output should have been captured"
    leaks = [(line[:160], hit) for line in lines for hit in scanner.leaks(line)]
    assert leaks == []


def test_no_file_under_hedui_home_holds_personal_data(demo_home):
    home, scanner, _ = demo_home
    files = _scanned_files(home)
    kinds = {p.suffix for p in files}
    assert {".csv", ".xlsx", ".parquet", ".db"} <= kinds, kinds
    assert any("staging" in p.parts for p in files) and any("reports" in p.parts for p in files)
    leaks = [(where, hit) for path in files for where, text in _file_texts(path)
             for hit in scanner.leaks(text)]
    assert leaks[:10] == []


def test_no_database_text_column_holds_personal_data(demo_home):
    _, scanner, _ = demo_home
    engine = sa.create_engine(load_settings().database_url)
    meta = sa.MetaData()
    meta.reflect(engine)
    leaks, scanned = [], 0
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for column in table.columns:
                if (table.name, column.name) in ENCRYPTED or isinstance(
                        column.type, sa.LargeBinary):
                    continue
                for (value,) in conn.execute(sa.select(column).where(column.is_not(None))):
                    scanned += 1
                    leaks += [(table.name, column.name, hit) for hit in scanner.leaks(str(value))]
    engine.dispose()
    assert scanned > 1000
    assert leaks[:10] == []


def test_encrypted_columns_are_the_only_binary_columns_and_hold_no_plaintext(demo_home):
    _, scanner, _ = demo_home
    engine = sa.create_engine(load_settings().database_url)
    meta = sa.MetaData()
    meta.reflect(engine)
    binary = {(t.name, c.name) for t in meta.sorted_tables for c in t.columns
              if isinstance(c.type, sa.LargeBinary)}
    assert binary == ENCRYPTED
    with engine.connect() as conn:
        blobs = conn.execute(sa.text("SELECT id_number_enc, name_enc FROM members")).all()
    engine.dispose()
    assert len(blobs) > 300
    for id_blob, name_blob in blobs:
        assert id_blob.startswith(b"F1") and name_blob.startswith(b"F1")
        assert scanner.leaks(id_blob.decode("latin-1")) == []
