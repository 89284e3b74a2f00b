"""First-layer filters drawn as RGB tiles (seed 004's cheapest view of what a network sees)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def filter_grid(weights: torch.Tensor, tile: int = 24, gap: int = 2, columns: int | None = None) -> torch.Tensor:
    """(out, 3, k, k) conv weights -> one (3, H, W) image in [0, 1]: each filter rescaled around grey by
    the largest absolute weight of the layer (so filters compare with each other), upsampled to `tile`
    px with nearest neighbours (so the pixels of a 3x3 or 7x7 kernel stay visible)."""
    count = weights.shape[0]
    columns = columns or int(count ** 0.5 + 0.999)
    rows = (count + columns - 1) // columns
    scale = weights.abs().max().clamp(min=1e-8)
    tiles = F.interpolate(0.5 + 0.5 * weights / scale, size=(tile, tile), mode="nearest").clamp(0, 1)
    grid = torch.ones(3, rows * (tile + gap) + gap, columns * (tile + gap) + gap)
    for i in range(count):
        y, x = gap + (i // columns) * (tile + gap), gap + (i % columns) * (tile + gap)
        grid[:, y:y + tile, x:x + tile] = tiles[i]
    return grid
