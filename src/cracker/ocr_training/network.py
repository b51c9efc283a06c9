"""The recognition network: a small CNN over the image, a bidirectional GRU over columns, CTC output.

The network's widths (and its input's detail) are a :class:`Size`. A checkpoint records its size in
its tensors' shapes (:func:`size_of`), and :func:`grow` turns a trained checkpoint into a wider one,
or one that takes finer input, that computes the same function: the new units start with zero
weight into everything the old ones feed, and finer input starts out averaged back to the old
grid, so training resumes from the trained model's accuracy instead of from scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True, slots=True)
class Size:
    #: Output channels of the last convolution block.
    channels: int = 192
    #: Width of the projection from each column of feature maps to the recurrent layer.
    project: int = 192
    #: Hidden units of the GRU in each direction.
    hidden: int = 144
    #: Input pixels per side of each pixel of the network's 32-row grid. At 2 the input is 64 rows
    #: and each 2x2 patch is folded into channels of that grid (a pixel unshuffle), so only the
    #: first convolution grows. Why: the grid is what the network computes on, but 32 rows lose
    #: what tells some lookalikes apart. In the captcha package's faces, ``I`` and ``l`` are both
    #: bars stretched into boxes whose widths differ by a pixel or two; a classifier of single
    #: glyphs tells them apart far more often at the glyphs' drawn size than at the scale the 32-row
    #: input leaves them (docs/research/ocr/lookalike_scale.py; the figures: docs/research/ocr.md).
    detail: int = 1


#: The size of the models shipped before the current, wider one: what ``grow`` started from.
SMALL = Size(channels=128, project=128, hidden=96)
DEFAULT_SIZE = Size()


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


#: Index of the last convolution block in ``CrnnLite.features`` (its keys start ``features.7.``).
_LAST_BLOCK = 7


class CrnnLite(nn.Module):
    """Input (N, 3, 32 d, W d) for ``size.detail`` d; output (N, W / 4, classes + 1) log-probabilities,
    blank at index 0.

    Height is pooled away, width only by 4: at the shipped W = 192, 48 time steps leave room for
    CTC's blanks between repeated characters of an 8-character answer. Nothing depends on W, so
    weights trained at one width fine-tune at another.
    """

    def __init__(self, classes: int, height: int = 32, size: Size = DEFAULT_SIZE) -> None:
        super().__init__()
        #: Input pixels per grid pixel along each side (see :attr:`Size.detail`).
        self.detail = size.detail
        # No parameters, so the keys of every checkpoint stay the same whatever the detail.
        self.unshuffle = nn.PixelUnshuffle(size.detail) if size.detail > 1 else nn.Identity()
        self.features = nn.Sequential(
            _block(3 * size.detail**2, 16), nn.MaxPool2d(2),
            _block(16, 32), nn.MaxPool2d(2),
            _block(32, 64), _block(64, 64), nn.MaxPool2d((2, 1)),
            _block(64, size.channels), nn.MaxPool2d((2, 1)),
        )
        self.project = nn.Linear(size.channels * (height // 16), size.project)
        self.rnn = nn.GRU(size.project, size.hidden, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * size.hidden, classes + 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.features(self.unshuffle(images))  # (N, C, H', T)
        columns = maps.permute(0, 3, 1, 2).flatten(2)  # (N, T, C * H')
        sequence, _ = self.rnn(torch.relu(self.project(columns)))
        return torch.log_softmax(self.head(sequence), dim=-1)


def size_of(state: StateDict) -> Size:
    """The size of the network a checkpoint was saved from."""
    return Size(
        channels=int(state[f"features.{_LAST_BLOCK}.0.weight"].shape[0]),
        project=int(state["project.weight"].shape[0]),
        hidden=int(state["rnn.weight_hh_l0"].shape[1]),
        detail=round(math.sqrt(state["features.0.0.weight"].shape[1] / 3)),
    )


def load(state: StateDict, classes: int, height: int, size: Size | None = None) -> CrnnLite:
    """A network holding ``state``, grown to ``size`` first when that is larger than the checkpoint."""
    have = size_of(state)
    model = CrnnLite(classes, height, size or have)
    if size is not None and size != have:
        state = grow(state, model.state_dict(), have)
    model.load_state_dict(state)
    return model


def grow(old: StateDict, fresh: StateDict, have: Size) -> StateDict:
    """``old`` (of size ``have``) written into ``fresh`` (a larger network's initial weights).

    Old units keep their weights. New units keep their fresh random weights into themselves, but
    every weight from a new unit into an old one (and into the output) is zero, so the grown network
    computes exactly what the old one did until training moves those weights. Finer input (a
    ``detail`` of d where the old network had 1) starts with the first convolution's weights spread
    evenly over each d x d patch: the grown network computes what the old one did on the image
    averaged over those patches.
    """
    grown = {key: value.clone() for key, value in fresh.items()}
    want = size_of(fresh)
    if want.channels < have.channels or want.project < have.project or want.hidden < have.hidden:
        raise ValueError(f"cannot shrink a {have} network to {want}")
    if want.detail != have.detail and have.detail != 1:
        raise ValueError(f"can only grow the detail of a network that has none, not {have} to {want}")
    for key, value in old.items():
        if not key.startswith("features."):
            continue
        if key == "features.0.0.weight" and want.detail != have.detail:
            # The pixel unshuffle puts sub-pixel k of input channel c at channel c * d * d + k.
            grown[key] = value.repeat_interleave(want.detail**2, dim=1) / want.detail**2
        elif key.startswith(f"features.{_LAST_BLOCK}.") and value.dim() > 0:
            # Last block: the old output channels come first; the new ones stay freshly initialised.
            grown[key][: value.shape[0]] = value
        else:  # the blocks before it, unchanged (and BatchNorm's scalar num_batches_tracked)
            grown[key] = value.clone()
    # Projection: its input is (channel, row) flattened channel-major, so the old channels' columns
    # are the first ``have.channels * rows`` ones; columns of new channels are zero.
    rows = old["project.weight"].shape[1] // have.channels
    weight = grown["project.weight"]
    weight[:, have.channels * rows:] = 0
    weight[: have.project, : have.channels * rows] = old["project.weight"]
    grown["project.bias"][: have.project] = old["project.bias"]
    # GRU: each weight stacks the reset, update and new gates, ``hidden`` rows each.
    for suffix in ("", "_reverse"):
        for kind, old_columns in (("ih", have.project), ("hh", have.hidden)):
            key = f"rnn.weight_{kind}_l0{suffix}"
            weight = grown[key]
            for gate in range(3):
                new_rows = slice(gate * want.hidden, gate * want.hidden + have.hidden)
                old_rows = slice(gate * have.hidden, (gate + 1) * have.hidden)
                weight[new_rows] = 0
                weight[new_rows, :old_columns] = old[key][old_rows]
            bias = grown[f"rnn.bias_{kind}_l0{suffix}"]
            for gate in range(3):
                bias[gate * want.hidden: gate * want.hidden + have.hidden] = \
                    old[f"rnn.bias_{kind}_l0{suffix}"][gate * have.hidden:(gate + 1) * have.hidden]
    # Head: its input is [forward hidden | backward hidden]; new hidden units' columns are zero.
    head = grown["head.weight"]
    head.zero_()
    head[:, : have.hidden] = old["head.weight"][:, : have.hidden]
    head[:, want.hidden: want.hidden + have.hidden] = old["head.weight"][:, have.hidden:]
    grown["head.bias"] = old["head.bias"].clone()
    return grown
