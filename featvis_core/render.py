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

The loop in `render` reads top to bottom: `Setup` fixes everything before the first step (targets,
random draws, the network copy, the crop phase), `Objective` is one step's loss (augment -> forward ->
score -> penalties -> diversity), `descend` takes the optimiser step and `RunState` records what the
run keeps (histories, dead images, best image, early stop, frames) and splits it into `UnitRender`s.
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
from .param import ImageParam, as_rgb, make_param
from .probe import Layout
from .penalties import penalties, total
from .schedules import Upscale
from .transforms import Augment, augment, draws, gaussian_blur
from .truncate import capture
from .units import LOGITS, Unit

StepCallback = Callable[[int, int], None]


@dataclass
class UnitRender:
    """What one unit's optimisation produced. Tensors are on the CPU."""

    unit: Unit
    image: torch.Tensor  # (C, H, W) in [0, 1], C the model's input channels (media show it as RGB)
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


def plateau_update(loss: torch.Tensor, reference: torch.Tensor, improved_at: torch.Tensor, step: int,
                   tolerance: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Early-stop bookkeeping per image: it improves when its loss beats its reference level by
    `tolerance` (relative). Losses on random augmented views are noisy, so counting any new best would
    keep every run alive by chance; a NaN loss never improves."""
    better = ~torch.isfinite(reference) | (loss < reference - tolerance * reference.abs())
    better = better & torch.isfinite(loss)
    return torch.where(better, loss, reference), torch.where(better, step, improved_at)


def to_frames(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, h, w) in [0, 1] -> (B, size, size, 3) uint8, resized so every frame has the final size (shown
    as RGB: grayscale or the first three channels, see `as_rgb`)."""
    images = as_rgb(images)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def _check_units(model: Classifier, units: Sequence[Unit], config: RenderConfig) -> str:
    if not units:
        raise FeatvisError("nothing to render: no units given")
    layers = {u.layer for u in units}
    if len(layers) > 1:
        raise FeatvisError(f"one batch renders one target layer, got {', '.join(sorted(layers))}")
    if config.final_size < model.min_size and not model.fixed_size:  # a fixed-size model sees every view resampled
        raise FeatvisError(f"image size {config.final_size} px is below {model.name}'s minimum of {model.min_size} px")
    return layers.pop()


@dataclass
class Setup:
    """What one batched render fixes before its first step: the targets, every random draw, the network
    copy, and which steps see a crop window (the crop phase) or count as the final view (`fine`)."""

    model: Classifier
    config: RenderConfig
    target: str | None  # module path of the target layer; None: the logits
    diversity_layer: str | None  # where diversity compares images (None: no diversity)
    targets: Targets  # one row per image
    view_targets: Targets  # one row per augmented view (several per image with `augment.copies`)
    generators: list[torch.Generator]
    schedule: Upscale
    uniforms: torch.Tensor  # (steps, images * views, DRAWS) augmentation draws
    network: torch.nn.Module  # the folded render copy
    autocast: torch.autocast
    crop_until: int  # steps before this one see a crop window
    layout: Layout = Layout()  # how the target layer holds its channels (probe.py)
    diversity_layout: Layout = Layout()
    side: int | None = None  # a fixed-size model's input side: every view is resampled to it

    @staticmethod
    def of(model: Classifier, units: Sequence[Unit], config: RenderConfig) -> "Setup":
        layer, device = units[0].layer, model.device
        target = None if layer == LOGITS else model.resolve_layer(layer)
        copies, views = config.diversity, config.augment.copies
        listed = model.layers() if copies > 1 and not target else []
        if copies > 1 and not target and not listed:
            raise FeatvisError(f"diversity compares feature maps, and {model.name} lists none")
        diversity_layer = (target or listed[-1].module) if copies > 1 else None
        layout = _layout(model, target)
        targets = Targets.build(units, copies, device, layout)
        view_targets = Targets.build(units, copies * views, device, layout) if views > 1 else targets
        generators = [torch.Generator().manual_seed(image_seed(config.seed, u, k)) for u in units for k in range(copies)]
        schedule = config.upscale
        uniforms = draws(generators, schedule.steps, views, device)
        bf16 = config.precision == "bf16" or (config.precision == "auto" and fast_bfloat16(device))
        network = render_network(model, model.module, [target, diversity_layer], model.input_size,
                                 torch.bfloat16 if bf16 else torch.float32)
        shrinks = config.crop is not None and config.crop < config.augment.view_size(schedule.final)
        return Setup(model, config, target, diversity_layer, targets, view_targets, generators, schedule, uniforms,
                     network, torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16),
                     round(config.crop_share * schedule.steps) if shrinks else 0,
                     layout, _layout(model, diversity_layer),
                     model.input_size if model.fixed_size else None)

    @property
    def steps(self) -> int:
        return self.schedule.steps

    def fine(self, stage: int, step: int) -> bool:
        """Does this step see what the final image is judged on (last size, no crop window)? Only such
        steps choose the best image and count toward early stop: their losses are comparable."""
        return stage == len(self.schedule.sizes) - 1 and step >= self.crop_until


