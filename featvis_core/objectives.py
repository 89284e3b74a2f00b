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

from .probe import Layout
from .units import KINDS, Kind, Unit

_CODE = {kind: code for code, kind in enumerate(KINDS)}


@dataclass(frozen=True)
class Targets:
    """Per-image description of what to maximise (tensors of shape (B,) or (B, T), on the render device).
    Each kind's scorer (units.KINDS) reads the fields it needs."""

    code: torch.Tensor  # position of the image's kind in units.KINDS
    index: torch.Tensor  # channel or class (0 where unused)
    x: torch.Tensor  # neuron column, -1 for the centre
    y: torch.Tensor
    group: torch.Tensor  # which unit the image serves (images of one unit are pushed apart)
    term_index: torch.Tensor  # (B, T) a direction's channels (0 where unused)
    term_weight: torch.Tensor  # (B, T) and their weights (0 where unused)
    kinds: tuple[Kind, ...]  # the kinds present, in KINDS order (known without a device round trip)
    layout: Layout = Layout()  # how the target layer holds its channels (probe.py)

    @staticmethod
    def build(units: Sequence[Unit], copies: int = 1, device: torch.device | str = "cpu",
              layout: Layout = Layout()) -> "Targets":
        """Targets for `units`, each repeated `copies` times consecutively (diversity)."""
        rows = [(u, i) for i, u in enumerate(units) for _ in range(copies)]
        longs = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
        width = max([len(u.terms) for u, _ in rows] + [1])
        terms = [list(u.terms) + [(0, 0.0)] * (width - len(u.terms)) for u, _ in rows]
        return Targets(
            longs([_CODE[u.kind] for u, _ in rows]),
            longs([u.index or 0 for u, _ in rows]),
            longs([-1 if u.x is None else u.x for u, _ in rows]),
            longs([-1 if u.y is None else u.y for u, _ in rows]),
            longs([i for _, i in rows]),
            longs([[c for c, _ in row] for row in terms]),
            torch.tensor([[w for _, w in row] for row in terms], dtype=torch.float32, device=device),
            tuple(kind for kind in KINDS if any(u.kind is kind for u in units)),
            layout,
        )

    def __len__(self) -> int:
        return self.code.numel()


def unit_scores(activation: torch.Tensor, targets: Targets, layout: Layout | None = None) -> torch.Tensor:
    """Score of each image for its own unit. `activation` is a layer's output in its `layout` (the
    targets' when None) or logits (B, K). Each kind present is scored for the whole batch and picked per
    image: one pass, no loop over images."""
    activation = activation.float()
    layout = layout or targets.layout
    score = None
    for kind in targets.kinds:
        reads = KINDS[kind].reads
        given = activation if reads == "logits" else layout.token(activation) if reads == "token" \
            else layout.as_map(activation)
        scored = KINDS[kind].score(given, targets)
        score = scored if score is None else torch.where(targets.code == _CODE[kind], scored, score)
    if score is None:
        raise ValueError("no targets to score")
    return score


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
