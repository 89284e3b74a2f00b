"""Explain one real image (seed 004): what the model predicts, where it looks, which channels fire.

* top-5 predictions (softmax probabilities);
* saliency for the top class: the vanilla gradient |d score / d pixel| (max over colour, Simonyan et al.
  as in the seed) and SmoothGrad (the same averaged over noisy copies, much less speckled), both from
  Captum, the PyTorch attribution library, rather than hand-written;
* the activation maps of the most active channels of one layer (by channel mean, the renderer's
  objective), so each can be matched with that channel's feature visualization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from .fastnet import fast_bfloat16, render_network
from .examples import CropSpec, to_tensor, view_image
from .models import Classifier
from .truncate import capture


@dataclass
class Explanation:
    """Everything `explain` found about one image. Tensors are on the CPU."""

    view: torch.Tensor  # (3, S, S) in [0, 1]: what the model saw
    top5: list[tuple[int, str, float]]  # (class, name, probability): the top five, or every class of a smaller model
    saliency: torch.Tensor  # (S, S) in [0, 1], vanilla gradient
    smoothgrad: torch.Tensor  # (S, S) in [0, 1]
    layer: str
    channels: list[tuple[int, float]]  # (channel, mean activation), most active first
    maps: torch.Tensor  # (N, h, w) activation maps of those channels, in [0, 1] (shared scale)


def model_view(model: Classifier, image: Image.Image, ident: str = "") -> torch.Tensor:
    """The centred square of the image at the model's input size (view 0 of the example pass)."""
    return to_tensor(view_image(image, ident, 0, CropSpec(), model.input_size))


def _normalised_map(grads: torch.Tensor) -> torch.Tensor:
    """|gradient| max over colour, scaled to [0, 1] by its 99.5th percentile (one hot pixel does not
    flatten the rest)."""
    heat = grads.abs().amax(dim=0)
    top = torch.quantile(heat.flatten().float(), 0.995).clamp(min=1e-12)
    return (heat / top).clamp(0, 1)


def saliency_maps(model: Classifier, view: torch.Tensor, target: int, samples: int = 8,
                  noise: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """Vanilla gradient and SmoothGrad saliency (Captum) of class `target` for one (3, S, S) view."""
    from captum.attr import NoiseTunnel, Saliency

    device = model.device
    bf16 = fast_bfloat16(device)
    net = render_network(model, model.module, [], model.input_size, torch.bfloat16 if bf16 else torch.float32)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return net(model.normalise(model.from_rgb(x)).contiguous(memory_format=torch.channels_last)).float()

    x = view.unsqueeze(0).to(device).requires_grad_(True)
    saliency = Saliency(forward)
    vanilla = saliency.attribute(x, target=target, abs=True)[0].detach().cpu()
    tunnel = NoiseTunnel(saliency)
    smooth = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=8,
                              stdevs=noise, target=target, abs=True)[0].detach().cpu()
    return _normalised_map(vanilla), _normalised_map(smooth)


@torch.no_grad()
def predictions(model: Classifier, views: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """Top-k (class, name, probability) for each view of a (B, 3, S, S) batch (k at most the class count)."""
    logits = model.module(model.normalise(model.from_rgb(views.to(model.device)))).float()
    probs = logits.softmax(dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[(int(i), str(model.classes[int(i)]), float(v)) for v, i in zip(vs, ix)] for vs, ix in zip(values, indices)]


@torch.no_grad()
def activation_maps(model: Classifier, view: torch.Tensor, layer: str, count: int = 8,
                    among: Sequence[int] | None = None) -> tuple[list[tuple[int, float]], torch.Tensor]:
    """The `count` channels of `layer` with the highest mean activation on the view (only channels in
    `among`, when given) and their activation maps, scaled together to [0, 1]."""
    module = model.resolve_layer(layer)
    layout = model.layer(layer).layout
    with capture(model.module, [module], logits=False, probe_size=model.input_size, channels=model.channels) as run:
        output = run(model.normalise(model.from_rgb(view.unsqueeze(0).to(model.device))))[module]
        activation = layout.as_map(output)[0].float().cpu()
    means = activation.mean(dim=(1, 2))
    candidates = torch.tensor(sorted(set(among)), dtype=torch.long) if among is not None else torch.arange(len(means))
    candidates = candidates[candidates < len(means)]
    order = candidates[means[candidates].argsort(descending=True)][:count]
    maps = activation[order].clamp(min=0)
    maps = maps / maps.amax().clamp(min=1e-12)
    return [(int(c), float(means[c])) for c in order], maps


def explain(model: Classifier, image: Image.Image, layer: str, channels: int = 8,
            among: Sequence[int] | None = None, samples: int = 8) -> Explanation:
    """Predictions, saliency of the top class and the most active channels of `layer` for one image."""
    view = model_view(model, image)
    top5 = predictions(model, view.unsqueeze(0))[0]
    vanilla, smooth = saliency_maps(model, view, top5[0][0], samples)
    chosen, maps = activation_maps(model, view, layer, channels, among)
    return Explanation(view, top5, vanilla, smooth, layer, chosen, maps)


def heat_overlay(view: torch.Tensor, heat: torch.Tensor, alpha: float = 0.75) -> torch.Tensor:
    """A (3, S, S) picture: the view in dim grey with `heat` (any size, [0, 1]) in warm colours on top,
    so where the model looks shows against what it saw."""
    size = view.shape[-2:]
    heat = F.interpolate(heat[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)
    grey = view.mean(0, keepdim=True).expand(3, -1, -1) * 0.6
    warm = torch.stack([heat.sqrt(), heat ** 1.5, 0.2 * heat ** 4])  # black -> red -> yellow
    weight = alpha * heat.sqrt()[None]
    return (grey * (1 - weight) + warm * weight).clamp(0, 1)