def _layout(model: Classifier, path: str | None) -> Layout:
    """The layout of a module's output (NCHW for the logits and for modules the probe does not list)."""
    if path is None:
        return Layout()
    info = model.layer(path)
    return info.layout


class Objective:
    """The loss of one step: augment -> forward -> score -> penalties -> diversity, per image."""

    def __init__(self, setup: Setup, forward: Callable[[torch.Tensor], dict[str, torch.Tensor]]):
        self.setup, self.forward = setup, forward
        config = setup.config
        self.penalties = penalties(config)
        self.cropped = dataclasses.replace(config.augment, crop=config.crop,
                                           scale=tuple(config.crop_scale or config.augment.scale))
        self.centred_view = Augment(pad=config.augment.pad, jitter=0, scale=(1.0, 1.0), rotate=0.0, jitter_after=0,
                                    fill=config.augment.fill, output=config.augment.output, zoom=config.augment.zoom)

    def __call__(self, images: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(score, loss) of every image at `step` (loss = -score + penalties + diversity)."""
        setup, config = self.setup, self.setup.config
        view = self.cropped if step < setup.crop_until else config.augment
        inputs = augment(images, setup.uniforms[step], view, side=setup.side)
        if config.input_blur:
            inputs = gaussian_blur(inputs, config.input_blur * (1 - step / setup.steps))
        with setup.autocast:
            outputs = self.forward(model_input(setup.model, inputs))
        score = unit_scores(outputs[setup.target or ""], setup.view_targets)
        if config.augment.copies > 1:
            score = score.view(len(images), config.augment.copies).mean(1)
        loss = -score + total(self.penalties, images)
        if setup.diversity_layer:
            features = setup.diversity_layout.as_map(outputs[setup.diversity_layer])[::config.augment.copies]
            loss = loss + config.diversity_weight * diversity(features, setup.targets.group)
        return score, loss

    @torch.no_grad()
    def centred(self, images: torch.Tensor) -> torch.Tensor:
        """Activation on the centred view: the training canvas (pad, output size), no randomness."""
        setup = self.setup
        with setup.autocast:
            inputs = augment(images, setup.uniforms[0][::setup.config.augment.copies], self.centred_view,
                             side=setup.side)
            outputs = self.forward(model_input(setup.model, inputs))
        return unit_scores(outputs[setup.target or ""], setup.targets)


def model_input(model: Classifier, images: torch.Tensor) -> torch.Tensor:
    """`augment` already resampled to the model's input size; normalise, in the layout convs like."""
    return model.normalise(images).contiguous(memory_format=torch.channels_last)


@dataclass
class RunState:
    """What the loop keeps per image: activation and loss histories, which images are still alive (a
    NaN/Inf loss stops one image, not the batch), the best image so far, early-stop bookkeeping and the
    animation's frames. Histories and frames stay on the device until `collect`."""

    config: RenderConfig
    history: torch.Tensor  # (steps, B)
    losses: torch.Tensor  # (steps, B)
    alive: torch.Tensor  # (B,) bool
    dead_at: torch.Tensor  # (B,) step at which the loss went non-finite, -1 if never
    best_loss: torch.Tensor
    frame_at: set[int]
    animation: int  # side of the animation's frames
    best_image: torch.Tensor | None = None
    plateau: torch.Tensor | None = None  # early stop: reference loss per image in this stage
    improved_at: torch.Tensor | None = None  # early stop: last step each image improved on it
    frames: list[torch.Tensor] = field(default_factory=list)

    @staticmethod
    def start(setup: Setup) -> "RunState":
        config, steps, batch, device = setup.config, setup.steps, len(setup.targets), setup.model.device
        animation = min(setup.schedule.final, config.animation_size)
        animation += animation % 2  # H.264 wants even sides
        frame_at = {round(i * (steps - 1) / max(config.frames - 1, 1)) for i in range(config.frames - 1)}
        return RunState(config, torch.zeros(steps, batch, device=device), torch.zeros(steps, batch, device=device),
                        torch.ones(batch, dtype=torch.bool, device=device),
                        torch.full((batch,), -1, dtype=torch.long, device=device),
                        torch.full((batch,), math.inf, device=device), frame_at, animation)

    def new_stage(self, step: int) -> None:
        """Early stop compares losses within a stage: a new size restarts its clock."""
        self.improved_at = torch.full_like(self.dead_at, step)
        self.plateau = torch.full_like(self.best_loss, math.inf)

    def survivors(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        """Mark images whose loss is no longer finite as dead; the loss with dead images' zeroed."""
        finite = torch.isfinite(loss)
        self.dead_at = torch.where(self.alive & ~finite, step, self.dead_at)
        self.alive = self.alive & finite
        return torch.where(self.alive, loss, 0.0)

    def record(self, step: int, images: torch.Tensor, score: torch.Tensor, loss: torch.Tensor, fine: bool) -> None:
        """Histories; on `fine` steps also the plateau clock and the best image."""
        loss = loss.detach()
        self.history[step], self.losses[step] = score.detach(), loss
        if self.config.early_stop and fine:
            self.plateau, self.improved_at = plateau_update(loss, self.plateau, self.improved_at, step)
        if self.config.best and fine:
            better = loss < self.best_loss
            self.best_loss = torch.where(better, loss, self.best_loss)
            keep = better.view(-1, 1, 1, 1)
            self.best_image = images.detach() if self.best_image is None else torch.where(keep, images.detach(), self.best_image)

    def keep_frame(self, step: int, images: torch.Tensor) -> None:
        if step in self.frame_at:
            self.frames.append(to_frames(images.detach(), self.animation))

    def should_stop(self, done: int, fine: bool) -> bool:
        """Early stop, checked every 16 steps: every image went `early_stop` steps without improving."""
        if not (self.config.early_stop and fine and done % 16 == 0):
            return False
        return int((done - self.improved_at).min()) > self.config.early_stop

    def final_images(self, param: ImageParam) -> torch.Tensor:
        images = self.best_image if self.best_image is not None else param().detach()
        return images.clamp(0, 1)

    def collect(self, units: Sequence[Unit], copies: int, images: torch.Tensor, start: torch.Tensor,
                final: torch.Tensor, done: int, seconds: float) -> list[UnitRender]:
        """One `UnitRender` per unit (its first image carries the history; the others are `extra`)."""
        self.frames.append(to_frames(images, self.animation))
        images, movie = images.float().cpu(), torch.stack(self.frames, dim=1).cpu()
        history, losses = self.history[:done].T.cpu(), self.losses[:done].T.cpu()
        start, final, dead_at = start.cpu(), final.cpu(), self.dead_at.cpu()
        results = []
        for i, unit in enumerate(units):
            rows = range(i * copies, (i + 1) * copies)
            dead = [int(dead_at[r]) for r in rows if dead_at[r] >= 0]
            curve = history[rows[0]]
            results.append(UnitRender(
                unit=unit, image=images[rows[0]], extra=[images[r] for r in rows[1:]], frames=movie[rows[0]],
                history=curve.tolist(), loss=losses[rows[0]].tolist(),
                start=float(start[rows[0]]), final=float(final[rows[0]]),
                best=float(curve[torch.isfinite(curve)].max()) if torch.isfinite(curve).any() else math.nan,
                error=f"loss became NaN or Inf at step {min(dead)}" if dead else None,
                seconds=seconds / len(units), steps=done,
            ))
        return results


def descend(optimizer: torch.optim.Optimizer, param: ImageParam, loss: torch.Tensor, alive: torch.Tensor) -> None:
    """One optimiser step on the summed loss. Dead images' gradients are zeroed so their NaNs never
    reach the optimiser state."""
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()
    for p in param.parameters():
        if p.grad is not None:
            mask = alive.view(-1, *([1] * (p.grad.ndim - 1)))
            p.grad = torch.where(mask, p.grad, torch.zeros((), device=p.grad.device, dtype=p.grad.dtype))
    optimizer.step()
    param.project()


def grown(param: ImageParam, size: int, blur: float) -> ImageParam:
    """The next stage's image: resized, optionally blurred (upscaling leaves blocky high frequencies)."""
    param = param.resized(size)
    if blur:
        param.set_linear(gaussian_blur(param.linear(), blur, 5))
    return param


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
    _check_units(model, units, config)
    if device is not None and torch.device(device) != model.device:
        model.to(device)
    if model.device.type == "cpu":
        keep_freed_memory()
    setup = Setup.of(model, units, config)
    param = make_param(config.param, setup.generators, setup.schedule.start, model.device, config.decay, config.decorrelate,
                       model.channels)
    state = RunState.start(setup)
    began = time.perf_counter()
    with capture(setup.network, [setup.target, setup.diversity_layer], setup.target is None, model.input_size,
                 model.channels) as forward:
        objective = Objective(setup, forward)
        start = objective.centred(param().detach())
        looping, step = time.perf_counter(), 0
        for stage, size in enumerate(setup.schedule.sizes):
            param = grown(param, size, setup.schedule.blur) if stage else param
            optimizer = make_optimizer(config.optimizer, param.parameters(), config.lr)
            state.new_stage(step)
            for _ in range(setup.schedule.every):
                images, fine = param(), setup.fine(stage, step)
                score, loss = objective(images, step)
                descend(optimizer, param, state.survivors(loss, step), state.alive)
                state.record(step, images, score, loss, fine)
                if config.blur_every and (step + 1) % config.blur_every == 0:
                    param.set_linear(gaussian_blur(param.linear(), config.blur_sigma, 5))
                state.keep_frame(step, images)
                step += 1
                if on_step:
                    on_step(step, setup.steps)
                if state.should_stop(step, fine):
                    break
        stepped = time.perf_counter()
        final_images = state.final_images(param)
        final = objective.centred(final_images)
    results = state.collect(units, config.diversity, final_images, start, final, step, time.perf_counter() - began)
    timings = {"prepare_s": began - entered, "steps_s": stepped - looping, "total_s": time.perf_counter() - entered}
    for result in results:
        result.timings = timings
    return results
