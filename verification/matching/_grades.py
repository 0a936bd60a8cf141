"""Match grades and the safety rule that ties them to what a flag may do.

A match is a signal for a caseworker, not a verdict. Only a ``certain`` match — the keyed token of
a valid ID number found in the roster — may support removing a family's assistance; anything
weaker can only send the household to REVIEW, with the candidate shown to the officer.
"""

from __future__ import annotations

import pandas as pd

CERTAIN = "certain"
PROBABLE = "probable"
POSSIBLE = "possible"
NONE = "none"
GRADES = (CERTAIN, PROBABLE, POSSIBLE, NONE)
# Categorical with fixed categories: cheap on millions of rows, and frames from the exact and the
# probabilistic path concatenate without falling back to object strings.
GRADE_DTYPE = pd.CategoricalDtype(GRADES)


def grade_supports_removal(grade: str) -> bool:
    """True only for ``certain``. Unknown grades raise so a typo cannot slip through as 'weak'."""
    if grade not in GRADES:
        raise ValueError(f"unknown match grade {grade!r}; expected one of {', '.join(GRADES)}")
    return grade == CERTAIN


def grade_requires_review(grade: str) -> bool:
    """probable and possible matches lead to REVIEW with the candidate; none leads nowhere."""
    if grade not in GRADES:
        raise ValueError(f"unknown match grade {grade!r}; expected one of {', '.join(GRADES)}")
    return grade in (PROBABLE, POSSIBLE)
