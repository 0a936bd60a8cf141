"""Decoding feeds: encodings, CSV / XLSX / JSON Lines, line numbers, rows never dropped."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.decoding import (
    CSV,
    JSONL,
    XLSX,
    DecodeError,
    decode_bytes,
    decode_file,
    detect_content_type,
    detect_encoding,
    detect_file_encoding,
    iter_decode_file,
)

FEED = "证件号码,姓名,月工资\n21011219800101001X,张三,\"1,234.50\"\n110105194912310020,李四,800\n"


@pytest.mark.parametrize(("encoding", "expected"), [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030"),
    ("utf-16", "utf-16"),
])
def test_encodings_are_detected_and_decoded(encoding: str, expected: str) -> None:
    frame = decode_bytes(FEED.encode(encoding))
    assert frame.attrs["encoding"] == expected
    assert list(frame.columns) == ["_line", "_problem", "证件号码", "姓名", "月工资"]
    assert frame["姓名"].tolist() == ["张三", "李四"]
    assert frame["月工资"].tolist() == ["1,234.50", "800"]  # as written, no type guessing
    assert frame["_line"].tolist() == [2, 3]


def test_bom_is_not_part_of_the_first_column_name(tmp_path) -> None:
    path = tmp_path / "feed.csv"
    path.write_bytes(codecs.BOM_UTF8 + FEED.encode())
    assert decode_file(path).columns[2] == "证件号码"


def test_gbk_file_from_disk(tmp_path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(FEED.encode("gbk"))
    frame = decode_file(path)
    assert frame.attrs == {"encoding": "gb18030", "content_type": CSV}
    assert frame.loc[0, "姓名"] == "张三"


def test_undecodable_bytes_name_the_line() -> None:
    with pytest.raises(DecodeError, match="line 2"):
        detect_encoding(b"a,b\n\x80\x80\xff,1\n")


def test_line_numbers_count_blank_lines_and_multiline_fields() -> None:
    text = 'a,b\n1,2\n\n"x\ny",3\n4,5\n'
    frame = decode_bytes(text.encode())
    assert frame["_line"].tolist() == [2, 4, 6]
    assert frame["a"].tolist() == ["1", "x\ny", "4"]


def test_rows_with_wrong_field_count_are_kept_and_marked() -> None:
    frame = decode_bytes(b"a,b,c\n1,2,3\n1,2\n1,2,3,4\n")
    assert len(frame) == 3
    assert frame["_problem"].str.startswith("FIELD_COUNT").tolist() == [False, True, True]
    assert frame.loc[1, "c"] == ""


def test_all_values_stay_strings() -> None:
    frame = decode_bytes(b"id,amount,flag\n007,1e3,TRUE\n,NaN,null\n")
    assert frame.loc[0].tolist()[2:] == ["007", "1e3", "TRUE"]
    assert frame.loc[1].tolist()[2:] == ["", "NaN", "null"]
    assert all(frame[c].map(type).eq(str).all() for c in ["id", "amount", "flag"])


@pytest.mark.parametrize(("data", "message"), [
    (b"", "no header"),
    (b"a,a\n1,2\n", "appears twice"),
    (b'a,b\n"1,2\n', "quotes"),
    (b"_line,b\n1,2\n", "reserved"),
])
def test_whole_file_problems_raise(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_bytes(data, CSV)


def test_json_lines_keep_number_text_and_mark_bad_lines() -> None:
    data = (b'{"id":"1","amount":1234.50,"ok":true}\n\n[1,2]\n{"amount":null,"x":{"y":1}}\n'
            b"not json\n")
    frame = decode_bytes(data)
    assert frame.attrs["content_type"] == JSONL
    assert frame["_line"].tolist() == [1, 3, 4, 5]
    assert frame.loc[0, ["id", "amount", "ok"]].tolist() == ["1", "1234.50", "true"]
    problems = frame["_problem"].str.split(":").str[0].tolist()
    assert problems == ["", "NOT_OBJECT", "NESTED", "BAD_JSON"]
    assert frame.loc[2, "amount"] == ""


def _workbook(rows: list[list[object]], hidden_first: bool = True) -> bytes:
    book = openpyxl.Workbook()
    if hidden_first:
        book.active.title = "说明"
        book.active.append(["this sheet is hidden and must be skipped"])
        book.active.sheet_state = "hidden"
        sheet = book.create_sheet("数据")
    else:
        sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_first_visible_sheet_as_strings() -> None:
    data = _workbook([
        ["证件号码", "月工资", "日期", None],
        ["21011219800101001X", 1234.5, datetime(2026, 10, 1), None],
        [],
        ["110105194912310020", 800, datetime(2026, 10, 1, 9, 30), None],
        [110105194912310020, "800", None, "extra"],
    ])
    frame = decode_bytes(data)
    assert frame.attrs["content_type"] == XLSX
    assert list(frame.columns) == ["_line", "_problem", "证件号码", "月工资", "日期"]
    assert frame["_line"].tolist() == [2, 4, 5]
    assert frame["月工资"].tolist() == ["1234.5", "800", "800"]
    assert frame["日期"].tolist() == ["2026-10-01", "2026-10-01 09:30:00", ""]
    assert frame["_problem"].tolist()[:2] == ["", ""]
    assert frame.loc[2, "_problem"].startswith("FIELD_COUNT")


def test_xlsx_id_stored_as_number_is_flagged() -> None:
    frame = decode_bytes(_workbook([["id", "v"], [110105194912310020, 1]], hidden_first=False))
    assert frame.loc[0, "_problem"].startswith("NUMERIC_ID")


def test_content_type_detection() -> None:
    assert detect_content_type(b"PK\x03\x04...") == XLSX
    assert detect_content_type(b'\xef\xbb\xbf {"a":1}') == JSONL
    assert detect_content_type(b"a,b\n") == CSV
    assert detect_content_type(b"{}", "feed.csv") == CSV
    with pytest.raises(DecodeError, match="not supported"):
        decode_bytes(b"a", "text/html")


# -------------------------------------------------------------------------------- properties

_cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=12)


@settings(max_examples=80, deadline=None)
@given(
    width=st.integers(2, 4),
    rows=st.lists(st.lists(_cell, min_size=4, max_size=4), max_size=12),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
)
def test_property_csv_round_trip(width: int, rows: list[list[str]], encoding: str) -> None:
    header = [f"col{i}" for i in range(width)]
    body = [row[:width] for row in rows if any(cell for cell in row[:width])]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)  # \r\n: with "\n" the csv module leaves a lone "\r" unquoted
    writer.writerow(header)
    writer.writerows(body)
    text = buffer.getvalue()
    frame = decode_bytes(text.encode(encoding), CSV)
    assert frame[header].values.tolist() == body
    assert (frame["_problem"] == "").all()
    # Every row's _line is the physical line its record starts on.
    starts = _record_start_lines(text)
    assert frame["_line"].tolist() == starts


def _record_start_lines(text: str) -> list[int]:
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, start = [], 1
    for index, _ in enumerate(reader):
        if index:
            starts.append(start)
        start = reader.line_num + 1
    return starts


@settings(max_examples=50, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "名"]),
                                st.one_of(_cell, st.integers(), st.none()), max_size=3),
                min_size=1, max_size=10))
def test_property_jsonl_never_drops_a_record(records: list[dict]) -> None:
    import json

    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n"
    frame = decode_bytes(text.encode(), JSONL)
    assert len(frame) == len(records)
    for i, record in enumerate(records):
        for key, value in record.items():
            assert frame.loc[i, key] == ("" if value is None else str(value))


def test_frame_is_plain_pandas() -> None:
    frame = decode_bytes(FEED.encode())
    assert isinstance(frame, pd.DataFrame)
    assert frame["_line"].dtype == "int64"


# --------------------------------------------------------------------------------- streaming


def test_iter_decode_file_matches_whole_file(tmp_path) -> None:
    body = "".join(f'{i},"名{i}\n续",{i * 1.5}\n' if i % 7 == 0 else f"{i},名{i},{i * 1.5}\n"
                   for i in range(1, 251))
    path = tmp_path / "big.csv"
    path.write_bytes(("id,name,amount\n" + body + "1,2\n").encode("gb18030"))
    batches = list(iter_decode_file(path, batch_rows=40))
    assert [len(b) for b in batches] == [40] * 6 + [11]
    assert all(b.attrs == {"encoding": "gb18030", "content_type": CSV} for b in batches)
    whole = decode_file(path)
    assert pd.concat(batches, ignore_index=True).equals(whole)
    assert whole["_problem"].iloc[-1].startswith("FIELD_COUNT")


def test_file_encoding_is_checked_to_the_end(tmp_path) -> None:
    path = tmp_path / "late.csv"
    ascii_part = b"a,b\n" + b"1,2\n" * 300_000  # the GBK bytes come after the first block
    path.write_bytes(ascii_part + "张,三\n".encode("gbk"))
    assert detect_file_encoding(path, block=1 << 16) == "gb18030"
    path.write_bytes(ascii_part + b"\xff\xff,1\n")
    with pytest.raises(DecodeError, match="line 300002"):
        detect_file_encoding(path, block=1 << 16)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(codecs.BOM_UTF8 + b"a\n1\n")
    assert detect_file_encoding(bom) == "utf-8-sig"


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.text(alphabet="a,\"é中😀\x00\r", max_size=12), max_size=12),
       slip=st.sampled_from([b"", b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80",
                             b"\xe4\xb8", b"\x80", b"\xf0\x9f\x98"]),
       at=st.integers(min_value=0))
def test_utf8_found_by_arrow_is_what_the_decoder_accepts(lines: list[str], slip: bytes,
                                                         at: int) -> None:
    # a UTF-8 file is recognised by Arrow's validator in pieces ending at line ends (here as
    # small as 16 bytes); it must accept exactly what Python's strict UTF-8 decoder accepts
    import tempfile

    from connectors import decoding

    data = "\n".join(lines).encode("utf-8")
    at %= len(data) + 1
    data = data[:at] + slip + data[at:]
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/feed.csv"
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            data.decode("utf-8")
            expected = "utf-8"
        except UnicodeDecodeError:
            expected = "not utf-8"
        original, decoding._UTF8_CHECK_BYTES = decoding._UTF8_CHECK_BYTES, 16
        try:
            checked = decoding._valid_utf8(path)
            found = detect_file_encoding(path) if expected == "utf-8" else "not utf-8"
        finally:
            decoding._UTF8_CHECK_BYTES = original
    if max(len(line) for line in data.split(b"\n")) <= 16:  # else left to the decoder
        assert checked == (expected == "utf-8")
    elif checked:
        assert expected == "utf-8"
    assert found == expected


def test_iter_decode_jsonl_and_xlsx(tmp_path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text('{"a":"1"}\n{"a":"2","b":"x"}\n\n{"b":"y"}\n', encoding="utf-8")
    batches = list(iter_decode_file(path, batch_rows=2))
    assert [b["_line"].tolist() for b in batches] == [[1, 2], [4]]
    assert list(batches[1].columns) == ["_line", "_problem", "b"]
    book = tmp_path / "feed.xlsx"
    book.write_bytes(_workbook([["a"], ["1"]], hidden_first=False))
    (frame,) = iter_decode_file(book)
    assert frame["a"].tolist() == ["1"]


def test_json_keys_are_kept_verbatim_and_repeats_marked() -> None:
    frame = decode_bytes(b'{" a":"1","":"2"}\n{"b":"1","b":"2"}\n', JSONL)
    assert frame.loc[0, " a"] == "1" and frame.loc[0, ""] == "2"
    assert frame.loc[1, "_problem"].startswith("DUPLICATE_KEY: b")
