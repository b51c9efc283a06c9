"""Training curves of several runs on one picture, against images seen (not a test).

    .venv/bin/python docs/research/ocr/compare_runs.py OUT.png NAME=RUN_FOLDER [NAME=RUN_FOLDER ...]

Each run folder holds the ``history.csv`` that ``cracker train-ocr`` writes as it goes, so a run
still in progress can be drawn too. Loss and running batch accuracy are drawn against images seen,
not minutes, since runs side by side on one machine share its cores unevenly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend: no screen here

from cracker.ocr_training import history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", help="NAME=FOLDER")
    args = parser.parse_args()
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in args.runs:
        name, _, folder = run.partition("=")
        points = history.read(Path(folder) / "history.csv")
        millions = [point.images / 1e6 for point in points]
        loss_axis.plot(millions, [point.loss for point in points], label=name)
        accuracy_axis.plot(millions, [point.batch_accuracy for point in points], label=name)
        print(f"{name}: {points[-1].images:,} images, loss {points[-1].loss:.3f}, "
              f"batch accuracy {points[-1].batch_accuracy:.3f}")
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
