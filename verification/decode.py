"""Decode a plaintext table (CSV, UTF-8 with or without BOM, or GBK/GB18030) into a frame of
strings with ``_line``, the 1-based line of each row in the file as received (header = line 1)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

_ENCODINGS = ("utf-8-sig", "gb18030")


def read_table(path: Path, content_type: str = "text/csv") -> pd.DataFrame:
    data = path.read_bytes()
    if content_type != "text/csv":
        raise ValueError(f"content type {content_type} is not supported by this decoder")
    for encoding in _ENCODINGS:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError("file is neither UTF-8 nor GB18030 text")
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame
