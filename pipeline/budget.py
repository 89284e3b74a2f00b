"""What one tile will cost, estimated at planning time, and a refusal in one line when it cannot fit.

Every setting is bounded by RenderConfig's checks, but bounded is not affordable: 16 images of 2048 px at
100,000 steps pass every check and still need far more memory than a machine has. Before any model weights
are loaded or a flow starts, a tile's peak memory and time are estimated from the model's own layer sizes:

* activations kept for the backward pass: the feature maps of every layer up to the target, per image and
  augmented view, times ACTIVATION_FACTOR (a block's inner tensors; measured: 6.3x on EfficientNet-Lite0 at
  224 px, 34 MB per image for blocks.10 with the fast preset, rounded up);
* the run's random draws, histories and animation frames, which the renderer keeps on the device;
* the image parameters and the optimiser's state.

Time uses SECONDS_PER_ELEMENT_STEP, measured on this project's 2-core Xeon (bench/README.md: the lucid preset,
224 px, blocks.10: 10.7 ms per image-step), and a GPU's GPU_SPEEDUP: an estimate to plan with, not a promise.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from featvis_core import Classifier, FeatvisError, RenderConfig
from featvis_core.units import LOGITS

ACTIVATION_FACTOR = 8
SECONDS_PER_ELEMENT_STEP = 8e-9
GPU_SPEEDUP = 40
MAX_TILE_SECONDS = 48 * 3600
MEMORY_SHARE = 0.8  # of the device's free memory a tile may plan to use


@dataclass(frozen=True)
class TileCost:
    images: int
    bytes: int
    seconds: float

    def describe(self) -> str:
        return f"about {_size(self.bytes)} and {_duration(self.seconds)} per tile of {self.images} image(s)"


def activation_elements(model: Classifier, layer: str, view: int) -> float:
    """Feature-map elements per image from the input to `layer` (every layer for the logits), at `view` px."""
    infos = model.layers()
    target = None if layer == LOGITS else model.resolve_layer(layer)
    paths = [info.module for info in infos]
    total = 0
    for info in infos:
        if any(other.startswith(info.module + ".") for other in paths):
            continue  # a container: its children are counted
        total += info.channels * info.height * info.width
        if info.module == target:
            break
    return total * (view / model.input_size) ** 2


def tile_cost(model: Classifier, layer: str, units: int, config: RenderConfig, device: str = "cpu") -> TileCost:
    """Peak memory and time of one tile of `units` units of `layer`."""
    images = units * config.diversity
    views = config.augment.copies
    steps, final = config.total_steps, config.final_size
    view = model.input_size if model.fixed_size else config.augment.view_size(final)  # probe.py: its only size
    elements = activation_elements(model, layer, view)
    anim = min(final, config.animation_size) + 1
    weights = sum(p.numel() * p.element_size() for p in model.module.parameters())
    memory = (
        images * views * elements * 4 * ACTIVATION_FACTOR
        + steps * images * views * 12 * 4 + 2 * steps * images * 4  # random draws, score and loss histories
        + 2 * config.frames * images * anim * anim * 3  # frames on the device, then on the host
        + 6 * images * model.channels * final * final * 4  # image parameters, gradients, optimiser state, best images
        + 2 * weights  # the model and its render copy
    )
    seconds = steps * images * views * elements * SECONDS_PER_ELEMENT_STEP
    if device.startswith("cuda"):
        seconds /= GPU_SPEEDUP
    return TileCost(images, int(memory), seconds)


def free_memory(device: str) -> int | None:
    """Bytes free on a device of this machine (None when unknown)."""
    if device.startswith("cuda"):
        import torch

        index = int(device.partition(":")[2] or 0)
        return int(torch.cuda.mem_get_info(index)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def check_tile(model: Classifier, layer: str, units: int, config: RenderConfig, device: str,
               batch_name: str = "batch") -> TileCost:
    """The tile's cost, or a FeatvisError in one line saying what would fit (batch, or size)."""
    cost = tile_cost(model, layer, units, config, device)
    per_unit = max(1, cost.bytes // max(1, units))
    free = free_memory(device)
    if free is not None and cost.bytes > MEMORY_SHARE * free:
        fits = int(MEMORY_SHARE * free // per_unit)
        if fits >= 1:
            hint = f"a {batch_name} of {fits * config.diversity} or less would fit"
        else:
            size = int(config.final_size * math.sqrt(MEMORY_SHARE * free / per_unit)) // 8 * 8
            hint = f"even one unit does not fit: size {size} px or less, or fewer steps, would" if size >= 8 else \
                "even one unit of the smallest size does not fit"
        raise FeatvisError(f"a tile of {cost.images} image(s) of {layer} at {config.final_size} px needs "
                           f"{_size(cost.bytes)}, more than the {_size(free)} free on {device}; {hint}")
    if cost.seconds > MAX_TILE_SECONDS:
        fits = max(1, int(units * MAX_TILE_SECONDS / cost.seconds))
        steps = max(1, int(config.total_steps * MAX_TILE_SECONDS / cost.seconds))
        raise FeatvisError(f"a tile of {cost.images} image(s) of {layer} would take {_duration(cost.seconds)} on "
                           f"{device} (estimate; the limit is {_duration(MAX_TILE_SECONDS)}): use a {batch_name} of "
                           f"{fits * config.diversity} or less, or {steps:,} steps or fewer")
    return cost


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} PB"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def plan_device(runner_kind: str, address: str | None, cuda: bool) -> str | None:
    """The device this machine's tiles render on (None: remote workers, whose memory is unknown here)."""
    if address:
        return None
    from .devices import gpu_count

    return "cuda:0" if gpu_count() or (runner_kind == "dask" and cuda) else "cpu"


def check_plan(plan) -> dict[str, TileCost]:
    """The largest tile of every layer of a plan, checked against the device the job renders on."""
    spec = plan.job.runner
    device = plan_device(spec.kind, spec.address, spec.cuda)
    per_tile = max(1, plan.job.batch // plan.config.diversity)
    counts: dict[str, int] = {}
    for unit in plan.units:
        counts[unit.unit.layer] = counts.get(unit.unit.layer, 0) + 1
    costs = {}
    for layer, count in counts.items():
        units = min(per_tile, count)
        if device is None:
            costs[layer] = tile_cost(plan.model, layer, units, plan.config, "cpu")
        else:
            costs[layer] = check_tile(plan.model, layer, units, plan.config, device)
    return costs
