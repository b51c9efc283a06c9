"""Fast checks of a submitted captcha image at task creation: header only, no pixel decoding."""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "GIF"})
MAX_SIDE = 2000
#: Pixel-count limit (decompression bombs): a small file can declare an enormous canvas.
MAX_PIXELS = 2_000_000


def image_problem(data: bytes) -> str | None:
    """Why these bytes are not an acceptable captcha image, or None if the header looks fine.

    Reads only the header (and, for GIF, the frame count), so a corrupt body can still pass here; the
    solver reports that as the task error ``invalid_image``.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its limit raises) on huge canvases; we judge size ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=sorted(ACCEPTED_FORMATS)) as image:
                width, height = image.size
                frames = getattr(image, "n_frames", 1)
                image.verify()
    except Image.DecompressionBombError:
        return f"The image is larger than {MAX_PIXELS} pixels"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error):
        return "Not a PNG, JPEG or GIF image"
    if width <= 0 or height <= 0:
        return "The image has zero width or height"
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        return f"The image is {width}x{height}; at most {MAX_SIDE}x{MAX_SIDE} and {MAX_PIXELS} pixels"
    if frames > 1:
        return f"The image is animated ({frames} frames); send a single frame"
    return None

