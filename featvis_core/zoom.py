"""The eternal zoom (seed 000): keep optimising a class logit while zooming into the image.

Every `every` steps the image itself (its linear image, before colour mixing) is magnified by `factor`
about its centre and written back, so the optimiser has to paint new detail into the border that was
just pushed out of view: the run becomes an endless dive through the class's world. This deliberately
does what the renderer never does (write a transform back into the image); it is its own small loop over
the renderer's building blocks (parameterisation, transforms, truncated forward, objectives) and leaves
`render` untouched. The frames after a warm-up make the video; its end is cross-faded into its start so
the browser's `loop` plays it without a seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import LUCID_AUGMENT
from .errors import FeatvisError
from .fastnet import fast_bfloat16, render_network
from .models import Classifier
from .objectives import Targets, unit_scores
from .param import make_param
from .render import image_seed, to_frames
from .transforms import augment, draws
from .truncate import capture
from .units import LOGITS, Kind, Unit


@dataclass(frozen=True)
class ZoomConfig:
    """An endless dive: `warmup` steps to form the image, then a zoom of `factor` every `every` steps
    for the remaining steps (one video frame per step)."""

    size: int = 128
    steps: int = 176
    warmup: int = 48
    every: int = 4
    factor: float = 1.04  # bicubic: bilinear resampling smears the centre after a few dozen zooms
    lr: float = 0.1  # twice Lucid's: new detail must form between zooms
    crossfade: int = 16  # frames of the end blended into the start
    seed: int = 0

    def __post_init__(self) -> None:
        if not (32 <= self.size <= 1024 and 1 <= self.every and 1.0 < self.factor <= 1.5):
            raise FeatvisError("zoom: size 32-1024 px, every >= 1 step, factor in (1, 1.5]")
        if not 0 <= self.warmup < self.steps or self.steps - self.warmup <= 2 * self.crossfade:
            raise FeatvisError("zoom: steps must exceed warmup + twice the crossfade")


def zoom_in(linear: torch.Tensor, factor: float) -> torch.Tensor:
    """Magnify (B, C, S, S) images by `factor` about their centres (bicubic, same size)."""
    theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]], device=linear.device, dtype=linear.dtype)
    grid = F.affine_grid(theta.expand(len(linear), 2, 3), list(linear.shape), align_corners=False)
    return F.grid_sample(linear, grid, mode="bicubic", padding_mode="border", align_corners=False)


def seamless(frames: torch.Tensor, crossfade: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T - crossfade, H, W, 3): the last `crossfade` frames blend into the first
    ones, which are dropped from the start, so playing it in a loop never jumps."""
    if crossfade <= 0:
        return frames
    body = frames[crossfade:].float()
    ramp = torch.linspace(0, 1, crossfade + 2)[1:-1].view(-1, 1, 1, 1)
    body[-crossfade:] = body[-crossfade:] * (1 - ramp) + frames[:crossfade].float() * ramp
    return body.round().clamp(0, 255).to(torch.uint8)


def eternal_zoom(model: Classifier, classes: Sequence[int], config: ZoomConfig = ZoomConfig(),
                 on_step: Callable[[int, int], None] | None = None) -> list[torch.Tensor]:
    """One looping dive per class, all optimised in one batch: a (T, S, S, 3) uint8 tensor each."""
    device = model.device
    units = [Unit(LOGITS, Kind.LOGIT, int(c)) for c in classes]
    targets = Targets.build(units, 1, device)
    generators = [torch.Generator().manual_seed(image_seed(config.seed, u, 0)) for u in units]
    param = make_param("fft", generators, config.size, device)
    aug = LUCID_AUGMENT.__class__(**{**LUCID_AUGMENT.__dict__, "output": model.input_size})
    uniforms = draws(generators, config.steps, 1, device)
    bf16 = fast_bfloat16(device)
    net = render_network(model, model.module, [], model.input_size, torch.bfloat16 if bf16 else torch.float32)
    optimizer = torch.optim.Adam(param.parameters(), lr=config.lr)
    frames: list[torch.Tensor] = []
    with capture(net, [], True, model.input_size) as run:
        for step in range(config.steps):
            images = param()
            inputs = model.normalise(augment(images, uniforms[step], aug)).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = run(inputs)[""]
            loss = -unit_scores(logits, targets).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step >= config.warmup:
                frames.append(to_frames(param().detach(), config.size))
                if (step - config.warmup) % config.every == config.every - 1:
                    with torch.no_grad():
                        param.set_linear(zoom_in(param.linear(), config.factor))
            if on_step:
                on_step(step + 1, config.steps)
    movie = torch.stack(frames, dim=1).cpu()  # (B, T, S, S, 3)
    return [seamless(movie[i], config.crossfade) for i in range(len(units))]
