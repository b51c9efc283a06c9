"""The OCR batcher with named models: one model run per model in a batch, each image read by its own."""

from __future__ import annotations

import asyncio
import io

from cracker.solvers.ocr import Hints, InferenceBatcher, OcrModel
from cracker.solvers.ocr.reader import OcrReader
from tests.integration.test_ocr_models import shifted, shifted_model

from .conftest import text_image


def _png(text: str) -> bytes:
    buffer = io.BytesIO()
    text_image(text).save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_batch_of_two_models_runs_each_model_once_on_its_own_images() -> None:
    """Protects: requests for different models that arrive together are batched per model (two runs,
    not one run per image, and never one image read by another request's model)."""
    record = shifted_model("site-a")
    named = OcrReader(OcrModel(serialized=(record.onnx, record.metadata)), second_look=False)
    batcher = InferenceBatcher(max_wait_s=0.5, second_look=False)
    await batcher.start()
    try:
        hints = Hints(case_sensitive=True)
        images = [_png(text) for text in ("AB12", "K7PX", "Q9RT", "M3ZW")]
        readings = await asyncio.gather(
            *(batcher.recognise(image, hints) for image in images),
            *(batcher.recognise(image, hints, named) for image in images),
        )
    finally:
        await batcher.close()
    general, by_named = readings[:4], readings[4:]
    assert all(reading is not None for reading in readings)
    assert [shifted(r.text) for r in general if r] == [r.text for r in by_named if r]
    assert (batcher.runs, batcher.images) == (2, 8)
