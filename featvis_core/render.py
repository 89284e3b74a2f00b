"""The batched renderer: one optimisation loop for a whole batch of units.

Image *i* of the batch serves unit *i* (or one of its diversity copies). Everything per image is
independent: its own initial noise and augmentation draws (seeded from the unit, not the batch), its own
objective, its own regularisers, and the loss is a sum, so image *i*'s gradient does not depend on its
batch mates. A unit whose loss turns NaN or Inf is stopped alone and reported, the others go on.

Speed comes by construction: the forward stops at the target layer, runs on a copy of the network with
batch norm folded into the convolutions (fastnet.py), weights are frozen, inputs are channels_last, the
steps run in bf16 autocast where the hardware has fast bf16 (CUDA, or a CPU with AMX / AVX512-BF16), and
the loop never copies to the host (histories and frames stay on the device until the end).

Optionally (`RenderConfig.crop`), most steps show the model only a random window of its input view, at
the same magnification: a step costs the window's share of the pixels, features keep their scale, the
windows wander over the whole image, and the last steps see the whole view again so the composition and
the best-image choice are made on what the final image is judged on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import RenderConfig
from .errors import FeatvisError
from .fastnet import fast_bfloat16, render_network
from .hostmem import keep_freed_memory
from .models import Classifier
from .objectives import Targets, diversity, unit_scores
from .param import ImageParam, make_param
from .transforms import Augment, augment, draws, gaussian_blur
from .truncate import capture
from .units import LOGITS, Unit

StepCallback = Callable[[int, int], None]


@dataclass
class UnitRender:
    """What one unit's optimisation produced. Tensors are on the CPU."""

    unit: Unit
    image: torch.Tensor  # (3, H, W) in [0, 1]
    extra: list[torch.Tensor]  # further diversity images
    frames: torch.Tensor  # (T, A, A, 3) uint8 animation, ends on `image`
    history: list[float]  # the unit's activation at every step (on the augmented view)
    loss: list[float]
    start: float  # activation of the initial image, unaugmented
    final: float  # activation of the returned image, unaugmented
    best: float  # best activation seen during the run
    error: str | None = None
    seconds: float = 0.0
    steps: int = 0
    timings: dict = field(default_factory=dict)  # the batch's seconds: prepare (network copy, draws), steps, total


