"""The methods the renderer benchmark compares: Lucent, seed 000's plain loop, and featvis presets.

Each method renders a list of units of one layer at a given image size and step count and returns a `Run`:
the final images and the wall-clock time. Peers are run the way their users run them: one unit per call,
on a plain (contiguous, fp32) copy of the model whose weights still require gradients, as a freshly loaded
torchvision/timm model does. featvis renders all units in one batched call.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from featvis_core import preset, render
from featvis_core.models import IMAGENET_MEAN, IMAGENET_STD, Classifier
from featvis_core.units import LOGITS, Unit


@dataclass
class Run:
    images: torch.Tensor  # (N, 3, H, W) in [0, 1]
    seconds: float  # wall clock for all units
    steps: int  # optimisation steps per unit
    step_seconds: list[float] = field(default_factory=list)  # duration of each optimiser step (one call)
    batch: int = 1  # images per optimiser step

    def unit_step_seconds(self) -> float:
        """Steady-state seconds per unit and step: median step time (skips warm-up) over the batch."""
        if len(self.step_seconds) > 4:
            return statistics.median(self.step_seconds[2:]) / self.batch
        return self.seconds / (self.steps * len(self.images))


# -- Lucent ---------------------------------------------------------------------------------------------
class LucentInput(nn.Module):
    """Lets Lucent drive the embedded model correctly.

    Lucent always appends ImageNet normalisation, (x - mean) / std, but efficientnet_lite0 wants
    (x - 0.5) / 0.5. This module undoes the first and applies the second before calling the network. The
    network's children are registered at the top level (the network itself is not a submodule), so
    Lucent's layer names stay the network's own: `_blocks_10`, `_fc`."""

    def __init__(self, net: nn.Module, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        super().__init__()
        object.__setattr__(self, "net", net)
        for name, child in net.named_children():
            self.add_module(name, child)
        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x * self.imagenet_std + self.imagenet_mean
        return self.net((images - self.mean) / self.std)


def plain_network(model: Classifier) -> nn.Module:
    """The model as a peer's user has it: fp32, contiguous, eval mode, weights requiring gradients."""
    net = copy.deepcopy(model.module).to(memory_format=torch.contiguous_format)
    return net.eval().requires_grad_(True)


def lucent_name(model: Classifier, unit: Unit) -> str:
    """Lucent's objective string: module path with '.' -> '_' (`_blocks_10:3`; logits are `_fc:K`)."""
    path = "_fc" if unit.layer == LOGITS else model.resolve_layer(unit.layer)
    return f"{path.replace('.', '_')}:{unit.index}"


def import_lucent():
    """Lucent's render module. Its `show` helper imports IPython.display at import time; when IPython
    is installed without its dependencies (PITFALLS.md's --no-deps install) a stub stands in for it while
    Lucent is imported, and is taken out again so other libraries (matplotlib) never meet it."""
    import sys
    import types

    stubbed = []
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        stub = types.ModuleType("IPython")
        stub.display = types.ModuleType("IPython.display")
        sys.modules["IPython"], sys.modules["IPython.display"] = stub, stub.display
        stubbed = ["IPython", "IPython.display"]
    try:
        from lucent.optvis import render as lucent_render
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
    return lucent_render


def run_lucent(model: Classifier, units: list[Unit], size: int, steps: int, seed: int = 0) -> Run:
    """Lucent's `render_vis` with its defaults (fft + decorrelation, Adam 0.05, standard transforms,
    upsampling to 224), one call per unit, as its README shows."""
    lucent_render = import_lucent()
    from lucent.optvis import objectives, param

    wrapped = LucentInput(plain_network(model), model.mean, model.std)
    images, ticks = [], []
    began = time.perf_counter()
    for i, unit in enumerate(units):
        torch.manual_seed(seed + i)
        objective = objectives.as_objective(lucent_name(model, unit))
        timed = objectives.Objective(lambda hook, objective=objective: (ticks.append(time.perf_counter()), objective(hook))[1])
        [final] = lucent_render.render_vis(wrapped, timed, param_f=lambda: param.image(size), thresholds=(steps,),
                                           show_image=False, progress=False)
        images.append(torch.from_numpy(final).permute(0, 3, 1, 2))
    seconds = time.perf_counter() - began
    step_seconds = [b - a for a, b in zip(ticks, ticks[1:]) if b > a]
    return Run(torch.cat(images), seconds, steps, step_seconds)


