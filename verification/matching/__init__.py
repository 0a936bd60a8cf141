"""Matching partner records to household members.

Exact on the keyed person token first (``certain``); a Fellegi–Sunter fallback on name, birth
date, gender and region for records without a usable ID (``probable`` / ``possible``). Only a
``certain`` match may support a REMOVE (``grade_supports_removal``). See docs/matching.md.
"""

from verification.matching._engine import (
    LinkResult,
    MatchResult,
    best_per_left,
    link,
    match_records,
    person_keys,
)
from verification.matching._exact import RosterIndex, exact_pairs, match_exact
from verification.matching._grades import (
    CERTAIN,
    GRADE_DTYPE,
    GRADES,
    NONE,
    POSSIBLE,
    PROBABLE,
    grade_requires_review,
    grade_supports_removal,
)
from verification.matching.names import NAME_KEY_VERSION, name_key, name_keys, normalise_name
from verification.matching.settings import (
    Comparison,
    ComparisonLevel,
    MatchSettings,
    block_on,
    default_settings,
)

__all__ = [
    "CERTAIN",
    "GRADES",
    "GRADE_DTYPE",
    "NAME_KEY_VERSION",
    "NONE",
    "POSSIBLE",
    "PROBABLE",
    "Comparison",
    "ComparisonLevel",
    "LinkResult",
    "MatchResult",
    "MatchSettings",
    "RosterIndex",
    "best_per_left",
    "block_on",
    "default_settings",
    "exact_pairs",
    "grade_requires_review",
    "grade_supports_removal",
    "link",
    "match_exact",
    "match_records",
    "name_key",
    "name_keys",
    "normalise_name",
    "person_keys",
]
