"""Synthetic text-captcha generators: each draws an image of a given text in its own style.

Training uses ``captcha`` (the PyPI package) and ``pillow`` (our own Pillow drawing with many fonts,
colours and kinds of noise). ``wheezy`` (wheezy.captcha) and ``multicolor`` (multicolorcaptcha, with
its own bundled fonts) are never used for training: they measure how well the model generalises to
styles it has not seen.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
TRAIN_GENERATORS = ("captcha", "pillow")
HELD_OUT_GENERATORS = ("wheezy", "multicolor")
ALL_GENERATORS = TRAIN_GENERATORS + HELD_OUT_GENERATORS

# Debian font packages (fonts-dejavu, fonts-liberation, fonts-freefont-ttf, fonts-comic-neue) widen
# the training fonts when installed; without them the generators still work with the fonts that
# ship inside the captcha package. Nothing at run time (the solver) needs any font.
#: Each system font folder, and the Debian package that fills it.
_SYSTEM_FONT_DIRS = {
    "/usr/share/fonts/truetype/dejavu": "fonts-dejavu",
    "/usr/share/fonts/truetype/liberation": "fonts-liberation",
    "/usr/share/fonts/truetype/freefont": "fonts-freefont-ttf",
    "/usr/share/fonts/opentype/comic-neue": "fonts-comic-neue",
}
#: Fonts that cannot draw plain Latin letters legibly (maths symbols only).
_SKIP_FONTS = ("DejaVuMathTeXGyre",)

Generator = Callable[[str, random.Random], Image.Image]
T = TypeVar("T")


@cache
def training_fonts() -> tuple[str, ...]:
    import captcha

    bundled = Path(captcha.__file__).parent / "data" / "DroidSansMono.ttf"
    system = [
        str(path)
        for folder in _SYSTEM_FONT_DIRS
        for path in sorted(Path(folder).glob("*.[ot]tf"))
        if not any(skip in path.name for skip in _SKIP_FONTS)
    ]
    return (str(bundled), *system)


def missing_font_packages() -> list[str]:
    """The font packages not installed here. The shipped model was trained and is benchmarked with
    all of them (56 fonts); without some, training draws fewer styles and forgets the others, and a
    benchmark's images are not the ones in bench/RESULTS.md."""
    return [package for folder, package in _SYSTEM_FONT_DIRS.items() if not any(Path(folder).glob("*.[ot]tf"))]


def font_warning() -> str | None:
    """What to say when font packages are missing: a run then silently trains on fewer styles."""
    missing = missing_font_packages()
    if not missing:
        return None
    return (f"warning: {len(training_fonts())} training fonts: {', '.join(missing)} not installed. The shipped model "
            f"learned 56 fonts; training without these forgets them (apt-get install {' '.join(missing)}).")


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def random_text(rng: random.Random, min_length: int = 4, max_length: int = 8) -> str:
    """A label as captcha sites pick them: digits only, one case, or mixed."""
    length = rng.randint(min_length, max_length)
    pool = rng.choices(
        [string.digits, string.ascii_uppercase + string.digits, string.ascii_lowercase + string.digits,
         ALPHABET, string.ascii_lowercase, string.ascii_uppercase],
        weights=[1, 2, 2, 4, 1, 1],
    )[0]
    return "".join(rng.choice(pool) for _ in range(length))


def _dark(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 120), rng.randint(0, 120), rng.randint(0, 120))


def _light(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(170, 255), rng.randint(170, 255), rng.randint(170, 255))


# --- captcha (PyPI) ------------------------------------------------------------------------------


@cache
def _image_captcha(width: int, height: int) -> object:
    from captcha.image import ImageCaptcha

    return ImageCaptcha(width=width, height=height, fonts=list(training_fonts()[:12]))


