"""Circuit links: which channels of the previous layer drive a unit, by attribution.

For an input x and a unit u of layer L (channel mean, or a class logit), the contribution of channel c
of an earlier layer P is activation x gradient summed over positions:

    a(u <- c; x) = sum_{h,w} P_c(x)[h, w] * d u(x) / d P_c(x)[h, w]

(the first-order share of u's value that flows through c; Distill's "Zoom In" and Microscope link units
this way). It is averaged over inputs that matter to u: its own feature visualization and its strongest
dataset examples. Each input of a batch serves its own unit and the units' scores are summed before one
backward pass, so one pass gives every input's attribution row.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .fastnet import fast_bfloat16, render_network
from .models import Classifier
from .truncate import capture
from .units import LOGITS


def attribution(model: Classifier, layer: str, previous: str, inputs: torch.Tensor,
                units: Sequence[int], batch: int = 16) -> torch.Tensor:
    """(N, C_previous): activation x gradient of each input's own unit (channel or class index of
    `layer`) with respect to every channel of `previous`. `inputs` are (N, 3, S, S) in [0, 1] at the
    model's input size."""
    device = model.device
    target = None if layer == LOGITS else model.resolve_layer(layer)
    source = model.resolve_layer(previous)
    source_layout = model.layer(previous).layout  # probe.py: NCHW, channels-last or tokens
    target_layout = model.layer(layer).layout if target else None
    bf16 = fast_bfloat16(device)
    net = render_network(model, model.module, [m for m in (source, target) if m], model.input_size,
                         torch.bfloat16 if bf16 else torch.float32)
    leaf: dict[str, torch.Tensor] = {}

    def make_leaf(_module, _inputs, output):
        """Cut the graph at `previous`: its output becomes the tensor gradients are taken against."""
        leaf["out"] = output.detach().requires_grad_(True)
        return leaf["out"]

    handle = dict(net.named_modules())[source].register_forward_hook(make_leaf)
    rows = []
    try:
        with capture(net, [target] if target else [], target is None, model.input_size) as run:
            for start in range(0, len(inputs), batch):
                chunk = inputs[start:start + batch].to(device)
                index = torch.as_tensor(list(units[start:start + batch]), device=device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    out = run(model.normalise(model.from_rgb(chunk)).contiguous(memory_format=torch.channels_last))[target or ""]
                out = out.float()
                values = target_layout.as_map(out).mean(dim=(2, 3)) if target_layout else out
                score = values.gather(1, index[:, None]).sum()
                activation = leaf["out"]
                (grad,) = torch.autograd.grad(score, activation)
                rows.append(source_layout.as_map(activation.float() * grad.float()).sum(dim=(2, 3)).detach().cpu())
    finally:
        handle.remove()
    return torch.cat(rows) if rows else torch.zeros(0, 0)


def strongest(weights: torch.Tensor, candidates: Sequence[int], count: int) -> list[list[tuple[int, float]]]:
    """Per row of `weights` (units x channels): the `count` candidate channels with the largest |weight|,
    as (channel, weight / the row's largest |weight|)."""
    if not len(candidates):
        return [[] for _ in range(len(weights))]
    columns = torch.as_tensor(list(candidates), dtype=torch.long)
    part = weights[:, columns]
    scale = part.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
    order = part.abs().argsort(dim=1, descending=True)[:, :count]
    return [[(int(columns[j]), round(float(part[i, j] / scale[i]), 4)) for j in row] for i, row in enumerate(order)]
