"""The recognition network: a small CNN over the image, a bidirectional GRU over columns, CTC output."""

from __future__ import annotations

import torch
from torch import nn


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class CrnnLite(nn.Module):
    """Input (N, 3, 32, W); output (N, W / 4, classes + 1) log-probabilities, blank at index 0.

    Height is pooled away, width only by 4: at the shipped W = 192, 48 time steps leave room for
    CTC's blanks between repeated characters of an 8-character answer. Nothing depends on W, so
    weights trained at one width fine-tune at another.
    """

    def __init__(self, classes: int, height: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, 16), nn.MaxPool2d(2),
            _block(16, 32), nn.MaxPool2d(2),
            _block(32, 64), _block(64, 64), nn.MaxPool2d((2, 1)),
            _block(64, 128), nn.MaxPool2d((2, 1)),
        )
        self.project = nn.Linear(128 * (height // 16), 128)
        self.rnn = nn.GRU(128, 96, bidirectional=True, batch_first=True)
        self.head = nn.Linear(192, classes + 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(images)  # (N, C, H', T)
        columns = maps.permute(0, 3, 1, 2).flatten(2)  # (N, T, C * H')
        sequence, _ = self.rnn(torch.relu(self.project(columns)))
        return torch.log_softmax(self.head(sequence), dim=-1)