# -- seed 000's plain loop --------------------------------------------------------------------------------
def seed000_image(net: nn.Module, score: Callable[[torch.Tensor], torch.Tensor], size: int, steps: int,
                  model_input: int, seed: int, ticks: list[float]) -> torch.Tensor:
    """Seed 000's loop, written plainly: grey-noise pixels, SGD lr 1.5, colour jitter + random affine on
    the model input, L2 toward grey (0.05), a 5x5 Gaussian blur written into the image every 10 steps.
    One change for a fair comparison: the image is upsampled to `model_input` px before the model, as
    Lucent does, so every method's model sees the same input size."""
    from torchvision import transforms as T

    torch.manual_seed(seed)
    image = ((torch.rand(1, 3, size, size) - 0.5) * 0.01 + 0.5).requires_grad_(True)
    optimizer = torch.optim.SGD([image], lr=1.5)
    transforms = T.Compose([
        T.ColorJitter(brightness=(0.98, 1.02), contrast=(0.99, 1.01), saturation=(0.98, 1.02), hue=(-0.01, 0.01)),
        T.RandomAffine(degrees=(-15.0, 15.0), scale=(0.96, 1.04), fill=0.5),
    ])
    blur = T.GaussianBlur(5, 1.5)
    for i in range(steps):
        ticks.append(time.perf_counter())
        optimizer.zero_grad()
        x = transforms(image)
        if x.shape[-1] != model_input:
            x = F.interpolate(x, size=(model_input, model_input), mode="bilinear", align_corners=False)
        loss = -score(net(x)) + 0.05 * ((image - 0.5) ** 2).sum()
        loss.backward()
        optimizer.step()
        if i % 10 == 0:
            with torch.no_grad():
                image.copy_(blur(image))
    return image.detach().clamp(0, 1)


def run_seed000(model: Classifier, units: list[Unit], size: int, steps: int, seed: int = 0) -> Run:
    """Seed 000's loop, one unit at a time, on the full network (as the seed runs it)."""
    net = plain_network(model)
    captured: dict[str, torch.Tensor] = {}
    layer = units[0].layer
    handle = None
    if layer != LOGITS:
        module = dict(net.named_modules())[model.resolve_layer(layer)]
        handle = module.register_forward_hook(lambda _m, _i, out: captured.__setitem__("a", out))
    normalised = nn.Sequential(_Normalise(model.mean, model.std), net)
    images, ticks = [], []
    began = time.perf_counter()
    try:
        for i, unit in enumerate(units):
            if layer == LOGITS:
                score = lambda out, k=unit.index: out[:, k].mean()  # noqa: E731
            else:
                score = lambda _out, c=unit.index: captured["a"][:, c].mean()  # noqa: E731
            ticks.append(time.perf_counter())
            images.append(seed000_image(normalised, score, size, steps, model.input_size, seed + i, ticks))
    finally:
        if handle:
            handle.remove()
    seconds = time.perf_counter() - began
    return Run(torch.cat(images), seconds, steps, [b - a for a, b in zip(ticks, ticks[1:]) if b > a])


class _Normalise(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


# -- featvis ----------------------------------------------------------------------------------------------
def run_featvis(model: Classifier, units: list[Unit], name: str, size: int | None, steps: int | None,
                **overrides) -> Run:
    """A featvis preset rendering every unit in one batch. `size`/`steps` None keep the preset's own."""
    if size is not None:
        overrides["size"] = size
    if steps is not None:
        overrides["steps"] = steps
    config = preset(name, **overrides)
    ticks: list[float] = []
    began = time.perf_counter()
    results = render(model, units, config, on_step=lambda *_: ticks.append(time.perf_counter()))
    seconds = time.perf_counter() - began
    images = torch.stack([r.image for r in results])
    return Run(images, seconds, results[0].steps, [b - a for a, b in zip(ticks, ticks[1:])], batch=len(units))
