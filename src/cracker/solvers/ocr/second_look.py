"""A second look at doubtful readings: the model reads a few other views of the image, and they vote.

Most readings are confident and right, while half of the model's misreadings have a path
probability under one half. For just those doubtful images (but not hopeless ones, under 0.1)
the reader also reads four more views (the sides trimmed, a margin added, turned 3 degrees
either way) and keeps the text with the largest summed path probability over the five. Measured
on 400 images per set (docs/research/ocr.md, "Second look"), this gained about one point of
sequence accuracy on the training generators and two to three on the held-out wheezy set, while
the median latency is unchanged: only 17 to 42 % of images are doubtful.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from PIL import Image, ImageOps

from cracker.solvers.ocr.decoding import Reading

#: Readings whose path probability is below this get a second look.
DOUBTFUL_BELOW = 0.5
#: ...unless it is below this too: such a reading is a guess at an image the model cannot read,
#: and other views of it are guesses too. On the selection sets (captcha, pillow and wheezy, 2,400
#: images) under 1 % of readings were this low, and their views fixed 1 and broke 2 of 19; on the
#: unreadable multicolor set 72 % were, and reading their views put its median latency over 10 ms.
#: It also bounds the work that a client sending noise can cause.
HOPELESS_BELOW = 0.1
#: How many views each doubtful image adds.
VIEWS = 4
_TURN_DEGREES = 3.0


def deserves_second_look(reading: Reading | None) -> bool:
    """Whether a first reading is doubtful enough to look again, and not so hopeless that it is pointless."""
    return reading is not None and HOPELESS_BELOW <= reading.confidence < DOUBTFUL_BELOW


def views(image: Image.Image) -> list[Image.Image]:
    """``VIEWS`` other views of the image, each at least 1x1 whatever the image's size."""
    image = image.convert("RGB")
    width, height = image.size
    side, top = max(1, width // 25), max(1, height // 12)
    # The background colour, near enough, for what a view uncovers.
    corner = cast(tuple[int, int, int], image.getpixel((0, 0)))
    # A strip one side pixel wide or less has no sides to trim: the view is the image itself.
    trimmed = image.crop((side, 0, width - side, height)) if width > 2 * side + 1 else image.copy()
    return [
        trimmed,
        ImageOps.expand(image, border=(2 * side, top, 2 * side, top), fill=corner),
        image.rotate(_TURN_DEGREES, resample=Image.Resampling.BILINEAR, fillcolor=corner),
        image.rotate(-_TURN_DEGREES, resample=Image.Resampling.BILINEAR, fillcolor=corner),
    ]


def vote(readings: Sequence[Reading | None]) -> Reading | None:
    """The text with the largest summed path probability (the first reading wins a tie).

    Its confidence is that sum over the number of views, so an answer only some views agree on
    reports less than its best path alone would.
    """
    totals: dict[str, float] = {}
    for reading in readings:
        if reading is not None:
            totals[reading.text] = totals.get(reading.text, 0.0) + reading.confidence
    if not totals:
        return None
    text = max(totals, key=lambda candidate: totals[candidate])  # max keeps the first of equals
    return Reading(text, totals[text] / len(readings))
