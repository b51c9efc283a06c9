"""Constrained CTC decoding: the best path under length hints, checked against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cracker.solvers.ocr.decoding import Hints, _constrained, decode


def _collapse(path: tuple[int, ...] | list[int]) -> list[int]:
    out, previous = [], 0
    for symbol in path:
        if symbol not in (0, previous):
            out.append(symbol)
        previous = symbol
    return out


@pytest.mark.parametrize("seed", range(40))
def test_constrained_decoding_finds_the_best_path_of_an_allowed_length(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames, symbols = 5, 3
    scores = np.log(rng.dirichlet(np.ones(symbols), size=frames)).astype(np.float32)
    low, high = int(rng.integers(0, 4)), int(rng.integers(0, 6))
    best = max(
        (float(scores[np.arange(frames), path].sum()) for path in itertools.product(range(symbols), repeat=frames)
         if low <= len(_collapse(path)) <= high),
        default=None,
    )
    found = _constrained(scores, low, high)
    if best is None:
        assert found is None
        return
    assert found is not None
    path, score = found
    assert score == pytest.approx(best, abs=1e-4)
    assert low <= len(_collapse(path)) <= high


def test_case_insensitive_decoding_sums_case_variants() -> None:
    alphabet = "oO0"
    # Three frames: 'o' and 'O' split the vote (0.35 + 0.35) against '0' (0.3).
    frame = np.log(np.array([0.0001, 0.35, 0.35, 0.2999], dtype=np.float32))
    log_probs = np.stack([frame, np.log(np.array([0.97, 0.01, 0.01, 0.01], dtype=np.float32))])
    assert decode(log_probs, alphabet, Hints()) is not None
    reading = decode(log_probs, alphabet, Hints(case_sensitive=False))
    assert reading is not None and reading.text.casefold() == "o"
    assert decode(log_probs, alphabet, Hints(charset="0")).text == "0"  # type: ignore[union-attr]
    assert decode(log_probs, alphabet, Hints(charset="x")) is None
