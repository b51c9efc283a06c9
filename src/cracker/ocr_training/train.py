"""Training loop: synthetic captchas drawn on the fly (plus, optionally, a folder of real ones), CTC.

Run it with ``cracker train-ocr`` (see ``--help``). The result is an ONNX file and its metadata
JSON, exactly what :mod:`cracker.solvers.ocr` loads; pass ``--out`` to the package's folder to ship it.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from cracker.ocr_training.generators import ALPHABET, TRAIN_GENERATORS, font_warning, sample, training_fonts
from cracker.ocr_training.history import History, Point
from cracker.ocr_training.labelled import read_folder
from cracker.ocr_training.network import DEFAULT_SIZE, CrnnLite, Size, load, size_of
from cracker.solvers.ocr.preprocess import decode, to_input

#: Rows of the network's grid; the input has ``HEIGHT * size.detail`` rows (see network.Size.detail).
HEIGHT = 32
#: Columns of the network's grid (the input has ``WIDTH * size.detail``). 192 rather than the first
#: model's 128: 8 crowded characters squeezed into 128 columns lost their gaps (a third of the
#: errors were wrong lengths). The network is convolutional plus a recurrent head, so a checkpoint
#: trained at one width fine-tunes at another.
WIDTH = 192
MAX_LABEL = 8
#: Images each data process keeps for reuse (about 25 MB of small PIL images).
_POOL = 1024
_CTC = nn.CTCLoss(blank=0, zero_infinity=True)


@dataclass
class TrainConfig:
    out: Path
    steps: int = 6000
    batch_size: int = 64
    learning_rate: float = 2e-3
    threads: int = 1
    workers: int = 1
    seed: int = 1
    generators: Sequence[str] = TRAIN_GENERATORS
    #: Relative share of each of ``generators`` in the stream (None: equal shares); see :func:`parse_mix`.
    mix: Sequence[float] | None = None
    #: A folder of the user's labelled images (see :mod:`labelled`) mixed into every batch.
    user_folder: Path | None = None
    #: Share of each batch drawn from ``user_folder`` when it is given.
    user_share: float = 0.5
    #: Start from these weights (a ``.pt`` checkpoint from an earlier run) to fine-tune.
    init: Path | None = None
    checkpoint_every: int = 500
    width: int = WIDTH
    #: The network's widths and input detail. An ``init`` checkpoint of a smaller size is grown to
    #: this one first, computing the same function (see :func:`cracker.ocr_training.network.grow`);
    #: it keeps its own detail where that is finer than this one's.
    size: Size = DEFAULT_SIZE
    #: ``cpu``, ``cuda``, or ``auto`` (CUDA when a GPU is visible). Images are drawn on the CPU
    #: by ``workers`` processes either way.
    device: str = "auto"
    #: ``bf16`` runs the forward pass under bfloat16 autocast (weights, gradients and the CTC loss
    #: stay float32); ``fp32`` runs it all in float32; ``auto`` takes bf16 where the hardware runs it
    #: faster: a GPU with bf16 support, or a CPU where a few timed steps say so (the CPU's flags do
    #: not tell; see :func:`use_bf16` and docs/research/ocr/train_step_bench.py).
    precision: str = "auto"
    #: How many times, on average, each drawn image is used (each time with a fresh crop and palette).
    #: Drawing costs about 3.6 ms an image, as much as a bf16 training step spends on it, so on two
    #: cores the drawing process would otherwise hold the trainer back.
    reuse: float = 2.0
    #: Stop after this many minutes even if ``steps`` are not done; the learning-rate schedule then
    #: follows the clock, so a run on a busy machine still anneals properly before it ends.
    minutes: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


def parse_mix(text: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``"pillow=2,captcha=1"`` as generators and their relative shares of the training stream.

    Only the training generators may be named: the held-out ones stay out of training so that the
    benchmark keeps measuring how the model does on styles it never saw.
    """
    names: list[str] = []
    shares: list[float] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, _, share = part.partition("=")
        name = name.strip()
        if name not in TRAIN_GENERATORS:
            raise ValueError(f"unknown training generator {name!r}: choose from {', '.join(TRAIN_GENERATORS)}")
        if name in names:
            raise ValueError(f"generator {name!r} named twice")
        try:
            value = float(share) if share.strip() else 1.0
        except ValueError:
            raise ValueError(f"share of {name!r} is not a number: {share!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"share of {name!r} must be a finite number >= 0, not {share.strip()}")
        names.append(name)
        shares.append(value)
    if not names or sum(shares) <= 0:
        raise ValueError("the mix names no generator with a share above 0")
    return tuple(names), tuple(shares)


def _jitter(image: Image.Image, rng: random.Random) -> Image.Image:
    """Crop or pad a few pixels at random: real captchas are not framed like our generators'."""
    width, height = image.size
    left, right = rng.randint(-4, 4), rng.randint(-4, 4)
    top, bottom = rng.randint(-3, 3), rng.randint(-3, 3)
    box = (left, top, width - right, height - bottom)
    # Pillow pads outside the image with black; use the corner colour instead.
    canvas = Image.new("RGB", (box[2] - box[0], box[3] - box[1]), image.getpixel((0, 0)))
    canvas.paste(image, (-left, -top))
    return canvas


class CaptchaStream(IterableDataset[tuple[np.ndarray, str]]):
    def __init__(self, config: TrainConfig) -> None:
        if config.mix is not None and len(config.mix) != len(config.generators):
            raise ValueError(f"{len(config.mix)} shares for {len(config.generators)} generators")
        self.config = config
        self.user = read_folder(config.user_folder) if config.user_folder else []

    def _draw(self, rng: random.Random) -> tuple[Image.Image, str]:
        if self.user and rng.random() < self.config.user_share:
            path, text = rng.choice(self.user)
            return decode(path.read_bytes()), text
        generators = list(self.config.generators)
        name = rng.choices(generators, self.config.mix)[0] if self.config.mix else rng.choice(generators)
        drawn = sample(name, rng)
        return drawn.image, drawn.text

    def __iter__(self) -> Iterator[tuple[np.ndarray, str]]:
        info = get_worker_info()
        # One stream per worker process; a new --seed gives new images (fine-tuning after a first run).
        rng = random.Random(self.config.seed * 1000 + (info.id if info else 0))
        # Reuse: a pool of drawn images; each step draws a fresh one into a random slot with
        # probability 1 / reuse, then yields a random slot. Uses are spread over the pool's lifetime,
        # so one batch rarely holds the same image twice.
        pool: list[tuple[Image.Image, str]] = []
        detail = self.config.size.detail
        height, width = HEIGHT * detail, self.config.width * detail
        while True:
            if self.config.reuse <= 1.0:
                image, text = self._draw(rng)
            elif len(pool) < _POOL:
                pool.append(self._draw(rng))
                image, text = pool[-1]
            else:
                if rng.random() * self.config.reuse < 1.0:
                    pool[rng.randrange(_POOL)] = self._draw(rng)
                image, text = rng.choice(pool)
            if rng.random() < 0.2:  # the odd inverted palette: light text on a dark ground
                image = Image.eval(image, lambda value: 255 - value)
            yield to_input(_jitter(image, rng), height, width), text


def collate_batch(batch: list[tuple[np.ndarray, str]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.stack([item[0] for item in batch]))
    index = {char: position + 1 for position, char in enumerate(ALPHABET)}
    labels = [[index[char] for char in text if char in index] for _, text in batch]
    targets = torch.tensor([value for label in labels for value in label], dtype=torch.long)
    lengths = torch.tensor([len(label) for label in labels], dtype=torch.long)
    return images, targets, lengths


def greedy_decode(log_probs: torch.Tensor) -> list[str]:
    best = log_probs.argmax(-1).tolist()
    texts = []
    for row in best:
        chars, previous = [], 0
        for value in row:
            if value != previous and value != 0:
                chars.append(ALPHABET[value - 1])
            previous = value
        texts.append("".join(chars))
    return texts


def export_onnx(model: CrnnLite, out: Path, extra: dict[str, str], width: int = WIDTH) -> None:
    """Write ``model.onnx`` and ``model.json``; the JSON's height and width are the input's, in pixels."""
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    example = torch.zeros(1, 3, HEIGHT * model.detail, width * model.detail)
    with warnings.catch_warnings():
        # The TorchScript exporter (and code inside it) is deprecated in favour of torch.export's,
        # which needs onnxscript (another dependency) and gains nothing for this small static graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Tracing warns that shape checks (the GRU's) become constants: the input size is fixed.
        warnings.simplefilter("ignore", torch.jit._trace.TracerWarning)
        # It also warns that a GRU exported with a dynamic batch may fail at another batch size:
        # not here, the initial state is the default zeros (tests run the export at batch 2).
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1", UserWarning)
        torch.onnx.export(
            model, (example,), str(out / "model.onnx"), input_names=["image"], output_names=["log_probs"],
            dynamic_axes={"image": {0: "batch"}, "log_probs": {0: "batch"}}, opset_version=17, dynamo=False,
        )
    meta = {"alphabet": ALPHABET, "blank": 0, "height": HEIGHT * model.detail, "width": width * model.detail,
            "max_label": MAX_LABEL, **extra}
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")


def _one_cycle(done: float, warmup: float, peak: float) -> float:
    """Linear warm-up to ``peak``, then cosine down to 1/100 of it, over ``done`` in [0, 1]."""
    if done < warmup:
        return peak * (0.1 + 0.9 * done / warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * (done - warmup) / (1 - warmup)))
    return peak * (0.01 + 0.99 * cosine)


def use_bf16(precision: str, model: CrnnLite, batch_size: int, width: int = WIDTH) -> bool:
    """Whether to train under bf16 autocast; ``auto`` on a CPU times a few steps each way to decide."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if next(model.parameters()).device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    # On a CPU the flags do not tell: two machines reporting the same AVX512-BF16 support ran bf16
    # steps in half the float32 time on one and slower on the other (docs/research/ocr.md, "Training
    # speed"). A few steps each way settle it.
    times = time_precisions(model, batch_size, width)
    faster = "bf16" if times["bf16"] < times["fp32"] else "fp32"
    print(f"precision auto: a step took {times['fp32'] * 1000:.0f} ms in fp32, {times['bf16'] * 1000:.0f} ms "
          f"in bf16: training in {faster}", flush=True)
    return faster == "bf16"


def random_batch(
    batch_size: int, width: int = WIDTH, seed: int = 0, detail: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random images and labels shaped like a training batch: for timing, not for learning."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, MAX_LABEL + 1, (batch_size,), generator=generator)
    targets = torch.randint(1, len(ALPHABET) + 1, (int(lengths.sum()),), generator=generator)
    images = torch.rand(batch_size, 3, HEIGHT * detail, width * detail, generator=generator)
    return images, targets, lengths


def time_precisions(model: CrnnLite, batch_size: int, width: int = WIDTH, rounds: int = 3) -> dict[str, float]:
    """Median seconds per training step in fp32 and in bf16, taking turns; the model is left as it was."""
    saved = {key: value.clone() for key, value in model.state_dict().items()}  # batch norm's statistics move
    # A learning rate of 0 (and no decay): the steps leave the weights alone.
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=0.0)
    batch = random_batch(batch_size, width, detail=model.detail)
    device_type = next(model.parameters()).device.type
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for round_ in range(rounds + 1):
        for precision, measured in times.items():
            autocast = torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")
            started = time.perf_counter()
            training_step(model, optimiser, autocast, *batch)
            if round_:  # the first round warms oneDNN's kernel caches
                measured.append(time.perf_counter() - started)
    model.load_state_dict(saved)
    return {precision: statistics.median(measured) for precision, measured in times.items()}


def training_step(
    model: nn.Module, optimiser: torch.optim.Optimizer, autocast: torch.autocast,
    images: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch; the loss and the (float32) log-probabilities it came from."""
    device = next(model.parameters()).device
    with autocast:
        log_probs = model(images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last))
    log_probs = log_probs.float()  # CTC's sums over 48 steps want float32
    steps_per_image = torch.full((images.shape[0],), log_probs.shape[1], dtype=torch.long, device=device)
    loss = _CTC(log_probs.permute(1, 0, 2), targets.to(device), steps_per_image, lengths.to(device))
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimiser.step()
    return loss, log_probs


