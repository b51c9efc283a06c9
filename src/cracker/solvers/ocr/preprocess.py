"""Image bytes to the model's input tensor; training uses this same code so the two never drift."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

Tensor = npt.NDArray[np.float32]


class UnreadableImage(ValueError):
    """The bytes are not an image Pillow can decode in full."""


def decode(data: bytes) -> Image.Image:
    """Decode fully (a header can be valid while the pixel data is truncated or corrupt)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                # Transparent pixels often hold black: flatten onto white, as a browser shows them.
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, "white")
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc) or type(exc).__name__) from None


def to_input(image: Image.Image, height: int, width: int) -> Tensor:
    """Stretch to the model's fixed size and standardise per image, as (3, height, width) float32.

    Stretching rather than padding keeps every character on the time axis whatever the aspect
    ratio; training draws many aspect ratios, so the model is used to it. Per-image standardisation
    makes the model indifferent to the overall brightness and contrast of a site's palette.
    """
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1)
    standardised: Tensor = ((pixels - pixels.mean()) / (pixels.std() + 1.0)).astype(np.float32)
    return standardised
