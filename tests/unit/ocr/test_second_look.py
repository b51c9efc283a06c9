"""The second look: other views of doubtful images, read by the real model, and their vote."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from cracker.ocr_training.generators import Sample, sample
from cracker.solvers.ocr import Hints
from cracker.solvers.ocr.decoding import Reading
from cracker.solvers.ocr.reader import OcrReader
from cracker.solvers.ocr.second_look import DOUBTFUL_BELOW, HOPELESS_BELOW, VIEWS, views, vote


@pytest.mark.parametrize("size", [(1, 1), (2, 1), (3, 2), (1, 40), (160, 60)])
def test_every_view_is_a_real_image_whatever_the_size(size: tuple[int, int]) -> None:
    image = Image.new("L", size, 200)  # not RGB: the views must cope with any decoded mode
    made = views(image)
    assert len(made) == VIEWS
    assert all(view.width >= 1 and view.height >= 1 and view.mode == "RGB" for view in made)


def test_the_views_keep_the_background_colour_where_they_uncover_it() -> None:
    image = Image.new("RGB", (160, 60), (250, 240, 200))
    for view in views(image):
        assert view.getcolors() == [(view.width * view.height, (250, 240, 200))]


def test_the_vote_sums_path_probabilities_and_reports_the_mean_over_the_views() -> None:
    readings = [Reading("abcd", 0.45), Reading("abed", 0.3), Reading("abed", 0.3), None, Reading("abcd", 0.1)]
    assert vote(readings) == Reading("abed", pytest.approx(0.6 / 5))


def test_the_first_reading_wins_a_tie_and_no_text_votes_for_nothing() -> None:
    assert vote([Reading("xy12", 0.2), Reading("xyl2", 0.2)]) == Reading("xy12", 0.2 / 2)
    assert vote([None, None]) is None


@pytest.fixture(scope="module")
def one_look() -> OcrReader:
    return OcrReader(second_look=False)


@pytest.mark.parametrize("hints", [Hints(), Hints(case_sensitive=True, min_length=4, max_length=8)])
def test_doubtful_readings_are_the_vote_of_five_views_and_confident_ones_stay(
    reader: OcrReader, one_look: OcrReader, fresh_captchas: list[Sample], hints: Hints
) -> None:
    images = [s.image for s in fresh_captchas]
    first = one_look.read(images, hints)
    doubtful = [i for i, r in enumerate(first) if r is not None and HOPELESS_BELOW <= r.confidence < DOUBTFUL_BELOW]
    # The fixed set holds both kinds, or this test would check only one branch.
    assert 0 < len(doubtful) < len(images)
    looked = reader.read(images, hints)
    for index, (once, twice) in enumerate(zip(first, looked, strict=True)):
        if index in doubtful:
            assert twice == vote([once, *one_look.read(views(images[index]), hints)])
        else:
            assert twice == once


def test_hopeless_readings_get_no_second_look(reader: OcrReader, one_look: OcrReader) -> None:
    # Noise and the held-out multicolor style: images the model cannot read.
    rng = random.Random(3)
    noise = [Image.effect_noise((160, 60), 80).convert("RGB") for _ in range(4)]
    images = noise + [sample("multicolor", rng).image for _ in range(12)]
    first = one_look.read(images)
    hopeless = [i for i, r in enumerate(first) if r is not None and r.confidence < HOPELESS_BELOW]
    assert len(hopeless) >= 4
    looked = reader.read(images)
    assert all(looked[i] == first[i] for i in hopeless)


def test_the_second_look_honours_the_hints(reader: OcrReader, fresh_captchas: list[Sample]) -> None:
    images = [s.image for s in fresh_captchas]
    for reading in reader.read(images, Hints(charset="abc123", min_length=5, max_length=5)):
        assert reading is not None and len(reading.text) == 5 and set(reading.text.casefold()) <= set("abc123")
