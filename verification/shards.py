"""The shards of a review: a street, or a part of a large street.

A review assesses and flags one shard per task (``pipeline.review_shard``, one Airflow mapped
task each), and a task's memory and time grow with its households: one city street of 167,000
households took 7.4 GiB in one task (docs/performance.md). A street with more households than
``Settings.shard_households`` is therefore split into parts of consecutive household ids,
each at most that many households. Every rule decides per household, so the split changes no
flag; the reports still group by street and community from the database.

A shard's name is its street's code (a street in one part, as before) or
``{street}~{first}-{last}``: the street and the first and last household id of its part,
inclusive. The name is the shard folder's (``shard-{name}``), the key of the run's evidence map
(``pipeline.evidence_row_groups``), and what travels between the Airflow tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_PART = "~"


@dataclass(frozen=True)
class Shard:
    street: str
    first: int | None = None  # household ids of the part, inclusive; None: the whole street
    last: int | None = None

    @property
    def name(self) -> str:
        if self.first is None:
            return self.street
        return f"{self.street}{_PART}{self.first}-{self.last}"

    @property
    def span(self) -> tuple[int, int] | None:
        return None if self.first is None else (self.first, int(self.last))

    @classmethod
    def parse(cls, name: str) -> Shard:
        street, part, span = name.partition(_PART)
        if not part:
            return cls(street)
        first, _, last = span.partition("-")
        try:
            return cls(street, int(first), int(last))
        except ValueError:
            raise ValueError(f"分片名称无效 / not a shard name: {name!r}") from None


def street_of(name: str) -> str:
    """The street a shard (or a street) name belongs to."""
    return name.partition(_PART)[0]


def plan_shards(street_code: pd.Series, limit: int) -> pd.Series:
    """Each household's shard name (``street_code``: household id → street), in the order the
    shards are to run: street by street, parts by ascending household ids. A street of ``n``
    households goes in ``ceil(n / limit)`` parts of nearly equal size."""
    if limit < 1:
        raise ValueError(f"每个分片的户数须至少为 1 / shard_households must be at least 1: {limit}")
    ids = street_code.index.to_numpy(np.int64)
    streets = street_code.astype(str).to_numpy(dtype=object)
    order = np.lexsort((ids, streets))
    ids, streets = ids[order], streets[order]
    names = np.array(streets, dtype=object)
    starts = np.flatnonzero(np.r_[True, streets[1:] != streets[:-1]]) if len(ids) else []
    ends = np.r_[starts[1:], len(ids)] if len(ids) else []
    for a, b in zip(starts, ends, strict=True):
        size = b - a
        if size <= limit:
            continue
        parts = -(-size // limit)
        for piece in np.array_split(np.arange(a, b), parts):
            names[piece] = Shard(str(streets[a]), int(ids[piece[0]]), int(ids[piece[-1]])).name
    return pd.Series(names, index=pd.Index(ids, name=street_code.index.name), name="shard")


def shard_names(shard_of: pd.Series) -> list[str]:
    """The distinct shards of ``plan_shards``'s result, in its order."""
    return pd.unique(shard_of.to_numpy()).tolist()
