"""OCR training-step benchmark (not a test): float32 against bfloat16 autocast, side by side.

Run from the repository root (needs the ocr-train extra):

    .venv/bin/python docs/research/ocr/train_step_bench.py [--rounds 20] [--threads 1 2]   # about 2 minutes

Times one optimiser step of the shipped network on a batch of 64 random images, without drawing
captchas: the trainer's share of a training run. It is ``train.time_precisions``, what
``--precision auto`` runs for a few rounds before training on a CPU, here with more rounds: the two
precisions take turns, one step each per round, so a busy machine slows both alike. It prints the
CPU features torch reads, which do not decide the matter (see ``train.use_bf16``).
"""

from __future__ import annotations

import argparse

import torch

from cracker.ocr_training.commands import SHIPPED_CHECKPOINT
from cracker.ocr_training.generators import ALPHABET
from cracker.ocr_training.network import load, size_of
from cracker.ocr_training.train import HEIGHT, time_precisions

BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    features = {name.removeprefix("_is_").removesuffix("_supported"): bool(getattr(torch.cpu, name)())
                for name in dir(torch.cpu) if name.startswith("_is_") and name.endswith("_supported")}
    print("CPU:", ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in sorted(features.items())))
    state = torch.load(SHIPPED_CHECKPOINT, weights_only=True)
    model = load(state, len(ALPHABET), HEIGHT, size_of(state))
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stubs omit it
    model.train()
    for threads in args.threads:
        torch.set_num_threads(threads)
        times = time_precisions(model, BATCH, rounds=args.rounds)
        print(f"{threads} thread(s), batch of {BATCH}, median of {args.rounds} steps: "
              f"fp32 {times['fp32'] * 1000:.0f} ms, bf16 {times['bf16'] * 1000:.0f} ms, "
              f"bf16/fp32 = {times['bf16'] / times['fp32']:.2f}", flush=True)


if __name__ == "__main__":
    main()
