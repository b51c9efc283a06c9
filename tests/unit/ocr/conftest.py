"""Fixtures for the OCR tests: the shipped model (loaded once) and freshly drawn captchas."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from cracker.ocr_training.generators import Sample, samples
from cracker.solvers.ocr import OcrSolver
from cracker.solvers.ocr.reader import OcrReader


def png_b64(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="session")
def reader() -> OcrReader:
    return OcrReader()


@pytest.fixture(scope="session")
def fresh_captchas() -> list[Sample]:
    """Captchas from the training generators, drawn now with a seed training never used."""
    return samples(["captcha", "pillow"], 40, seed=20260611)


@pytest.fixture(scope="session")
async def solver() -> AsyncIterator[OcrSolver]:
    solver = OcrSolver()
    await solver.start()
    yield solver
    await solver.close()


def text_image(text: str) -> Image.Image:
    """Plain black text on white: an image any reader must get right."""
    from PIL import ImageDraw, ImageFont

    image = Image.new("RGB", (160, 50), "white")
    ImageDraw.Draw(image).text((12, 6), text, fill="black", font=ImageFont.load_default(size=32))
    return image
