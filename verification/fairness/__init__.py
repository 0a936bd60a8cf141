"""Fairness audit of every review and batch: flag rates by group, disparities beyond the
configured ratio, and flags that rest on thin evidence (docs/fairness.md)."""

from verification.fairness.audit import (
    DIMENSIONS,
    FairnessSettings,
    audit,
    fairness_settings,
    load_fairness,
    write_fairness,
)

__all__ = ["DIMENSIONS", "FairnessSettings", "audit", "fairness_settings", "load_fairness",
           "write_fairness"]
