"""Regularisers as small factories: each takes its weight and returns `images -> (B,) penalty`.

A render config turns into the list of penalties it asks for (`penalties`), so a new regulariser is one
function here and one line in that list. Every penalty is per image: image *i*'s penalty never depends on
its batch mates, which keeps batched renders equal to one-by-one renders.
"""

from __future__ import annotations

from typing import Callable

import torch

from .config import RenderConfig

Penalty = Callable[[torch.Tensor], torch.Tensor]


def l1(weight: float, centre: float = 0.5) -> Penalty:
    """weight * sum |x - centre| (seed 003: a pull toward a constant keeps the background quiet)."""
    return lambda images: weight * (images - centre).abs().sum(dim=(1, 2, 3))


def l2(weight: float) -> Penalty:
    """weight * sum (x - 0.5)^2 (seed 000: keeps pixel images from saturating)."""
    return lambda images: weight * (images - 0.5).square().sum(dim=(1, 2, 3))


def total_variation(weight: float) -> Penalty:
    """weight * anisotropic total variation (seed 002: penalises high frequencies)."""

    def penalty(images: torch.Tensor) -> torch.Tensor:
        dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().sum(dim=(1, 2, 3))
        dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().sum(dim=(1, 2, 3))
        return weight * (dx + dy)

    return penalty


def penalties(config: RenderConfig) -> list[Penalty]:
    """The penalties a config asks for (a zero weight switches one off)."""
    chosen = [(config.l1, lambda: l1(config.l1, config.l1_centre)), (config.l2, lambda: l2(config.l2)),
              (config.tv, lambda: total_variation(config.tv))]
    return [make() for weight, make in chosen if weight]


def total(chosen: list[Penalty], images: torch.Tensor) -> torch.Tensor:
    """Sum of the chosen penalties per image (zeros when there are none)."""
    penalty = images.new_zeros(images.shape[0])
    for term in chosen:
        penalty = penalty + term(images)
    return penalty
