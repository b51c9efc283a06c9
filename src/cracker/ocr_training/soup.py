"""Average trained checkpoints of one network (a "model soup"), then re-estimate batch norm's statistics.

    python -m cracker.ocr_training.soup OUT_FOLDER CHECKPOINT.pt CHECKPOINT.pt [...]

Writes ``checkpoint.pt`` and the ``model.onnx`` + ``model.json`` pair the solver loads. Checkpoints
fine-tuned one from another lie in one basin of the loss, where their average is itself a good
network, often better than each. A long fine-tune can gain on the training generators while losing
on a held-out one; averaging it with the checkpoint it started from can keep the gain without the
loss, which is how the shipped model was made (the figures: docs/research/ocr.md, "Model soup").
Averaged weights no longer match the averaged batch-norm statistics, so those are measured afresh on
fresh batches.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from cracker.ocr_training.generators import ALPHABET, training_fonts
from cracker.ocr_training.network import load, size_of
from cracker.ocr_training.train import HEIGHT, WIDTH, CaptchaStream, TrainConfig, collate_batch, export_onnx


def soup(checkpoints: Sequence[Path], out: Path, *, batches: int = 60, batch_size: int = 64, seed: int = 987,
         width: int = WIDTH) -> None:
    if len(checkpoints) < 2:
        raise ValueError("a soup needs two checkpoints or more")
    states = [torch.load(path, weights_only=True) for path in checkpoints]
    sizes = {size_of(state) for state in states}
    if len(sizes) != 1:
        raise ValueError(f"the checkpoints are of different sizes: {sorted(map(str, sizes))}")
    average = {
        # Integer buffers (batch norm's step counters) are not averaged: they are reset below.
        key: torch.stack([state[key].float() for state in states]).mean(0).to(value.dtype)
        if value.is_floating_point() else value.clone()
        for key, value in states[0].items()
    }
    size = sizes.pop()
    model = load(average, len(ALPHABET), HEIGHT, size)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain mean over all the batches, not a moving one
    model.train()
    stream = iter(CaptchaStream(TrainConfig(out=out, seed=seed, width=width, size=size)))
    with torch.no_grad():
        for _ in range(batches):
            images, _, _ = collate_batch(list(itertools.islice(stream, batch_size)))
            model(images)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({key: value.contiguous() for key, value in model.state_dict().items()}, out / "checkpoint.pt")
    export_onnx(model, out, {"training_fonts": str(len(training_fonts())), "soup_of": str(len(states))}, width)


if __name__ == "__main__":
    soup([Path(argument) for argument in sys.argv[2:]], Path(sys.argv[1]))
