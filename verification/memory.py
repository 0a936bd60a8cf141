"""Freed memory handed back to the operating system between the steps of a long task.

A review's matching step frees gigabytes at a time (the roster's decrypted rows, each feed's
identity columns, the matcher's pairs). C's allocator keeps much of what is freed for reuse in
the process; a later step's large arrays are mapped afresh and do not reuse it, so its peak
stacks on top of what the step before it had freed. Trimming between steps returns the free
pages: a few tens of milliseconds, and what is still in use is not touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import pyarrow as pa


def release_freed_memory() -> None:
    """Return freed memory to the operating system: Arrow's pool, and glibc's heap where the
    process runs on glibc (elsewhere only Arrow's)."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim():  # noqa: ANN202 (a ctypes function, or None)
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
