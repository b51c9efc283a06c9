"""How well can anything tell two lookalike glyphs apart, at their drawn size and at the model's scale?

Run from the repository root (needs the ocr-train extra):

    .venv/bin/python docs/research/ocr/lookalike_scale.py [--chars Il] [--train 60000] [--test 10000] [--epochs 5]

The captcha package draws every character on its own (``ImageCaptcha._draw_character``): a random
one of the generator's fonts and sizes, cropped to its ink, turned, warped and stretched into the
character's box. This script draws single glyphs of the given characters with that very code and
the generator's seeded randomness, and trains the same small CNN to tell them apart twice:

- at the size the package draws them (an upper bound on what any reader of the image can do, since
  everything after the drawing only loses detail);
- resized as the whole pipeline resizes them before the OCR model sees them: the image is 50, 60 or
  70 pixels high and about 30 pixels wide per character, and ``to_input`` stretches it to 32 x 192.

The gap between the two is detail that the model's 32-row input throws away. It is not a test.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn
from tqdm import tqdm

from cracker.ocr_training.generators import _image_captcha, _SeededSecrets
from cracker.ocr_training.train import HEIGHT, WIDTH

Resize = Callable[[Image.Image, random.Random], Image.Image]


def as_drawn(glyph: Image.Image, rng: random.Random) -> Image.Image:
    return glyph


def at_model_scale(glyph: Image.Image, rng: random.Random) -> Image.Image:
    """The glyph scaled as draw_captcha's image is, then to_input's 32 x 192 (ignoring the noise)."""
    height, length = rng.choice((50, 60, 70)), rng.randint(4, 8)
    width = 10 * round(rng.uniform(24, 36) * length / 10) + 20
    size = (max(1, round(glyph.width * WIDTH / width)), max(1, round(glyph.height * HEIGHT / height)))
    return glyph.resize(size, Image.Resampling.BILINEAR)


def draw_glyphs(
    chars: str, count: int, seed: int, resize: Resize, shape: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` glyphs of random ones of ``chars``: their ink (alpha) at the top left of a fixed canvas."""
    from captcha import image as captcha_image

    rng = random.Random(seed)
    setattr(captcha_image, "secrets", _SeededSecrets(rng))  # noqa: B010  (as draw_captcha does)
    generator = _image_captcha(200, 60)
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    pixels = np.zeros((count, *shape), np.uint8)
    labels = np.zeros(count, np.int64)
    for index in tqdm(range(count), desc=f"drawing {resize.__name__}", unit="glyph", mininterval=5):
        labels[index] = rng.randrange(len(chars))
        glyph = generator._draw_character(chars[labels[index]], draw, (0, 0, 0, 255))  # type: ignore[attr-defined]
        ink = np.asarray(resize(glyph.getchannel("A"), rng))[: shape[0], : shape[1]]
        pixels[index, : ink.shape[0], : ink.shape[1]] = ink
    return torch.from_numpy(pixels).float().div(255).unsqueeze(1), torch.from_numpy(labels)


def classifier(classes: int, shape: tuple[int, int]) -> nn.Module:
    layers: list[nn.Module] = []
    for channels_in, channels_out in ((1, 32), (32, 64), (64, 96)):
        layers += [nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.BatchNorm2d(channels_out), nn.ReLU(),
                   nn.MaxPool2d(2)]
    flat = 96 * (shape[0] // 8) * (shape[1] // 8)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(256, classes))


def accuracy_after_training(chars: str, resize: Resize, shape: tuple[int, int], args: argparse.Namespace) -> float:
    torch.manual_seed(0)
    train_x, train_y = draw_glyphs(chars, args.train, 1, resize, shape)
    test_x, test_y = draw_glyphs(chars, args.test, 2, resize, shape)
    net = classifier(len(chars), shape)
    steps = args.epochs * (len(train_x) // 128)
    optimiser = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, 2e-3, total_steps=steps)
    accuracy = 0.0
    with tqdm(total=steps, desc=f"training {resize.__name__}", unit="step", mininterval=10) as progress:
        for epoch in range(args.epochs):
            net.train()
            order = torch.randperm(len(train_x))
            for start in range(0, len(train_x) - 127, 128):
                batch = order[start:start + 128]
                loss = nn.functional.cross_entropy(net(train_x[batch]), train_y[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                progress.update()
            net.eval()
            with torch.no_grad():
                predicted = torch.cat([net(test_x[i:i + 1000]).argmax(-1) for i in range(0, len(test_x), 1000)])
            accuracy = float((predicted == test_y).float().mean())
            progress.write(f"{resize.__name__} epoch {epoch + 1}: {accuracy:.2%} of {len(test_x)} fresh glyphs")
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", default="Il", help="the lookalikes to tell apart")
    parser.add_argument("--train", type=int, default=60000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    drawn = accuracy_after_training(args.chars, as_drawn, (80, 64), args)
    scaled = accuracy_after_training(args.chars, at_model_scale, (32, 48), args)
    print(f"\n{args.chars!r}, {args.train} training and {args.test} fresh glyphs, {args.epochs} epochs")
    print(f"  as drawn:       {drawn:.2%}")
    print(f"  at model scale: {scaled:.2%}")
    print(f"  chance:         {1 / len(args.chars):.2%}")


if __name__ == "__main__":
    main()