def image_seed(seed: int, unit: Unit, copy: int) -> int:
    """A stable per-image seed: the same unit renders the same image whatever batch it lands in."""
    digest = hashlib.sha256(f"{seed}|{unit.spec}|{copy}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "nadam": torch.optim.NAdam}
    return optimizers[name](params, lr=lr)


def regularisers(images: torch.Tensor, config: RenderConfig) -> torch.Tensor:
    """Per-image penalty: L1 toward a constant, L2 toward grey, anisotropic total variation."""
    penalty = images.new_zeros(images.shape[0])
    if config.l1:
        penalty = penalty + config.l1 * (images - config.l1_centre).abs().sum(dim=(1, 2, 3))
    if config.l2:
        penalty = penalty + config.l2 * (images - 0.5).square().sum(dim=(1, 2, 3))
    if config.tv:
        dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().sum(dim=(1, 2, 3))
        dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().sum(dim=(1, 2, 3))
        penalty = penalty + config.tv * (dx + dy)
    return penalty


def plateau_update(loss: torch.Tensor, reference: torch.Tensor, improved_at: torch.Tensor, step: int,
                   tolerance: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Early-stop bookkeeping per image: it improves when its loss beats its reference level by
    `tolerance` (relative). Losses on random augmented views are noisy, so counting any new best would
    keep every run alive by chance; a NaN loss never improves."""
    better = ~torch.isfinite(reference) | (loss < reference - tolerance * reference.abs())
    better = better & torch.isfinite(loss)
    return torch.where(better, loss, reference), torch.where(better, step, improved_at)


def to_frames(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, h, w) in [0, 1] -> (B, size, size, 3) uint8, resized so every frame has the final size."""
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def _model_input(model: Classifier, images: torch.Tensor) -> torch.Tensor:
    """`augment` already resampled to the model's input size; normalise, in the layout convs like."""
    return model.normalise(images).contiguous(memory_format=torch.channels_last)


def _mask_dead_gradients(param: ImageParam, alive: torch.Tensor) -> None:
    """Zero the gradients of stopped images (their NaNs must not reach the optimiser state)."""
    for p in param.parameters():
        if p.grad is not None:
            mask = alive.view(-1, *([1] * (p.grad.ndim - 1)))
            p.grad = torch.where(mask, p.grad, torch.zeros((), device=p.grad.device, dtype=p.grad.dtype))


def _check_units(model: Classifier, units: Sequence[Unit], config: RenderConfig) -> str:
    if not units:
        raise FeatvisError("nothing to render: no units given")
    layers = {u.layer for u in units}
    if len(layers) > 1:
        raise FeatvisError(f"one batch renders one target layer, got {', '.join(sorted(layers))}")
    if config.final_size < model.min_size:
        raise FeatvisError(f"image size {config.final_size} px is below {model.name}'s minimum of {model.min_size} px")
    return layers.pop()


def render(
    model: Classifier,
    units: Sequence[Unit],
    config: RenderConfig = RenderConfig(),
    *,
    device: torch.device | str | None = None,
    on_step: StepCallback | None = None,
) -> list[UnitRender]:
    """Render `units` (all of one layer, or all logits) in one batched optimisation."""
    entered = time.perf_counter()
    layer = _check_units(model, units, config)
    if device is not None and torch.device(device) != model.device:
        model.to(device)
    device = model.device
    if device.type == "cpu":
        keep_freed_memory()
    logits = layer == LOGITS
    target = None if logits else model.resolve_layer(layer)
    copies, views = config.diversity, config.augment.copies
    div_layer = (target or model.layers()[-1].module) if copies > 1 else None
    targets = Targets.build(units, copies, device)
    view_targets = Targets.build(units, copies * views, device) if views > 1 else targets
    generators = [torch.Generator().manual_seed(image_seed(config.seed, u, k)) for u in units for k in range(copies)]
    schedule = config.upscale
    steps, batch = schedule.steps, len(targets)
    uniforms = draws(generators, steps, views, device)
    param = make_param(config.param, generators, schedule.start, device, config.decay, config.decorrelate)
    anim = min(schedule.final, config.animation_size)
    anim += anim % 2  # H.264 wants even sides
    frame_at = {round(i * (steps - 1) / max(config.frames - 1, 1)) for i in range(config.frames - 1)}
    history = torch.zeros(steps, batch, device=device)
    losses = torch.zeros(steps, batch, device=device)
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    dead_at = torch.full((batch,), -1, dtype=torch.long, device=device)
    frames: list[torch.Tensor] = []
    bf16 = config.precision == "bf16" or (config.precision == "auto" and fast_bfloat16(device))
    net = render_network(model, model.module, [target, div_layer], model.input_size,
                         torch.bfloat16 if bf16 else torch.float32)
    shrinks = config.crop is not None and config.crop < config.augment.view_size(schedule.final)
    crop_until = round(config.crop_share * steps) if shrinks else 0
    cropped = dataclasses.replace(config.augment, crop=config.crop)
    centred = Augment(pad=config.augment.pad, jitter=0, scale=(1.0, 1.0), rotate=0.0, jitter_after=0,
                      fill=config.augment.fill, output=config.augment.output, zoom=config.augment.zoom)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    began = time.perf_counter()
    timings = {"prepare_s": began - entered}

    with capture(net, [target, div_layer], logits, model.input_size) as run:

        def scores_of(images: torch.Tensor) -> torch.Tensor:
            """Activation on the centred view: the training canvas (pad, output size), no randomness."""
            with torch.no_grad(), autocast:
                inputs = augment(images, uniforms[0][::views], centred)
                outputs = run(_model_input(model, inputs))
            return unit_scores(outputs[target or ""], targets)

        start = scores_of(param().detach())
        looping = time.perf_counter()
        step, last = 0, len(schedule.sizes) - 1
        best_loss = torch.full((batch,), math.inf, device=device)
        best_image: torch.Tensor | None = None
        for stage, size in enumerate(schedule.sizes):
            if stage:
                param = param.resized(size)
                if schedule.blur:
                    param.set_linear(gaussian_blur(param.linear(), schedule.blur, 5))
            optimizer = make_optimizer(config.optimizer, param.parameters(), config.lr)
            improved_at = torch.full((batch,), step, dtype=torch.long, device=device)
            plateau = torch.full((batch,), math.inf, device=device)
            for _ in range(schedule.every):
                images = param()
                aug = cropped if step < crop_until else config.augment
                inputs = augment(images, uniforms[step], aug)
                if config.input_blur:
                    inputs = gaussian_blur(inputs, config.input_blur * (1 - step / steps))
                with autocast:
                    outputs = run(_model_input(model, inputs))
                score = unit_scores(outputs[target or ""], view_targets)
                if views > 1:
                    score = score.view(batch, views).mean(1)
                loss = -score + regularisers(images, config)
                if div_layer:
                    loss = loss + config.diversity_weight * diversity(outputs[div_layer][::views], targets.group)
                finite = torch.isfinite(loss)
                dead_at = torch.where(alive & ~finite, step, dead_at)
                alive = alive & finite
                optimizer.zero_grad(set_to_none=True)
                torch.where(alive, loss, 0.0).sum().backward()
                _mask_dead_gradients(param, alive)
                optimizer.step()
                param.project()
                history[step], losses[step] = score.detach(), loss.detach()
                fine = stage == last and step >= crop_until  # losses comparable with the final view
                if config.early_stop and fine:
                    plateau, improved_at = plateau_update(loss.detach(), plateau, improved_at, step)
                if config.best and fine:
                    better = loss.detach() < best_loss
                    best_loss = torch.where(better, loss.detach(), best_loss)
                    keep = better.view(-1, 1, 1, 1)
                    best_image = images.detach() if best_image is None else torch.where(keep, images.detach(), best_image)
                if config.blur_every and (step + 1) % config.blur_every == 0:
                    param.set_linear(gaussian_blur(param.linear(), config.blur_sigma, 5))
                if step in frame_at:
                    frames.append(to_frames(images.detach(), anim))
                step += 1
                if on_step:
                    on_step(step, steps)
                if config.early_stop and fine and step % 16 == 0:
                    if int((step - improved_at).min()) > config.early_stop:
                        break
        timings["steps_s"] = time.perf_counter() - looping
        final_images = best_image if best_image is not None else param().detach()
        final_images = final_images.clamp(0, 1)
        final = scores_of(final_images)
    frames.append(to_frames(final_images, anim))
    results = _collect(units, copies, final_images, frames, history[:step], losses[:step], start, final, dead_at,
                       time.perf_counter() - began, step)
    timings["total_s"] = time.perf_counter() - entered
    for result in results:
        result.timings = timings
    return results


def _collect(units, copies, images, frames, history, losses, start, final, dead_at, seconds, steps) -> list[UnitRender]:
    """Split the batch's tensors into one `UnitRender` per unit (first copy carries the history)."""
    images, movie = images.float().cpu(), torch.stack(frames, dim=1).cpu()
    history, losses = history.T.cpu(), losses.T.cpu()
    start, final, dead_at = start.cpu(), final.cpu(), dead_at.cpu()
    results = []
    for i, unit in enumerate(units):
        first = i * copies
        rows = range(first, first + copies)
        dead = [int(dead_at[r]) for r in rows if dead_at[r] >= 0]
        error = f"loss became NaN or Inf at step {min(dead)}" if dead else None
        curve = history[first]
        results.append(
            UnitRender(
                unit=unit,
                image=images[first],
                extra=[images[r] for r in rows[1:]],
                frames=movie[first],
                history=curve.tolist(),
                loss=losses[first].tolist(),
                start=float(start[first]),
                final=float(final[first]),
                best=float(curve[torch.isfinite(curve)].max()) if torch.isfinite(curve).any() else math.nan,
                error=error,
                seconds=seconds / len(units),
                steps=steps,
            )
        )
    return results
