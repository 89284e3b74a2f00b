"""What every renderer benchmark shares: the units, the one evaluator, FLOP counting and the machine's peak.

Every method's final image is judged by the same function (`activation`): the unit's activation on the
un-augmented image resized to the model's input size (224 px), on the original fp32 network. Nothing a
method reports about itself is used for the quality columns.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from featvis_core import load_model
from featvis_core.models import Classifier
from featvis_core.objectives import Targets, unit_scores
from featvis_core.truncate import capture
from featvis_core.units import LOGITS, Kind, Unit

MODEL = "efficientnet_lite0"
TRANSFER = "efficientnet_lite1"


def spread(count: int, total: int) -> list[int]:
    """`count` indices spread evenly over range(total), centred in their slots."""
    return [int((i + 0.5) * total / count) for i in range(count)]


def unit_sets(count: int) -> dict[str, list[Unit]]:
    """The benchmark's units: `count` channels of blocks.10 (112) and blocks.4 (40), `count` class logits."""
    return {
        "blocks.10": [Unit("blocks.10", Kind.CHANNEL, i) for i in spread(count, 112)],
        "blocks.4": [Unit("blocks.4", Kind.CHANNEL, i) for i in spread(count, 40)],
        "logits": [Unit(LOGITS, Kind.LOGIT, i) for i in spread(count, 1000)],
    }


def model() -> Classifier:
    return load_model(MODEL)


def transfer_model() -> Classifier:
    """The second, independently trained model of the transfer scores (loaded only for logits)."""
    return load_model(TRANSFER)


@torch.no_grad()
def activation(model: Classifier, images: torch.Tensor, units: list[Unit]) -> torch.Tensor:
    """The shared evaluator: each unit's activation on its final image, un-augmented, resized to the
    model's input size, on the original fp32 network (not the renderer's fast copy)."""
    images = images.float().clamp(0, 1)
    size = model.input_size
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=images.shape[-1] > size)
    layer = units[0].layer
    target = None if layer == LOGITS else model.resolve_layer(layer)
    with capture(model.module, [target], layer == LOGITS, size) as run:
        outputs = run(model.normalise(images).contiguous(memory_format=torch.channels_last))
    return unit_scores(outputs[target or ""], Targets.build(units))


def step_flops(model: Classifier, layer: str, batch: int, size: int) -> int:
    """FLOPs of one optimisation step of the truncated network, counted by torch's FlopCounterMode:
    forward to `layer` plus the backward to the input (weights frozen, so no weight gradients)."""
    from torch.utils.flop_counter import FlopCounterMode

    target = None if layer == LOGITS else model.resolve_layer(layer)
    x = torch.rand(batch, 3, size, size, requires_grad=True)
    counter = FlopCounterMode(display=False)
    with counter, capture(model.module, [target], layer == LOGITS, size) as run:
        out = run(model.normalise(x).contiguous(memory_format=torch.channels_last))[target or ""]
        out.float().mean().backward()
    return int(counter.get_total_flops())


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of an n x n matmul in this process: the machine's practical limit for dense work. Best of
    several timed repeats, since other processes share the CPU."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best, began = 0.0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


@dataclass
class Machine:
    cpu: str
    cores: int
    threads: int
    torch: str
    load: tuple[float, float, float]

    @staticmethod
    def now() -> "Machine":
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as info:
                cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        return Machine(cpu, os.cpu_count() or 1, torch.get_num_threads(), torch.__version__, os.getloadavg())
