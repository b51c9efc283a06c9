"""Synchronous reading of images: what the batcher's thread, evaluation and benchmarks all call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from cracker.solvers.ocr.decoding import Hints, Reading, decode
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.preprocess import to_input
from cracker.solvers.ocr.second_look import VIEWS, deserves_second_look, views, vote


class OcrReader:
    def __init__(self, model: OcrModel | None = None, *, second_look: bool = True) -> None:
        self.model = model or OcrModel()
        #: Whether doubtful readings get a second look (see :mod:`cracker.solvers.ocr.second_look`).
        self.second_look = second_look

    def read(self, images: Sequence[Image.Image], hints: Sequence[Hints] | Hints = Hints()) -> list[Reading | None]:
        """One reading per image (None where the hints allow no text): one model run, plus one more
        for the doubtful (not hopeless) readings' other views."""
        per_image = [hints] * len(images) if isinstance(hints, Hints) else list(hints)
        readings = self._read_once(images, per_image)
        if not self.second_look:
            return readings
        doubtful = [index for index, reading in enumerate(readings) if deserves_second_look(reading)]
        more = self._read_once([view for index in doubtful for view in views(images[index])],
                               [per_image[index] for index in doubtful for _ in range(VIEWS)])
        for position, index in enumerate(doubtful):
            readings[index] = vote([readings[index], *more[position * VIEWS:(position + 1) * VIEWS]])
        return readings

    def _read_once(self, images: Sequence[Image.Image], hints: Sequence[Hints]) -> list[Reading | None]:
        if not images:
            return []
        info = self.model.info
        batch = np.stack([to_input(image, info.height, info.width) for image in images])
        log_probs = self.model.run(batch)
        return [decode(rows, info.alphabet, hint) for rows, hint in zip(log_probs, hints, strict=True)]
