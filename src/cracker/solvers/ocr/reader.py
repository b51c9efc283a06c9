"""Synchronous reading of images: what the batcher's thread, evaluation and benchmarks all call."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from cracker.solvers.ocr.decoding import Hints, Reading, decode
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.preprocess import to_input


class OcrReader:
    def __init__(self, model: OcrModel | None = None) -> None:
        self.model = model or OcrModel()

    def read(self, images: Sequence[Image.Image], hints: Sequence[Hints] | Hints = Hints()) -> list[Reading | None]:
        """One reading per image (None where the hints allow no text), in one model run."""
        if not images:
            return []
        info = self.model.info
        batch = np.stack([to_input(image, info.height, info.width) for image in images])
        per_image = [hints] * len(images) if isinstance(hints, Hints) else list(hints)
        log_probs = self.model.run(batch)
        return [decode(rows, info.alphabet, hint) for rows, hint in zip(log_probs, per_image, strict=True)]