class _SeededSecrets:
    """Stands in for the ``secrets`` module inside ``captcha.image`` so that a seed reproduces a set."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def randbelow(self, bound: int) -> int:
        return self._rng.randrange(bound)

    def choice(self, items: Sequence[T]) -> T:
        return self._rng.choice(items)

    def randbits(self, bits: int) -> int:
        return self._rng.getrandbits(bits)


def draw_captcha(text: str, rng: random.Random) -> Image.Image:
    from captcha import image as captcha_image
    from captcha.image import ImageCaptcha

    # Width grows with the text so that 8 characters are not crushed; sizes are bucketed so the
    # generator objects (which cache loaded fonts) are reused.
    height = rng.choice((50, 60, 70))
    width = 10 * round(rng.uniform(24, 36) * len(text) / 10) + 20
    generator = _image_captcha(width, height)
    assert isinstance(generator, ImageCaptcha)
    # The captcha package draws its randomness from ``secrets`` (unseedable): reproducible test and
    # benchmark sets need a seeded source instead. Training-only code, never imported by the service.
    setattr(captcha_image, "secrets", _SeededSecrets(rng))  # noqa: B010
    return generator.generate_image(text)


# --- pillow (ours) -------------------------------------------------------------------------------


def _background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    style = rng.random()
    if style < 0.5:
        return Image.new("RGB", size, _light(rng))
    if style < 0.8:  # a gradient between two light colours
        a, b = _light(rng), _light(rng)
        column = Image.linear_gradient("L").resize((1, size[1])).rotate(rng.choice((0, 90)), expand=True)
        mask = column.resize(size)
        return Image.composite(Image.new("RGB", size, a), Image.new("RGB", size, b), mask)
    # numpy rather than Image.effect_noise, whose C generator ignores our seed.
    grain = np.random.default_rng(rng.getrandbits(32)).normal(128, rng.uniform(20, 60), (size[1], size[0]))
    noise = Image.fromarray(grain.clip(0, 255).astype(np.uint8)).convert("RGB")
    return Image.blend(Image.new("RGB", size, _light(rng)), noise, 0.3)


def _glyph(char: str, font: ImageFont.FreeTypeFont, colour: tuple[int, int, int], angle: float) -> Image.Image:
    left, top, right, bottom = font.getbbox(char)
    glyph = Image.new("RGBA", (int(right - left) + 4, int(bottom - top) + 4), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text((2 - left, 2 - top), char, font=font, fill=(*colour, 255))
    return glyph.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def _sine_warp(image: Image.Image, rng: random.Random) -> Image.Image:
    """Shift each column up or down along a sine wave (a common captcha distortion)."""
    width, height = image.size
    amplitude = rng.uniform(1, height * 0.08)
    period = rng.uniform(width * 0.3, width * 1.2)
    phase = rng.uniform(0, 6.3)
    import math

    mesh = []
    step = 4
    for x in range(0, width, step):
        dy0 = amplitude * math.sin(phase + 2 * math.pi * x / period)
        dy1 = amplitude * math.sin(phase + 2 * math.pi * (x + step) / period)
        box = (x, 0, min(x + step, width), height)
        quad = (x, dy0, x, height + dy0, x + step, height + dy1, x + step, dy1)
        mesh.append((box, quad))
    return image.transform(image.size, Image.Transform.MESH, mesh, Image.Resampling.BILINEAR,
                           fillcolor=image.getpixel((0, 0)))


def draw_pillow(text: str, rng: random.Random) -> Image.Image:
    fonts = training_fonts()
    height = rng.randint(36, 80)
    size = int(height * rng.uniform(0.55, 0.8))
    one_font = rng.random() < 0.6
    font_path = rng.choice(fonts)
    colour = _dark(rng)
    per_char_colour = rng.random() < 0.4
    max_angle = rng.choice((0, 10, 20, 30))
    glyphs = []
    for char in text:
        font = _font(font_path if one_font else rng.choice(fonts), size + rng.randint(-3, 3))
        glyphs.append(_glyph(char, font, _dark(rng) if per_char_colour else colour,
                             rng.uniform(-max_angle, max_angle)))
    spacing = rng.uniform(-0.15, 0.25)
    width = int(sum(g.width * (1 + spacing) for g in glyphs) + rng.randint(6, 30))
    image = _background(rng, (max(width, 2 * height), height))
    x = rng.randint(3, max(3, image.width - width + 3))
    for glyph in glyphs:
        y = (height - glyph.height) // 2 + rng.randint(-height // 10, height // 10)
        image.paste(glyph, (x, y), glyph)
        x += int(glyph.width * (1 + spacing))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.choice((0, 1, 2, 3, 5))):
        points = [(rng.randint(0, image.width), rng.randint(0, height)) for _ in range(2)]
        line_colour = colour if rng.random() < 0.5 else _dark(rng)
        draw.line(points, fill=line_colour, width=rng.randint(1, 3))
    for _ in range(rng.choice((0, 0, 1, 2))):
        x0, y0 = rng.randint(-20, image.width), rng.randint(-20, height)
        box = (x0, y0, x0 + rng.randint(20, image.width), y0 + rng.randint(10, height * 2))
        draw.arc(box, rng.randint(0, 360), rng.randint(0, 360), fill=_dark(rng), width=rng.randint(1, 3))
    for _ in range(rng.choice((0, 50, 200, 500))):
        draw.point((rng.randrange(image.width), rng.randrange(height)), fill=_dark(rng))
    if rng.random() < 0.5:
        image = _sine_warp(image, rng)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return image


# --- wheezy.captcha (held out) -------------------------------------------------------------------


@cache
def _wheezy(width: int, height: int, font_size: int) -> Callable[[str], Image.Image]:
    from wheezy.captcha import image as wc  # type: ignore[import-untyped]

    fonts = [f for f in training_fonts() if "DejaVuSans" in f or "Liberation" in f][:6] or list(training_fonts())
    render: Callable[[str], Image.Image] = wc.captcha(
        drawings=[
            wc.background(),
            wc.text(fonts=fonts, font_sizes=(font_size, font_size + 5, font_size + 10),
                    drawings=[wc.warp(), wc.rotate(), wc.offset()]),
            wc.curve(),
            wc.noise(),
            wc.smooth(),
        ],
        width=width,
        height=height,
    )
    return render


def draw_wheezy(text: str, rng: random.Random) -> Image.Image:
    height = rng.choice((50, 60, 75))
    width = 10 * round(len(text) * height * 0.6 / 10) + 20
    random.seed(rng.random())  # wheezy draws from the global generator
    return _wheezy(width, height, int(height * 0.85))(text)


# --- multicolorcaptcha (held out) ----------------------------------------------------------------


@cache
def _multicolor() -> object:
    from multicolorcaptcha import CaptchaGenerator  # type: ignore[import-untyped]

    return CaptchaGenerator(0)


def _sample_multicolor(rng: random.Random) -> tuple[Image.Image, str]:
    """multicolorcaptcha picks its own text: 4 characters, digits and capitals."""
    random.seed(rng.random())
    generator = _multicolor()
    result = generator.gen_captcha_image(difficult_level=1, chars_mode="ascii",  # type: ignore[attr-defined]
                                         multicolor=rng.random() < 0.5, margin=False)
    image: Image.Image = result["image"]
    return image.convert("RGB"), str(result["characters"])


DRAWERS: dict[str, Generator] = {"captcha": draw_captcha, "pillow": draw_pillow, "wheezy": draw_wheezy}


@dataclass(frozen=True, slots=True)
class Sample:
    image: Image.Image
    text: str
    generator: str


def sample(generator: str, rng: random.Random) -> Sample:
    """One freshly drawn captcha and its label."""
    if generator == "multicolor":
        image, text = _sample_multicolor(rng)
        return Sample(image, text, generator)
    text = random_text(rng)
    return Sample(DRAWERS[generator](text, rng).convert("RGB"), text, generator)


def samples(generators: Sequence[str], count: int, seed: int) -> list[Sample]:
    """``count`` captchas from each generator, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [sample(name, rng) for name in generators for _ in range(count)]
