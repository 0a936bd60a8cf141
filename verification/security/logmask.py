"""Masking of resident ID numbers in log records and any text — standard library only, so DAG
files and the CLI can install it at start without importing the data stack.

``install_log_masking()``: every log record made in this process (any logger, any handler;
inside an Airflow task they reach Airflow's structlog output masked) has each 18- or 15-digit run
that could be a resident ID number masked as ``210112********123X`` before any handler sees it;
exception texts too. Calling it again changes nothing. ``mask_text`` masks any text.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_DIGIT = "0-9０-９"
# A digest in hex (SHA-256, SM3, HMAC-SHA256: 64 characters, as security/audit.py exempts
# them) is not an ID number, though about one in twenty-five has fifteen digits in a row
# somewhere inside: matched whole first, so no run inside it is taken for one (an audit head
# was printed half-masked, and `hedui audit verify --expect-head` could not be given it).
_HEX_DIGEST = r"(?<![0-9A-Za-z])[0-9a-f]{64}(?![0-9A-Za-z])"
_ID_RUN = re.compile(rf"(?P<hex>{_HEX_DIGEST})|(?<![{_DIGIT}])(?P<area>[{_DIGIT}]{{6}})"
                     rf"(?P<middle>[{_DIGIT}]{{8}}|[{_DIGIT}]{{5}})"
                     rf"(?P<tail>[{_DIGIT}]{{3}}[{_DIGIT}Xx]|[{_DIGIT}]{{4}})(?![{_DIGIT}Xx])")
_ID18 = re.compile(rf"[{_DIGIT}]{{17}}[{_DIGIT}Xx]")


def _mask_match(match: re.Match[str]) -> str:
    whole = match.group(0)
    if match.group("hex") is None and (len(whole) == 15 or _ID18.fullmatch(whole)):
        return match.group("area") + "*" * len(match.group("middle")) + match.group("tail")
    return whole


def mask_text(text: str) -> str:
    """Mask every run of digits shaped like a resident ID (18 with a final digit or X, or 15).

    Masking is by shape, not by checksum: a mistyped number is personal data too."""
    return _ID_RUN.sub(_mask_match, text)


class PiiMaskingFilter(logging.Filter):
    """Masks resident ID numbers in a record's message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 (a broken format string: mask what is there)
        message = f"{record.msg} {record.args}"
    masked = mask_text(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask_text(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)
    return record


_installed: dict[str, Any] = {}


def install_log_masking() -> None:
    """Mask ID numbers in every log record this process makes, whatever logger or handler.

    Wraps the log-record factory (so records are masked where they are made, before any handler
    or formatter, including ones added later) and adds the filter to the root handlers present.
    """
    if "factory" not in _installed:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return mask_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed["factory"] = previous
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
            handler.addFilter(PiiMaskingFilter())


def uninstall_log_masking() -> None:
    """Restore the previous record factory (tests)."""
    previous = _installed.pop("factory", None)
    if previous is not None:
        logging.setLogRecordFactory(previous)
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, PiiMaskingFilter)]:
            handler.removeFilter(f)
