"""distinct() is np.unique of integers, by sorting."""

import numpy as np

from verification.sorting import distinct


def test_distinct_is_numpy_unique_of_integers():
    rng = np.random.default_rng(7)
    for values in (rng.integers(0, 50, 1000), rng.integers(-2**62, 2**62, 1000),
                   np.array([], dtype=np.int64), np.array([5]),
                   rng.integers(0, 2**63, 100).astype(np.uint64)):
        assert np.array_equal(distinct(values), np.unique(values))
        assert distinct(values).dtype == np.unique(values).dtype


def test_difference_and_union_are_numpys_set_operations_of_integers():
    from verification.sorting import difference, union

    rng = np.random.default_rng(3)
    a, b, c = (rng.integers(0, 400, n) for n in (300, 200, 50))
    assert np.array_equal(difference(a, b), np.setdiff1d(a, b))
    assert np.array_equal(difference(a, a[:0]), np.setdiff1d(a, a[:0]))
    assert np.array_equal(union(a, b, c), np.union1d(np.union1d(a, b), c))
