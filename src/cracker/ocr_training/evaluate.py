"""Accuracy of the shipped (ONNX) model on labelled images: sequence and character accuracy, latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from cracker.ocr_training.labelled import read_folder


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class Score:
    images: int
    sequence_accuracy: float
    #: 1 - (edit distance / label length), over all characters.
    character_accuracy: float
    median_ms: float
    images_per_s: float


def score(
    read_one: Callable[[Image.Image], str], items: Sequence[tuple[Image.Image, str]], *, case_sensitive: bool = False,
) -> Score:
    """Read every image one at a time (the latency a single request sees) and compare with its label."""
    exact, distance, characters, latencies = 0, 0, 0, []
    for image, label in items:
        started = time.perf_counter()
        text = read_one(image)
        latencies.append(time.perf_counter() - started)
        got, want = (text, label) if case_sensitive else (text.casefold(), label.casefold())
        exact += got == want
        distance += min(edit_distance(got, want), len(want))
        characters += len(want)
    total = sum(latencies)
    return Score(
        images=len(items),
        sequence_accuracy=exact / max(1, len(items)),
        character_accuracy=1 - distance / max(1, characters),
        median_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        images_per_s=len(items) / total if total else 0.0,
    )


def load_folder(folder: Path) -> list[tuple[Image.Image, str]]:
    items = []
    for path, label in read_folder(folder):
        with Image.open(path) as opened:
            items.append((opened.convert("RGB"), label))
    return items
