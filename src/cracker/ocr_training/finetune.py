"""Fine-tune a copy of a trained model on a user's labelled images, on the CPU, within a time budget.

The entry point is :func:`fine_tune`: labelled images in (as bytes, so a folder, the reports table or
a benchmark's generator all feed it alike), an ONNX model and its metadata out, with the accuracy of
the starting model and of the new one on a held-out part of the images.

What transfers, and what is trained. Training starts from the general model's weights, whose
features (strokes, glyph shapes, the GRU's reading along the line) mostly transfer: on the held-out
``wheezy`` style the general model already reads 62 %. By default every layer is trained
(``frozen=0``); freezing the first two convolution blocks (``frozen=2``, the first design) read 1 to
3 points less on fresh images in paired runs (bench/RESULTS.md, "OCR fine-tuning"), and either way
a few hundred steps reach what the images can teach: beyond that the training loss falls to zero
(memorising) while the fresh accuracy stays.

Augmentation keeps the style: only what a site's own images vary by (a few pixels of framing, a
slight turn, shear and stretch, brightness and contrast), never another style's noise or fonts.
"""

from __future__ import annotations

import io
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageEnhance

from cracker.ocr_training.evaluate import Score, score
from cracker.ocr_training.generators import ALPHABET
from cracker.ocr_training.network import CrnnLite, load
from cracker.ocr_training.train import HEIGHT, WIDTH, collate_batch, export_onnx, training_step, use_bf16
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.preprocess import decode, to_input
from cracker.solvers.ocr.reader import OcrReader

#: The checkpoint the shipped general model (solvers/ocr/model.onnx) was exported from.
SHIPPED_CHECKPOINT = Path(__file__).with_name("shipped_checkpoint.pt")
#: The convolution blocks in order (their keys' prefixes in ``CrnnLite.features``); the first
#: ``FineTuneConfig.frozen`` of them stay as the general model has them.
CONV_BLOCKS = ("features.0.", "features.2.", "features.4.", "features.5.", "features.7.")

#: ``progress(done, message)``: ``done`` in [0, 1] (of the steps or of the time budget, whichever is
#: further along), ``message`` a short status (the phase, or the running loss).
Progress = Callable[[float, str], None]


class NotEnoughImages(ValueError):
    """Fewer labelled images than a fine-tune can learn from and score."""


@dataclass(frozen=True, slots=True)
class FineTuneResult:
    #: The fine-tuned network as ONNX, and the ``model.json`` metadata the solver reads beside it.
    onnx: bytes
    metadata: dict[str, object]
    #: Its weights (a torch state dict), so that a later fine-tune can start from this model.
    checkpoint: bytes
    #: Accuracy on the held-out images: of the model it started from, and of the new one.
    before: Score
    after: Score
    train_images: int
    steps: int
    seconds: float
    #: Characters of the labels that the model's alphabet lacks (those labels were skipped).
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class FineTuneConfig:
    #: Wall-clock budget for the training steps (scoring and export come on top, a few seconds).
    minutes: float = 5.0
    #: Stop earlier once each training image has been seen this many times (small sets converge fast).
    epochs: float = 60.0
    #: Share of the images held out to score (at least one, at most ``max_held_out``).
    held_out_share: float = 0.2
    max_held_out: int = 1000
    batch_size: int = 32
    learning_rate: float = 1.5e-3
    #: One thread by default: on a busy machine (the service, or other jobs, beside it) two OpenMP
    #: threads spin waiting for each other, and a step cost 10x the CPU time it cost on one thread
    #: (1.1 s against 0.11 s a batch of 32, measured on the shared 2-core machine; bench/RESULTS.md).
    threads: int = 1
    #: ``auto``: bf16 autocast where a few timed steps say it is faster on this CPU (it was 1.6x here).
    precision: str = "auto"
    #: ``frame``: crop/margin, brightness and contrast only; ``affine`` adds a slight rotation, shear
    #: and stretch of the whole image (what one site's generator varies too), against memorising.
    augment: str = "affine"
    #: How many of the first convolution blocks stay frozen (0 to 5).
    frozen: int = 0
    seed: int = 1
    extra: dict[str, str] = field(default_factory=dict)


