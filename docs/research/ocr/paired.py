"""Paired comparison of two OCR models on the same fresh images (not a test).

Run from the repository root (needs the ocr-train extra for the generators):

    .venv/bin/python docs/research/ocr/paired.py A/model.onnx B/model.onnx \
        [--per-generator 1000] [--seed 9090] [--swaps 8]

Both models read every image (case-insensitive, as the service reads by default, with the second
look unless ``--one-look``). Besides each model's sequence accuracy it prints how many images only
A read right and how many only B did: two models that differ by a point on 1,000 images differ on
a few dozen of them, and those counts say whether the difference is more than the draw of images
(a sign test: |only A - only B| above about 2 sqrt(only A + only B) is unlikely by chance).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

from PIL import Image

from cracker.ocr_training.generators import TRAIN_GENERATORS, samples
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.reader import OcrReader


def readings(reader: OcrReader, items: list[tuple[Image.Image, str]], batch: int = 100) -> list[str]:
    texts = []
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        texts.extend(reader.read([image for image, _ in chunk]))
    return [reading.text if reading is not None else "" for reading in texts]


def swaps(texts: list[str], labels: list[str]) -> Counter[str]:
    """Characters swapped in readings of the right length, as 'label>read' (case-folded), e.g. 'i>l'."""
    found: Counter[str] = Counter()
    for text, label in zip(texts, labels, strict=True):
        if len(text) == len(label):
            found.update(f"{want}>{got}" for want, got in zip(label.casefold(), text.casefold(), strict=True)
                         if want != got)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--per-generator", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=9090)
    parser.add_argument("--generators", default=",".join((*TRAIN_GENERATORS, "wheezy")))
    parser.add_argument("--one-look", action="store_true")
    parser.add_argument("--swaps", type=int, default=0, help="print each model's N most frequent swapped characters")
    args = parser.parse_args()
    readers = [OcrReader(OcrModel(path), second_look=not args.one_look) for path in (args.a, args.b)]
    print(f"A = {args.a}\nB = {args.b}\n{args.per_generator} images per generator, seed {args.seed}, "
          f"{'one look' if args.one_look else 'second look'}")
    print(f"{'generator':12s} {'A':>7s} {'B':>7s} {'only A':>7s} {'only B':>7s}  verdict")
    for generator in args.generators.split(","):
        items = [(drawn.image, drawn.text) for drawn in samples([generator], args.per_generator, args.seed)]
        labels = [label for _, label in items]
        texts = [readings(reader, items) for reader in readers]
        a, b = ([text.casefold() == label.casefold() for text, label in zip(read, labels, strict=True)]
                for read in texts)
        only_a = sum(x and not y for x, y in zip(a, b, strict=True))
        only_b = sum(y and not x for x, y in zip(a, b, strict=True))
        verdict = "differ" if abs(only_a - only_b) > 2 * math.sqrt(max(1, only_a + only_b)) else "within chance"
        print(f"{generator:12s} {sum(a) / len(a):7.1%} {sum(b) / len(b):7.1%} {only_a:7d} {only_b:7d}  {verdict}")
        if args.swaps:
            for name, read in zip("AB", texts, strict=True):
                common = swaps(read, labels).most_common(args.swaps)
                print(f"{'':12s} {name} swaps: " + ", ".join(f"{pair} {count}" for pair, count in common))


if __name__ == "__main__":
    main()
