"""Training curves of several runs on one picture, against images seen (not a test).

    .venv/bin/python bench/ocr_compare_runs.py OUT.png NAME=RUN_FOLDER [NAME=RUN_FOLDER ...]

Each run folder holds the ``history.csv`` that ``cracker train-ocr`` writes as it goes, so a run
still in progress can be drawn too. Loss and running batch accuracy are drawn against images seen,
not minutes, since runs side by side on one machine share its cores unevenly.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend: no screen here


def read_history(folder: Path) -> dict[str, list[float]]:
    with (folder / "history.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    return {column: [float(row[column]) for row in rows] for column in ("images", "loss", "batch_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", help="NAME=FOLDER")
    args = parser.parse_args()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in args.runs:
        name, _, folder = run.partition("=")
        history = read_history(Path(folder))
        millions = [images / 1e6 for images in history["images"]]
        loss_axis.plot(millions, history["loss"], label=name)
        accuracy_axis.plot(millions, history["batch_accuracy"], label=name)
        print(f"{name}: {history['images'][-1]:,.0f} images, loss {history['loss'][-1]:.3f}, "
              f"batch accuracy {history['batch_accuracy'][-1]:.3f}")
    loss_axis.set(xlabel="images seen (millions)", ylabel="CTC loss (smoothed)", yscale="log", title="loss")
    accuracy_axis.set(xlabel="images seen (millions)", ylabel="batch sequence accuracy (running)",
                      title="training-batch accuracy", ylim=(0, 1))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(args.out, dpi=100)
    print(f"picture: {args.out}")


if __name__ == "__main__":
    main()
