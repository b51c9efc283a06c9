"""OCR benchmark (not a test): this project's model against ddddocr (and Tesseract if installed).

Run from the repository root (needs the ocr-train extra for the generators, plus ddddocr):

    .venv/bin/python bench/ocr_bench.py [--per-generator 250] [--seed N] [--picture PNG] [--errors PNG]

One freshly generated set (seeded, new seed each run unless given) from every generator: the two
training generators and the two held out of training. Every engine reads the same images, from the
same PNG bytes, one image at a time on one core (onnxruntime sessions limited to one thread,
Tesseract with OMP_THREAD_LIMIT=1), so the latency includes decoding the PNG. Ours is scored twice:
as the service reads (a second look at doubtful readings) and with one look only. Sequence accuracy is
case-insensitive (the default hint), and case-sensitive for our model too. Writes a picture of
sample predictions (--picture) and one of our misreadings (--errors); by default over the two that
docs/research/ocr.md shows, in docs/research/ocr/.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont

from cracker.ocr_training.evaluate import edit_distance
from cracker.ocr_training.generators import (
    ALL_GENERATORS,
    ALPHABET,
    TRAIN_GENERATORS,
    Sample,
    font_warning,
    samples,
    training_fonts,
)
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.preprocess import decode
from cracker.solvers.ocr.reader import OcrReader

Engine = Callable[[bytes], str]
#: An image, its label, and each engine's reading of it.
Shown = tuple[Image.Image, str, dict[str, str]]


@dataclass
class Result:
    texts: list[str]
    latencies: list[float]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def ours(model: Path | None = None, second_look: bool = True) -> Engine:
    reader = OcrReader(OcrModel(model, threads=1), second_look=second_look)

    def read(data: bytes) -> str:
        reading = reader.read([decode(data)])[0]
        return reading.text if reading else ""

    return read


def ddddocr_engine() -> Engine:
    # ddddocr opens its session with onnxruntime's default (every core); give it one thread like ours.
    original = onnxruntime.InferenceSession

    def one_thread(path: str, providers: list[str] | None = None) -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return original(path, options, providers=providers)

    onnxruntime.InferenceSession = one_thread
    try:
        import ddddocr  # type: ignore[import-untyped]

        ocr = ddddocr.DdddOcr(show_ad=False)
    finally:
        onnxruntime.InferenceSession = original
    # Its best case: restricted to the characters the answers use (as a client would with a charset).
    ocr.set_ranges(ALPHABET)
    return lambda data: str(ocr.classification(data))


def tesseract_engine() -> Engine | None:
    if shutil.which("tesseract") is None:
        return None
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def read(data: bytes) -> str:
        done = subprocess.run(
            ["tesseract", "stdin", "stdout", "--psm", "7", "-c", f"tessedit_char_whitelist={ALPHABET}"],
            input=data, capture_output=True, env=env, check=False,
        )
        return done.stdout.decode(errors="replace").strip().replace(" ", "")

    return read


def run(engine: Engine, images: list[bytes]) -> Result:
    engine(images[0])  # warm up (first-call allocations)
    texts, latencies = [], []
    for data in images:
        started = time.perf_counter()
        texts.append(engine(data))
        latencies.append(time.perf_counter() - started)
    return Result(texts, latencies)


#: Diagnostic only: glyphs many fonts draw identically (O/0, I/l/1), merged to see how many errors they cause.
LOOKALIKES = str.maketrans({"o": "0", "O": "0", "I": "1", "l": "1", "L": "1"})


def fold(text: str, case_sensitive: bool = False, merge_lookalikes: bool = False) -> str:
    # Merge before case-folding: folded first, a capital I would become i and escape the merge.
    merged = text.translate(LOOKALIKES) if merge_lookalikes else text
    return merged if case_sensitive else merged.casefold()


def accuracy(texts: list[str], labels: list[str], case_sensitive: bool = False,
             merge_lookalikes: bool = False) -> tuple[float, float]:
    def fold_one(text: str) -> str:
        return fold(text, case_sensitive, merge_lookalikes)

    exact = sum(fold_one(t) == fold_one(label) for t, label in zip(texts, labels, strict=True))
    wrong = sum(min(edit_distance(fold_one(t), fold_one(label)), len(label))
                for t, label in zip(texts, labels, strict=True))
    return exact / len(labels), 1 - wrong / sum(len(label) for label in labels)


def wilson(share: float, count: int, z: float = 1.96) -> tuple[float, float]:
    """95 % confidence interval of an accuracy measured on ``count`` images (Wilson score)."""
    centre = (share + z * z / (2 * count)) / (1 + z * z / count)
    half = z * math.sqrt(share * (1 - share) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return max(0.0, centre - half), min(1.0, centre + half)


def picture(path: Path, shown: list[Shown]) -> None:
    # A font whose zero differs from O (DejaVu Sans Mono's is dotted), or the picture misleads.
    mono = [f for f in training_fonts() if f.endswith("DejaVuSansMono.ttf")] or [training_fonts()[0]]
    font = ImageFont.truetype(mono[0], 14)
    cell_w, image_h, line_h = 260, 64, 18
    columns = 4
    rows = -(-len(shown) // columns)
    engines = list(shown[0][2])
    cell_h = image_h + line_h * (1 + len(engines)) + 8
    canvas = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (image, label, readings) in enumerate(shown):
        x, y = (index % columns) * cell_w + 4, (index // columns) * cell_h + 4
        thumb = image.copy()
        thumb.thumbnail((cell_w - 8, image_h))
        canvas.paste(thumb, (x, y))
        draw.text((x, y + image_h + 2), f"truth: {label}", fill="black", font=font)
        for line, name in enumerate(engines, start=2):
            text = readings[name]
            colour = (0, 130, 0) if text.casefold() == label.casefold() else (200, 0, 0)
            draw.text((x, y + image_h + line_h * (line - 1) + 2), f"{name}: {text}", fill=colour, font=font)
    canvas.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-generator", type=int, default=250)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--picture", type=Path, default=Path("docs/research/ocr/samples.png"))
    parser.add_argument("--errors", type=Path, default=Path("docs/research/ocr/errors.png"),
                        help="Picture of our misreadings on the training generators (lookalike-only ones left out)")
    parser.add_argument("--no-tesseract", action="store_true")
    parser.add_argument("--candidate", type=Path, default=None,
                        help="Also score this model.onnx (a freshly trained one) on the same images")
    parser.add_argument("--tesseract-per-generator", type=int, default=60,
                        help="Tesseract reads only the first N images of each set (it takes 0.2 to 1 s per image)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000_007
    print(f"seed {seed}, {args.per_generator} images per generator, {len(training_fonts())} fonts", flush=True)
    warning = font_warning()
    if warning:
        print(warning, "The images differ from those of bench/RESULTS.md.", flush=True)
    sets = {name: samples([name], args.per_generator, seed) for name in ALL_GENERATORS}
    # "cracker" is the service's reader; "one look" the same model without the second look at doubtful readings.
    engines: dict[str, Engine] = {"cracker": ours(), "one look": ours(second_look=False)}
    if args.candidate is not None:
        engines["candidate"] = ours(args.candidate)
    engines["ddddocr"] = ddddocr_engine()
    tesseract = None if args.no_tesseract else tesseract_engine()
    if tesseract is not None:
        engines["tesseract"] = tesseract
    print("| generator | engine | sequence acc. (95 % interval) | case-sensitive | O/0, I/l/1 merged | character acc. "
          "| median ms | p90 ms | images/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    results: dict[tuple[str, str], Result] = {}
    for generator, drawn in sets.items():
        images = [png(s.image) for s in drawn]
        labels = [s.text for s in drawn]
        kind = "trained on" if generator in TRAIN_GENERATORS else "**held out**"
        for name, engine in engines.items():
            count = args.tesseract_per_generator if name == "tesseract" else len(images)
            result = results[generator, name] = run(engine, images[:count])
            sequence, characters = accuracy(result.texts, labels[:count])
            exact_case, _ = accuracy(result.texts, labels[:count], case_sensitive=True)
            lookalike, _ = accuracy(result.texts, labels[:count], merge_lookalikes=True)
            median_ms = statistics.median(result.latencies) * 1000
            p90_ms = statistics.quantiles(result.latencies, n=10)[-1] * 1000
            rate = len(result.latencies) / sum(result.latencies)
            label = f"{name} (first {count})" if count < len(images) else name
            low, high = wilson(sequence, count)
            print(f"| {generator} ({kind}) | {label} | {sequence:.1%} ({low:.0%} to {high:.0%}) "
                  f"| {exact_case:.1%} | {lookalike:.1%} "
                  f"| {characters:.1%} "
                  f"| {median_ms:.2f} | {p90_ms:.2f} | {rate:.0f} |", flush=True)
    model = OcrModel(threads=1)
    batch = [s.image for s in sets[TRAIN_GENERATORS[0]][:64]]
    for second_look in (True, False):
        reader = OcrReader(model, second_look=second_look)
        started = time.perf_counter()
        for _ in range(5):
            reader.read(batch)
        print(f"\n{'cracker' if second_look else 'one look'}, batches of 64 (decoded PIL images), one thread: "
              f"{5 * len(batch) / (time.perf_counter() - started):.0f} images/s")
    rng = np.random.default_rng(seed)
    shown = []
    for generator, drawn in sets.items():
        limit = min(len(drawn), args.tesseract_per_generator) if "tesseract" in engines else len(drawn)
        for index in rng.choice(limit, size=4, replace=False):
            readings = {name: results[generator, name].texts[index] for name in engines if name != "one look"}
            shown.append((drawn[index].image, drawn[index].text, readings))
    picture(args.picture, shown)
    print(f"picture: {args.picture}")
    misread = errors(sets, results)
    if misread:
        picture(args.errors, misread[:40])
    print(f"picture of {min(len(misread), 40)} of our {len(misread)} misreadings that are not only lookalikes "
          f"(O/0, I/l/1) on the training generators: {args.errors}")


def errors(sets: dict[str, list[Sample]], results: dict[tuple[str, str], Result]) -> list[Shown]:
    """Our misreadings on the training generators, but for those that merging lookalikes would forgive."""
    wrong = []
    for generator in TRAIN_GENERATORS:
        for drawn, text in zip(sets[generator], results[generator, "cracker"].texts, strict=True):
            if fold(text, merge_lookalikes=True) != fold(drawn.text, merge_lookalikes=True):
                wrong.append((drawn.image, drawn.text, {"cracker": text}))
    return wrong


if __name__ == "__main__":
    main()
