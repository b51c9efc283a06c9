"""CTC decoding under the task's hints: the best alignment path over the characters the hints allow.

Without a length hint this is greedy decoding (the best path). With one, a small Viterbi dynamic
programme over (frame, characters emitted so far, last symbol) finds the best path whose text has
an allowed length, instead of truncating or padding the greedy answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cracker.solvers.ocr.model import LogProbs

NEG_INF = np.float32(-1e30)


@dataclass(frozen=True, slots=True)
class Hints:
    case_sensitive: bool = False
    min_length: int | None = None
    max_length: int | None = None
    charset: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    text: str
    #: Probability of the decoded alignment path (product over frames), in [0, 1].
    confidence: float


@dataclass(frozen=True, slots=True)
class _Classes:
    """The decoding classes: blank, then one per output character (case folded when insensitive)."""

    #: ``symbols[j]`` is the text of class ``j + 1``.
    symbols: list[str]
    #: For each class ``j + 1``, the model output classes it sums (one, or a lower/upper pair).
    members: list[list[int]]


def allowed_characters(alphabet: str, hints: Hints) -> set[str]:
    """The model's characters the answer may use."""
    if hints.charset is None:
        return set(alphabet)
    if hints.case_sensitive:
        return set(alphabet) & set(hints.charset)
    wanted = {char.casefold() for char in hints.charset}
    return {char for char in alphabet if char.casefold() in wanted}


def _classes(alphabet: str, hints: Hints) -> _Classes:
    allowed = allowed_characters(alphabet, hints)
    symbols: list[str] = []
    members: list[list[int]] = []
    seen: dict[str, int] = {}
    for index, char in enumerate(alphabet, start=1):
        if char not in allowed:
            continue
        key = char if hints.case_sensitive else char.casefold()
        if key in seen:
            members[seen[key]].append(index)
            continue
        seen[key] = len(symbols)
        symbols.append(char)
        members.append([index])
    return _Classes(symbols, members)


def _class_log_probs(log_probs: LogProbs, classes: _Classes) -> npt.NDArray[np.float32]:
    """(T, 1 + classes): the blank, then each class's probability (case variants summed)."""
    columns = [log_probs[:, 0]]
    columns.extend(np.logaddexp.reduce(log_probs[:, member], axis=1) for member in classes.members)
    return np.stack(columns, axis=1).astype(np.float32)


def _case_of(log_probs: LogProbs, frames: list[int], member: list[int], alphabet: str) -> str:
    """Among case variants, the one the model found more likely over the frames that emitted it."""
    if len(member) == 1:
        return alphabet[member[0] - 1]
    totals = log_probs[frames][:, member].sum(axis=0)
    return alphabet[member[int(np.argmax(totals))] - 1]


def _greedy(scores: npt.NDArray[np.float32]) -> tuple[list[int], float]:
    path = scores.argmax(axis=1)
    return path.tolist(), float(scores[np.arange(len(path)), path].sum())


def _constrained(scores: npt.NDArray[np.float32], min_length: int, max_length: int) -> tuple[list[int], float] | None:
    """Best path emitting between ``min_length`` and ``max_length`` characters, or None if none can."""
    frames, symbols = scores.shape
    max_length = min(max_length, frames)
    if min_length > max_length:
        return None
    # best[k, s]: best score of a prefix that emitted k characters and whose last frame is symbol s.
    best = np.full((max_length + 1, symbols), NEG_INF, dtype=np.float32)
    best[0, 0] = scores[0, 0]
    if max_length >= 1:
        best[1, 1:] = scores[0, 1:]
    came_from_emission = np.zeros((frames, max_length + 1, symbols), dtype=bool)
    came_from_symbol = np.zeros((frames, max_length + 1, symbols), dtype=np.int16)
    for t in range(1, frames):
        # Staying on the same symbol (blank or a character being held) emits nothing.
        stay = best.copy()
        # Blank can follow anything with the same count.
        blank_from = best.argmax(axis=1)
        blank_score = best.max(axis=1)
        # A new character c follows any symbol other than c, one count lower: the best other symbol.
        order = np.argsort(best, axis=1)
        top, second = order[:, -1], order[:, -2]
        rows = np.arange(max_length + 1)
        top_score, second_score = best[rows, top], best[rows, second]
        other_from = np.where(np.arange(symbols)[None, :] == top[:, None], second[:, None], top[:, None])
        other_score = np.where(np.arange(symbols)[None, :] == top[:, None], second_score[:, None], top_score[:, None])
        new = np.full_like(best, NEG_INF)
        new[1:, :] = other_score[:-1, :]
        take_new = new > stay
        nxt = np.where(take_new, new, stay)
        came_from_emission[t] = take_new
        came_from_symbol[t] = np.where(take_new, np.vstack([other_from[:1] * 0, other_from[:-1]]),
                                       np.arange(symbols)[None, :])
        nxt[:, 0] = blank_score  # blank: from the best symbol at the same count
        came_from_emission[t, :, 0] = False
        came_from_symbol[t, :, 0] = blank_from
        best = nxt + scores[t][None, :]
    counts = best[min_length:max_length + 1].max(axis=1)
    if counts.max() <= NEG_INF / 2:
        return None
    k = min_length + int(counts.argmax())
    s = int(best[k].argmax())
    score = float(best[k, s])
    path = [s]
    for t in range(frames - 1, 0, -1):
        previous = int(came_from_symbol[t, k, s])
        if came_from_emission[t, k, s]:
            k -= 1
        s = previous
        path.append(s)
    path.reverse()
    return path, score


def decode(log_probs: LogProbs, alphabet: str, hints: Hints) -> Reading | None:
    """The best reading of one image's (T, classes) log-probabilities, or None if the hints exclude all."""
    classes = _classes(alphabet, hints)
    if not classes.symbols:
        return None
    scores = _class_log_probs(log_probs, classes)
    if hints.min_length is None and hints.max_length is None:
        found: tuple[list[int], float] | None = _greedy(scores)
    else:
        found = _constrained(scores, hints.min_length or 0, hints.max_length or scores.shape[0])
    if found is None:
        return None
    path, score = found
    chars: list[str] = []
    previous = 0
    frames_of_char: list[int] = []
    runs: list[tuple[int, list[int]]] = []
    for t, symbol in enumerate(path):
        if symbol != 0 and symbol == previous:
            frames_of_char.append(t)
        elif symbol != 0:
            frames_of_char = [t]
            runs.append((symbol, frames_of_char))
        previous = symbol
    for symbol, frames in runs:
        chars.append(_case_of(log_probs, frames, classes.members[symbol - 1], alphabet))
    return Reading("".join(chars), float(np.exp(score)))
