"""Creation-time image checks: header only, clear reasons (the API's answers: tests/integration/test_ocr_tasks.py)."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from cracker.domain.images import image_problem


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, pixels: bytes = b"\0" * 16) -> bytes:
    """A PNG with a well-formed header (and chunk CRCs) around whatever pixel data we like."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


WHITE = Image.new("RGB", (120, 40), "white")
ANIMATED = _encoded(Image.new("RGB", (20, 20), "red"), "GIF", save_all=True,
                    append_images=[Image.new("RGB", (20, 20), "blue")])

BAD_IMAGES: list[tuple[str, bytes, str]] = [
    ("text", b"hello, not an image", "Not a PNG"),
    ("bmp", _encoded(WHITE, "BMP"), "Not a PNG"),
    ("png signature only", b"\x89PNG\r\n\x1a\n", "Not a PNG"),
    ("zero width", png_declaring(0, 10), "Not a PNG, JPEG or GIF"),  # Pillow refuses to open it
    ("too wide", _encoded(Image.new("L", (2500, 10)), "PNG"), "2500x10"),
    ("decompression bomb", png_declaring(60000, 60000), "pixels"),
    ("animated gif", ANIMATED, "animated (2 frames)"),
]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_single_frame_png_jpeg_gif_pass(fmt: str) -> None:
    assert image_problem(_encoded(WHITE, fmt)) is None


@pytest.mark.parametrize(("name", "data", "reason"), BAD_IMAGES, ids=[case[0] for case in BAD_IMAGES])
def test_bad_images_have_a_reason(name: str, data: bytes, reason: str) -> None:
    problem = image_problem(data)
    assert problem is not None and reason in problem
