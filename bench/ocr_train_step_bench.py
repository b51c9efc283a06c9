"""OCR training-step benchmark (not a test): float32 against bfloat16 autocast.

Run from the repository root (needs the ocr-train extra):

    .venv/bin/python bench/ocr_train_step_bench.py [--rounds 20] [--threads 1 2]   # about 2 minutes

Times one optimiser step of the shipped network (``train.training_step``, the trainer's own code)
on a batch of 64 random images, without drawing captchas: the trainer's share of a training run.
(channels-last maps, as the trainer runs them). The two take turns, one step each per round, so
that a busy machine slows both alike; ratios are to float32. It prints which precision
``--precision auto`` picks on this machine, and the CPU features torch reads.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cracker.ocr_training.commands import SHIPPED_CHECKPOINT
from cracker.ocr_training.generators import ALPHABET
from cracker.ocr_training.network import load, size_of
from cracker.ocr_training.train import HEIGHT, MAX_LABEL, WIDTH, training_step, use_bf16

BATCH = 64
PRECISIONS = ("fp32", "bf16")


def _trainer(precision: str) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.autocast]:
    state = torch.load(SHIPPED_CHECKPOINT, weights_only=True)
    model = load(state, len(ALPHABET), HEIGHT, size_of(state))
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stubs omit it
    model.train()
    # A learning rate of 0: the weights stay as shipped, so every round times the same network.
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.0)
    return model, optimiser, torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    features = {name.removeprefix("_is_").removesuffix("_supported"): bool(getattr(torch.cpu, name)())
                for name in dir(torch.cpu) if name.startswith("_is_") and name.endswith("_supported")}
    print("CPU:", ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in sorted(features.items())))
    print("--precision auto picks:", "bf16" if use_bf16("auto", torch.device("cpu")) else "fp32")
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(4, MAX_LABEL + 1, (BATCH,), generator=generator)
    batch = (torch.rand(BATCH, 3, HEIGHT, WIDTH, generator=generator),
             torch.randint(1, len(ALPHABET) + 1, (int(lengths.sum()),), generator=generator), lengths)
    for threads in args.threads:
        torch.set_num_threads(threads)
        trainers = {precision: _trainer(precision) for precision in PRECISIONS}
        times: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
        for round_ in range(args.rounds + 3):
            for precision, (model, optimiser, autocast) in trainers.items():
                started = time.perf_counter()
                training_step(model, optimiser, autocast, *batch)
                if round_ >= 3:  # the first rounds warm oneDNN's kernel caches
                    times[precision].append(time.perf_counter() - started)
        base = statistics.median(times["fp32"])
        print(f"\n{threads} thread(s), batch of {BATCH}, median of {args.rounds} steps:")
        for precision, measured in times.items():
            median = statistics.median(measured)
            print(f"  {precision} {median * 1000:6.0f} ms   x{median / base:.2f}")


if __name__ == "__main__":
    main()
