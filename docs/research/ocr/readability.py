"""How many of the model's misreadings can a careful reader read? (not a test)

The issue asks for 97 % sequence accuracy on the training generators. If some of their images
cannot be read by anyone (glyphs cut off by the frame, crossed out, or drawn the same as another
character), no reader reaches 100 %, and this measures how far below it the ceiling sits.

Run from the repository root (needs the ocr-train extra and the font packages):

    .venv/bin/python docs/research/ocr/readability.py sheets OUT [--per-generator 500] [--seed 271828]
    .venv/bin/python docs/research/ocr/readability.py score OUT TRANSCRIPTION [--picture PNG]

``sheets`` draws fresh images from each training generator and reads them with the shipped model
(second look, case-insensitive, as ``bench/ocr_bench.py`` scores). Its default seed is not the
benchmark's: ``docs/research/ocr/errors.png`` shows the benchmark set's misreadings with their labels, and
a reader who has seen that page is no longer blind to them. It takes every image the model
misreads and as many it reads right (the controls), shuffles them together and draws them,
numbered and enlarged, on contact sheets in OUT without their labels, so the reader cannot tell a
misreading from a control. The answer key goes to OUT/key.json: don't open it before
transcribing. The same seed draws the same sheets and key again (the model and the fonts being
the same), so a transcription can be scored later from a fresh OUT.

A person then writes TRANSCRIPTION, one line per image: its number and what they read, or the
number alone for an image they cannot read at all. ``score`` compares it with the key and prints
the reader's accuracy on the controls (how good a reader they are), on the model's misreadings (how
many of those are readable), and what those make of each generator's ceiling: the share of images
that the model or the reader reads right.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cracker.ocr_training.generators import TRAIN_GENERATORS, samples
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.reader import OcrReader

# The benchmark's lookalike merge, so both score alike; paired.py sits beside this script.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from ocr_bench import fold
from paired import readings

TILE_WIDTH = 420
TILE_IMAGE_HEIGHT = 110
TILE_HEIGHT = TILE_IMAGE_HEIGHT + 26
COLUMNS = 3
ROWS = 7


@dataclass(frozen=True)
class Entry:
    number: int
    generator: str
    label: str
    model_read: str
    model_right: bool


def same(text: str, label: str, merge_lookalikes: bool = False) -> bool:
    """Read right, case-insensitive as the benchmark scores (and with its lookalikes merged, if asked)."""
    return fold(text, merge_lookalikes=merge_lookalikes) == fold(label, merge_lookalikes=merge_lookalikes)


def fit(image: Image.Image, height: int, width: int) -> Image.Image:
    """The image scaled (up, usually) to fit height x width, keeping its shape."""
    scale = min(height / image.height, width / image.width)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def tile(image: Image.Image, number: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> Image.Image:
    shown = fit(image, TILE_IMAGE_HEIGHT, TILE_WIDTH - 10)
    out = Image.new("RGB", (TILE_WIDTH, TILE_HEIGHT), "white")
    ImageDraw.Draw(out).text((4, 2), f"#{number}", fill="black", font=font)
    out.paste(shown, (4, 24))
    return out


def make_sheets(out: Path, per_generator: int, seed: int) -> None:
    reader = OcrReader(OcrModel(), second_look=True)
    rng = random.Random(seed)
    chosen: list[tuple[str, Image.Image, str, str, bool]] = []
    for generator in TRAIN_GENERATORS:
        drawn = samples([generator], per_generator, seed)
        texts = readings(reader, [(item.image, item.text) for item in drawn])
        read = list(zip(drawn, texts, strict=True))
        wrong = [(item, text) for item, text in read if not same(text, item.text)]
        right = [(item, text) for item, text in read if same(text, item.text)]
        controls = rng.sample(right, len(wrong))
        print(f"{generator}: {len(drawn)} images, {len(wrong)} misread, {len(controls)} controls")
        chosen += [(generator, item.image, item.text, text, False) for item, text in wrong]
        chosen += [(generator, item.image, item.text, text, True) for item, text in controls]
    rng.shuffle(chosen)
    (out / "images").mkdir(parents=True, exist_ok=True)
    font = ImageFont.load_default(size=18)
    per_sheet = COLUMNS * ROWS
    entries = []
    for start in range(0, len(chosen), per_sheet):
        sheet = Image.new("RGB", (COLUMNS * TILE_WIDTH, ROWS * TILE_HEIGHT), "white")
        for offset, (generator, image, label, model_read, model_right) in enumerate(chosen[start:start + per_sheet]):
            number = start + offset + 1
            image.save(out / "images" / f"{number}.png")
            sheet.paste(tile(image, number, font), ((offset % COLUMNS) * TILE_WIDTH, (offset // COLUMNS) * TILE_HEIGHT))
            entries.append(Entry(number, generator, label, model_read, model_right))
        sheet.save(out / f"sheet_{start // per_sheet + 1:02d}.png")
    (out / "key.json").write_text(json.dumps({"seed": seed, "per_generator": per_generator,
                                              "entries": [asdict(entry) for entry in entries]}, indent=1))
    print(f"{len(entries)} images on {-(-len(entries) // per_sheet)} sheets in {out}")


def read_transcription(path: Path) -> dict[int, str]:
    answers = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        number, _, text = line.strip().partition(" ")
        answers[int(number)] = text.strip()
    return answers


def picture(out: Path, path: Path, shown: list[tuple[Entry, str]]) -> None:
    """The model's misreadings that the reader read right: label, model and reader under each."""
    columns, width, height = 4, 260, 150
    font = ImageFont.load_default(size=15)
    rows = -(-len(shown) // columns)
    sheet = Image.new("RGB", (columns * width, rows * height), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (entry, answer) in enumerate(shown):
        x, y = (index % columns) * width, (index // columns) * height
        sheet.paste(fit(Image.open(out / "images" / f"{entry.number}.png"), 80, width - 10), (x + 4, y + 4))
        draw.text((x + 4, y + 88), f"{entry.generator}: {entry.label}", fill="black", font=font)
        draw.text((x + 4, y + 106), f"model:  {entry.model_read}", fill="firebrick", font=font)
        draw.text((x + 4, y + 124), f"reader: {answer}", fill="darkgreen", font=font)
    # A palette keeps the page near 250 kB instead of 1 MB, and the captchas stay legible.
    sheet.quantize(colors=128).save(path, optimize=True)


def score(out: Path, transcription: Path, picture_path: Path | None = None) -> None:
    key = json.loads((out / "key.json").read_text())
    entries = [Entry(**entry) for entry in key["entries"]]
    answers = read_transcription(transcription)
    missing = [entry.number for entry in entries if entry.number not in answers]
    if missing:
        raise SystemExit(f"no transcription for images {missing}")
    per_generator = key["per_generator"]
    print(f"seed {key['seed']}, {per_generator} images per generator; case-insensitive, as the benchmark")
    print(f"{'generator':10s} {'model':>7s} {'reader on controls':>19s} {'reader on misreads':>19s} "
          f"{'model or reader':>16s} {'same, lookalikes merged':>24s}")
    for generator in TRAIN_GENERATORS:
        mine = [entry for entry in entries if entry.generator == generator]
        controls = [entry for entry in mine if entry.model_right]
        misreads = [entry for entry in mine if not entry.model_right]
        model_right = per_generator - len(misreads)

        readable = sum(same(answers[entry.number], entry.label) for entry in misreads)
        # With lookalikes merged (as ocr_bench.py merges them) an image counts when either reads it.
        readable_merged = sum(same(answers[entry.number], entry.label, merge_lookalikes=True)
                              or same(entry.model_read, entry.label, merge_lookalikes=True) for entry in misreads)
        controls_read = sum(same(answers[entry.number], entry.label) for entry in controls)
        print(f"{generator:10s} {model_right / per_generator:7.1%} "
              f"{controls_read:>11d} of {len(controls):<4d} {readable:>11d} of {len(misreads):<4d} "
              f"{(model_right + readable) / per_generator:16.1%} "
              f"{(model_right + readable_merged) / per_generator:24.1%}")
    print("\nThe misreads the reader also got wrong (number, label, model, reader):")
    for entry in entries:
        if not entry.model_right and not same(answers[entry.number], entry.label):
            print(f"  #{entry.number:<4d} {entry.generator:8s} {entry.label:10s} {entry.model_read:10s} "
                  f"{answers[entry.number]}")
    print("\nThe controls the reader got wrong:")
    for entry in entries:
        if entry.model_right and not same(answers[entry.number], entry.label):
            print(f"  #{entry.number:<4d} {entry.generator:8s} {entry.label:10s} {answers[entry.number]}")
    if picture_path is not None:
        picture(out, picture_path, [(entry, answers[entry.number]) for entry in entries
                                    if not entry.model_right and same(answers[entry.number], entry.label)])
        print(f"\npicture of the misreadings the reader read right: {picture_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sheets = commands.add_parser("sheets")
    sheets.add_argument("out", type=Path)
    sheets.add_argument("--per-generator", type=int, default=500)
    sheets.add_argument("--seed", type=int, default=271828)
    scoring = commands.add_parser("score")
    scoring.add_argument("out", type=Path)
    scoring.add_argument("transcription", type=Path)
    scoring.add_argument("--picture", type=Path, default=None)
    args = parser.parse_args()
    if args.command == "sheets":
        make_sheets(args.out, args.per_generator, args.seed)
    else:
        score(args.out, args.transcription, args.picture)


if __name__ == "__main__":
    main()
