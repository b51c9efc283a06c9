"""How well fine-tuning reads a style the general model never saw, from how many labelled images.

    .venv/bin/python bench/ocr_finetune_bench.py run --generator wheezy --labelled 1000 --minutes 10
    .venv/bin/python bench/ocr_finetune_bench.py run --generator captcha-default --labelled 5000 --minutes 10
    .venv/bin/python bench/ocr_finetune_bench.py plot      # table + bench/ocr_finetune.png from the runs

Each ``run`` draws ``--labelled`` images of one generator (seeded), fine-tunes a copy of the shipped
general model on them exactly as ``cracker ocr-models add`` does (a fifth held out to score inside),
then reads ``--test`` FRESH images of the same generator (another seed) with the general model (the
peer, measured in the same run on the same images) and with the fine-tuned one. It appends one JSON
line to ``bench/ocr_finetune_runs.jsonl``: accuracies, wall minutes of the fine-tune, and the CPU
seconds the process spent in it (all its threads), which say more than wall time on a shared machine.

Generators: ``wheezy`` and ``multicolor`` are the held-out styles of ``cracker.ocr_training.generators``
(never in the general model's training). ``captcha-default`` is the setting of the published
``captcha``-package benchmark: 4 characters from digits and capital letters, ``ImageCaptcha()`` at its
defaults (160 x 60, its own font); the best published figure there is 99.57 % (a CNN trained on a GPU).
Accuracy is whole-answer, case-insensitive (every label here is one case).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import string
import time
from pathlib import Path

from PIL import Image

RUNS = Path(__file__).with_name("ocr_finetune_runs.jsonl")
PLOT = Path(__file__).with_name("ocr_finetune.png")
#: Best published sequence accuracy for 4-character digit+capital ImageCaptcha images (GPU-trained CNN).
PUBLISHED_CAPTCHA_DEFAULT = 0.9957


def _captcha_default(rng: random.Random) -> tuple[Image.Image, str]:
    from captcha import image as captcha_image
    from captcha.image import ImageCaptcha

    from cracker.ocr_training.generators import _SeededSecrets

    text = "".join(rng.choice(string.digits + string.ascii_uppercase) for _ in range(4))
    setattr(captcha_image, "secrets", _SeededSecrets(rng))  # noqa: B010  # reproducible sets
    return ImageCaptcha().generate_image(text).convert("RGB"), text


def draw(generator: str, count: int, seed: int) -> list[tuple[Image.Image, str]]:
    from cracker.ocr_training.generators import sample

    rng = random.Random(seed)
    if generator == "captcha-default":
        return [_captcha_default(rng) for _ in range(count)]
    return [(drawn.image, drawn.text) for drawn in (sample(generator, rng) for _ in range(count))]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run(generator: str, labelled: int, minutes: float, test: int, threads: int, seed: int,
        augment: str = "frame", frozen: int = 2) -> dict[str, object]:
    from cracker.ocr_training.evaluate import score
    from cracker.ocr_training.finetune import FineTuneConfig, _reader, fine_tune
    from cracker.solvers.ocr.model import OcrModel
    from cracker.solvers.ocr.reader import OcrReader

    started = time.monotonic()
    training = [(_png(image), text) for image, text in draw(generator, labelled, seed)]
    fresh = draw(generator, test, seed + 1_000_003)
    print(f"{generator}: drew {labelled} + {test} images in {time.monotonic() - started:.0f} s", flush=True)

    general = OcrReader(OcrModel())

    def read_general(image: Image.Image) -> str:
        reading = general.read([image])[0]
        return reading.text if reading else ""

    general_score = score(read_general, fresh)
    print(f"general model on fresh {generator}: {general_score.sequence_accuracy:.1%}", flush=True)

    last = [0.0]

    def progress(done: float, message: str) -> None:
        if done - last[0] >= 0.05 or done >= 1.0:
            last[0] = done
            print(f"  {done:4.0%} {message} ({time.monotonic() - tuned_at:.0f} s)", flush=True)

    cpu_at, tuned_at = time.process_time(), time.monotonic()
    config = FineTuneConfig(minutes=minutes, threads=threads, seed=seed, augment=augment, frozen=frozen)
    result = fine_tune(training, None, config, progress)
    wall_minutes, cpu_seconds = (time.monotonic() - tuned_at) / 60, time.process_time() - cpu_at
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "model.onnx").write_bytes(result.onnx)
        (Path(folder) / "model.json").write_text(json.dumps(result.metadata))
        read_tuned = _reader(Path(folder) / "model.onnx")
        tuned_score = score(read_tuned, fresh)
        readings = [(label, read_tuned(image)) for image, label in fresh]
    forgiven, confusions = lookalike_analysis(readings)
    row: dict[str, object] = {
        "generator": generator, "labelled": labelled, "trained_on": result.train_images, "test": test,
        "general": general_score.sequence_accuracy, "fine_tuned": tuned_score.sequence_accuracy,
        "held_out_before": result.before.sequence_accuracy, "held_out_after": result.after.sequence_accuracy,
        "fine_tuned_lookalikes_forgiven": forgiven, "top_confusions": confusions,
        "fine_tuned_median_ms": tuned_score.median_ms, "steps": result.steps, "budget_minutes": minutes,
        "wall_minutes": round(wall_minutes, 2), "train_minutes": round(result.seconds / 60, 2),
        "cpu_seconds": round(cpu_seconds, 1), "threads": threads, "seed": seed, "augment": augment, "frozen": frozen,
        "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(row), flush=True)
    with RUNS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    return row


#: Glyphs that DejaVu Sans and Liberation Sans (wheezy's fonts here) draw alike or nearly: a capital
#: I and a small l are both a plain bar, a zero and a capital O both an oval (case-folded).
LOOKALIKES = str.maketrans({"l": "i", "0": "o"})


def lookalike_analysis(readings: list[tuple[str, str]]) -> tuple[float, list[list[object]]]:
    """(accuracy if I/l and 0/O confusions were forgiven, the most common character confusions as
    [expected, read, count]): how much of what is left is the style's own ambiguity."""
    import difflib
    from collections import Counter

    forgiven = sum(want.casefold().translate(LOOKALIKES) == got.casefold().translate(LOOKALIKES)
                   for want, got in readings)
    confusions: Counter[tuple[str, str]] = Counter()
    for want, got in readings:
        matcher = difflib.SequenceMatcher(None, want.casefold(), got.casefold())
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op != "equal":
                confusions[(want.casefold()[i1:i2], got.casefold()[j1:j2])] += 1
    return forgiven / max(1, len(readings)), [[a, b, n] for (a, b), n in confusions.most_common(6)]


