"""Run a model only as far as the layers an objective needs.

A forward hook on the target module records its output and raises `_Stop`, so nothing after the target
runs: for a mid-network channel most of the network's cost is simply never paid. This works for any
`nn.Module` (torchvision, timm, a user's own) without tracing. Hooks only act for the thread that
installed them, so worker threads can share one model.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn


class _Stop(Exception):
    """Raised inside the forward pass once the deepest needed layer has run."""


class Capture:
    """Outputs of named modules from the last `forward` call."""

    def __init__(self, model: nn.Module, modules: Sequence[str], stop: str | None):
        self.model, self.stop = model, stop
        self.outputs: dict[str, torch.Tensor] = {}
        self._thread = threading.get_ident()
        self._wanted = list(dict.fromkeys(modules))
        self._handles = []
        lookup = dict(model.named_modules())
        for name in self._wanted:
            self._handles.append(lookup[name].register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def record(_module, _inputs, output):
            if threading.get_ident() != self._thread:
                return
            self.outputs[name] = output
            if name == self.stop and all(n in self.outputs for n in self._wanted):
                raise _Stop

        return record

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forward `x`; return the captured outputs, plus the model's output under '' when it ran."""
        self.outputs = {}
        try:
            self.outputs[""] = self.model(x)
        except _Stop:
            pass
        return self.outputs

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@contextmanager
def capture(model: nn.Module, modules: Sequence[str], logits: bool, probe_size: int = 224,
            channels: int = 3) -> Iterator[Capture]:
    """Capture `modules`; stop after the last of them unless the logits (the full output) are needed."""
    wanted = list(dict.fromkeys(m for m in modules if m))
    stop = None if logits or not wanted else _last_in_forward_order(model, wanted, probe_size, channels)
    hooks = Capture(model, wanted, stop)
    try:
        yield hooks
    finally:
        hooks.close()


def _last_in_forward_order(model: nn.Module, modules: Sequence[str], size: int, channels: int = 3) -> str:
    """The module among `modules` that finishes last in a forward pass. Registration order is not
    execution order in general, so it is read off one tiny probe pass."""
    if len(modules) == 1:
        return modules[0]
    order: list[str] = []
    lookup = dict(model.named_modules())
    handles = [lookup[m].register_forward_hook(lambda *_, m=m: order.append(m)) for m in modules]
    try:
        with torch.no_grad():
            device = next(model.parameters(), torch.zeros(())).device
            model(torch.zeros(1, channels, size, size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return order[-1]
