"""The built-in ``image-to-text`` solver."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cracker.domain.errors import TaskRejected
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.ocr.batcher import InferenceBatcher
from cracker.solvers.ocr.decoding import Hints, allowed_characters
from cracker.solvers.ocr.preprocess import UnreadableImage

#: The model's alphabet, for ``accepts`` (which must stay cheap: no model load at creation time).
MODEL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def hints_from(params: Mapping[str, Any]) -> Hints:
    return Hints(
        case_sensitive=bool(params.get("case_sensitive") or False),
        min_length=params.get("min_length"),
        max_length=params.get("max_length"),
        charset=params.get("charset"),
    )


class OcrSolver:
    """Reads distorted-text captchas with the model shipped in this package.

    ``OcrSolver()`` makes its own :class:`InferenceBatcher`; ``await start()`` loads the model and
    starts the batcher's thread, ``await close()`` stops it. Pass a batcher to share one.
    """

    def __init__(self, batcher: InferenceBatcher | None = None) -> None:
        self.batcher = batcher or InferenceBatcher()

    @property
    def name(self) -> str:
        return "ocr"

    @property
    def types(self) -> frozenset[str]:
        return frozenset({"image-to-text"})

    def accepts(self, task_type: str, params: Mapping[str, Any]) -> bool:
        if task_type not in self.types:
            return False
        hints = hints_from(params)
        if hints.min_length is not None and hints.max_length is not None and hints.min_length > hints.max_length:
            return False
        # A charset with none of the characters the model knows cannot be answered.
        return bool(allowed_characters(MODEL_ALPHABET, hints))

    async def start(self) -> None:
        await self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()

    async def solve(self, job: SolveJob) -> Solution:
        image = base64.b64decode(job.params["image_b64"])
        try:
            reading = await self.batcher.recognise(image, hints_from(job.params))
        except UnreadableImage as exc:
            raise TaskRejected("invalid_image", f"The image cannot be decoded: {exc}") from None
        if reading is None:
            raise TaskRejected("empty_token", "No text satisfies the task's length and charset hints")
        return {"token": reading.text, "confidence": round(reading.confidence, 4)}
