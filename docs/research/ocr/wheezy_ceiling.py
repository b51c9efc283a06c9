"""The best whole-answer accuracy any reader can reach on the held-out ``wheezy`` style, if the
lookalike pairs cannot be told apart at all (a reader then guesses, right half the time).

    python docs/research/ocr/wheezy_ceiling.py

The labels are ``generators.random_text``'s: 4 to 8 characters, all from one pool drawn with its
weight; a pool holds a pair when it holds both of its characters (the mirror below is checked
against the function's source by ``_check_pools``). Scoring is case-insensitive, so I/l and 0/O are
the pairs that matter: I and l are the same bar in the fonts wheezy draws with here (DejaVu Sans,
Liberation Sans), 0 and O differ in width only, and wheezy draws each text at one of three sizes.
"""

from __future__ import annotations

import inspect
import string

from cracker.ocr_training import generators

#: random_text's pools and weights.
POOLS = [
    (string.digits, 1), (string.ascii_uppercase + string.digits, 2), (string.ascii_lowercase + string.digits, 2),
    (generators.ALPHABET, 4), (string.ascii_lowercase, 1), (string.ascii_uppercase, 1),
]
LENGTHS = range(4, 9)


def _check_pools() -> None:
    source = inspect.getsource(generators.random_text)
    assert "weights=[1, 2, 2, 4, 1, 1]" in source and "min_length: int = 4, max_length: int = 8" in source, source


def ceiling(pairs: list[str]) -> float:
    total_weight = sum(weight for _pool, weight in POOLS)
    accuracy = 0.0
    for pool, weight in POOLS:
        ambiguous = sum(2 for pair in pairs if set(pair) <= set(pool))
        per_char = 1 - ambiguous / len(pool) * 0.5  # an ambiguous character is guessed right half the time
        for length in LENGTHS:
            accuracy += weight / total_weight / len(LENGTHS) * per_char**length
    return accuracy


if __name__ == "__main__":
    _check_pools()
    for pairs in (["Il", "0O"], ["Il"], ["0O"]):
        print(f"{' and '.join(pairs)} indistinguishable: at most {ceiling(pairs):.1%}")
