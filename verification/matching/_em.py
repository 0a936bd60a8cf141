"""Fellegi–Sunter weights, estimated by expectation–maximisation from the candidate pairs.

The model: a candidate pair is a match with prior probability λ; given match status the
comparisons are independent, comparison k falling into level l with probability m[k][l] among
matches and u[k][l] among non-matches. EM fits λ, m and u to the observed comparison vectors;
no true links are used. It runs on the distinct comparison patterns with their counts, so its
cost does not grow with the number of pairs.

Start values: u from the level frequencies of all candidate pairs (nearly all of them are
non-matches), m leaning to the strong levels, λ = one match per left record.

EM alone needs at least three informative comparisons to tell the two classes apart (a latent
class model on two indicators is not identifiable), and on blocked pairs the comparisons are far
from independent among non-matches (a pair got in by agreeing on name *or* on birth date).
Household records often carry only name and birth date, so when some records were matched
exactly on their token the matcher learns from those instead (see ``_engine._fit_labelled``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verification.matching._compare import NULL_LEVEL

U_FLOOR = 1e-6  # no level is impossible: a zero would veto a pair on one comparison


@dataclass
class FellegiSunter:
    prior: float  # λ
    m: list[np.ndarray]
    u: list[np.ndarray]
    iterations: int = 0
    converged: bool = False
    method: str = "em"  # "em": λ, m, u from the data alone; "labelled": m, u from token pairs
    # share of token matches that are another person's ID (estimated from the labelled pairs;
    # None when it could not be: see ``_engine._mixup_rate``)
    mixup_rate: float | None = None

    def weights(self) -> list[np.ndarray]:
        """log2(m/u) per comparison and level."""
        return [np.log2(m) - np.log2(u) for m, u in zip(self.m, self.u, strict=True)]

    def contributions(self, gamma: np.ndarray) -> np.ndarray:
        """(pairs × comparisons) log2 Bayes factors; a null level contributes 0."""
        out = np.empty(gamma.shape, dtype=float)
        for k, weight in enumerate(self.weights()):
            # the null level (-1) takes the last entry, a zero: one take, no mask
            out[:, k] = np.concatenate([weight, [0.0]])[gamma[:, k]]
        return out

    def match_weight(self, gamma: np.ndarray) -> np.ndarray:
        """Posterior log2 odds of a match."""
        prior = np.log2(self.prior) - np.log2(1 - self.prior)
        if gamma.shape[1] >= 8:  # numpy sums eight or more terms pairwise: its order kept
            return prior + self.contributions(gamma).sum(axis=1)
        # fewer: numpy's row sum adds them one after another, so the same sum, without a
        # (pairs × comparisons) matrix of floats
        total = np.zeros(len(gamma))
        for k, weight in enumerate(self.weights()):
            total += np.concatenate([weight, [0.0]])[gamma[:, k]]
        return prior + total

    def to_dict(self, labels: list[tuple[str, tuple[str, ...]]]) -> dict:
        """Parameters by comparison and level label, for the run log."""
        return {
            "prior": self.prior,
            "method": self.method,
            "mixup_rate": self.mixup_rate,
            "iterations": self.iterations,
            "converged": self.converged,
            "comparisons": {
                name: {
                    level: {"m": float(m), "u": float(u), "weight": float(np.log2(m / u))}
                    for level, m, u in zip(levels, self.m[k], self.u[k], strict=True)
                }
                for k, (name, levels) in enumerate(labels)
            },
        }


def level_frequencies(gamma: np.ndarray, n_levels: list[int], weights: np.ndarray) -> list:
    """Weighted frequency of each level per comparison, ignoring nulls, floored and normalised."""
    out = []
    for k, size in enumerate(n_levels):
        levels = gamma[:, k]
        present = levels != NULL_LEVEL
        counts = np.bincount(levels[present], weights=weights[present], minlength=size)
        counts = np.maximum(counts / max(counts.sum(), 1e-300), U_FLOOR)
        out.append(counts / counts.sum())
    return out


def initial_m(n_levels: list[int]) -> list[np.ndarray]:
    """Most matches agree fully; the rest spread over the partial levels, least on ``else``."""
    out = []
    for size in n_levels:
        m = np.full(size, 0.1 / max(size - 1, 1))
        m[0] = 0.9 if size > 1 else 1.0
        out.append(m / m.sum())
    return out


def _patterns(gamma: np.ndarray, n_levels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``gamma`` with their counts (rows numbered in mixed radix: one int64 each,
    far faster than ``np.unique(axis=0)``)."""
    radix = np.array([n + 1 for n in n_levels], dtype=np.int64)  # +1: the null level
    if np.prod(radix.astype(float)) >= 2**62:
        patterns, counts = np.unique(gamma, axis=0, return_counts=True)
        return patterns, counts.astype(float)
    place = np.concatenate([np.cumprod(radix[::-1])[::-1][1:], [1]])
    numbers = (gamma.astype(np.int64) + 1) @ place
    distinct, first, counts = np.unique(numbers, return_index=True, return_counts=True)
    return gamma[first], counts.astype(float)


def fit(
    gamma: np.ndarray,
    n_levels: list[int],
    u_start: list[np.ndarray],
    prior_start: float,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
    m_start: list[np.ndarray] | None = None,
    fixed_levels: bool = False,
) -> FellegiSunter:
    """EM for λ, m and u; with ``fixed_levels`` only λ is re-estimated (m and u were learnt
    from labelled pairs and stay as given)."""
    patterns, counts = _patterns(gamma, n_levels)
    model = FellegiSunter(prior=prior_start, m=m_start or initial_m(n_levels), u=u_start)
    if not len(patterns):
        return model
    for iteration in range(1, max_iterations + 1):
        weight = model.match_weight(patterns)
        posterior = 1.0 / (1.0 + np.exp2(-np.clip(weight, -1000, 1000)))
        matched = counts * posterior
        new = FellegiSunter(
            prior=float(np.clip(matched.sum() / counts.sum(), 1e-9, 1 - 1e-9)),
            m=model.m if fixed_levels else level_frequencies(patterns, n_levels, matched),
            u=model.u if fixed_levels else level_frequencies(patterns, n_levels, counts - matched),
            iterations=iteration,
        )
        change = max(
            abs(new.prior - model.prior),
            *(np.abs(a - b).max() for a, b in zip(new.m + new.u, model.m + model.u, strict=True)),
        )
        model = new
        if change < tolerance:
            model.converged = True
            break
    return model
