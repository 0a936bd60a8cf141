"""EarlierKeys answers as a lookup among every earlier block's keys would: hash collisions are
checked against the text, a key is found again in any later block, nulls never repeat."""

import numpy as np
import pyarrow as pa
import pytest

from verification.intake import earlier_keys
from verification.intake.earlier_keys import EarlierKeys

SPREAD = np.uint64(0x9E3779B97F4A7C15)  # a few hashes, over all 64 bits


def _blocks(seed: int) -> list[pa.Array]:
    rng = np.random.default_rng(seed)
    blocks = []
    for size in rng.integers(0, 300, 12):
        values = [None if rng.random() < 0.05 else f"k{rng.integers(0, 1500)}"
                  for _ in range(size)]
        blocks.append(pa.array(values, pa.large_string()))
    return blocks


def _looked_up_among_all(blocks: list[pa.Array]) -> list[np.ndarray]:
    seen: set[str] = set()
    answers = []
    for block in blocks:
        values = block.to_pylist()
        answers.append(np.array([v is not None and v in seen for v in values], dtype=bool))
        seen.update(v for v in values if v is not None)
    return answers


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("collide", [False, True])
def test_repeats_are_the_keys_of_earlier_blocks(seed, collide, monkeypatch):
    if collide:  # few distinct hashes: most hash matches are different keys
        real = earlier_keys._hashes
        monkeypatch.setattr(earlier_keys, "_hashes",
                            lambda db, key: real(db, key) % np.uint64(7) * SPREAD)
    blocks = _blocks(seed)
    earlier = EarlierKeys()
    got = [earlier.repeats(block) for block in blocks]
    expected = _looked_up_among_all(blocks)
    assert sum(int(e.sum()) for e in expected) > 50  # repeats across several blocks
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_a_key_repeated_within_a_block_is_kept_once():
    earlier = EarlierKeys()
    first = pa.array(["a", "b", "a", None, "a", "c"], pa.large_string())
    assert not earlier.repeats(first).any()  # within a block is the whole-frame check's job
    assert len(earlier._runs[0]) == 3  # one entry per distinct key
    np.testing.assert_array_equal(
        earlier.repeats(pa.array(["c", None, "d", "a", "d"], pa.large_string())),
        [True, False, False, True, False])
    np.testing.assert_array_equal(
        earlier.repeats(pa.array(["d", "b", "e"], pa.large_string())), [True, True, False])


@pytest.mark.parametrize("text", [pa.string(), pa.large_string()])
def test_empty_and_keyless_blocks(text):
    earlier = EarlierKeys()
    assert len(earlier.repeats(pa.array([], text))) == 0
    assert not earlier.repeats(pa.nulls(3, text)).any()
    assert not earlier.repeats(pa.array(["x", None], text)).any()
    assert len(earlier.repeats(pa.array([], text))) == 0
    np.testing.assert_array_equal(earlier.repeats(pa.array([None, "x", "y"], text)),
                                  [False, True, False])
