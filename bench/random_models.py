"""Model factories with random weights, for benchmarks of speed (never of quality): torchvision builds them
without downloading anything. Use as `featvis render bench.random_models:vit_b_16 ...` from the repository
root."""

from __future__ import annotations

import torch
from torch import nn


def vit_b_16() -> nn.Module:
    from torchvision.models import vit_b_16 as build

    torch.manual_seed(0)
    return build()


def swin_t() -> nn.Module:
    from torchvision.models import swin_t as build

    torch.manual_seed(0)
    return build()
