"""What ``cracker train-ocr`` and ``cracker eval-ocr`` run (imported only when those commands run)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from cracker.ocr_training.evaluate import Score, load_folder, score
from cracker.ocr_training.generators import ALL_GENERATORS, TRAIN_GENERATORS, samples
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.reader import OcrReader

if TYPE_CHECKING:
    from cracker.ocr_training.finetune import FineTuneResult

console = Console()
SHIPPED_CHECKPOINT = Path(__file__).with_name("shipped_checkpoint.pt")


def _reader(model_path: Path | None, second_look: bool = True) -> OcrReader:
    return OcrReader(OcrModel(model_path), second_look=second_look)


def _read_one(reader: OcrReader):  # type: ignore[no-untyped-def]
    def read(image):  # type: ignore[no-untyped-def]
        reading = reader.read([image])[0]
        return reading.text if reading else ""

    return read


def _table(rows: dict[str, Score]) -> Table:
    table = Table("set", "images", "sequence acc.", "character acc.", "median ms", "images/s")
    for name, result in rows.items():
        table.add_row(name, str(result.images), f"{result.sequence_accuracy:.2%}", f"{result.character_accuracy:.2%}",
                      f"{result.median_ms:.2f}", f"{result.images_per_s:.0f}")
    return table


def evaluate(folder: Path | None, generated: int, model_path: Path | None, case_sensitive: bool, seed: int,
             *, second_look: bool = True) -> None:
    reader = _reader(model_path, second_look)
    rows: dict[str, Score] = {}
    if folder is not None:
        rows[str(folder)] = score(_read_one(reader), load_folder(folder), case_sensitive=case_sensitive)
    if generated:
        for name in ALL_GENERATORS:
            items = [(s.image, s.text) for s in samples([name], generated, seed)]
            label = f"{name} ({'trained on' if name in TRAIN_GENERATORS else 'held out'})"
            rows[label] = score(_read_one(reader), items, case_sensitive=case_sensitive)
    console.print(_table(rows))


def train(out: Path, steps: int, minutes: float | None, batch_size: int, learning_rate: float, threads: int,
          workers: int, user_folder: Path | None, init: Path | None, evaluate_count: int, seed: int,
          width: int, *, device: str = "auto", precision: str = "auto", reuse: float = 2.0,
          mix: tuple[Sequence[str], Sequence[float]] | None = None, detail: int = 1) -> None:
    from dataclasses import replace

    from cracker.ocr_training.network import DEFAULT_SIZE
    from cracker.ocr_training.train import TrainConfig
    from cracker.ocr_training.train import train as run_training

    if user_folder is not None and init is None:
        # Fine-tuning starts from the weights the package ships (model.onnx was exported from them).
        init = SHIPPED_CHECKPOINT
        console.print(f"fine-tuning from {init}")

    generators, shares = mix if mix else (TRAIN_GENERATORS, None)
    # model.json records the mix a model was trained on, beside its font count.
    extra = {"mix": ",".join(f"{name}={share:g}" for name, share in zip(*mix, strict=True))} if mix else {}
    summary = run_training(TrainConfig(
        out=out, steps=steps, minutes=minutes, batch_size=batch_size, learning_rate=learning_rate, threads=threads,
        workers=workers, user_folder=user_folder, init=init, seed=seed, width=width, device=device,
        precision=precision, reuse=reuse, generators=generators, mix=shares, extra=extra,
        size=replace(DEFAULT_SIZE, detail=detail),
    ))
    console.print(
        f"[bold]trained[/bold] {summary['steps']:.0f} steps, {summary['images']:.0f} images in "
        f"{summary['minutes']:.1f} min; final loss {summary['loss']:.3f}, "
        f"batch accuracy {summary['batch_accuracy']:.2%}"
    )
    console.print(f"model: {out / 'model.onnx'} (+ model.json, checkpoint.pt to fine-tune from)")
    if evaluate_count:
        evaluate(user_folder, evaluate_count, out / "model.onnx", case_sensitive=False, seed=12345)


def fine_tune_with_progress(
    samples: Sequence[tuple[bytes, str]], base_checkpoint: bytes | None, minutes: float, *, threads: int = 1,
    base_name: str = "general",
) -> FineTuneResult:
    """``fine_tune`` with a progress bar (and the time it expects is left), then a before/after table."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from cracker.ocr_training.finetune import FineTuneConfig, fine_tune

    columns = (TextColumn("fine-tuning"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
               TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("fine-tune", total=1.0, status="reading images")

        def progress(done: float, status: str) -> None:
            bar.update(task, completed=done, status=status)

        result = fine_tune(samples, base_checkpoint, FineTuneConfig(minutes=minutes, threads=threads), progress)
    table = Table("held-out images", "model", "sequence acc.", "character acc.", title="Before and after")
    table.add_row(str(result.before.images), f"{base_name} (before)", f"{result.before.sequence_accuracy:.2%}",
                  f"{result.before.character_accuracy:.2%}")
    table.add_row(str(result.after.images), "fine-tuned (after)", f"[bold]{result.after.sequence_accuracy:.2%}[/bold]",
                  f"{result.after.character_accuracy:.2%}")
    console.print(table)
    console.print(f"trained on {result.train_images} images, {result.steps} steps in {result.seconds / 60:.1f} min"
                  + (f"; {result.skipped} images skipped (characters outside the model's alphabet)"
                     if result.skipped else ""))
    return result