def fine_tune(
    samples: Sequence[tuple[bytes, str]],
    base_checkpoint: bytes | None = None,
    config: FineTuneConfig = FineTuneConfig(),
    progress: Progress | None = None,
) -> FineTuneResult:
    """A model fine-tuned from ``base_checkpoint`` (the shipped general model when None) on ``samples``.

    ``samples`` are (image bytes, label) pairs; a share of them (chosen at random, reproducibly from
    ``config.seed``) is held out and scored with the starting model and the new one, both read as
    the service reads (the ONNX model, second look included), case-insensitively.
    """
    report = progress or (lambda _done, _message: None)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    known = set(ALPHABET)
    usable, skipped = [], 0
    for data, label in samples:
        if label and all(char in known for char in label):
            usable.append((decode(data), label))
        else:
            skipped += 1
    if len(usable) < 5:
        raise NotEnoughImages(f"{len(usable)} usable labelled images; a fine-tune needs at least 5")
    rng.shuffle(usable)
    held = min(config.max_held_out, max(1, round(len(usable) * config.held_out_share)))
    held_out, training = usable[:held], usable[held:]

    state = torch.load(io.BytesIO(base_checkpoint) if base_checkpoint is not None else SHIPPED_CHECKPOINT,
                       weights_only=True)
    model = load(state, len(ALPHABET), HEIGHT)
    report(0.0, "scoring the starting model")
    before = _score_state(model, held_out)

    height, width = HEIGHT * model.detail, WIDTH * model.detail
    frozen = CONV_BLOCKS[:config.frozen]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not name.startswith(frozen))
    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=config.learning_rate, weight_decay=1e-4)
    bf16 = use_bf16(config.precision, model, config.batch_size)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    total_steps = max(20, math.ceil(config.epochs * len(training) / config.batch_size))
    budget_s = config.minutes * 60
    train_started = time.monotonic()
    model.train()
    _freeze_norms(model, frozen)
    smoothed, step, done = math.nan, 0, 0.0
    while done < 1.0:
        step += 1
        batch = [rng.choice(training) for _ in range(config.batch_size)]
        images, targets, lengths = collate_batch(
            [(to_input(_augment(image, rng, affine=config.augment == "affine"), height, width), label)
             for image, label in batch])
        done = max(step / total_steps, (time.monotonic() - train_started) / budget_s)
        for group in optimiser.param_groups:
            group["lr"] = _schedule(min(done, 1.0), config.learning_rate)
        loss, _ = training_step(model, optimiser, autocast, images, targets, lengths)
        smoothed = loss.item() if math.isnan(smoothed) else 0.95 * smoothed + 0.05 * loss.item()
        report(min(done, 1.0), f"loss {smoothed:.3f}")
    train_seconds = time.monotonic() - train_started

    model.eval()
    report(1.0, "exporting and scoring")
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(model, Path(folder), {"fine_tuned_on": str(len(training)), **config.extra}, WIDTH)
        onnx = (Path(folder) / "model.onnx").read_bytes()
        metadata = _read_json(Path(folder) / "model.json")
        after = score(_reader(Path(folder) / "model.onnx"), held_out)
    checkpoint = io.BytesIO()
    torch.save({key: value.contiguous() for key, value in model.state_dict().items()}, checkpoint)
    return FineTuneResult(onnx=onnx, metadata=metadata, checkpoint=checkpoint.getvalue(), before=before, after=after,
                          train_images=len(training), steps=step, seconds=train_seconds, skipped=skipped)


def _schedule(done: float, peak: float) -> float:
    """A short linear warm-up, then cosine down to 1/50 of the peak."""
    warmup = 0.05
    if done < warmup:
        return peak * (0.1 + 0.9 * done / warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (done - warmup) / (1 - warmup))))


def _freeze_norms(model: CrnnLite, frozen: tuple[str, ...]) -> None:
    """Frozen blocks keep the general model's batch-norm statistics too (eval mode in training)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d) and frozen and f"{name}.".startswith(frozen):
            module.eval()


def _augment(image: Image.Image, rng: random.Random, *, affine: bool = False) -> Image.Image:
    """The image as the same site might have framed it: a few pixels of crop or margin on each side,
    a little brightness and contrast, and with ``affine`` a slight turn, shear and stretch. Nothing
    that changes the style (no other fonts, noise or colours)."""
    if affine and rng.random() < 0.8:
        image = _affine(image, rng)
    width, height = image.size
    dx, dy = max(2, width // 30), max(2, height // 12)
    left, right = rng.randint(-dx, dx), rng.randint(-dx, dx)
    top, bottom = rng.randint(-dy, dy), rng.randint(-dy, dy)
    box = (left, top, width - right, height - bottom)
    canvas = Image.new("RGB", (max(1, box[2] - box[0]), max(1, box[3] - box[1])), image.getpixel((0, 0)))
    canvas.paste(image, (-left, -top))
    if rng.random() < 0.5:
        canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.85, 1.15))
    if rng.random() < 0.5:
        canvas = ImageEnhance.Contrast(canvas).enhance(rng.uniform(0.8, 1.2))
    return canvas


def _affine(image: Image.Image, rng: random.Random) -> Image.Image:
    """Turn up to 4 degrees, shear up to 0.15, stretch each axis by up to 8 %, about the centre."""
    width, height = image.size
    angle = math.radians(rng.uniform(-4, 4))
    shear = rng.uniform(-0.15, 0.15)
    sx, sy = rng.uniform(0.92, 1.08), rng.uniform(0.92, 1.08)
    cos, sin = math.cos(angle), math.sin(angle)
    # The inverse map (output pixel -> input pixel) of rotate . shear . scale, about the centre.
    a, b = cos / sx, (sin + shear * cos) / sx
    d, e = -sin / sy, (cos - shear * sin) / sy
    cx, cy = width / 2, height / 2
    c, f = cx - a * cx - b * cy, cy - d * cx - e * cy
    corner = image.getpixel((0, 0))
    return image.transform(image.size, Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR,
                           fillcolor=corner)


def _score_state(model: CrnnLite, items: Sequence[tuple[Image.Image, str]]) -> Score:
    """Held-out accuracy of a network as the service would read with it (exported to ONNX first)."""
    model.eval()
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(model, Path(folder), {}, WIDTH)
        return score(_reader(Path(folder) / "model.onnx"), items)


def _reader(onnx_path: Path) -> Callable[[Image.Image], str]:
    reader = OcrReader(OcrModel(onnx_path))

    def read(image: Image.Image) -> str:
        reading = reader.read([image])[0]
        return reading.text if reading else ""

    return read


def _read_json(path: Path) -> dict[str, object]:
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def images_from_folder(folder: Path) -> list[tuple[bytes, str]]:
    """A labelled folder (see :mod:`cracker.ocr_training.labelled`) as (image bytes, label) pairs."""
    from cracker.ocr_training.labelled import read_folder

    return [(path.read_bytes(), label) for path, label in read_folder(folder)]

