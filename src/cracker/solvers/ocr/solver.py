"""The built-in ``image-to-text`` solver."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any, Protocol

from cracker.domain.errors import TaskRejected
from cracker.domain.ocr_models import GENERAL_MODEL, OcrModelRecord
from cracker.solvers.base import Solution, SolveJob
from cracker.solvers.ocr.batcher import InferenceBatcher
from cracker.solvers.ocr.decoding import Hints, allowed_characters
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.preprocess import UnreadableImage
from cracker.solvers.ocr.reader import OcrReader

#: The model's alphabet, for ``accepts`` (which must stay cheap: no model load at creation time).
MODEL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def hints_from(params: Mapping[str, Any]) -> Hints:
    return Hints(
        case_sensitive=bool(params.get("case_sensitive") or False),
        min_length=params.get("min_length"),
        max_length=params.get("max_length"),
        charset=params.get("charset"),
    )


class ModelSource(Protocol):
    """Where named models come from (the service's registry, over the database)."""

    async def record(self, name: str) -> OcrModelRecord | None:
        """The model registered under ``name`` now, with its weights; None when there is none."""
        ...


class OcrSolver:
    """Reads distorted-text captchas with the model shipped in this package, or a named one.

    ``OcrSolver()`` makes its own :class:`InferenceBatcher`; ``await start()`` loads the model and
    starts the batcher's thread, ``await close()`` stops it. Pass a batcher to share one. With
    ``models``, a task's ``model`` names one of them (absent or ``general``: the shipped model).
    """

    def __init__(self, batcher: InferenceBatcher | None = None, models: ModelSource | None = None,
                 *, second_look: bool = True) -> None:
        self.batcher = batcher or InferenceBatcher()
        self._models = models
        self._second_look = second_look
        #: Loaded named models: name -> (version, reader). A new version replaces the old one.
        self._readers: dict[str, tuple[str, OcrReader]] = {}
        self._loading = asyncio.Lock()

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

    async def _reader_for(self, name: str) -> OcrReader | None:
        """The reader of a named model (None: the general one); ``TaskRejected`` when it is gone."""
        if name == GENERAL_MODEL:
            return None
        record = await self._models.record(name) if self._models is not None else None
        if record is None:
            self._readers.pop(name, None)
            raise TaskRejected("invalid_params", f"There is no OCR model named {name!r} (any more)")
        loaded = self._readers.get(name)
        if loaded is not None and loaded[0] == record.version:
            return loaded[1]
        async with self._loading:  # one load per model, whatever the number of tasks waiting for it
            loaded = self._readers.get(name)
            if loaded is None or loaded[0] != record.version:
                # Parsing and optimising the graph takes tens of ms: not on the event loop.
                model = await asyncio.to_thread(OcrModel, serialized=(record.onnx, record.metadata))
                loaded = (record.version, OcrReader(model, second_look=self._second_look))
                self._readers[name] = loaded
            return loaded[1]

    async def solve(self, job: SolveJob) -> Solution:
        image = base64.b64decode(job.params["image_b64"])
        reader = await self._reader_for(str(job.params.get("model") or GENERAL_MODEL))
        try:
            reading = await self.batcher.recognise(image, hints_from(job.params), reader)
        except UnreadableImage as exc:
            raise TaskRejected("invalid_image", f"The image cannot be decoded: {exc}") from None
        if reading is None:
            raise TaskRejected("empty_token", "No text satisfies the task's length and charset hints")
        return {"token": reading.text, "confidence": round(reading.confidence, 4)}
