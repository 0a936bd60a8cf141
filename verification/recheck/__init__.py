"""The narrow re-check when a partner feed arrives (动态、实时核查): the feed diffed against the
previous one, only the households whose evidence changed re-assessed, a flag written only where
the outcome changed (docs/architecture.md, "The incremental path")."""

from verification.recheck.diff import FeedDiff, diff_feeds
from verification.recheck.service import NoBaseReview, RecheckOutcome, current_state, recheck

__all__ = ["FeedDiff", "NoBaseReview", "RecheckOutcome", "current_state", "diff_feeds",
           "recheck"]