def train(config: TrainConfig) -> dict[str, float]:
    warning = font_warning()
    if warning:
        print(warning, flush=True)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if config.init:
        state = torch.load(config.init, weights_only=True)
        # A network keeps the detail it was trained with; asking for more grows it.
        detail = max(config.size.detail, size_of(state).detail)
        config = replace(config, size=replace(config.size, detail=detail))
        model = load(state, len(ALPHABET), HEIGHT, config.size)
    else:
        model = CrnnLite(len(ALPHABET), HEIGHT, config.size)
    # Channels-last feature maps: oneDNN's convolutions, pooling and batch norm run faster on them.
    model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stubs omit memory_format
    bf16 = use_bf16(config.precision, model, config.batch_size, config.width)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    warmup = 0.05 if config.init else 0.15
    loader = DataLoader(
        CaptchaStream(config), batch_size=config.batch_size, num_workers=config.workers, collate_fn=collate_batch,
        prefetch_factor=4 if config.workers else None, persistent_workers=bool(config.workers),
    )
    config.out.mkdir(parents=True, exist_ok=True)
    history = History(config.out)
    started = time.monotonic()
    smoothed_loss, smoothed_acc = math.nan, math.nan
    progress = tqdm(total=config.steps, desc="train-ocr", unit="step", mininterval=10)
    model.train()
    done, step = 0.0, 0
    for step, (images, targets, lengths) in enumerate(loader, start=1):
        done = step / config.steps
        if config.minutes:
            done = max(done, (time.monotonic() - started) / 60 / config.minutes)
        learning_rate = _one_cycle(min(done, 1.0), warmup, config.learning_rate)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate
        loss, log_probs = training_step(model, optimiser, autocast, images, targets, lengths)
        # The batch's own sequence accuracy, a free (if optimistic) running measure.
        truth = ["".join(ALPHABET[v - 1] for v in targets[int(lengths[:i].sum()):int(lengths[:i + 1].sum())])
                 for i in range(len(lengths))]
        accuracy = float(np.mean([a == b for a, b in zip(greedy_decode(log_probs.detach().cpu()), truth, strict=True)]))
        smoothed_loss = loss.item() if math.isnan(smoothed_loss) else 0.98 * smoothed_loss + 0.02 * loss.item()
        smoothed_acc = accuracy if step == 1 else 0.98 * smoothed_acc + 0.02 * accuracy
        # refresh=False: the bar redraws on update(), at most every 10 s, not at every step (a log
        # file of a two-hour run was growing by one line per step).
        progress.set_postfix(
            loss=f"{smoothed_loss:.3f}", acc=f"{smoothed_acc:.3f}", lr=f"{learning_rate:.1e}", refresh=False
        )
        progress.update()
        finished = done >= 1.0
        history.record(Point(step, (time.monotonic() - started) / 60, step * config.batch_size, smoothed_loss,
                             smoothed_acc, learning_rate), last=finished)
        if step % config.checkpoint_every == 0 or finished:
            torch.save({key: value.cpu() for key, value in model.state_dict().items()}, config.out / "checkpoint.pt")
            elapsed = time.monotonic() - started
            print(f"\nstep {step}/{config.steps} ({done:.0%}) loss {smoothed_loss:.3f} batch-acc {smoothed_acc:.3f} "
                  f"{elapsed / 60:.1f} min", flush=True)
        if finished:
            break
    progress.close()
    history.close()
    model.to("cpu", memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    # Which fonts the model saw, recorded with it: a model trained on fewer reads the rest worse.
    export_onnx(model, config.out, {"training_fonts": str(len(training_fonts())), **config.extra}, config.width)
    return {
        "steps": step,
        "images": step * config.batch_size,
        "minutes": (time.monotonic() - started) / 60,
        "loss": smoothed_loss,
        "batch_accuracy": smoothed_acc,
    }
