"""Small random-weight models of every kind the renderer supports, as `package.module:factory` entry points
(`featvis render model_factories:vit ...` with tests/ on the path). Nothing is downloaded; each builds in
well under a second, so tests render them end to end."""

from __future__ import annotations

import torch
from torch import nn


def _seeded() -> None:
    torch.manual_seed(0)


def vit() -> nn.Module:
    """torchvision's VisionTransformer: 32 px, 8 px patches (a 4x4 token grid + class token), 2 blocks."""
    from torchvision.models import VisionTransformer

    _seeded()
    return _live_head(VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                        mlp_dim=64, num_classes=10))


def _live_head(model: nn.Module) -> nn.Module:
    """torchvision initialises a ViT's head to zeros (every logit 0 for every image, nothing to optimise);
    random weights instead, as a trained head would have."""
    nn.init.normal_(model.heads.head.weight, std=0.02)
    return model


def swin() -> nn.Module:
    """torchvision's SwinTransformer: 4 px patches, 2 stages, channels-last stage outputs."""
    from torchvision.models import SwinTransformer

    _seeded()
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=[4, 4],
                           num_classes=10)


def convnext() -> nn.Module:
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    _seeded()
    return ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)


def maxvit():
    """torchvision's MaxVit at 64 px (it accepts only the size it was built for)."""
    from torchvision.models.maxvit import MaxVit

    from featvis_core import Classifier

    _seeded()
    module = MaxVit(input_size=(64, 64), stem_channels=16, partition_size=2, block_channels=[16, 32],
                    block_layers=[1, 1], head_dim=8, stochastic_depth_prob=0.0, num_classes=10)
    return Classifier("maxvit-small", module, input_size=64, classes=[f"class {i}" for i in range(10)])


class GreyNet(nn.Module):
    """A 1-channel, 10-class CNN, any input size."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
        for layer in self.modules():  # He initialisation: random weights that respond to their input
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def grey() -> nn.Module:
    _seeded()
    return GreyNet()


class PlainNet(nn.Module):
    """A plain 3-channel 10-class nn.Module: no Classifier wrapper."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                  nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def plain() -> nn.Module:
    _seeded()
    return PlainNet()


def three_classes() -> nn.Module:
    """Fewer than five classes (explain's top-k)."""
    _seeded()
    return PlainNet(3)


def zero_classes() -> nn.Module:
    """Not a classifier: no outputs at all."""
    _seeded()
    return PlainNet(0)


def four_band():
    """A 4-channel (multispectral) model with its own normalisation."""
    from featvis_core import Classifier

    _seeded()
    module = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(8, 5))
    return Classifier("four-band", module, mean=(0.5,) * 4, std=(0.25,) * 4, input_size=32,
                      classes=["water", "forest", "field", "town", "cloud"])


# The shell table of issue 20 (random weights, torchvision constructors without weights: no download).
def vit_b_16() -> nn.Module:
    from torchvision.models import vit_b_16 as build

    _seeded()
    return _live_head(build())


def swin_t() -> nn.Module:
    from torchvision.models import swin_t as build

    _seeded()
    return build()


def resnet18() -> nn.Module:
    from torchvision.models import resnet18 as build

    _seeded()
    return build()


def convnext_tiny() -> nn.Module:
    from torchvision.models import convnext_tiny as build

    _seeded()
    return build()


def mobilenet_v3_small() -> nn.Module:
    from torchvision.models import mobilenet_v3_small as build

    _seeded()
    return build()
