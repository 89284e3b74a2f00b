"""Vectorised objectives: one score per image of the batch, from one indexing pass.

Image *i* serves unit *i*, and units of different kinds may share a batch, so each score is computed
for every image with tensor indexing and the right one picked with `torch.where`: no Python loop over
images, no host synchronisation. Computing a channel mean for an image that wants a neuron is cheap next
to the network's forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from .units import Kind, Unit

_CODE = {Kind.CHANNEL: 0, Kind.NEGATIVE: 0, Kind.NEURON: 1, Kind.LAYER: 2, Kind.LOGIT: 3}


@dataclass(frozen=True)
class Targets:
    """Per-image description of what to maximise (all tensors of shape (B,), on the render device)."""

    code: torch.Tensor  # 0 channel mean, 1 neuron, 2 whole layer, 3 logit
    index: torch.Tensor  # channel or class (0 where unused)
    x: torch.Tensor  # neuron column, -1 for the centre
    y: torch.Tensor
    sign: torch.Tensor  # -1 for negative channels
    group: torch.Tensor  # which unit the image serves (images of one unit are pushed apart)

    @staticmethod
    def build(units: Sequence[Unit], copies: int = 1, device: torch.device | str = "cpu") -> "Targets":
        """Targets for `units`, each repeated `copies` times consecutively (diversity)."""
        rows = [
            (
                _CODE[u.kind],
                u.index or 0,
                -1 if u.x is None else u.x,
                -1 if u.y is None else u.y,
                -1.0 if u.kind is Kind.NEGATIVE else 1.0,
                i,
            )
            for i, u in enumerate(units)
            for _ in range(copies)
        ]
        columns = list(zip(*rows))
        as_long = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
        return Targets(
            as_long(columns[0]),
            as_long(columns[1]),
            as_long(columns[2]),
            as_long(columns[3]),
            torch.tensor(columns[4], dtype=torch.float32, device=device),
            as_long(columns[5]),
        )

    def __len__(self) -> int:
        return self.code.numel()


def unit_scores(activation: torch.Tensor, targets: Targets) -> torch.Tensor:
    """Score of each image for its own unit. `activation` is (B, C, H, W) or logits (B, K)."""
    activation = activation.float()
    rows = torch.arange(activation.shape[0], device=activation.device)
    if activation.ndim == 2:
        return activation[rows, targets.index]
    if activation.ndim != 4:
        raise ValueError(f"cannot score an activation of shape {tuple(activation.shape)}")
    _, _, height, width = activation.shape
    channel_mean = activation.mean(dim=(2, 3))[rows, targets.index]
    ys = torch.where(targets.y < 0, height // 2, targets.y.clamp(max=height - 1))
    xs = torch.where(targets.x < 0, width // 2, targets.x.clamp(max=width - 1))
    neuron = activation[rows, targets.index, ys, xs]
    layer = activation.mean(dim=(1, 2, 3))
    score = torch.where(targets.code == 1, neuron, torch.where(targets.code == 2, layer, channel_mean))
    return score * targets.sign


def diversity(features: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Per-image mean cosine similarity between its feature Gram matrix and those of the other images
    serving the same unit (Lucid's diversity term). Subtracting it pushes a unit's images apart in
    *style*, not in pixel position, which is why a Gram matrix and not the raw activation is compared."""
    batch = features.shape[0]
    flat = features.float().flatten(2)  # (B, C, HW)
    gram = torch.bmm(flat, flat.transpose(1, 2)).flatten(1)  # (B, C*C)
    gram = F.normalize(gram, dim=1, eps=1e-10)
    similarity = gram @ gram.T
    same = (group[:, None] == group[None, :]) & ~torch.eye(batch, dtype=torch.bool, device=group.device)
    others = same.sum(1).clamp(min=1)
    return (similarity * same).sum(1) / others
