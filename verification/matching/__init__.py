"""Matching partner records to household members.

Exact on the keyed person token first (``certain``); a Fellegi–Sunter fallback on name, birth
date, gender and region for records without a usable ID (``probable`` / ``possible``). Only a
``certain`` match may support a REMOVE (``grade_supports_removal``).
"""

from verification.matching._exact import match_exact
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

__all__ = [
    "CERTAIN",
    "GRADE_DTYPE",
    "GRADES",
    "NONE",
    "POSSIBLE",
    "PROBABLE",
    "grade_requires_review",
    "grade_supports_removal",
    "match_exact",
]
