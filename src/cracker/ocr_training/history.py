"""A training run's curve: ``history.csv`` written as the run goes, ``history.png`` drawn at the end.

The CSV survives an interrupted run (a row is flushed every ``every`` steps); the picture shows the
loss, the running batch accuracy and the learning rate against minutes, which says at a glance
whether a longer run would still have gained.
"""

from __future__ import annotations

import csv
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TextIO

COLUMNS = ("step", "minutes", "images", "loss", "batch_accuracy", "learning_rate")


@dataclass(frozen=True, slots=True)
class Point:
    step: int
    minutes: float
    images: int
    loss: float
    batch_accuracy: float
    learning_rate: float


class History:
    def __init__(self, folder: Path, every: int = 50) -> None:
        self.csv_path = folder / "history.csv"
        self.png_path = folder / "history.png"
        self.every = every
        self.points: list[Point] = []
        self._file: TextIO = self.csv_path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)

    def record(self, point: Point, last: bool = False) -> None:
        if point.step % self.every and not last:
            return
        self.points.append(point)
        self._writer.writerow(astuple(point))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self.points:
            plot(self.points, self.png_path)


def read(path: Path) -> list[Point]:
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return [Point(int(row["step"]), float(row["minutes"]), int(row["images"]), float(row["loss"]),
                  float(row["batch_accuracy"]), float(row["learning_rate"])) for row in rows]


def plot(points: list[Point], path: Path, title: str = "train-ocr") -> None:
    import matplotlib

    matplotlib.use("Agg")  # no screen; and never the interactive backend of whoever imported it first
    import matplotlib.pyplot as plt

    minutes = [point.minutes for point in points]
    figure, (loss_axis, accuracy_axis) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    loss_axis.plot(minutes, [point.loss for point in points], color="tab:red")
    loss_axis.set_yscale("log")
    loss_axis.set_ylabel("CTC loss (smoothed)")
    rate_axis = loss_axis.twinx()
    rate_axis.plot(minutes, [point.learning_rate for point in points], color="tab:grey", linestyle="--")
    rate_axis.set_ylabel("learning rate (dashed)")
    accuracy_axis.plot(minutes, [point.batch_accuracy for point in points], color="tab:blue")
    accuracy_axis.set_ylabel("batch sequence accuracy\n(smoothed, case-sensitive)")
    accuracy_axis.set_xlabel("minutes")
    accuracy_axis.grid(alpha=0.3)
    last = points[-1]
    figure.suptitle(f"{title}: {last.step:,} steps, {last.images:,} images in {last.minutes:.0f} min")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    """Redraw a run's picture from its CSV: ``python -m cracker.ocr_training.history history.csv [out.png]``."""
    import sys

    source = Path(sys.argv[1])
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else source.with_suffix(".png")
    plot(read(source), target, title=source.parent.name)
    print(target)


if __name__ == "__main__":
    main()