def plot() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in RUNS.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row.setdefault("augment", "frame")
        row.setdefault("frozen", 2)
        row["series"] = (f"{row['generator']} ({row['augment']}, {row['frozen']} frozen, "
                         f"{row['threads']} thread{'s' if row['threads'] > 1 else ''})")
    print("| generator | augment, frozen blocks | labelled (trained on) | general model (peer) | fine-tuned | ratio "
          "| I=l, 0=O forgiven | held-out before / after | wall min | CPU s | threads | steps | seed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["generator"], r["augment"], r["frozen"], r["labelled"], r["seed"])):
        ratio = f"{row['fine_tuned'] / row['general']:.2f}x" if row["general"] else "-"
        forgiven = f"{row['fine_tuned_lookalikes_forgiven']:.1%}" if "fine_tuned_lookalikes_forgiven" in row else "-"
        print(f"| {row['generator']} | {row['augment']}, {row['frozen']} | {row['labelled']} ({row['trained_on']}) | "
              f"{row['general']:.1%} | **{row['fine_tuned']:.1%}** | {ratio} | {forgiven} | "
              f"{row['held_out_before']:.1%} / {row['held_out_after']:.1%} | {row['wall_minutes']:.1f} | "
              f"{row['cpu_seconds']:.0f} | {row['threads']} | {row['steps']} | {row['seed']} |")
    figure, axes = plt.subplots(figsize=(11, 5))
    for series in sorted({row["series"] for row in rows}):
        mine = sorted((row for row in rows if row["series"] == series), key=lambda r: r["labelled"])
        line = axes.plot([r["labelled"] for r in mine], [100 * r["fine_tuned"] for r in mine], marker="o",
                         label=f"{series}, fine-tuned")[0]
        axes.plot([r["labelled"] for r in mine], [100 * r["general"] for r in mine], linestyle="--", marker="x",
                  color=line.get_color(), label=f"{series}, general model")
    if any(row["generator"] == "captcha-default" for row in rows):
        axes.axhline(100 * PUBLISHED_CAPTCHA_DEFAULT, color="black", linewidth=0.8, linestyle="-.",
                     label="captcha-default, best published (GPU)")
    axes.axhline(90, color="grey", linewidth=0.8, linestyle=":", label="goal (90 %)")
    axes.set_xscale("log")
    axes.set_xticks([200, 1000, 5000], ["200", "1,000", "5,000"])
    axes.minorticks_off()
    axes.set_xlabel("labelled images used (a fifth held out to score)")
    axes.set_ylabel("accuracy on fresh images (%)")
    axes.set_ylim(0, 100)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axes.set_title("Fine-tuning the general OCR model on a style it never saw (CPU)")
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)
    print(f"plot: {PLOT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run")
    one.add_argument("--generator", choices=("wheezy", "multicolor", "captcha-default"), required=True)
    one.add_argument("--labelled", type=int, required=True)
    one.add_argument("--minutes", type=float, default=10.0)
    one.add_argument("--test", type=int, default=500)
    one.add_argument("--threads", type=int, default=1)
    one.add_argument("--seed", type=int, default=20261201)
    one.add_argument("--augment", choices=("frame", "affine"), default="affine")
    one.add_argument("--frozen", type=int, default=0, help="first convolution blocks kept frozen (0 to 5)")
    sub.add_parser("plot")
    arguments = parser.parse_args()
    if arguments.command == "run":
        run(arguments.generator, arguments.labelled, arguments.minutes, arguments.test, arguments.threads,
            arguments.seed, arguments.augment, arguments.frozen)
    else:
        plot()


if __name__ == "__main__":
    main()
