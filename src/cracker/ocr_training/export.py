"""Export a training checkpoint to the ONNX + JSON pair the solver loads.

    python -m cracker.ocr_training.export CHECKPOINT.pt OUT_FOLDER [WIDTH]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from cracker.ocr_training.generators import ALPHABET
from cracker.ocr_training.network import load
from cracker.ocr_training.train import HEIGHT, WIDTH, export_onnx


def export_checkpoint(checkpoint: Path, out: Path, width: int = WIDTH) -> None:
    # The checkpoint's tensor shapes say the network's size.
    model = load(torch.load(checkpoint, weights_only=True), len(ALPHABET), HEIGHT)
    export_onnx(model, out, {}, width)


if __name__ == "__main__":
    export_checkpoint(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else WIDTH)
